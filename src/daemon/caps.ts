import type { DesiredState } from '../model/desired';
import type { Counters } from '../observability/counters';
import type { Logger } from '../observability/logger';
import type { ProxyPlane } from '../dataplane/proxy/plane';
import type { KernelCounters } from '../dataplane/kernel/plane';
import { listFlows } from '../dataplane/kernel/conntrack';
import type { KernelFlow } from '../dataplane/kernel/conntrack';
import { capsView } from '../policy/caps';
import type { CapRefusal, PlaneUse } from '../policy/caps';
import { grantPlane } from '../policy/policy';
import { describeError } from '../errors';
import { LogRateLimiter, suppressedText } from '../util/log-rate';

/** A kernel cap counter's key: "<scope> <domain> <backend>". */
function splitCapKey(key: string): { scope: string; domain: string; backend: string } {
  const [scope = '', domain = '', backend = ''] = key.split(' ');
  return { scope, domain, backend };
}

/**
 * Counts kernel cap refusals (rule counters, read at every sync, scrape
 * and status)
 * into sharegw_connection_cap_refusals_total{scope,plane=kernel} and logs
 * them: the first per domain and scope, then counts (rate-limited).
 * State: the counter values already counted, by rule key, and the log
 * rate limiter.
 */
export class KernelCapNotes {
  private seen: Record<string, number> = {};
  private readonly capLog = new LogRateLimiter(60_000, 1024);

  constructor(
    private readonly log: Logger,
    private readonly counters: Counters,
  ) {}

  /** Counts and logs what the counters `k` show beyond the last call. */
  note(k: KernelCounters): void {
    const now = Date.now();
    for (const [key, n] of Object.entries(k.caps ?? {})) {
      const delta = n - (this.seen[key] ?? 0);
      if (delta <= 0) {
        continue;
      }
      this.seen[key] = n;
      const { scope, domain, backend } = splitCapKey(key);
      this.counters.inc('sharegw_connection_cap_refusals_total', { scope, plane: 'kernel' }, delta);
      const hit = this.capLog.hit(`${domain} ${scope}`, now);
      if (hit !== null) {
        this.log.warn({ plane: 'kernel', scope, domain, backend, refused: delta, ...(hit.suppressed > 0 ? { suppressed: hit.suppressed } : {}) }, `connections refused by the ${scope} cap${hit.suppressed > 0 ? ` (and ${suppressedText(hit.suppressed, hit.windowMs)})` : ''}`);
      }
    }
  }
}

/** Cap refusals of both planes: the proxy's, then the kernel counters'. Pure. */
export function capRefusals(proxy: ReturnType<ProxyPlane['capRefusals']>, k: KernelCounters | null): CapRefusal[] {
  const refusals: CapRefusal[] = proxy.map((r) => ({ plane: 'proxy', ...r }));
  for (const [key, n] of Object.entries(k?.caps ?? {})) {
    const { scope, domain, backend } = splitCapKey(key);
    refusals.push({ plane: 'kernel', scope: scope === 'domain' ? 'domain' : 'backend', domain, backend, refused: n });
  }
  return refusals;
}

/** Live proxy connections per backend and domain. Pure. */
export function proxyCapUse(use: ReturnType<ProxyPlane['capUse']>): PlaneUse[] {
  const out: PlaneUse[] = [];
  for (const u of use) {
    for (const d of u.domains) {
      out.push({ plane: 'proxy', backend: u.backend, domain: d.domain, inUse: d.inUse });
    }
  }
  return out;
}

/** Whether a conntrack entry may be a kernel-plane connection of `applied`'s guests (see kernelCapUse). */
function countable(byIp: ReadonlyMap<string, unknown>, f: KernelFlow): boolean {
  return byIp.has(f.orig.src) && f.reply.src === f.orig.dst && f.state !== 'CLOSE' && f.state !== 'TIME_WAIT';
}

/**
 * Kernel-plane connections per backend and domain: conntrack entries of
 * guests' flows that were not DNATed to a proxy listener, still count for
 * connlimit (not CLOSE or TIME_WAIT) and belong to a kernel-plane grant.
 * Pure.
 */
export function kernelCapUse(applied: DesiredState, flows: readonly KernelFlow[]): PlaneUse[] {
  const byIp = new Map(applied.guests.map((g) => [g.guestIp, g]));
  const counted = new Map<string, number>();
  for (const f of flows) {
    if (!countable(byIp, f)) {
      continue;
    }
    const g = byIp.get(f.orig.src);
    const gr = g?.grants.find((x) => x.backend === f.orig.dst && x.port === f.orig.dport);
    if (g === undefined || gr === undefined || grantPlane(applied.dataplane, gr) !== 'kernel') {
      continue;
    }
    const key = `${g.domain} ${f.orig.dst}:${f.orig.dport}`;
    counted.set(key, (counted.get(key) ?? 0) + 1);
  }
  const out: PlaneUse[] = [];
  for (const [key, n] of counted) {
    const [domain = '', backend = ''] = key.split(' ');
    out.push({ plane: 'kernel', backend, domain, inUse: n });
  }
  return out;
}

/** The caps view of status: limits, live use per backend and domain, refusals. */
export async function capsStatus(proxy: ProxyPlane, k: KernelCounters | null, applied: DesiredState, dataplane: 'kernel' | 'proxy'): Promise<unknown> {
  const use = proxyCapUse(proxy.capUse());
  const refusals = capRefusals(proxy.capRefusals(), k);
  if (dataplane === 'kernel') {
    const byIp = new Map(applied.guests.map((g) => [g.guestIp, g]));
    try {
      use.push(...kernelCapUse(applied, await listFlows((f) => countable(byIp, f))));
    } catch (err) {
      return { ...capsView(applied, use, refusals), kernelUseError: describeError(err) };
    }
  }
  return capsView(applied, use, refusals);
}
