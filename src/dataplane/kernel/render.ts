import type { DesiredState, Grant, GuestState } from '../../model/desired';
import { grantPlane } from '../../policy/policy';
import { CAP_BACKEND_CHAIN, CAP_MARKER, chainName, comment, EGRESS_ENTRY, ENTRY_CHAINS, hashKey, JUMP_COMMENT, PREFIX, TABLES } from './chains';
import type { Table } from './chains';
import { ruleChain, ruleTarget, tableOf } from './save-parse';
import type { SavedRuleset } from './save-parse';

/**
 * Pure renderer: desired state -> iptables-restore text for
 * `iptables-restore --noflush`. It writes only chains named SGW-*, plus the
 * single jump from each built-in chain into our entry chain.
 *
 * Layout (per guest G with tunnel T, guest IP g, source IP s):
 *   raw    PREROUTING  -> SGW-PREROUTING: -i T ! -s g -> DROP   (anti-spoof)
 *   nat    PREROUTING  -> SGW-PREROUTING: proxy plane: -i T -s g -d B --dport P -> DNAT gw:L
 *   nat    POSTROUTING -> SGW-POSTROUTING: kernel plane: -s g -> SNAT s (privileged ports stay privileged)
 *   filter FORWARD     -> SGW-FORWARD: -i T -> SGW-FWD-<h>; -o T: only replies
 *          SGW-FWD-<h>: RELATED (ICMP errors) -> ACCEPT; kernel plane: grants -> ACCEPT
 *                       for every packet (no ESTABLISHED shortcut: a revoked grant's
 *                       flows meet the REJECT at their next packet);
 *                       the rest -> REJECT (tcp-reset for TCP, so denials fail fast)
 *   filter INPUT       -> SGW-INPUT: -i T -> SGW-IN-<h>
 *          SGW-IN-<h>: established, ping -> ACCEPT; proxy plane: DNATed listener ports -> ACCEPT;
 *                      the rest -> REJECT
 *
 * Domains with their own egress (ADR 0011) add conntrack zones (zone = the
 * domain's table) in raw, so identical tuples of two domains never share an
 * entry; both directions of every flow land in the same zone:
 *   raw PREROUTING -> SGW-PREROUTING: -i T -> CT --zone Z (after anti-spoof)
 *                                     -i E -d s -> CT --zone Z (egress replies)
 *   raw OUTPUT     -> SGW-OUTPUT:     -o T -> CT --zone Z (gateway to guest)
 *                                     -s s -o E -> CT --zone Z (proxy to backend)
 *
 * With --noflush, declaring a chain (`:NAME - [0:0]`) flushes it, so each
 * run replaces our chains' contents atomically; stale chains of removed
 * guests are flushed, then deleted after the rules that referenced them are
 * gone (kube-proxy syncProxyRules does the same).
 *
 * Connection caps (limits, issue 14) for the kernel plane's grants:
 *   filter SGW-FWD-<h>: -p tcp NEW -> SGW-CAPD-<domain>, then -> SGW-CAPB
 *          SGW-CAPD-<d>: per backend:port of the domain: connlimit above the
 *                        domain's cap -> REJECT tcp-reset
 *          SGW-CAPB:     per backend:port: connlimit above the backend cap
 *                        -> REJECT tcp-reset
 * Why filter FORWARD and not nat PREROUTING: connlimit groups connections by
 * the address it sees (--connlimit-daddr, mask 32). Kernel-plane grants are
 * not DNATed, so in FORWARD the destination is the backend itself, and the
 * source is still the guest's own address (SNAT to the domain's source IP
 * comes later, in POSTROUTING). One match instance counts only connections
 * that passed through it, so the per-domain rule sits in a chain that every
 * tunnel of that domain (the domain is its set of tunnels) jumps to, and the
 * per-backend rule in one chain all of them jump to. nat PREROUTING sees
 * only a flow's first packet and cannot REJECT. connlimit keys by conntrack
 * zone too, so a domain with its own egress (ADR 0011: its own zone, maybe
 * its own server behind the same address) is counted apart from the rest.
 * Only NEW packets enter the cap chains (the count is taken at the SYN).
 *
 * A cap chain's counts live in its match instances: flushing the chain
 * forgets every live connection (measured: after a re-apply, a domain at
 * its cap could open another full cap). So a cap chain whose rules did not
 * change is not declared at all (with --noflush it is then left alone); its
 * first rule carries a hash of its rules to tell (CAP_MARKER).
 */

/** Key of a proxy listener: one per guest, backend and port. */
export function proxyKey(guestKey: string, backend: string, port: number): string {
  return `${guestKey}|${backend}:${port}`;
}

export interface RenderInput {
  desired: DesiredState;
  /** `iptables-save` of the tables we touch, taken just before applying. */
  existing: SavedRuleset;
  /** Proxy plane: listener port per proxyKey(). Missing keys are not redirected. */
  proxyPorts?: ReadonlyMap<string, number>;
}

