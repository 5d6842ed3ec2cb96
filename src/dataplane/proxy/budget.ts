/**
 * The proxy's global memory budget (issue 14, finding 2). Every session
 * reports the bytes it holds (its transform's queued answers and held
 * records, both sockets' buffers); a per-connection budget already bounds
 * each one, and this bounds their sum. When the sum passes the limit, the
 * largest consumers are shed (their guest is no longer read) until what
 * they hold covers the excess down to the low-water mark, and any other
 * consumer that grows while the sum is over is shed as well. All are
 * released once the sum is back at low water. While over, the plane
 * refuses new connections.
 *
 * State: the last report of each consumer, their sum, the shed set. No
 * I/O and no timers: the plane reports, counts and logs.
 */

/** What the budget can ask of a session. */
export interface BudgetConsumer {
  /** Stop (true) or resume (false) reading this consumer's guest. */
  shed(on: boolean): void;
}

/** The share of the limit the sum must fall to before shed consumers are read again. */
export const LOW_WATER = 0.75;

export class MemoryBudget<C extends BudgetConsumer> {
  private readonly bytes = new Map<C, number>();
  private readonly shedding = new Set<C>();
  private sum = 0;
  /** Where shed consumers are released. */
  readonly lowWater: number;

  /** `onShed` is told of each consumer shed, with its bytes and the sum. */
  constructor(
    readonly limit: number,
    private readonly onShed: (c: C, bytes: number, total: number) => void = () => undefined,
  ) {
    this.lowWater = Math.floor(limit * LOW_WATER);
  }

  /** Bytes accounted over every consumer. */
  get total(): number {
    return this.sum;
  }

  /** The sum is past the limit: shed, and refuse new consumers. */
  get over(): boolean {
    return this.sum > this.limit;
  }

  /** Consumers shed now. */
  get shedCount(): number {
    return this.shedding.size;
  }

  isShed(c: C): boolean {
    return this.shedding.has(c);
  }

  /** `c` holds `n` bytes now. */
  update(c: C, n: number): void {
    const before = this.bytes.get(c) ?? 0;
    this.bytes.set(c, n);
    this.sum += n - before;
    if (this.sum > this.limit) {
      if (this.shedding.size === 0) {
        this.shedLargest();
      } else if (n > before && !this.shedding.has(c)) {
        this.shedOne(c, n);
      }
    } else if (this.sum <= this.lowWater) {
      this.releaseAll();
    }
  }

  /** `c` is gone (its session closed): its bytes no longer count. */
  remove(c: C): void {
    this.sum -= this.bytes.get(c) ?? 0;
    this.bytes.delete(c);
    this.shedding.delete(c);
    if (this.sum <= this.lowWater) {
      this.releaseAll();
    }
  }

  /** Largest first, until the shed ones hold what is over low water. */
  private shedLargest(): void {
    const excess = this.sum - this.lowWater;
    const bySize = [...this.bytes].sort((a, b) => b[1] - a[1]);
    let covered = 0;
    for (const [c, n] of bySize) {
      if (covered >= excess || n === 0) {
        break;
      }
      this.shedOne(c, n);
      covered += n;
    }
  }

  private shedOne(c: C, n: number): void {
    this.shedding.add(c);
    c.shed(true);
    this.onShed(c, n, this.sum);
  }

  private releaseAll(): void {
    if (this.shedding.size === 0) {
      return;
    }
    const all = [...this.shedding];
    this.shedding.clear();
    for (const c of all) {
      c.shed(false);
    }
  }
}
