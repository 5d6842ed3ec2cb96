import type { AccessLevel, Domain, Guest, Share, SgwConfig } from '../model/config';
import type { DesiredState, EgressState, Grant, GuestState, Service } from '../model/desired';
import { cidrContains } from '../util/ip';
import type { Ip } from '../util/ip';

/**
 * The access policy, pure. A guest may open a connection to a backend
 * address:port only if some share of its own domain has an export location
 * on that address, an `ip` access rule of that share matches one of the
 * guest's tenant addresses, and the port belongs to the share's protocol.
 * Everything else is denied.
 */

/** Well-known ports (RFC 1833 portmapper, RFC 7530 NFS, MS-SMB2 direct TCP). */
export const PORTS = { portmap: 111, nfs: 2049, smb: 445 } as const;

/** The TCP ports a share needs, with the service each port reaches. */
export function sharePorts(share: Share): { port: number; service: Service }[] {
  if (share.proto === 'CIFS') {
    return [{ port: PORTS.smb, service: 'smb' }];
  }
  const ports: { port: number; service: Service }[] = [{ port: PORTS.nfs, service: 'nfs' }];
  if (share.nfsv3) {
    ports.push({ port: PORTS.portmap, service: 'portmap' }, { port: share.mountdPort, service: 'mountd' });
  }
  return ports;
}

/** The strongest level an `ip` rule of `share` grants `guest`, or null. */
export function shareLevelFor(share: Share, guest: Guest): AccessLevel | null {
  let level: AccessLevel | null = null;
  for (const r of share.accessRules) {
    if (r.type !== 'ip' || r.cidr === null) {
      continue;
    }
    const cidr = r.cidr;
    if (guest.addresses.some((a) => cidrContains(cidr, a))) {
      if (r.level === 'rw') {
        return 'rw';
      }
      level = 'ro';
    }
  }
  return level;
}

/** Why a connection is allowed or denied; `reason` values are stable API. */
export type Decision =
  | { allow: true; grant: Grant }
  | { allow: false; reason: 'no-share-on-backend' | 'no-access-rule' | 'port-not-allowed'; detail: string };

/** Decides one connection of `guest` (in `domain`) to dst:port. */
export function decide(domain: Domain, guest: Guest, dst: Ip, port: number): Decision {
  const onBackend = domain.shares.filter((s) => s.exportLocations.some((l) => l.host.text === dst.text));
  if (onBackend.length === 0) {
    return { allow: false, reason: 'no-share-on-backend', detail: `no share of domain ${domain.name} has an export location on ${dst.text}` };
  }
  const granted = onBackend.filter((s) => shareLevelFor(s, guest) !== null);
  if (granted.length === 0) {
    return { allow: false, reason: 'no-access-rule', detail: `no access rule of ${onBackend.map((s) => s.id).join(', ')} matches ${guest.addresses.map((a) => a.text).join(', ')}` };
  }
  const grant = grantsFor(domain, guest).find((g) => g.backend === dst.text && g.port === port);
  if (grant === undefined) {
    return { allow: false, reason: 'port-not-allowed', detail: `port ${port} is not a share port of ${granted.map((s) => s.id).join(', ')}` };
  }
  return { allow: true, grant };
}

