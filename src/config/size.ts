/** Multipliers of the binary units a size may carry. */
const UNITS: Record<string, number> = { '': 1, B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

/** Parses `65536`, `512KiB`, `4MiB`, `1GiB` (or a bare number of bytes) into bytes; null if it is not one. */
export function parseSize(text: string | number): number | null {
  if (typeof text === 'number') {
    return Number.isSafeInteger(text) && text >= 0 ? text : null;
  }
  const m = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB)?$/.exec(text.trim());
  if (m === null) {
    return null;
  }
  const n = Math.round(Number(m[1]) * (UNITS[m[2] ?? ''] ?? 1));
  return Number.isSafeInteger(n) ? n : null;
}
