import type { DesiredState, EgressState } from '../../model/desired';
import { sharedSourceIps } from '../../model/desired';

/**
 * Pure renderer of per-domain egress routing (ADR 0011): desired state ->
 * the routes and policy rules sharegw owns, the diff against what the
 * kernel holds, and the `ip -batch` text that turns one into the other.
 *
 * Per domain D with egress (interface E, next hop V, table T):
 *   table T:  unreachable default           (fail closed: nothing of D's
 *                                            falls through to host routing)
 *             <backend>/32 dev E [via V]   (every backend address of D)
 *   rules (priority P, all of them):
 *             iif <tunnel> lookup T        (kernel plane: D's forwarded flows)
 *             from <guestIp>/32 lookup T   (reverse path of D's replies, so
 *                                            strict rp_filter holds)
 *             oif <E> lookup T             (proxy: backend sockets bound to E,
 *                                            the native egressSocket shim)
 *             from <sourceIp>/32 lookup T  (proxy plane: sockets bound to D's
 *                                            source IP)
 *
 * Ownership: every route and rule carries protocol EGRESS_PROTO, so cleanup
 * finds all of them without the configuration and touches nothing else.
 * The conntrack zones (zone = T) are iptables rules: see render.ts.
 */

/** Routing protocol number marking our routes and rules (rtnetlink RTPROT_*, unassigned). */
export const EGRESS_PROTO = 213;

/** A route in one of our tables. */
export interface EgressRoute {
  table: number;
  /** `default` or an IPv4 address (/32). */
  dst: string;
  type: 'unicast' | 'unreachable';
  dev?: string;
  via?: string;
}

/** A policy rule sending a selector to one of our tables. */
export interface EgressRule {
  priority: number;
  table: number;
  /** Exactly one of iif, oif and from. */
  iif?: string;
  /** A device locally generated packets are bound to (SO_BINDTODEVICE). */
  oif?: string;
  /** An IPv4 address; the rule matches it as /32. */
  from?: string;
}

/** What the kernel should hold (or holds) of ours. */
export interface EgressSpec {
  routes: EgressRoute[];
  rules: EgressRule[];
}

/** Default priority when the desired state carries none (older state files). */
const DEFAULT_PRIORITY = 20000;

/** Renders the routes and rules `desired` needs, sorted (deterministic). */
export function renderEgress(desired: DesiredState): EgressSpec {
  const routes: EgressRoute[] = [];
  const rules: EgressRule[] = [];
  const priority = desired.rulePriority ?? DEFAULT_PRIORITY;
  const byDomain = new Map<string, DesiredState['guests']>();
  for (const g of desired.guests) {
    const list = byDomain.get(g.domain);
    if (list === undefined) {
      byDomain.set(g.domain, [g]);
    } else {
      list.push(g);
    }
  }
  const shared = sharedSourceIps(desired.egress);
  for (const e of desired.egress ?? []) {
    routes.push({ table: e.table, dst: 'default', type: 'unreachable' });
    for (const b of e.backends) {
      routes.push({ table: e.table, dst: b, type: 'unicast', dev: e.iface, ...(e.via === null ? {} : { via: e.via }) });
    }
    // Sockets bound to the egress device (the proxy's backend legs, native
    // shim) are routed by device; `from <sourceIp>` serves the fallback and
    // exists only while no other domain shares the address: two such rules
    // at one priority would send both domains to whichever came first.
    rules.push({ priority, table: e.table, oif: e.iface });
    if (!shared.has(e.sourceIp)) {
      rules.push({ priority, table: e.table, from: e.sourceIp });
    }
    for (const g of byDomain.get(e.domain) ?? []) {
      rules.push({ priority, table: e.table, iif: g.iface });
      rules.push({ priority, table: e.table, from: g.guestIp });
    }
  }
  return { routes: routes.sort(byKey(routeKey)), rules: dedupe(rules.sort(byKey(ruleKey)), ruleKey) };
}

/** Identity of a route: one per (table, destination). */
function routeSlot(r: EgressRoute): string {
  return `table ${r.table} ${r.dst}`;
}

/** A route in `ip route` words (without table and protocol). */
function routeWords(r: EgressRoute): string {
  if (r.type === 'unreachable') {
    return `unreachable ${r.dst}`;
  }
  return `${r.dst}${r.via === undefined ? '' : ` via ${r.via}`} dev ${r.dev ?? ''}`;
}

/** Full text of a route: two routes with equal keys need no change. */
export function routeKey(r: EgressRoute): string {
  return `${routeWords(r)} table ${r.table}`;
}

/** Full text of a rule: selector, table, priority. */
export function ruleKey(r: EgressRule): string {
  const sel = r.iif !== undefined ? `iif ${r.iif}` : r.oif !== undefined ? `oif ${r.oif}` : `from ${r.from ?? ''}/32`;
  return `${sel} lookup ${r.table} pref ${r.priority}`;
}

function byKey<T>(key: (x: T) => string): (a: T, b: T) => number {
  return (a, b) => {
    const x = key(a);
    const y = key(b);
    return x < y ? -1 : x > y ? 1 : 0;
  };
}

function dedupe<T>(xs: T[], key: (x: T) => string): T[] {
  const seen = new Set<string>();
  return xs.filter((x) => {
    const k = key(x);
    if (seen.has(k)) {
      return false;
    }
    seen.add(k);
    return true;
  });
}

