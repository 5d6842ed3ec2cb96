import type { AccessLevel, AccessRule, Domain, Guest, Share, SgwConfig } from '../model/config';
import type { DesiredState, Grant, Service } from '../model/desired';
import type { ShareProto } from '../model/export-location';
import { cidrContains, formatAddrPort, parseIp } from '../util/ip';
import type { AddrPort } from '../util/ip';
import { decide, grantsFor, shareLevelFor, sharePorts } from './policy';
import type { Decision } from './policy';

/**
 * `sharegw explain`: the policy decision for one guest and one destination,
 * with the reasoning an operator needs. Pure. The verdict is decide()'s,
 * never recomputed here; everything else only describes why.
 */

/** How a guest reference was matched: `domain/instance`, instance id or tunnel interface. */
export type GuestRefKind = 'key' | 'instance' | 'tunnel';

/** What a guest reference can name. */
export interface GuestIdentity {
  key: string;
  instance: string;
  iface: string;
}

/** A reference resolved to one guest, or to none (`candidates` then lists the ambiguous matches). */
export type GuestRefResult<T> = { guest: T; by: GuestRefKind } | { guest: null; candidates: T[] };

/**
 * Resolves `ref` as a `domain/instance` key, an instance id or a tunnel
 * interface name. Exact matches only; a reference that names two different
 * guests (one by instance, another by tunnel) resolves to none.
 */
export function resolveGuestRef<T extends GuestIdentity>(guests: readonly T[], ref: string): GuestRefResult<T> {
  const hits = guests.filter((g) => g.key === ref || g.instance === ref || g.iface === ref);
  const only = hits[0];
  if (only === undefined || hits.length > 1) {
    return { guest: null, candidates: hits };
  }
  return { guest: only, by: only.key === ref ? 'key' : only.iface === ref ? 'tunnel' : 'instance' };
}

/** decide()'s denial reasons. */
export type DenyReason = Extract<Decision, { allow: false }>['reason'];

/** Why explain() denies; stable API (JSON output, scripts). */
export type ExplainReason = 'unknown-guest' | 'ambiguous-guest' | 'invalid-destination' | DenyReason;

/** The guest a reference resolved to. */
export interface ExplainedGuest {
  key: string;
  domain: string;
  instance: string;
  tunnel: string;
  guestIp: string;
  /** The domain's source IP: what backends see. */
  sourceIp: string;
  /** Tenant addresses: what access rules are compared with. */
  addresses: string[];
  matchedBy: GuestRefKind;
  /** The domain's own egress (ADR 0011); null: the host's routing. */
  egress: { interface: string; via: string | null; table: number; conntrackZone: number } | null;
}

/** One access rule of a share, checked against the guest's addresses. */
export interface RuleCheck {
  /** Position in the share's accessRules (as configured). */
  index: number;
  type: AccessRule['type'];
  accessTo: string;
  level: AccessLevel;
  /** The guest addresses this rule matches; empty when none or ignored. */
  matches: string[];
  /** `ignored`: not an ip rule (enforced by the backend), or no usable prefix. */
  result: 'match' | 'no-match' | 'ignored';
}

/** One share of the guest's domain that has an export location on the backend. */
export interface ShareCheck {
  id: string;
  name: string | null;
  proto: ShareProto;
  /** Its export locations on this backend, as Manila reports them. */
  exportLocations: string[];
  /** Every port the share needs, with its service. */
  ports: { port: number; service: Service }[];
  /** True when the asked port is one of `ports`. */
  servesPort: boolean;
  /** The level the share grants the guest (shareLevelFor()), or null. */
  level: AccessLevel | null;
  /** True when this share contributes to a grant of the asked port. */
  grants: boolean;
  rules: RuleCheck[];
}

/** A port the guest may reach on the backend. */
export interface AllowedPort {
  port: number;
  service: Service;
  level: AccessLevel;
  shares: string[];
}

/** The answer of explain(); every list is sorted and empty when it does not apply. */
export interface Explanation {
  allowed: boolean;
  /** Null when allowed. */
  reason: ExplainReason | null;
  /** One line: the verdict and its main reason. */
  summary: string;
  /** The detail decide() gave for a denial; null otherwise. */
  detail: string | null;
  guestRef: string;
  /** The destination as asked (address canonical when it parses). */
  to: AddrPort;
  guest: ExplainedGuest | null;
  /** The grant that allows the connection (decide()'s), or null. */
  grant: Grant | null;
  /** True when the desired state (what the planes enforce) holds that grant. */
  enforced: boolean;
  /** Shares of the guest's domain on the backend, each rule checked. */
  shares: ShareCheck[];
  /** Ports the guest may reach on the backend. */
  allowedPorts: AllowedPort[];
  /** Other domains with shares on the backend: they never grant this guest anything. */
  otherDomains: { domain: string; shares: string[] }[];
  /** Backends where the guest has grants at all. */
  guestBackends: string[];
  /** unknown-guest: guests whose names contain the reference; ambiguous-guest: the guests it names. */
  candidates: string[];
  /** The reasoning, one finding per line, for humans. */
  lines: string[];
}

