/**
 * Canonical JSON: the same value always gives the same text, whatever the
 * order its object keys were built in. Used for digests, where JSON.stringify
 * would depend on insertion order (and throw on bigint).
 *
 * Rules: object keys sorted by UTF-16 code unit (Array.prototype.sort);
 * keys whose value is undefined, a function or a symbol are left out (as
 * JSON.stringify does); the same in arrays becomes null; a bigint becomes its
 * decimal text as a JSON string; non-finite numbers become null; no
 * whitespace. A cycle throws a TypeError.
 */
export function canonicalJson(value: unknown): string {
  return encode(value, new Set()) ?? 'null';
}

function encode(value: unknown, seen: Set<object>): string | undefined {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      return JSON.stringify(value.toString(10));
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
    default:
      break;
  }
  if (value === null) {
    return 'null';
  }
  const obj = value as object;
  if (seen.has(obj)) {
    throw new TypeError('canonicalJson: value has a cycle');
  }
  seen.add(obj);
  try {
    if (Array.isArray(obj)) {
      return `[${obj.map((v: unknown) => encode(v, seen) ?? 'null').join(',')}]`;
    }
    const rec = obj as Record<string, unknown>;
    const parts: string[] = [];
    for (const k of Object.keys(rec).sort()) {
      const v = encode(rec[k], seen);
      if (v !== undefined) {
        parts.push(`${JSON.stringify(k)}:${v}`);
      }
    }
    return `{${parts.join(',')}}`;
  } finally {
    seen.delete(obj);
  }
}