type Lines = Record<Table, string[]>;

/** Renders the complete restore input for the desired state. */
export function renderRules(input: RenderInput): string {
  const { desired, existing } = input;
  const proxy = desired.dataplane === 'proxy';
  const decl: Lines = { raw: [], nat: [], filter: [] };
  const rules: Lines = { raw: [], nat: [], filter: [] };
  const wanted: Record<Table, Set<string>> = { raw: new Set(), nat: new Set(), filter: new Set() };
  const chain = (t: Table, name: string): void => {
    if (!wanted[t].has(name)) {
      wanted[t].add(name);
      decl[t].push(`:${name} - [0:0]`);
    }
  };
  const egress = desired.egress ?? [];
  const entries = egress.length > 0 ? [...ENTRY_CHAINS, EGRESS_ENTRY] : ENTRY_CHAINS;
  for (const e of entries) {
    chain(e.table, e.chain);
  }
  const zoneOf = new Map(egress.map((e) => [e.domain, e.table]));
  const caps = capRules(desired);
  for (const [name, lines] of caps) {
    if (!keepsCapChain(existing, name, lines)) {
      chain('filter', name);
      rules.filter.push(...lines);
    } else {
      // Left as it is: declaring it would flush its counts.
      wanted.filter.add(name);
    }
  }

  for (const g of desired.guests) {
    const tag = `sharegw ${g.key}`;
    const fwd = chainName('FWD', g.key);
    const inp = chainName('IN', g.key);
    chain('filter', fwd);
    chain('filter', inp);

    // A guest is identified by its tunnel: only its own address may enter there.
    rules.raw.push(`-A SGW-PREROUTING -i ${g.iface} ! -s ${g.guestIp}/32 ${comment(`${tag} antispoof`)} -j DROP`);
    const zone = zoneOf.get(g.domain);
    if (zone !== undefined) {
      rules.raw.push(`-A SGW-PREROUTING -i ${g.iface} ${comment(`${tag} zone`)} -j CT --zone ${zone}`);
      rules.raw.push(`-A SGW-OUTPUT -o ${g.iface} ${comment(`${tag} zone`)} -j CT --zone ${zone}`);
    }

    rules.filter.push(`-A SGW-FORWARD -i ${g.iface} ${comment(tag)} -j ${fwd}`);
    rules.filter.push(`-A SGW-FORWARD -o ${g.iface} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`);
    rules.filter.push(`-A SGW-FORWARD -o ${g.iface} ${comment(`${tag} inbound`)} -j DROP`);
    rules.filter.push(`-A SGW-INPUT -i ${g.iface} ${comment(tag)} -j ${inp}`);

    // No blanket ESTABLISHED accept here: every packet of a guest's flow must
    // still match a grant below, so when a grant goes away the guest's very
    // next packet of that flow meets the REJECT and the guest gets a reset at
    // once (revocation of live flows). Only ICMP errors and the like are let
    // through by state.
    rules.filter.push(`-A ${fwd} -m conntrack --ctstate RELATED -j ACCEPT`);
    const capd = chainName('CAPD', g.domain);
    if (caps.has(capd)) {
      rules.filter.push(`-A ${fwd} -p tcp -m conntrack --ctstate NEW -j ${capd}`);
      rules.filter.push(`-A ${fwd} -p tcp -m conntrack --ctstate NEW -j ${CAP_BACKEND_CHAIN}`);
    }
    rules.filter.push(`-A ${inp} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`);
    rules.filter.push(`-A ${inp} -p icmp -m icmp --icmp-type 8 -m limit --limit 10/sec -j ACCEPT`);

    // Each grant on its plane: the proxy's grants are DNATed to their
    // listeners, the kernel's are forwarded (and NATed below).
    const viaProxy: Grant[] = [];
    for (const gr of g.grants) {
      if (grantPlane(desired.dataplane, gr) === 'proxy') {
        viaProxy.push(gr);
      } else {
        rules.filter.push(`-A ${fwd} -d ${gr.backend}/32 -p tcp -m tcp --dport ${gr.port} ${comment(grantTag(tag, gr))} -j ACCEPT`);
      }
    }
    if (viaProxy.length > 0) {
      renderProxyGrants(g, viaProxy, input.proxyPorts, rules, inp);
    }
    if (!proxy) {
      // Keep privileged source ports privileged: NFS servers with `secure`
      // exports refuse others. NAT keeps the original port when it is free.
      rules.nat.push(`-A SGW-POSTROUTING -s ${g.guestIp}/32 -p tcp -m tcp --sport 1:1023 ${comment(`${tag} snat`)} -j SNAT --to-source ${g.sourceIp}:1-1023`);
      rules.nat.push(`-A SGW-POSTROUTING -s ${g.guestIp}/32 ${comment(`${tag} snat`)} -j SNAT --to-source ${g.sourceIp}`);
    }
    denyRules(rules.filter, fwd, `${tag} deny`);
    denyRules(rules.filter, inp, `${tag} deny-local`);
  }

  for (const e of egress) {
    const tag = `sharegw ${e.domain} egress`;
    rules.raw.push(`-A SGW-PREROUTING -i ${e.iface} -d ${e.sourceIp}/32 ${comment(tag)} -j CT --zone ${e.table}`);
    // By device too: domains on separate egress links may share a source IP.
    rules.raw.push(`-A SGW-OUTPUT -s ${e.sourceIp}/32 -o ${e.iface} ${comment(tag)} -j CT --zone ${e.table}`);
  }

  let out: string[] = [];
  for (const t of TABLES) {
    const have = tableOf(existing, t);
    const stale = [...have.chains].filter((c) => c.startsWith(PREFIX) && !wanted[t].has(c)).sort();
    // Concatenation, not push(...xs): a large host renders hundreds of
    // thousands of lines, more arguments than one call's stack can hold.
    out = out.concat(`*${t}`, decl[t], stale.map((c) => `:${c} - [0:0]`), jumpRepairs(t, have.rules, egress.length > 0), rules[t], stale.map((c) => `-X ${c}`), 'COMMIT');
  }
  return `${out.join('\n')}\n`;
}

