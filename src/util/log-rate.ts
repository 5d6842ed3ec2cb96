/**
 * Rate limit for log lines of repeated events (refusals): per key (such as
 * domain + reason), the first event of a window is logged at once; the
 * rest of that window are only counted, and the next event after the window
 * logs again with how many were held back. drain() hands out the counts of
 * windows that ended quietly, so nothing counted is lost from the log.
 * State: per key the window start and the suppressed count, at most
 * `maxKeys` keys (the oldest window is dropped first, into an overflow
 * key, so a flood of distinct keys cannot grow memory). Pure: the caller
 * passes the clock.
 */
export class LogRateLimiter {
  private readonly windows = new Map<string, { start: number; suppressed: number }>();

  /** Key that stands for every key dropped once `maxKeys` were live. */
  static readonly OVERFLOW = '(other)';

  constructor(
    private readonly windowMs = 60_000,
    private readonly maxKeys = 1024,
  ) {
    if (maxKeys < 2) {
      throw new RangeError('LogRateLimiter needs room for at least one key and the overflow key');
    }
  }

  /**
   * Records one event. Returns null when it should not be logged; else
   * how many events of this key were held back before it (0 the first time).
   */
  hit(key: string, now: number): { suppressed: number; windowMs: number } | null {
    const w = this.windows.get(key);
    if (w !== undefined && now - w.start < this.windowMs) {
      w.suppressed++;
      return null;
    }
    const suppressed = w?.suppressed ?? 0;
    const windowMs = w === undefined ? this.windowMs : now - w.start;
    this.windows.delete(key);
    this.makeRoom();
    this.windows.set(key, { start: now, suppressed: 0 });
    return { suppressed, windowMs };
  }

  /**
   * Ends every window older than the window length; returns the keys that
   * held events back, with their counts ("n more in the last Ns").
   */
  drain(now: number): { key: string; suppressed: number; windowMs: number }[] {
    const out: { key: string; suppressed: number; windowMs: number }[] = [];
    for (const [key, w] of [...this.windows]) {
      if (now - w.start >= this.windowMs) {
        this.windows.delete(key);
        if (w.suppressed > 0) {
          out.push({ key, suppressed: w.suppressed, windowMs: now - w.start });
        }
      }
    }
    return out;
  }

  /** Live keys (for tests and bounds). */
  get size(): number {
    return this.windows.size;
  }

  private makeRoom(): void {
    while (this.windows.size >= this.maxKeys) {
      // Map order is insertion order: the first entry is the oldest window.
      // The overflow key itself is never dropped: it holds the others' counts.
      let victim: [string, { start: number; suppressed: number }] | undefined;
      for (const e of this.windows) {
        if (e[0] !== LogRateLimiter.OVERFLOW) {
          victim = e;
          break;
        }
      }
      if (victim === undefined) {
        return;
      }
      const [k, w] = victim;
      this.windows.delete(k);
      if (w.suppressed > 0) {
        const o = this.windows.get(LogRateLimiter.OVERFLOW);
        if (o !== undefined) {
          o.suppressed += w.suppressed;
        } else {
          this.windows.set(LogRateLimiter.OVERFLOW, { start: w.start, suppressed: w.suppressed });
        }
      }
    }
  }
}

/** The summary line's wording for a key that held events back. */
export function suppressedText(suppressed: number, windowMs: number): string {
  return `${suppressed} more in the last ${Math.max(1, Math.round(windowMs / 1000))}s`;
}
