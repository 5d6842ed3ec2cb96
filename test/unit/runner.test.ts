import t from 'tap';
import { BoundedRunner } from '../../src/control/runner';
import type { Clock } from '../../src/control/runner';

/** A manual clock: timers fire only when the test advances time. */
class FakeClock implements Clock {
  t = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  private next = 1;
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timers.delete(h as number);
  }
  /** Advances time, firing due timers in order, letting promises settle between. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await flush();
      const due = [...this.timers.entries()].filter(([, v]) => v.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) {
        break;
      }
      this.timers.delete(due[0]);
      this.t = Math.max(this.t, due[1].at);
      due[1].fn();
    }
    this.t = end;
    await flush();
  }
}
const flush = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) {
    await Promise.resolve();
  }
};

function setup(results: boolean[] = []): { clock: FakeClock; runs: number[]; runner: BoundedRunner; release: () => void; block: (b: boolean) => void } {
  const clock = new FakeClock();
  const runs: number[] = [];
  let blocked = false;
  let release: () => void = () => undefined;
  const runner = new BoundedRunner(
    async () => {
      runs.push(clock.now());
      if (blocked) {
        await new Promise<void>((r) => (release = r));
      }
      return results.shift() ?? true;
    },
    { minIntervalMs: 100, maxIntervalMs: 1000, retryMinMs: 50 },
    clock,
  );
  return { clock, runs, runner, release: () => release(), block: (b) => (blocked = b) };
}

t.test('runs periodically at the max interval', async (t) => {
  const { clock, runs, runner } = setup();
  await runner.runNow();
  runner.start();
  await clock.advance(3500);
  t.same(runs, [0, 1000, 2000, 3000]);
  await runner.stop();
});

t.test('a request runs at once when the min interval has passed, else waits for it', async (t) => {
  const { clock, runs, runner } = setup();
  await runner.runNow();
  runner.start();
  await clock.advance(500);
  const p = runner.request();
  await clock.advance(0);
  await p;
  t.same(runs, [0, 500], 'immediate');
  void runner.request();
  await clock.advance(30);
  t.same(runs, [0, 500], 'not before min interval');
  await clock.advance(70);
  t.same(runs, [0, 500, 600], 'at lastStart + min');
  await clock.advance(1000);
  t.same(runs, [0, 500, 600, 1600], 'periodic schedule resumes from the last run');
  await runner.stop();
});

t.test('requests during a run coalesce into one follow-up run', async (t) => {
  const { clock, runs, runner, release, block } = setup();
  block(true);
  const first = runner.runNow();
  await clock.advance(10);
  const a = runner.request();
  const b = runner.request();
  const c = runner.request();
  block(false);
  release();
  await first;
  await clock.advance(200);
  await Promise.all([a, b, c]);
  t.same(runs, [0, 100], 'one follow-up, after the min interval');
  await runner.stop();
});

t.test('failures retry with a doubling backoff capped at the max interval', async (t) => {
  const { clock, runs, runner } = setup([false, false, false, false, false, false, true]);
  await runner.runNow();
  runner.start();
  await clock.advance(3000);
  // 0 fail -> +50, fail -> +100, fail -> +200, fail -> +400, fail -> +800, fail -> +1000 (cap), ok -> +1000
  t.same(runs.slice(0, 8), [0, 50, 150, 350, 750, 1550, 2550]);
  await runner.stop();
});

t.test('stop: no further runs, pending requests resolve', async (t) => {
  const { clock, runs, runner } = setup();
  await runner.runNow();
  runner.start();
  await runner.stop();
  const p = runner.request();
  await clock.advance(5000);
  await p;
  t.same(runs, [0]);
});

t.test('jitter: periodic runs come up to the given fraction early, never late', async (t) => {
  const clock = new FakeClock();
  const runs: number[] = [];
  const draws = [0.5, 0.0, 0.999];
  const runner = new BoundedRunner(
    () => {
      runs.push(clock.now());
      return Promise.resolve(true);
    },
    { minIntervalMs: 100, maxIntervalMs: 1000, retryMinMs: 50, jitter: 0.2, random: () => draws.shift() ?? 0 },
    clock,
  );
  await runner.runNow();
  runner.start();
  await clock.advance(3000);
  t.same(runs, [0, 900, 1700, 2700], "each delay is 1000 ms less up to 20 %");
  await runner.stop();
});
