import type { DesiredState, GuestState } from '../model/desired';

/** What the host says about one interface. */
export interface LinkFacts {
  kind: string;
  /** IPv4 addresses: `local`, and `peer` when point-to-point. */
  addrs: { local: string; peer?: string }[];
}

/**
 * Pure: which configured tunnels may be adopted. A guest whose interface
 * exists but is not a tunnel kind (tap/tun, veth, macvtap), or carries an
 * ordinary (non point-to-point) IPv4 address, is refused: adopting it would
 * flush the host's own addresses and put an anti-spoof DROP on, say, the
 * uplink after a typo in a domain file. Its rules are not rendered either.
 * A missing interface is fine (rules match by name; adoption waits for it).
 */
export function vetTunnels(
  desired: DesiredState,
  links: ReadonlyMap<string, LinkFacts>,
  kinds: readonly string[],
): { desired: DesiredState; refused: Map<string, { guest: GuestState; reason: string }> } {
  const refused = new Map<string, { guest: GuestState; reason: string }>();
  const guests = desired.guests.filter((g) => {
    const l = links.get(g.iface);
    if (l === undefined) {
      return true;
    }
    if (!kinds.includes(l.kind)) {
      refused.set(g.key, { guest: g, reason: `${g.iface} is not a tunnel (link kind "${l.kind || 'physical'}"); not adopted` });
      return false;
    }
    const foreign = l.addrs.filter((a) => a.peer === undefined);
    if (foreign.length > 0) {
      refused.set(g.key, { guest: g, reason: `${g.iface} carries host addresses (${foreign.map((a) => a.local).join(', ')}); not adopted` });
      return false;
    }
    return true;
  });
  return { desired: { ...desired, guests }, refused };
}
