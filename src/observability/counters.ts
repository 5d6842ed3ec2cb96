/**
 * Plain in-process counters keyed by name and label set. Small on purpose:
 * they feed `sharegw status` now and a Prometheus exporter later.
 */
export class Counters {
  private readonly values = new Map<string, number>();
  private readonly series = new Map<string, { name: string; labels: Record<string, string> }>();

  /** Adds `n` to counter `name` with `labels` (values must be stable codes). */
  inc(name: string, labels: Record<string, string> = {}, n = 1): void {
    const k = key(name, labels);
    this.values.set(k, (this.values.get(k) ?? 0) + n);
    if (!this.series.has(k)) {
      this.series.set(k, { name, labels: { ...labels } });
    }
  }

  /** Every series with its name, labels and value (for the Prometheus exporter). */
  entries(): { name: string; labels: Record<string, string>; value: number }[] {
    return [...this.series.entries()].map(([k, s]) => ({ name: s.name, labels: s.labels, value: this.values.get(k) ?? 0 }));
  }

  /** Current value (0 when never incremented). */
  get(name: string, labels: Record<string, string> = {}): number {
    return this.values.get(key(name, labels)) ?? 0;
  }

  /** All counters as `name{a="x"}` -> value, sorted. */
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.values.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
  }
}

function key(name: string, labels: Record<string, string>): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}="${labels[k] ?? ''}"`);
  return parts.length === 0 ? name : `${name}{${parts.join(',')}}`;
}
