import type { z } from 'zod';
import type { ConfigProblem } from '../../errors';
import { parseDuration } from '../duration';
import type { YamlSource } from '../yaml-source';
/** Schema reading shared by the daemon-file, domain-file and Manila checks. */


function schemaProblems(src: YamlSource, error: z.ZodError, out: ConfigProblem[], prefix: readonly (string | number)[] = []): void {
  for (const issue of error.issues) {
    const p = [...prefix, ...issue.path.filter((k): k is string | number => typeof k !== 'symbol')];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        out.push(src.problem([...p, key], 'SGW_ERR_CONFIG_UNKNOWN_KEY', `unknown key "${key}"`, true));
      }
      continue;
    }
    // zod's wording for an absent key ("expected string, received undefined")
    // sends operators looking for a value; say what is actually wrong.
    const last = p[p.length - 1];
    const missing = issue.code === 'invalid_type' && /received undefined$/.test(issue.message) && typeof last === 'string';
    out.push(src.problem(p, 'SGW_ERR_CONFIG_SCHEMA', missing ? `required key "${last}" is missing` : issue.message, false));
  }
}

/**
 * safeParse of one part of a file, with problems located under `prefix`.
 * When the only problems are unknown keys, they are reported and the part is
 * parsed again without them, so the rest of it is still checked.
 */
export function part<T>(schema: z.ZodType<T>, value: unknown, src: YamlSource, out: ConfigProblem[], prefix: (string | number)[]): T | null {
  const r = schema.safeParse(value);
  if (r.success) {
    return r.data;
  }
  schemaProblems(src, r.error, out, prefix);
  if (!r.error.issues.every((i) => i.code === 'unrecognized_keys') || value === null || typeof value !== 'object') {
    return null;
  }
  const copy = structuredClone(value) as Record<string, unknown>;
  for (const issue of r.error.issues) {
    if (issue.code !== 'unrecognized_keys') {
      continue;
    }
    let obj: unknown = copy;
    for (const k of issue.path) {
      obj = (obj as Record<PropertyKey, unknown>)[k];
    }
    for (const k of issue.keys) {
      delete (obj as Record<string, unknown>)[k];
    }
  }
  const again = schema.safeParse(copy);
  return again.success ? again.data : null;
}

/** Reads an optional duration key, reporting a bad one and falling back to `dflt`. */
export type DurFn = (v: string | number | undefined, key: readonly (string | number)[], dflt: number, min?: number) => number;

/** A DurFn that reports into `out`, located in `src`. */
export function durations(src: YamlSource, out: ConfigProblem[]): DurFn {
  return (v, key, dflt, min = 0) => {
    if (v === undefined) {
      return dflt;
    }
    const ms = parseDuration(v);
    if (ms === null || ms < min) {
      out.push(src.problem(key, 'SGW_ERR_CONFIG_BAD_DURATION', `"${String(v)}" is not a duration like 500ms, 10s, 5m, 1h${min > 0 ? ` (at least ${min} ms)` : ''}`));
      return dflt;
    }
    return ms;
  };
}
