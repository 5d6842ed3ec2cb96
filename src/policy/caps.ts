import type { DesiredState } from '../model/desired';
import { grantPlane } from './policy';

/**
 * The connection caps of `limits` as status shows them: per backend
 * address:port and plane, the cap, the live connections, each domain's
 * share, and the refusals counted so far. Pure: the daemon hands in the
 * live counts (proxy sessions; kernel conntrack entries).
 */

/** Live connections of one plane to one backend, by domain. */
export interface PlaneUse {
  plane: 'kernel' | 'proxy';
  /** `address:port`. */
  backend: string;
  domain: string;
  inUse: number;
}

/** Refusals so far, by plane, scope, domain (`-` for the backend scope) and backend. */
export interface CapRefusal {
  plane: 'kernel' | 'proxy';
  scope: 'domain' | 'backend';
  domain: string;
  backend: string;
  refused: number;
}

export interface CapsView {
  maxConnectionsPerBackend: number;
  maxConnectionsPerDomainPerBackend: number;
  backends: {
    backend: string;
    plane: 'kernel' | 'proxy';
    inUse: number;
    domains: { domain: string; inUse: number; refused: number }[];
    /** Refused by the backend cap (all domains together). */
    refused: number;
  }[];
}

/** Status view of the caps; null when the desired state has none. */
export function capsView(desired: DesiredState, use: readonly PlaneUse[], refusals: readonly CapRefusal[]): CapsView | null {
  const l = desired.limits;
  if (l === undefined) {
    return null;
  }
  type Row = CapsView['backends'][number];
  const rows = new Map<string, Row>();
  const row = (plane: 'kernel' | 'proxy', backend: string): Row => {
    const k = `${plane} ${backend}`;
    let r = rows.get(k);
    if (r === undefined) {
      r = { backend, plane, inUse: 0, domains: [], refused: 0 };
      rows.set(k, r);
    }
    return r;
  };
  const dom = (r: Row, domain: string): Row['domains'][number] => {
    let d = r.domains.find((x) => x.domain === domain);
    if (d === undefined) {
      d = { domain, inUse: 0, refused: 0 };
      r.domains.push(d);
    }
    return d;
  };
  // Every granted backend shows, in use or not, with every domain granted it.
  for (const g of desired.guests) {
    for (const gr of g.grants) {
      dom(row(grantPlane(desired.dataplane, gr), `${gr.backend}:${gr.port}`), g.domain);
    }
  }
  for (const u of use) {
    const r = row(u.plane, u.backend);
    r.inUse += u.inUse;
    dom(r, u.domain).inUse += u.inUse;
  }
  for (const x of refusals) {
    const r = row(x.plane, x.backend);
    if (x.scope === 'backend') {
      r.refused += x.refused;
    } else {
      dom(r, x.domain).refused += x.refused;
    }
  }
  const backends = [...rows.values()].sort((a, b) => (a.backend < b.backend ? -1 : a.backend > b.backend ? 1 : a.plane < b.plane ? -1 : 1));
  for (const r of backends) {
    r.domains.sort((a, b) => (a.domain < b.domain ? -1 : 1));
  }
  return { maxConnectionsPerBackend: l.perBackend, maxConnectionsPerDomainPerBackend: l.perDomainPerBackend, backends };
}

/** The `caps` lines of `sharegw status` (ids escaped by the caller's safeText). */
export function formatCaps(c: CapsView, esc: (s: string) => string): string[] {
  const lines = [`connection caps: ${c.maxConnectionsPerBackend} per backend, ${c.maxConnectionsPerDomainPerBackend} per domain per backend`];
  for (const b of c.backends) {
    const doms = b.domains.map((d) => `${esc(d.domain)} ${d.inUse}/${c.maxConnectionsPerDomainPerBackend}${d.refused > 0 ? ` refused ${d.refused}` : ''}`).join(', ');
    lines.push(`  ${esc(b.backend)} ${b.plane}: ${b.inUse}/${c.maxConnectionsPerBackend}${b.refused > 0 ? ` refused ${b.refused}` : ''}${doms === '' ? '' : ` (${doms})`}`);
  }
  return lines;
}
