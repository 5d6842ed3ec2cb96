import type { NotifyError, NotifyErrorCode } from '../errors';
import { runSystemdNotify } from '../host/systemd-notify';
import type { Counters } from '../observability/counters';
import type { Logger } from '../observability/logger';
import { countFallback, nativeNotifyTransport } from '../native';
import type { NotifyTransport } from '../native';

/**
 * systemd readiness, reload, stop and watchdog notifications (sd_notify(3)).
 *
 * The protocol is one AF_UNIX datagram of `KEY=VALUE` lines to
 * $NOTIFY_SOCKET. Node cannot send unix datagrams: the native shim
 * (src/native, `sd_notify`) sends it when the addon is loaded; otherwise,
 * and for any message the shim fails to send (counted in
 * sharegw_native_fallbacks_total{shim="sdNotify"}), one run of
 * `systemd-notify` does. Messages are sent one at a time in call order:
 * RELOADING=1 must reach systemd before the READY=1 that ends the reload.
 *
 * Failures (binary missing, non-zero exit, timeout) are logged once per
 * error code, counted, and never thrown: the daemon's work must not stop
 * because a notification was lost. systemd's own timeouts (TimeoutStartSec,
 * WatchdogSec) are what turn lost notifications into a restart.
 */

/** What the daemon tells its service manager. Every method resolves, never rejects. */
export interface Notifier {
  /**
   * `none`: not started by systemd with Type=notify (no NOTIFY_SOCKET);
   * every method is a no-op. `sd_notify`: datagrams from the native shim
   * (systemd-notify when one fails). `systemd-notify`: the command only.
   */
  readonly kind: 'none' | 'sd_notify' | 'systemd-notify';
  /** READY=1 (+ STATUS=): start-up complete, or a reload finished. */
  ready(status?: string): Promise<void>;
  /** RELOADING=1 with MONOTONIC_USEC=: a reload began; follow with ready() when it ends. */
  reloading(status?: string): Promise<void>;
  /** STOPPING=1: shutdown began. */
  stopping(status?: string): Promise<void>;
  /** WATCHDOG=1: keep-alive; pings that queue up behind a slow one are sent once. */
  watchdog(): Promise<void>;
  /** STATUS=: free text shown by `systemctl status`; updates that queue up are sent once, with the latest text. */
  status(text: string): Promise<void>;
  /** Delivery counts and the last failure, for `sharegw status`. */
  stats(): NotifierStats;
}

export interface NotifierStats {
  sent: number;
  failed: number;
  lastError: { code: NotifyErrorCode; message: string } | null;
}

export interface NotifierOptions {
  /** The systemd-notify binary (name looked up in PATH, or a path). */
  command?: string;
  /** Kills a run that takes longer (systemd-notify waits for systemd to take the message). Default 10 s. */
  timeoutMs?: number;
  counters?: Counters;
  /** The pid the messages are sent for; default process.pid. */
  pid?: number;
  /** CLOCK_MONOTONIC in µs, for MONOTONIC_USEC; default from process.hrtime (libuv uses CLOCK_MONOTONIC). */
  monotonicUsec?: () => bigint;
  /** The native datagram transport; default the addon's when loaded, null forces systemd-notify. */
  native?: NotifyTransport | null;
}

export const DEFAULT_COMMAND = 'systemd-notify';
export const DEFAULT_TIMEOUT_MS = 10_000;
/** STATUS= text is cut here; `systemctl status` shows one short line anyway. */
export const MAX_STATUS_CHARS = 256;
/** Counter of failed notifications, labelled by code. */
export const NOTIFY_ERRORS_COUNTER = 'sharegw_notify_errors_total';

/**
 * The notifier for this process: `none` when NOTIFY_SOCKET is unset or
 * empty, else one that runs systemd-notify.
 */
export function createNotifier(env: NodeJS.ProcessEnv = process.env, log?: Logger, options: NotifierOptions = {}): Notifier {
  const socket = env['NOTIFY_SOCKET'];
  if (socket === undefined || socket === '') {
    return new NullNotifier();
  }
  const native = options.native === undefined ? nativeNotifyTransport() : options.native;
  return new QueueNotifier(socket, env['PATH'], native, log, options);
}

/**
 * How often to send WATCHDOG=1, in ms: half of WATCHDOG_USEC (as
 * sd_watchdog_enabled(3) advises), or null when no watchdog is asked of this
 * process (unset or invalid WATCHDOG_USEC, or WATCHDOG_PID naming another
 * process, e.g. a parent shell that exec'd us not being the main pid).
 */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): number | null {
  const usecText = env['WATCHDOG_USEC'];
  if (usecText === undefined || !/^\d{1,19}$/.test(usecText)) {
    return null;
  }
  const usec = Number(usecText);
  if (usec <= 0) {
    return null;
  }
  const pidText = env['WATCHDOG_PID'];
  if (pidText !== undefined && pidText !== '' && Number(pidText) !== pid) {
    return null;
  }
  return Math.max(1, Math.floor(usec / 2000));
}

class NullNotifier implements Notifier {
  readonly kind = 'none' as const;
  async ready(): Promise<void> {}
  async reloading(): Promise<void> {}
  async stopping(): Promise<void> {}
  async watchdog(): Promise<void> {}
  async status(): Promise<void> {}
  stats(): NotifierStats {
    return { sent: 0, failed: 0, lastError: null };
  }
}

/** One queued message. `merge` set: a later message of the same kind may replace it while it waits. */
interface Pending {
  assignments: string[];
  merge: 'watchdog' | 'status' | null;
  done: Promise<void>;
  resolve: () => void;
}

