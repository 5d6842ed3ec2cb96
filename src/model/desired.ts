import type { AccessLevel, Dataplane } from './config';
import type { ShareProto } from './export-location';

/** Which server a port belongs to; used in comments, status and explain. */
export type Service = 'nfs' | 'portmap' | 'mountd' | 'smb';

/** One share's contribution to a grant. */
export interface GrantShare {
  id: string;
  level: AccessLevel;
}

/** What the SMB proxy enforces on one (guest, backend:445) grant. */
export interface SmbGrantPolicy {
  /** MS-SMB2 dialect revision floor. */
  minDialect: number;
  /** Some granted share on this backend requires encryption. */
  encryptionRequired: boolean;
  /** Granted share names on this backend, lower-case, sorted. */
  shares: string[];
  /**
   * The domain asked for this policy (an `smb` block, or a share with
   * `encryption: required`): with `dataplane: kernel` the grant is steered
   * through the proxy, which enforces it. Otherwise only the proxy plane
   * applies the default policy.
   */
  steer: boolean;
}

/** What the NFS proxy enforces on one (guest, backend, nfs or mountd port) grant. */
export interface NfsGrantPolicy {
  /** Every granting share is ro: mutating NFSv3 calls get NFS3ERR_ROFS. */
  readOnly: boolean;
  identity: { rootSquash: boolean; anonUid: number; anonGid: number; uids: { from: number; to: number }[] | null; gids: { from: number; to: number }[] | null; idOffset: number | null } | null;
  /** Export paths of the granted NFS shares on this backend (MOUNT checks), sorted. */
  exports: string[];
  /** ro or an identity policy: with `dataplane: kernel` the grant is steered through the proxy. */
  steer: boolean;
}

/** A guest may open TCP connections to backend:port. */
export interface Grant {
  backend: string;
  port: number;
  service: Service;
  proto: ShareProto;
  /** rw if any contributing share grants rw. */
  level: AccessLevel;
  shares: GrantShare[];
  /** Set on SMB grants: the policy the proxy applies at NEGOTIATE, SESSION_SETUP and TREE_CONNECT. */
  smb?: SmbGrantPolicy | undefined;
  /** Set on NFS and mountd grants that carry a policy (ro, identity) or need MOUNT checks. */
  nfs?: NfsGrantPolicy | undefined;
}

/** Everything the data planes need to know about one guest. */
export interface GuestState {
  /** `domain/instance`, unique on the host. */
  key: string;
  domain: string;
  instance: string;
  iface: string;
  guestIp: string;
  gatewayIp: string;
  sourceIp: string;
  /** Sorted by backend then port; no duplicates. */
  grants: Grant[];
}

/**
 * A domain's own egress (ADR 0011): a routing table with routes to its
 * backends through `iface` (and `via`), policy rules sending its guests'
 * tunnels and its source IP there, and a conntrack zone (= table).
 */
export interface EgressState {
  domain: string;
  iface: string;
  via: string | null;
  table: number;
  sourceIp: string;
  /** The domain's backend addresses (every export location host), sorted. */
  backends: string[];
}

/**
 * The complete desired state of one host, computed from configuration by
 * policy/compile.ts. Data planes apply it; they never look at config.
 */
export interface DesiredState {
  dataplane: Dataplane;
  guests: GuestState[];
  /** Domains with their own egress, by name; absent or empty: host routing only. */
  egress?: EgressState[];
  /** Priority of the egress policy rules. */
  rulePriority?: number;
  /**
   * Connection caps per backend address:port, all domains together and per
   * domain (both planes enforce them). Absent: no such caps (state files
   * and hand-built states from before they existed).
   */
  limits?: { perBackend: number; perDomainPerBackend: number };
}

/**
 * Source IPs that more than one domain with egress uses (overlapping tenant
 * networks, ADR 0011): routing by source address cannot tell those domains
 * apart, so only device-bound sockets and `oif` rules serve them.
 */
export function sharedSourceIps(egress: readonly EgressState[] | undefined): Set<string> {
  const seen = new Set<string>();
  const shared = new Set<string>();
  for (const e of egress ?? []) {
    if (seen.has(e.sourceIp)) {
      shared.add(e.sourceIp);
    }
    seen.add(e.sourceIp);
  }
  return shared;
}