/** How many near matches an unknown guest reference lists. */
const MAX_CANDIDATES = 10;

interface ConfigGuest extends GuestIdentity {
  domain: Domain;
  guest: Guest;
}

/** Explains the decision for a connection of `guestRef` to `to`. Never throws. */
export function explain(config: SgwConfig, desired: DesiredState, guestRef: string, to: AddrPort): Explanation {
  const dst = parseIp(to.addr);
  const asked: AddrPort = { addr: dst?.text ?? to.addr, port: to.port };
  const base: Explanation = {
    allowed: false,
    reason: null,
    summary: '',
    detail: null,
    guestRef,
    to: asked,
    guest: null,
    grant: null,
    enforced: false,
    shares: [],
    allowedPorts: [],
    otherDomains: [],
    guestBackends: [],
    candidates: [],
    lines: [],
  };
  const all: ConfigGuest[] = config.domains.flatMap((domain) =>
    domain.guests.map((guest) => ({ key: `${domain.name}/${guest.instance}`, instance: guest.instance, iface: guest.tunnel.iface, domain, guest })),
  );
  const resolved = resolveGuestRef(all, guestRef);
  if (resolved.guest === null) {
    return resolved.candidates.length > 0 ? ambiguous(base, resolved.candidates) : unknownGuest(base, all);
  }
  const { domain, guest } = resolved.guest;
  const who: ExplainedGuest = {
    key: resolved.guest.key,
    domain: domain.name,
    instance: guest.instance,
    tunnel: guest.tunnel.iface,
    guestIp: guest.tunnel.guestIp.text,
    sourceIp: domain.sourceIp.text,
    addresses: guest.addresses.map((a) => a.text),
    matchedBy: resolved.by,
    egress: domain.egress === null ? null : { interface: domain.egress.iface, via: domain.egress.via?.text ?? null, table: domain.egress.table, conntrackZone: domain.egress.table },
  };
  const eg = who.egress;
  const egressText = eg === null ? '' : `; egress ${eg.interface}${eg.via === null ? '' : ` via ${eg.via}`}, routing table ${eg.table}, conntrack zone ${eg.conntrackZone}`;
  const guestLine = `guest ${who.key}: domain ${who.domain}, instance ${who.instance}, tunnel ${who.tunnel} (guest IP ${who.guestIp}), tenant addresses ${who.addresses.join(', ')}; backends see ${who.sourceIp}${egressText}`;
  if (dst === null || !Number.isInteger(to.port) || to.port < 1 || to.port > 65535) {
    const why = dst === null ? `"${to.addr}" is not an IP address` : `${String(to.port)} is not a TCP port (1-65535)`;
    return { ...base, guest: who, reason: 'invalid-destination', summary: `denied: ${why}`, lines: [`denied: ${why}`, guestLine] };
  }

  const decision = decide(domain, guest, dst, to.port);
  const grants = grantsFor(domain, guest);
  const shares = domain.shares.filter((s) => s.exportLocations.some((l) => l.host.text === dst.text)).map((s) => checkShare(s, guest, dst.text, to.port));
  const allowedPorts: AllowedPort[] = grants
    .filter((g) => g.backend === dst.text)
    .map((g) => ({ port: g.port, service: g.service, level: g.level, shares: g.shares.map((s) => s.id) }))
    .sort((a, b) => a.port - b.port);
  const otherDomains = config.domains
    .filter((d) => d !== domain)
    .map((d) => ({ domain: d.name, shares: d.shares.filter((s) => s.exportLocations.some((l) => l.host.text === dst.text)).map((s) => s.id) }))
    .filter((d) => d.shares.length > 0)
    .sort((a, b) => cmp(a.domain, b.domain));
  const guestBackends = [...new Set(grants.map((g) => g.backend))].sort(cmp);
  const enforced = desired.guests.some((g) => g.key === who.key && g.grants.some((gr) => gr.backend === dst.text && gr.port === to.port));
  const target = formatAddrPort(asked);
  const out: Explanation = { ...base, guest: who, enforced, shares, allowedPorts, otherDomains, guestBackends };
  const lines: string[] = [];

  if (decision.allow) {
    const gr = decision.grant;
    const via = gr.shares.map((gs) => {
      const matched = (shares.find((s) => s.id === gs.id)?.rules ?? []).filter((r) => r.result === 'match');
      return `share ${gs.id} ${plural(matched.length, 'rule')} ${matched.map((r) => `#${r.index} (${r.accessTo} ${r.level} matches ${r.matches.join(', ')})`).join(', ')}`;
    });
    out.allowed = true;
    out.grant = gr;
    out.summary = `allowed: ${who.key} may reach ${target} (${gr.service}, ${gr.level}) through ${via.join('; ')}`;
    lines.push(out.summary, guestLine, ...shareLines(shares, to.port));
    lines.push(enforced ? 'enforced: the grant is in the desired state the data plane applies' : 'NOT enforced: the desired state the data plane applies does not hold this grant yet (pending sync?)');
    out.lines = lines;
    return out;
  }

  out.reason = decision.reason;
  out.detail = decision.detail;
  out.summary = `denied: ${decision.detail}`;
  lines.push(out.summary, guestLine);
  switch (decision.reason) {
    case 'no-share-on-backend': {
      for (const o of otherDomains) {
        lines.push(`domain ${o.domain} has ${o.shares.length} ${plural(o.shares.length, 'share')} on ${dst.text} (${o.shares.join(', ')}); a guest reaches only its own domain's shares`);
      }
      lines.push(backendsLine(who.key, grants));
      break;
    }
    case 'no-access-rule': {
      lines.push(...shareLines(shares, to.port));
      break;
    }
    case 'port-not-allowed': {
      lines.push(`allowed on ${dst.text}: ${allowedPorts.map((p) => `${p.port} (${p.service}, ${p.level})`).join(', ')}`);
      lines.push(...shareLines(shares, to.port));
      break;
    }
  }
  out.lines = lines;
  return out;
}

