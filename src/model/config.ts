import type { Secret } from '../config/secret';
import type { ConfigProblem } from '../errors';
import type { Cidr, Ip } from '../util/ip';
import type { ExportLocation, ShareProto } from './export-location';

/** Validated configuration types: what the rest of the daemon consumes. */

export type Dataplane = 'kernel' | 'proxy';
export type AccessLevel = 'rw' | 'ro';

/** A guest's point-to-point tunnel; the host end is adopted by the daemon. */
export interface Tunnel {
  iface: string;
  guestIp: Ip;
  gatewayIp: Ip;
}

export interface Guest {
  instance: string;
  tunnel: Tunnel;
  /** The guest's tenant addresses; access rules match these. */
  addresses: Ip[];
}

export interface AccessRule {
  type: 'ip' | 'user' | 'cert' | 'cephx';
  to: string;
  /** Set for `ip` rules only. */
  cidr: Cidr | null;
  level: AccessLevel;
}

export interface Share {
  id: string;
  name?: string;
  proto: ShareProto;
  exportLocations: ExportLocation[];
  accessRules: AccessRule[];
  nfsv3: boolean;
  mountdPort: number;
  /** CIFS: sessions must be SMB3-encrypted after session setup. */
  encryptionRequired: boolean;
}

/** A domain's identity policy for AUTH_SYS calls (null: none). */
export interface NfsSettings {
  rootSquash: boolean;
  anonUid: number;
  anonGid: number;
  uids: { from: number; to: number }[] | null;
  gids: { from: number; to: number }[] | null;
  /** Guest id N is backend id N + idOffset (guest ids 0-65535); null: no mapping. */
  idOffset: number | null;
}

/** A domain's SMB policy (MS-SMB2 dialect revision numbers). */
export interface SmbSettings {
  minDialect: number;
  /** The domain file sets an `smb` policy: in the kernel plane its SMB grants go through the proxy. */
  explicit: boolean;
}

/** A domain's own egress: routing table and conntrack zone (ADR 0011). */
export interface Egress {
  iface: string;
  /** Next hop; null: the backends are on the interface's link. */
  via: Ip | null;
  /** Routing table number, also the conntrack zone. */
  table: number;
  /** The table was set in the domain file (not allocated). */
  explicitTable: boolean;
}

/** One tenant security domain (a Manila share network). */
export interface Domain {
  file: string;
  name: string;
  project: string;
  shareNetwork?: string;
  sourceIp: Ip;
  guests: Guest[];
  shares: Share[];
  smb: SmbSettings;
  nfs: NfsSettings | null;
  /** Null: the host's routing applies. */
  egress: Egress | null;
}

export interface ProxySettings {
  portRange: { from: number; to: number };
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  keepAliveMs: number;
  /** TCP_USER_TIMEOUT on both legs (native shim); 0 leaves the kernel default. */
  userTimeoutMs: number;
  drainTimeoutMs: number;
  maxConnectionsPerGuest: number;
  /** Bytes one protocol-aware connection may hold (queued answers, held replies, socket buffers) before its guest is no longer read. */
  connectionBudget: number;
  /** Bytes all proxied connections may hold together before the proxy sheds load. */
  memoryBudget: number;
}

/** How the control module authenticates to Keystone (or not, in labs). */
export type ManilaAuth =
  | {
      type: 'password';
      username: string;
      password: Secret;
      /** Project scope: by id, or by name within projectDomain. */
      project: { id: string } | { name: string; domain: string };
      userDomain: string;
    }
  | { type: 'applicationCredential'; id: string; secret: Secret }
  | { type: 'noauth'; user: string; project: string };

/** The validated `manila:` block, clouds.yaml already merged in. */
export interface ManilaSettings {
  /** The clouds.yaml entry used, with the file it came from (status only). */
  cloud: { name: string; file: string } | null;
  /** Keystone v3 URL (null with noauth). */
  authUrl: string | null;
  auth: ManilaAuth;
  /** Manila v2 endpoint; null: from the service catalog. */
  endpoint: string | null;
  interface: 'public' | 'internal' | 'admin';
  region: string | null;
  caFile: string | null;
  timeoutMs: number;
  intervalMs: number;
  minIntervalMs: number;
  /** AMQP URL (may hold a password). */
  notifications: Secret | null;
  notificationsExchange: string;
}

/** Host-wide egress settings (ADR 0011). */
export interface EgressSettings {
  /** Tables allocated to domains that name none (also their conntrack zones). */
  tables: { from: number; to: number };
  /** Priority of sharegw's policy rules. */
  rulePriority: number;
}

/** Connection caps enforced by both data planes (`limits:`). */
export interface LimitSettings {
  maxConnectionsPerBackend: number;
  maxConnectionsPerDomainPerBackend: number;
}

export interface DaemonConfig {
  file: string;
  node: string;
  dataplane: Dataplane;
  domainsDir: string;
  stateDir: string;
  adminSocket: string;
  metrics: string | null;
  syncIntervalMs: number;
  logLevel: string;
  keepRulesOnExit: boolean;
  proxy: ProxySettings;
  /** Absent only in configs built by hand (tests): no per-backend caps then. */
  limits?: LimitSettings;
  /** Null: shares come from domain files only. */
  manila: ManilaSettings | null;
  egress: EgressSettings;
}

/** The whole validated configuration of one host. */
export interface SgwConfig {
  daemon: DaemonConfig;
  domains: Domain[];
  /** Things that are valid but worth an operator's attention. */
  warnings: ConfigProblem[];
}