/**
 * The cap chains of the kernel plane's grants, by name, each with its rules
 * (marker first). Empty without limits or without kernel-plane grants.
 * The proxy counts its own sessions (dataplane/proxy/plane.ts).
 */
export function capRules(desired: DesiredState): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const l = desired.limits;
  if (l === undefined) {
    return out;
  }
  const byDomain = new Map<string, Set<string>>();
  const all = new Set<string>();
  for (const g of desired.guests) {
    for (const gr of g.grants) {
      if (grantPlane(desired.dataplane, gr) !== 'kernel') {
        continue;
      }
      const k = `${gr.backend}:${gr.port}`;
      all.add(k);
      const set = byDomain.get(g.domain) ?? new Set<string>();
      set.add(k);
      byDomain.set(g.domain, set);
    }
  }
  if (all.size === 0) {
    return out;
  }
  const sorted = (xs: Set<string>): string[] => [...xs].sort(byBackendPort);
  const cap = (name: string, k: string, above: number, tag: string): string => {
    const i = k.lastIndexOf(':');
    return `-A ${name} -d ${k.slice(0, i)}/32 -p tcp -m tcp --dport ${k.slice(i + 1)} -m connlimit --connlimit-above ${above} --connlimit-mask 32 --connlimit-daddr ${comment(`${tag} ${k}`)} -j REJECT --reject-with tcp-reset`;
  };
  const withMarker = (name: string, lines: string[]): string[] => [`-A ${name} ${comment(`${CAP_MARKER} ${hashKey(lines.join('\n'), 12)}`)}`, ...lines];
  for (const [domain, set] of [...byDomain].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const name = chainName('CAPD', domain);
    out.set(name, withMarker(name, sorted(set).map((k) => cap(name, k, l.perDomainPerBackend, `sharegw ${domain} cap-domain`))));
  }
  out.set(CAP_BACKEND_CHAIN, withMarker(CAP_BACKEND_CHAIN, sorted(all).map((k) => cap(CAP_BACKEND_CHAIN, k, l.perBackend, 'sharegw - cap-backend'))));
  return out;
}

function byBackendPort(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The kernel holds this cap chain with these rules: its marker (the hash
 * of the rules), as many rules, and each rule's comment and cap where
 * iptables-save prints them, so the chain can stay as it is with the
 * connections it counts. A chain another program edited is rewritten.
 */
function keepsCapChain(existing: SavedRuleset, name: string, lines: readonly string[]): boolean {
  const have = tableOf(existing, 'filter');
  if (!have.chains.has(name)) {
    return false;
  }
  const ours = have.rules.filter((r) => ruleChain(r) === name);
  if (ours.length !== lines.length) {
    return false;
  }
  return lines.every((l, i) => {
    const r = ours[i] ?? '';
    const c = /--comment "([^"]*)"/.exec(l)?.[1] ?? '';
    const above = / --connlimit-above \d+ /.exec(l)?.[0];
    return r.includes(`"${c}"`) && (above === undefined || (r.includes(above) && r.includes(' -j REJECT')));
  });
}

