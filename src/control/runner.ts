/**
 * A bounded-frequency runner, after kube-proxy's BoundedFrequencyRunner: one
 * async job (the sync) that runs
 * - at least every `maxIntervalMs` (periodic verify and drift repair),
 * - soon after `request()` (reload, admin command), but never more often
 *   than every `minIntervalMs`, with requests made while it runs coalesced
 *   into one follow-up run,
 * - again after a failure, with a backoff from `retryMinMs` doubling up to
 *   `maxIntervalMs`, so a broken iptables does not spin the CPU.
 * One run at a time, never concurrent. Timers and clock are injectable for
 * tests.
 */

export interface RunnerOptions {
  minIntervalMs: number;
  maxIntervalMs: number;
  retryMinMs: number;
  /**
   * Periodic runs and retries come up to this fraction earlier than due
   * (0.1: within the last 10 %), so that hosts started together (a fleet
   * reboot) do not poll a shared API in step. Never later: the max
   * interval stays a promise. Default 0.
   */
  jitter?: number;
  /** [0, 1) source for the jitter (tests). */
  random?: () => number;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => {
    const h = setTimeout(fn, ms);
    // The admin socket, listeners and signals keep the daemon alive, not us.
    h.unref();
    return h;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** The job reports success (true) or failure (false); it must not throw. */
export type Job = () => Promise<boolean>;

export class BoundedRunner {
  private running: Promise<void> | null = null;
  private pending = false;
  private waiters: (() => void)[] = [];
  private lastStart = -Infinity;
  private timer: unknown = null;
  private timerAt = Infinity;
  private failures = 0;
  private stopped = false;

  constructor(
    private readonly job: Job,
    private opts: RunnerOptions,
    private readonly clock: Clock = realClock,
  ) {}

  /** Changes the periodic interval (reload); takes effect from the next run. */
  setMaxInterval(ms: number): void {
    this.opts = { ...this.opts, maxIntervalMs: ms };
  }

  /** Starts the periodic schedule (the first run is the caller's, via runNow). */
  start(): void {
    this.arm(this.jittered(this.opts.maxIntervalMs));
  }

  private jittered(ms: number): number {
    const j = this.opts.jitter ?? 0;
    return j <= 0 ? ms : Math.round(ms * (1 - j * (this.opts.random ?? Math.random)()));
  }

  /**
   * Asks for a run as soon as the minimum interval allows. Resolves when a
   * run that started after this call has finished.
   */
  request(): Promise<void> {
    if (this.stopped) {
      return Promise.resolve();
    }
    const done = new Promise<void>((resolve) => this.waiters.push(resolve));
    this.pending = true;
    if (this.running === null) {
      const wait = Math.max(0, this.lastStart + this.opts.minIntervalMs - this.clock.now());
      this.arm(wait);
    }
    return done;
  }

  /** Runs the job now (used once at start), waiting for a running one first. */
  async runNow(): Promise<void> {
    if (this.running !== null) {
      await this.running;
    }
    await this.execute();
  }

  /** No more runs; waits for the running one. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.disarm();
    if (this.running !== null) {
      await this.running;
    }
    for (const w of this.waiters.splice(0)) {
      w();
    }
  }

  private arm(ms: number): void {
    if (this.stopped) {
      return;
    }
    const at = this.clock.now() + ms;
    if (this.timer !== null && this.timerAt <= at) {
      return; // an earlier run is already scheduled
    }
    this.disarm();
    this.timerAt = at;
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      this.timerAt = Infinity;
      void this.execute();
    }, ms);
  }

  private disarm(): void {
    if (this.timer !== null) {
      this.clock.clearTimeout(this.timer);
      this.timer = null;
      this.timerAt = Infinity;
    }
  }

  private execute(): Promise<void> {
    if (this.running !== null) {
      this.pending = true;
      return this.running;
    }
    this.pending = false;
    const served = this.waiters.splice(0);
    this.lastStart = this.clock.now();
    this.running = this.job().then(
      (ok) => this.finished(ok, served),
      () => this.finished(false, served),
    );
    return this.running;
  }

  private finished(ok: boolean, served: (() => void)[]): void {
    this.running = null;
    for (const w of served) {
      w();
    }
    if (this.stopped) {
      return;
    }
    this.failures = ok ? 0 : this.failures + 1;
    if (this.pending) {
      this.arm(Math.max(0, this.lastStart + this.opts.minIntervalMs - this.clock.now()));
    } else if (!ok) {
      const backoff = Math.min(this.opts.maxIntervalMs, this.opts.retryMinMs * 2 ** (this.failures - 1));
      this.arm(this.jittered(backoff));
    } else {
      this.arm(this.jittered(this.opts.maxIntervalMs));
    }
  }
}
