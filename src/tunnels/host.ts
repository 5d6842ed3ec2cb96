import { ipCommand as ip } from '../host/iproute';
import { writeSysctl as sysctl } from '../host/sysctl';
import type { GuestState } from '../model/desired';
import type { LinkFacts } from './vet';

/**
 * Tunnel adoption: the host end of each guest's tunnel (a tap or veth that
 * nova/libvirt or the lab created) is taken over by name. We set the gateway
 * address as a point-to-point peer address (so many tunnels may share one
 * gateway IP), strict reverse-path filtering, and switch IPv6 off on it: the
 * data planes are IPv4 and a guest must not reach the host over link-local
 * IPv6 behind the rules' back. The commands run through host/iproute.ts
 * (so SGW_IP applies here too) and the settings through host/sysctl.ts.
 */

/** Result of adopting one tunnel. */
export interface TunnelState {
  key: string;
  iface: string;
  present: boolean;
  error?: string;
}

interface IpAddrInfo {
  ifname: string;
  operstate?: string;
  flags?: string[];
  addr_info?: { family: string; local: string; address?: string; prefixlen: number }[];
}

/**
 * Lists every interface with its IPv4 addresses (one `ip` call). Not `ip -4`:
 * that leaves out interfaces with no IPv4 address yet, which is exactly the
 * state of a tunnel we have not adopted.
 */
export async function listAddresses(): Promise<Map<string, IpAddrInfo>> {
  const out = await ip(['-j', 'addr', 'show']);
  const list = JSON.parse(out) as IpAddrInfo[];
  return new Map(
    list.map((l) => [l.ifname, { ...l, addr_info: (l.addr_info ?? []).filter((a) => a.family === 'inet') }]),
  );
}

/** True when `addr` is assigned to some interface of this host (namespace). */
export async function isLocalAddress(addr: string): Promise<boolean> {
  const all = await listAddresses();
  return [...all.values()].some((l) => (l.addr_info ?? []).some((a) => a.local === addr));
}

/**
 * Turns on conntrack byte/packet accounting, so flows listed or logged by
 * the kernel plane carry their byte counts. Best effort: without the
 * nf_conntrack module loaded yet the file does not exist.
 */
export async function enableConntrackAccounting(): Promise<boolean> {
  try {
    await sysctl('/proc/sys/net/netfilter/nf_conntrack_acct', '1');
    return true;
  } catch {
    return false;
  }
}

/** Enables IPv4 forwarding (the kernel plane routes guest traffic). */
export async function enableForwarding(): Promise<void> {
  await sysctl('/proc/sys/net/ipv4/ip_forward', '1');
}

/**
 * Adopts every guest's tunnel. A missing interface is reported, not thrown:
 * the guest may not be running yet, and the next sync adopts it.
 */
export async function adoptTunnels(guests: readonly GuestState[]): Promise<TunnelState[]> {
  const links = await listAddresses();
  const out: TunnelState[] = [];
  for (const g of guests) {
    const link = links.get(g.iface);
    if (link === undefined) {
      out.push({ key: g.key, iface: g.iface, present: false, error: 'interface not found' });
      continue;
    }
    try {
      const has = (link.addr_info ?? []).some((a) => a.local === g.gatewayIp && a.address === g.guestIp && a.prefixlen === 32);
      if (!has) {
        // Drop other IPv4 addresses: a stale or foreign address on a tunnel
        // would widen what the guest can reach.
        await ip(['-4', 'addr', 'flush', 'dev', g.iface]);
        await ip(['addr', 'add', g.gatewayIp, 'peer', `${g.guestIp}/32`, 'dev', g.iface]);
      }
      if (!(link.flags ?? []).includes('UP')) {
        await ip(['link', 'set', g.iface, 'up']);
      }
      const conf = `/proc/sys/net/ipv4/conf/${g.iface}`;
      await sysctl(`${conf}/rp_filter`, '1');
      // Packets from the guest must reach the FORWARD chain even where the
      // host does not forward globally (proxy plane): that is where a denied
      // connection gets its immediate reset instead of a silent drop.
      await sysctl(`${conf}/forwarding`, '1');
      await sysctl(`${conf}/send_redirects`, '0');
      await sysctl(`${conf}/accept_redirects`, '0');
      await sysctl(`${conf}/proxy_arp`, '0');
      await sysctl(`/proc/sys/net/ipv6/conf/${g.iface}/disable_ipv6`, '1').catch(() => undefined);
      out.push({ key: g.key, iface: g.iface, present: true });
    } catch (err) {
      out.push({ key: g.key, iface: g.iface, present: true, error: (err as Error).message });
    }
  }
  return out;
}

/**
 * Removes every point-to-point address whose peer is `guestIp` from a tunnel:
 * used by `--cleanup`, which learns the tunnels from our anti-spoof rules
 * and so knows the guest address but not the gateway address.
 */
export async function releaseTunnelPeer(iface: string, guestIp: string): Promise<number> {
  const link = (await listAddresses()).get(iface);
  let n = 0;
  for (const a of link?.addr_info ?? []) {
    if (a.address === guestIp && a.prefixlen === 32) {
      await releaseTunnel(iface, a.local, guestIp);
      n++;
    }
  }
  return n;
}

/**
 * Removes the gateway address we set on a tunnel that is no longer
 * configured. An address or interface that is already gone (the guest was
 * deleted with its tap) counts as released; any other failure is thrown, so
 * the caller keeps the guest's rules until the release succeeds.
 */
export async function releaseTunnel(iface: string, gatewayIp: string, guestIp: string): Promise<void> {
  try {
    await ip(['addr', 'del', gatewayIp, 'peer', `${guestIp}/32`, 'dev', iface]);
  } catch (err) {
    const msg = (err as Error).message;
    if (/Cannot assign requested address|Address not found|Cannot find device|does not exist/i.test(msg)) {
      return;
    }
    throw err;
  }
}

/** Kind and IPv4 addresses of every interface, for vetTunnels(). */
export async function linkFacts(): Promise<Map<string, LinkFacts>> {
  const [kinds, addrs] = await Promise.all([linkKinds(), listAddresses()]);
  const out = new Map<string, LinkFacts>();
  for (const [name, kind] of kinds) {
    const a = addrs.get(name)?.addr_info ?? [];
    out.set(name, { kind, addrs: a.map((x) => (x.address !== undefined ? { local: x.local, peer: x.address } : { local: x.local })) });
  }
  return out;
}

/** Interface kinds a guest tunnel may be: nova's taps are "tun", labs use veth. */
export const TUNNEL_KINDS = ['tun', 'veth', 'macvtap'] as const;

/**
 * The link kind of every interface (`ip -d link`): "tun", "veth", "bridge",
 * ..., or "" for a physical NIC. Used to refuse adopting anything that is
 * not a tunnel: a typo like `interface: eth0` must not flush the uplink's
 * addresses or put an anti-spoof DROP on it.
 */
export async function linkKinds(): Promise<Map<string, string>> {
  const out = await ip(['-d', '-j', 'link', 'show']);
  const list = JSON.parse(out) as { ifname: string; linkinfo?: { info_kind?: string } }[];
  return new Map(list.map((l) => [l.ifname, l.linkinfo?.info_kind ?? '']));
}