function renderProxyGrants(g: GuestState, grants: readonly Grant[], ports: ReadonlyMap<string, number> | undefined, rules: Lines, inp: string): void {
  const tag = `sharegw ${g.key}`;
  const local: number[] = [];
  for (const gr of grants) {
    const lp = ports?.get(proxyKey(g.key, gr.backend, gr.port));
    if (lp === undefined) {
      continue;
    }
    local.push(lp);
    rules.nat.push(
      `-A SGW-PREROUTING -i ${g.iface} -s ${g.guestIp}/32 -d ${gr.backend}/32 -p tcp -m tcp --dport ${gr.port} ${comment(grantTag(tag, gr))} -j DNAT --to-destination ${g.gatewayIp}:${lp}`,
    );
  }
  // Only connections the kernel redirected for this guest reach its listeners.
  for (const lp of local) {
    rules.filter.push(`-A ${inp} -d ${g.gatewayIp}/32 -p tcp -m tcp --dport ${lp} -m conntrack --ctstate DNAT -j ACCEPT`);
  }
}

function denyRules(into: string[], chain: string, tag: string): void {
  into.push(`-A ${chain} -p tcp ${comment(tag)} -j REJECT --reject-with tcp-reset`);
  into.push(`-A ${chain} ${comment(tag)} -j REJECT --reject-with icmp-admin-prohibited`);
}

function grantTag(tag: string, gr: Grant): string {
  const ids = gr.shares.map((s) => s.id);
  const shown = ids.length > 3 ? `${ids.slice(0, 3).join(',')},+${ids.length - 3}` : ids.join(',');
  return `${tag} ${gr.service} ${gr.level} share=${shown}`;
}

/**
 * Ensures exactly one jump from each built-in chain into our entry chain:
 * inserts it first when missing, deletes duplicates. Existence only, not
 * position: fighting other managers for position 1 would churn forever.
 */
function jumpRepairs(t: Table, existingRules: readonly string[], withEgress: boolean): string[] {
  const out: string[] = [];
  if (!withEgress && EGRESS_ENTRY.table === t) {
    // The optional entry is gone: its jump goes before its chain is deleted.
    for (const r of existingRules.filter((x) => ruleChain(x) === EGRESS_ENTRY.builtin && ruleTarget(x) === EGRESS_ENTRY.chain)) {
      out.push(r.replace(/^-A /, '-D '));
    }
  }
  const entries = withEgress ? [...ENTRY_CHAINS, EGRESS_ENTRY] : ENTRY_CHAINS;
  for (const e of entries.filter((x) => x.table === t)) {
    const jumps = existingRules.filter((r) => ruleChain(r) === e.builtin && ruleTarget(r) === e.chain);
    if (jumps.length === 0) {
      out.push(`-I ${e.builtin} 1 ${comment(JUMP_COMMENT)} -j ${e.chain}`);
    }
    for (const extra of jumps.slice(1)) {
      out.push(extra.replace(/^-A /, '-D '));
    }
  }
  return out;
}

/**
 * Restore input that removes everything we own: every jump from a built-in
 * chain into an SGW-* chain, then every SGW-* chain. Null when nothing is
 * ours. Used by `sharegwd --cleanup`.
 */
export function renderCleanup(existing: SavedRuleset): string | null {
  let out: string[] = [];
  for (const [t, have] of existing) {
    const ours = [...have.chains].filter((c) => c.startsWith(PREFIX)).sort();
    const jumps = have.rules.filter((r) => !ruleChain(r).startsWith(PREFIX) && (ruleTarget(r) ?? '').startsWith(PREFIX));
    if (ours.length === 0 && jumps.length === 0) {
      continue;
    }
    out = out.concat(`*${t}`, ours.map((c) => `:${c} - [0:0]`), jumps.map((r) => r.replace(/^-A /, '-D ')), ours.map((c) => `-X ${c}`), 'COMMIT');
  }
  return out.length === 0 ? null : `${out.join('\n')}\n`;
}

/** A tunnel as our anti-spoof rule names it. */
export interface OwnedTunnel {
  iface: string;
  guestIp: string;
}

/**
 * The tunnels our rules guard, read back from the anti-spoof rules in raw
 * PREROUTING. Lets `--cleanup` release tunnel addresses without the config
 * (which may be gone or broken by then).
 */
export function ownedTunnels(existing: SavedRuleset): OwnedTunnel[] {
  const out: OwnedTunnel[] = [];
  for (const r of tableOf(existing, 'raw').rules) {
    // iptables-save prints matches in its own order (`! -s` before `-i`),
    // not in ours: pick the parts out independently.
    if (!r.startsWith('-A SGW-PREROUTING ') || !r.endsWith('-j DROP') || !r.includes('antispoof')) {
      continue;
    }
    const iface = / -i (\S+)/.exec(r)?.[1];
    const guestIp = / ! -s (\d+\.\d+\.\d+\.\d+)\/32/.exec(r)?.[1];
    if (iface !== undefined && guestIp !== undefined) {
      out.push({ iface, guestIp });
    }
  }
  return out;
}