function checkShare(share: Share, guest: Guest, backend: string, port: number): ShareCheck {
  const ports = sharePorts(share);
  const level = shareLevelFor(share, guest);
  const servesPort = ports.some((p) => p.port === port);
  return {
    id: share.id,
    name: share.name ?? null,
    proto: share.proto,
    exportLocations: share.exportLocations.filter((l) => l.host.text === backend).map((l) => l.raw),
    ports,
    servesPort,
    level,
    grants: level !== null && servesPort,
    rules: share.accessRules.map((r, index) => {
      const cidr = r.cidr;
      if (r.type !== 'ip' || cidr === null) {
        return { index, type: r.type, accessTo: r.to, level: r.level, matches: [], result: 'ignored' as const };
      }
      const matches = guest.addresses.filter((a) => cidrContains(cidr, a)).map((a) => a.text);
      return { index, type: r.type, accessTo: r.to, level: r.level, matches, result: matches.length > 0 ? ('match' as const) : ('no-match' as const) };
    }),
  };
}

function shareLines(shares: readonly ShareCheck[], port: number): string[] {
  const lines: string[] = [];
  for (const s of shares) {
    const serves = s.ports.map((p) => `${p.port} ${p.service}`).join(', ');
    const verdict =
      s.level === null
        ? `grants nothing: no ip access rule matches${s.servesPort ? ` (it serves ${port})` : ''}`
        : s.servesPort
          ? `grants ${s.level} on ${port}`
          : `grants ${s.level}, but does not serve port ${port}`;
    lines.push(`share ${s.id} (${s.proto}, serves ${serves}): ${verdict}`);
    if (s.rules.length === 0) {
      lines.push('  no access rules');
    }
    for (const r of s.rules) {
      const head = `  rule #${r.index} ${r.type} ${r.accessTo} ${r.level}`;
      if (r.result === 'ignored') {
        lines.push(r.type === 'ip' ? `${head}: ignored (not a valid prefix)` : `${head}: ignored (${r.type} rules are checked by the backend and open no network path)`);
      } else if (r.result === 'match') {
        lines.push(`${head}: matches ${r.matches.join(', ')}`);
      } else {
        lines.push(`${head}: no guest address matches`);
      }
    }
  }
  return lines;
}

function backendsLine(key: string, grants: readonly Grant[]): string {
  if (grants.length === 0) {
    return `${key} has no grants at all`;
  }
  const byBackend = new Map<string, number[]>();
  for (const g of grants) {
    byBackend.set(g.backend, [...(byBackend.get(g.backend) ?? []), g.port]);
  }
  const parts = [...byBackend.entries()].map(([b, ports]) => `${b} (${ports.sort((x, y) => x - y).join(', ')})`);
  return `${key} has grants on ${parts.join(', ')}`;
}

function unknownGuest(base: Explanation, all: readonly ConfigGuest[]): Explanation {
  const needle = base.guestRef.toLowerCase();
  const candidates =
    needle === ''
      ? []
      : all
          .filter((g) => [g.key, g.instance, g.iface].some((s) => s.toLowerCase().includes(needle)))
          .map((g) => g.key)
          .sort(cmp)
          .slice(0, MAX_CANDIDATES);
  const summary = `denied: unknown guest "${base.guestRef}": no domain/instance key, instance id or tunnel interface matches`;
  const lines = [summary];
  if (candidates.length > 0) {
    lines.push(`similar guests: ${candidates.join(', ')}`);
  }
  return { ...base, reason: 'unknown-guest', summary, candidates, lines };
}

function ambiguous(base: Explanation, hits: readonly ConfigGuest[]): Explanation {
  const candidates = hits.map((g) => g.key).sort(cmp);
  const summary = `denied: guest reference "${base.guestRef}" names ${hits.length} guests (${candidates.join(', ')}); use the domain/instance key`;
  return { ...base, reason: 'ambiguous-guest', summary, candidates, lines: [summary] };
}

function plural(n: number, word: string): string {
  return n === 1 ? word : `${word}s`;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
