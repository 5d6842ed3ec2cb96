/** Parses `250ms`, `10s`, `5m`, `1h` (or a bare number of seconds) into ms. */
export function parseDuration(text: string | number): number | null {
  if (typeof text === 'number') {
    return Number.isFinite(text) && text >= 0 ? Math.round(text * 1000) : null;
  }
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (m === null) {
    return null;
  }
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const mult = unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000;
  return Math.round(n * mult);
}