/**
 * `ip -batch` text turning `have` into `want`. Order keeps the domain's
 * traffic off host routing at every step: tables are filled first (the
 * unreachable default before anything else), then rules are added, then
 * stale rules go, then stale routes. Empty when nothing differs.
 */
export function diffEgress(want: EgressSpec, have: EgressSpec): string {
  const P = `proto ${EGRESS_PROTO}`;
  const haveRoutes = new Set(have.routes.map(routeKey));
  const wantSlots = new Set(want.routes.map(routeSlot));
  const haveRules = new Set(have.rules.map(ruleKey));
  const wantRules = new Set(want.rules.map(ruleKey));
  const out: string[] = [];
  for (const r of want.routes) {
    if (!haveRoutes.has(routeKey(r))) {
      out.push(`route replace ${routeWords(r)} table ${r.table} ${P}`);
    }
  }
  for (const r of want.rules) {
    if (!haveRules.has(ruleKey(r))) {
      out.push(`rule add ${ruleKey(r)} protocol ${EGRESS_PROTO}`);
    }
  }
  for (const r of have.rules) {
    if (!wantRules.has(ruleKey(r))) {
      out.push(`rule del ${ruleKey(r)} protocol ${EGRESS_PROTO}`);
    }
  }
  for (const r of have.routes) {
    if (!wantSlots.has(routeSlot(r))) {
      out.push(`route del ${routeWords(r)} table ${r.table} ${P}`);
    }
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}

/** The `ip -batch` text that removes everything of ours in `have` (cleanup). */
export function renderEgressCleanup(have: EgressSpec): string {
  return diffEgress({ routes: [], rules: [] }, have);
}

/**
 * Reads our rules and routes out of `ip -j rule show` and
 * `ip -j route show table all` output. Only entries with our protocol are
 * kept (iproute2 prints it as a number here, since nothing names 213).
 */
export function parseEgress(rulesJson: string, routesJson: string): EgressSpec {
  const rules: EgressRule[] = [];
  for (const r of parseArray(rulesJson)) {
    if (String(r['protocol']) !== String(EGRESS_PROTO)) {
      continue;
    }
    const table = Number(r['table']);
    const priority = Number(r['priority']);
    if (typeof r['iif'] === 'string') {
      rules.push({ priority, table, iif: r['iif'] });
    } else if (typeof r['oif'] === 'string') {
      rules.push({ priority, table, oif: r['oif'] });
    } else if (typeof r['src'] === 'string' && r['src'] !== 'all') {
      rules.push({ priority, table, from: r['src'] });
    }
  }
  const routes: EgressRoute[] = [];
  for (const r of parseArray(routesJson)) {
    if (r['protocol'] !== undefined && String(r['protocol']) !== String(EGRESS_PROTO)) {
      continue;
    }
    const table = Number(r['table']);
    const dst = String(r['dst']);
    if (!Number.isInteger(table)) {
      continue;
    }
    if (r['type'] === 'unreachable') {
      routes.push({ table, dst, type: 'unreachable' });
    } else {
      routes.push({ table, dst, type: 'unicast', dev: String(r['dev']), ...(typeof r['gateway'] === 'string' ? { via: r['gateway'] } : {}) });
    }
  }
  return { routes: routes.sort(byKey(routeKey)), rules: rules.sort(byKey(ruleKey)) };
}

function parseArray(text: string): Record<string, unknown>[] {
  const v: unknown = text.trim() === '' ? [] : JSON.parse(text);
  return Array.isArray(v) ? (v.filter((x) => x !== null && typeof x === 'object') as Record<string, unknown>[]) : [];
}

/** Something about the host that breaks a domain's egress without failing the apply. */
export interface EgressWarning {
  domain: string;
  iface: string;
  code: 'SGW_WARN_EGRESS_RP_FILTER';
  message: string;
}

/**
 * Strict reverse-path filtering on the link of a domain whose source IP
 * another domain shares. The reply to a proxy socket (bound to the link)
 * is checked by a lookup from the shared address with `iif lo`, which no
 * rule of ours can tell apart: the kernel finds no route back through the
 * link and drops it. Loose mode (2) retries with the link as output, which
 * the `oif` rule answers. The kernel uses max(conf/all, conf/<link>).
 * `rpFilter(name)` reads net.ipv4.conf.<name>.rp_filter, null if unknown.
 */
export function rpFilterWarnings(egress: readonly EgressState[], rpFilter: (name: string) => number | null): EgressWarning[] {
  const shared = sharedSourceIps(egress);
  const out: EgressWarning[] = [];
  if (shared.size === 0) {
    return out; // the common case: nothing to read at all
  }
  const all = rpFilter('all') ?? 0;
  for (const e of egress) {
    if (!shared.has(e.sourceIp)) {
      continue;
    }
    const dev = rpFilter(e.iface);
    if (dev === null || Math.max(all, dev) !== 1) {
      continue;
    }
    out.push({
      domain: e.domain,
      iface: e.iface,
      code: 'SGW_WARN_EGRESS_RP_FILTER',
      message: `strict rp_filter on ${e.iface} drops the replies to proxied flows from the shared source IP ${e.sourceIp}; set net.ipv4.conf.${e.iface}.rp_filter and net.ipv4.conf.all.rp_filter to 0 or 2`,
    });
  }
  return out;
}
