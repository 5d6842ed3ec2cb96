import { loadConfig } from '../config/load';
import { ConfigError, describeError, formatProblem } from '../errors';
import type { SgwConfig } from '../model/config';
import type { Counters } from '../observability/counters';
import type { Logger } from '../observability/logger';

/**
 * Settings a reload cannot change in place: the admin socket and the data
 * plane are bound at start, the state store is keyed by node and stateDir,
 * and proxy listeners are sized and numbered by the proxy settings.
 * Pure: returns the names of the settings that differ.
 */
export function restartOnly(cur: SgwConfig, next: SgwConfig): string[] {
  const a = cur.daemon;
  const b = next.daemon;
  const out: string[] = [];
  const same = (x: unknown, y: unknown): boolean => JSON.stringify(x) === JSON.stringify(y);
  // Credentials print as [redacted]: compare them apart.
  const am = a.manila;
  const bm = b.manila;
  const secret = (m: SgwConfig['daemon']['manila']): unknown[] => (m === null ? [] : [m.auth.type === 'password' ? m.auth.password : m.auth.type === 'applicationCredential' ? m.auth.secret : null, m.notifications]);
  const sa = secret(am);
  const sb = secret(bm);
  if (sa.length !== sb.length || sa.some((x, i) => (x === null ? sb[i] !== null : !(x as { equals(o: unknown): boolean }).equals(sb[i])))) {
    out.push('manila credentials');
  }
  for (const [name, x, y] of [
    ['dataplane', a.dataplane, b.dataplane],
    ['adminSocket', a.adminSocket, b.adminSocket],
    ['node', a.node, b.node],
    ['stateDir', a.stateDir, b.stateDir],
    ['proxy', a.proxy, b.proxy],
    // The Manila source is built at start (client, token, notifications).
    ['manila', a.manila, b.manila],
  ] as const) {
    if (!same(x, y)) {
      out.push(name);
    }
  }
  return out;
}

/** A reload's new configuration, or the problems that reject it. */
export type ReloadCheck = { ok: true; next: SgwConfig } | { ok: false; problems: string[] };

/**
 * Re-reads and fully validates the configuration `cur` was loaded from,
 * and refuses changes that need a restart. A rejection is logged (each
 * problem) and counted here.
 */
export function checkReload(cur: SgwConfig, log: Logger, counters: Counters): ReloadCheck {
  let next: SgwConfig;
  try {
    next = loadConfig(cur.daemon.file);
  } catch (err) {
    const problems = err instanceof ConfigError ? err.problems.map(formatProblem) : [describeError(err).message];
    for (const p of problems) {
      log.error({ code: 'SGW_ERR_CONFIG_RELOAD_REJECTED' }, p);
    }
    counters.inc('sharegw_reloads_total', { result: 'rejected' });
    return { ok: false, problems };
  }
  const fixed = restartOnly(cur, next);
  if (fixed.length > 0) {
    const problems = [`${fixed.join(', ')} cannot change on reload; restart the daemon`];
    log.error({ code: 'SGW_ERR_CONFIG_RELOAD_REJECTED' }, problems[0]);
    counters.inc('sharegw_reloads_total', { result: 'rejected' });
    return { ok: false, problems };
  }
  return { ok: true, next };
}