/** Every grant of one guest, merged per backend:port, sorted. */
export function grantsFor(domain: Domain, guest: Guest): Grant[] {
  const byKey = new Map<string, Grant>();
  for (const share of domain.shares) {
    const level = shareLevelFor(share, guest);
    if (level === null) {
      continue;
    }
    for (const loc of share.exportLocations) {
      for (const { port, service } of sharePorts(share)) {
        const key = `${loc.host.text}:${port}`;
        let g = byKey.get(key);
        if (g === undefined) {
          g = { backend: loc.host.text, port, service, proto: share.proto, level, shares: [] };
          byKey.set(key, g);
        }
        if (!g.shares.some((s) => s.id === share.id)) {
          g.shares.push({ id: share.id, level });
        }
        if ((service === 'nfs' || service === 'mountd') && share.proto === 'NFS') {
          // The grant's own level is settled after the loop; collect paths now.
          const nfs = (g.nfs ??= { readOnly: false, identity: domain.nfs, exports: [], steer: domain.nfs !== null });
          if (!nfs.exports.includes(loc.path)) {
            nfs.exports.push(loc.path);
            nfs.exports.sort();
          }
        }
        if (service === 'smb') {
          const smb = (g.smb ??= { minDialect: domain.smb.minDialect, encryptionRequired: false, shares: [], steer: domain.smb.explicit });
          smb.encryptionRequired ||= share.encryptionRequired;
          smb.steer ||= share.encryptionRequired;
          const name = loc.path.toLowerCase();
          if (!smb.shares.includes(name)) {
            smb.shares.push(name);
            smb.shares.sort();
          }
        }
        if (level === 'rw') {
          g.level = 'rw';
        }
      }
    }
  }
  for (const g of byKey.values()) {
    if (g.nfs !== undefined) {
      g.nfs.readOnly = g.level === 'ro';
      // Both ports always carry the mount checks (MOUNT on mountd, the LOOKUP
      // path of NFSv4 compounds on nfs) wherever the proxy carries them; only
      // ro and an identity policy steer a grant off the kernel fast path.
      g.nfs.steer ||= g.nfs.readOnly;
    }
  }
  return [...byKey.values()].sort(compareGrant);
}

function compareGrant(a: Grant, b: Grant): number {
  return a.backend === b.backend ? a.port - b.port : a.backend < b.backend ? -1 : 1;
}

/**
 * Which data plane carries a grant. Everything goes through the proxy in
 * `dataplane: proxy`. In `dataplane: kernel` only grants whose policy needs
 * protocol awareness do (an SMB policy the domain set); the rest stay on
 * the kernel fast path.
 */
export function grantPlane(dataplane: DesiredState['dataplane'], gr: Grant): 'kernel' | 'proxy' {
  return dataplane === 'proxy' || gr.smb?.steer === true || gr.nfs?.steer === true ? 'proxy' : 'kernel';
}

/** The part of a desired state the proxy carries: every guest, only its proxied grants. */
export function proxiedPart(desired: DesiredState): DesiredState {
  return { ...desired, guests: desired.guests.map((g) => ({ ...g, grants: g.grants.filter((gr) => grantPlane(desired.dataplane, gr) === 'proxy') })) };
}

/** Compiles the whole configuration into the data planes' desired state. */
export function compileDesired(config: SgwConfig): DesiredState {
  const guests: GuestState[] = [];
  for (const d of config.domains) {
    for (const g of d.guests) {
      guests.push({
        key: `${d.name}/${g.instance}`,
        domain: d.name,
        instance: g.instance,
        iface: g.tunnel.iface,
        guestIp: g.tunnel.guestIp.text,
        gatewayIp: g.tunnel.gatewayIp.text,
        sourceIp: d.sourceIp.text,
        grants: grantsFor(d, g),
      });
    }
  }
  guests.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const egress: EgressState[] = [];
  for (const d of config.domains) {
    if (d.egress === null) {
      continue;
    }
    const backends = [...new Set(d.shares.flatMap((s) => s.exportLocations.map((l) => l.host.text)))].sort();
    egress.push({ domain: d.name, iface: d.egress.iface, via: d.egress.via?.text ?? null, table: d.egress.table, sourceIp: d.sourceIp.text, backends });
  }
  egress.sort((a, b) => (a.domain < b.domain ? -1 : a.domain > b.domain ? 1 : 0));
  // Without egress the desired state keeps its old shape (state files, tests).
  const out: DesiredState = egress.length === 0 ? { dataplane: config.daemon.dataplane, guests } : { dataplane: config.daemon.dataplane, guests, egress, rulePriority: config.daemon.egress.rulePriority };
  const l = config.daemon.limits;
  if (l !== undefined) {
    out.limits = { perBackend: l.maxConnectionsPerBackend, perDomainPerBackend: l.maxConnectionsPerDomainPerBackend };
  }
  return out;
}