class QueueNotifier implements Notifier {
  readonly kind: 'sd_notify' | 'systemd-notify';
  private readonly command: string;
  private readonly timeoutMs: number;
  private readonly pid: number;
  private readonly monotonicUsec: () => bigint;
  private readonly childEnv: NodeJS.ProcessEnv;
  private readonly waiting: Pending[] = [];
  private running = false;
  private sent = 0;
  private failed = 0;
  private lastError: NotifierStats['lastError'] = null;
  /** Code of the failure already logged at warn; cleared by a success. */
  private loggedCode: NotifyErrorCode | null = null;

  constructor(
    private readonly socket: string,
    pathEnv: string | undefined,
    private readonly native: NotifyTransport | null,
    private readonly log: Logger | undefined,
    private readonly options: NotifierOptions,
  ) {
    this.kind = native === null ? 'systemd-notify' : 'sd_notify';
    this.command = options.command ?? DEFAULT_COMMAND;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.pid = options.pid ?? process.pid;
    this.monotonicUsec = options.monotonicUsec ?? (() => process.hrtime.bigint() / 1000n);
    // Only what systemd-notify needs: our environment may hold credentials.
    this.childEnv = { NOTIFY_SOCKET: socket, PATH: pathEnv ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };
  }

  ready(status?: string): Promise<void> {
    return this.enqueue(['READY=1', ...statusOf(status)], null);
  }

  reloading(status?: string): Promise<void> {
    // MONOTONIC_USEC is taken when the message is queued, the moment the
    // reload began; systemd >= 253 (Type=notify-reload) requires it.
    return this.enqueue(['RELOADING=1', `MONOTONIC_USEC=${this.monotonicUsec()}`, ...statusOf(status)], null);
  }

  stopping(status?: string): Promise<void> {
    return this.enqueue(['STOPPING=1', ...statusOf(status)], null);
  }

  watchdog(): Promise<void> {
    return this.enqueue(['WATCHDOG=1'], 'watchdog');
  }

  status(text: string): Promise<void> {
    return this.enqueue(statusOf(text), 'status');
  }

  stats(): NotifierStats {
    return { sent: this.sent, failed: this.failed, lastError: this.lastError };
  }

  private enqueue(assignments: string[], merge: Pending['merge']): Promise<void> {
    if (merge !== null) {
      // A watchdog ping may join any waiting one (they carry no data); a
      // status text only the last waiting message, so that it never jumps
      // ahead of a READY=1 or STOPPING=1 queued after an older status.
      const same = merge === 'watchdog' ? this.waiting.find((p) => p.merge === merge) : this.waiting.at(-1);
      if (same !== undefined && same.merge === merge) {
        same.assignments = assignments;
        return same.done;
      }
    }
    let resolve: () => void = () => undefined;
    const done = new Promise<void>((r) => {
      resolve = r;
    });
    this.waiting.push({ assignments, merge, done, resolve });
    this.pump();
    return done;
  }

  private pump(): void {
    if (this.running) {
      return;
    }
    const next = this.waiting.shift();
    if (next === undefined) {
      return;
    }
    this.running = true;
    void this.send(next.assignments).then(() => {
      this.running = false;
      next.resolve();
      this.pump();
    });
  }

  /**
   * One datagram through the native shim (with MAINPID=, as systemd-notify
   * --pid sends it); when that fails, the command for this message.
   */
  private async send(assignments: string[]): Promise<void> {
    if (this.native !== null) {
      try {
        await this.native.send(this.socket, [...assignments, `MAINPID=${this.pid}`]);
        this.succeeded();
        return;
      } catch (err) {
        countFallback(this.options.counters, 'sdNotify', err);
        this.log?.debug({ err: (err as Error).message, message: assignments[0] }, 'native sd_notify failed; trying systemd-notify');
      }
    }
    await this.runCommand(assignments);
  }

  /**
   * One run of systemd-notify. Arguments: `--pid=<our pid>` so that, when
   * the sender may set SCM_CREDENTIALS (root with CAP_SYS_ADMIN), systemd
   * attributes the message to the main process; then the assignments as
   * positional VARIABLE=VALUE, which every systemd-notify version sends
   * verbatim (the --ready/--reloading/--stopping flags vary by version).
   * No --no-block: systemd-notify then waits (BARRIER=1) until systemd has
   * processed the message, so the sender is still alive to be attributed
   * to the unit when credentials could not be faked (NotifyAccess=all).
   */
  private async runCommand(assignments: string[]): Promise<void> {
    const failure = await runSystemdNotify(this.command, [`--pid=${this.pid}`, ...assignments], this.childEnv, this.timeoutMs);
    if (failure === null) {
      this.succeeded();
    } else {
      this.failedWith(failure, assignments);
    }
  }

  private succeeded(): void {
    this.sent++;
    if (this.loggedCode !== null) {
      this.loggedCode = null;
      this.log?.info({ command: this.command }, 'systemd notifications are delivered again');
    }
  }

  private failedWith(e: NotifyError, assignments: string[]): void {
    this.failed++;
    this.lastError = { code: e.code, message: e.message };
    this.options.counters?.inc(NOTIFY_ERRORS_COUNTER, { code: e.code });
    const fields = { code: e.code, err: e.message, message: assignments[0] };
    if (this.loggedCode !== e.code) {
      this.loggedCode = e.code;
      this.log?.warn(fields, 'systemd notification failed; continuing (repeats are logged at debug)');
    } else {
      this.log?.debug(fields, 'systemd notification failed again');
    }
  }
}

/** `STATUS=<text>` with control characters (which would start a new assignment) blanked. */
function statusOf(text: string | undefined): string[] {
  if (text === undefined) {
    return [];
  }
  return [`STATUS=${text.replace(/\p{Cc}/gu, ' ').slice(0, MAX_STATUS_CHARS)}`];
}
