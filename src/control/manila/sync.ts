import type { AccessRule, Domain, Share, SgwConfig } from '../../model/config';
import { parseExportLocation } from '../../model/export-location';
import type { ExportLocation, ShareProto } from '../../model/export-location';
import { parseCidr } from '../../util/ip';
import { idProblem, safeText } from '../../util/safe-text';
import type { ManilaRecordCode } from '../../errors';
import type { AccessRuleRecord, ExportLocationRecord, ManilaShare, SecurityService, ShareNetwork } from './schemas';

/**
 * Pure: what Manila says about one domain's share network becomes the
 * domain's synced shares, in the form domain files use for static shares
 * (plain strings, so it persists as JSON and merges with static shares).
 *
 * Rules (issue 5):
 * - shares: status `available` only;
 * - export locations: never `is_admin_only`; when some are `preferred`,
 *   only those (a guest is told to mount those; fewer backends exposed);
 * - access rules: `active` ones grant; `queued_to_apply`, `applying`,
 *   `queued_to_deny`, `denying` and `error` grant nothing;
 * - share network `network_change`: the domain keeps its last applied
 *   shares and takes nothing new until `active` again (frozen); `error`
 *   keeps the last-known-good shares too and raises a flag;
 * - `encryption_key_ref` (2.90): a CIFS share requires SMB3 encryption.
 */

/** A share as a domain file writes it (see config/schema.ts shareSchema). */
export interface SyncedShare {
  id: string;
  name?: string;
  proto: ShareProto;
  exportLocations: string[];
  accessRules: { accessType: AccessRule['type']; accessTo: string; accessLevel: 'rw' | 'ro' }[];
  /** CIFS only: set when Manila reports an encryption key for the share. */
  encryption?: 'required';
  /** The share is encrypted at rest (2.90 encryption_key_ref); status only. */
  encrypted?: boolean;
}

/** A security service as status shows it: never a password. */
export interface SyncedSecurityService {
  id: string;
  type: string;
  name: string | null;
  server: string | null;
  domain: string | null;
  dnsIp: string | null;
  ou: string | null;
  user: string | null;
}

export type NetworkStatus = 'active' | 'network_change' | 'error' | 'unknown';

/** One domain's synced state: what is applied, and why. */
export interface SyncedDomain {
  domain: string;
  shareNetworkId: string;
  network: {
    name: string | null;
    status: NetworkStatus;
    securityServiceUpdateSupport: boolean | null;
    subnets: { id: string; cidr: string | null; availabilityZone: string | null }[];
    securityServices: SyncedSecurityService[];
  } | null;
  /** The shares in force for this domain (frozen ones while flagged). */
  shares: SyncedShare[];
  flags: {
    /** network_change: last applied shares kept, nothing new taken. */
    frozen: boolean;
    /** The share network is in `error`: last-known-good kept. */
    networkError: boolean;
    /** The share network does not exist (404): no synced shares. */
    missing: boolean;
  };
  /**
   * Shares, locations and rules left out, with the reason (status, logs).
   * `code` is set when the record itself was bad (not a state on its way),
   * e.g. SGW_ERR_MANILA_BAD_ID; `share` is then shown escaped.
   */
  skipped: { share: string; what: string; reason: string; code?: ManilaRecordCode }[];
  /** When Manila's answer for this domain was read (ISO 8601). */
  fetchedAt: string;
}

/** What was read from Manila for one domain. */
export interface FetchedDomain {
  domain: string;
  shareNetworkId: string;
  /** Null: 404. */
  network: ShareNetwork | null;
  securityServices: SecurityService[];
  shares: { share: ManilaShare; exportLocations: ExportLocationRecord[]; accessRules: AccessRuleRecord[] }[];
  fetchedAt: string;
}

const GRANTING_STATES = new Set(['active']);

/** The synced state of a domain from a fresh fetch and the last applied one. */
export function syncDomain(fetched: FetchedDomain, previous: SyncedDomain | null): SyncedDomain {
  const skipped: SyncedDomain['skipped'] = [];
  if (fetched.network === null) {
    return { domain: fetched.domain, shareNetworkId: fetched.shareNetworkId, network: null, shares: [], flags: { frozen: false, networkError: false, missing: true }, skipped, fetchedAt: fetched.fetchedAt };
  }
  const n = fetched.network;
  // No status below 2.63: the network is taken as usable. A status this
  // code does not know is treated like `error` (last-known-good, flagged):
  // a new state in a newer Manila must not open or close access by accident.
  const status: NetworkStatus = n.status === undefined ? 'unknown' : n.status === 'active' || n.status === 'network_change' || n.status === 'error' ? n.status : 'error';
  const network: SyncedDomain['network'] = {
    name: n.name ?? null,
    status,
    securityServiceUpdateSupport: n.security_service_update_support ?? null,
    subnets: n.share_network_subnets.map((s) => ({ id: s.id, cidr: s.cidr ?? null, availabilityZone: s.availability_zone ?? null })),
    securityServices: fetched.securityServices.map((s) => ({
      id: s.id,
      type: s.type,
      name: s.name ?? null,
      server: s.server ?? null,
      domain: s.domain ?? null,
      dnsIp: s.dns_ip ?? null,
      ou: s.ou ?? null,
      user: s.user ?? null,
    })),
  };
  // The network is changing or broken: keep what was applied; the
  // network's own facts (status, a replaced security service) still show.
  if (status === 'network_change' || status === 'error') {
    return {
      domain: fetched.domain,
      shareNetworkId: fetched.shareNetworkId,
      network,
      shares: previous?.shares ?? [],
      flags: { frozen: status === 'network_change', networkError: status === 'error', missing: false },
      skipped: previous?.skipped ?? [],
      fetchedAt: fetched.fetchedAt,
    };
  }
  const shares: SyncedShare[] = [];
  for (const f of [...fetched.shares].sort((a, b) => (a.share.id < b.share.id ? -1 : a.share.id > b.share.id ? 1 : 0))) {
    const s = toSyncedShare(f, skipped);
    if (s !== null) {
      shares.push(s);
    }
  }
  return { domain: fetched.domain, shareNetworkId: fetched.shareNetworkId, network, shares, flags: { frozen: false, networkError: false, missing: false }, skipped, fetchedAt: fetched.fetchedAt };
}

function toSyncedShare(f: FetchedDomain['shares'][number], skipped: SyncedDomain['skipped']): SyncedShare | null {
  const s = f.share;
  const skip = (what: string, reason: string): null => {
    skipped.push({ share: s.id, what, reason });
    return null;
  };
  // Ids reach terminals and logs: a share whose id a terminal would act on
  // (ESC, bidi overrides, newlines) or that is unbounded is left out, alone;
  // the rest of the sync goes on. The record keeps it escaped and short.
  const badId = idProblem(s.id);
  if (badId !== null) {
    skipped.push({ share: safeText(s.id.slice(0, 64)), what: 'share', reason: `id ${badId}`, code: 'SGW_ERR_MANILA_BAD_ID' });
    return null;
  }
  const badName = s.name === undefined || s.name === null || s.name === '' ? null : idProblem(s.name);
  if (badName !== null) {
    skipped.push({ share: s.id, what: 'share', reason: `name ${badName}`, code: 'SGW_ERR_MANILA_BAD_ID' });
    return null;
  }
  if (s.status !== 'available') {
    return skip('share', `status ${s.status}`);
  }
  const proto = s.share_proto.toUpperCase();
  if (proto !== 'NFS' && proto !== 'CIFS') {
    return skip('share', `protocol ${s.share_proto} is not carried by the gateway`);
  }
  const visible = f.exportLocations.filter((e) => e.is_admin_only !== true);
  const preferred = visible.filter((e) => e.preferred === true);
  const exportLocations: string[] = [];
  for (const e of preferred.length > 0 ? preferred : visible) {
    const parsed = parseManilaLocation(proto, e.path);
    if (typeof parsed === 'string') {
      skip(`export location ${e.path}`, parsed);
    } else if (parsed.loc.host.family !== 4) {
      skip(`export location ${e.path}`, 'IPv6 backends are not supported by the data planes yet');
    } else if (!exportLocations.includes(parsed.text)) {
      exportLocations.push(parsed.text);
    }
  }
  if (exportLocations.length === 0) {
    return skip('share', 'no usable export location');
  }
  const accessRules: SyncedShare['accessRules'] = [];
  for (const r of [...f.accessRules].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    if (!GRANTING_STATES.has(r.state)) {
      skipped.push({ share: s.id, what: `access rule ${r.id}`, reason: `state ${r.state}` });
      continue;
    }
    const type = r.access_type;
    if (type !== 'ip' && type !== 'user' && type !== 'cert' && type !== 'cephx') {
      skipped.push({ share: s.id, what: `access rule ${r.id}`, reason: `access type ${type}` });
      continue;
    }
    if (r.access_level !== 'rw' && r.access_level !== 'ro') {
      skipped.push({ share: s.id, what: `access rule ${r.id}`, reason: `access level ${r.access_level}` });
      continue;
    }
    if (type === 'ip') {
      const c = parseCidr(r.access_to);
      if (c === null || c.hostBitsSet) {
        skipped.push({ share: s.id, what: `access rule ${r.id}`, reason: `"${r.access_to}" is not an address or a prefix without host bits` });
        continue;
      }
    }
    accessRules.push({ accessType: type, accessTo: r.access_to, accessLevel: r.access_level });
  }
  const encrypted = typeof s.encryption_key_ref === 'string' && s.encryption_key_ref !== '';
  const out: SyncedShare = { id: s.id, proto, exportLocations, accessRules };
  if (s.name !== undefined && s.name !== null && s.name !== '') {
    out.name = s.name;
  }
  if (encrypted) {
    out.encrypted = true;
    if (proto === 'CIFS') {
      out.encryption = 'required';
    }
  }
  return out;
}

/**
 * Manila CIFS locations come as `\\host\share` (most drivers) or, from some
 * drivers, `host:/share`; both are normalised to `\\host\share`.
 */
export function parseManilaLocation(proto: ShareProto, raw: string): { text: string; loc: ExportLocation } | string {
  const first = parseExportLocation(proto, raw);
  if (typeof first !== 'string') {
    return { text: raw, loc: first };
  }
  if (proto === 'CIFS') {
    const m = /^([^:\\/]+):\/+([^\\/]+)\/?$/.exec(raw);
    if (m !== null) {
      const text = `\\\\${m[1] ?? ''}\\${m[2] ?? ''}`;
      const again = parseExportLocation('CIFS', text);
      if (typeof again !== 'string') {
        return { text, loc: again };
      }
    }
  }
  return first;
}

/** The model form of a synced share (as validate.ts builds static ones). */
export function toModelShare(s: SyncedShare): Share {
  const exportLocations: ExportLocation[] = [];
  for (const e of s.exportLocations) {
    const p = parseManilaLocation(s.proto, e);
    if (typeof p !== 'string') {
      exportLocations.push(p.loc);
    }
  }
  const accessRules: AccessRule[] = s.accessRules.map((r) => ({ type: r.accessType, to: r.accessTo, cidr: r.accessType === 'ip' ? parseCidr(r.accessTo) : null, level: r.accessLevel }));
  const share: Share = { id: s.id, proto: s.proto, exportLocations, accessRules, nfsv3: false, mountdPort: 20048, encryptionRequired: s.encryption === 'required' };
  if (s.name !== undefined) {
    share.name = s.name;
  }
  return share;
}

/**
 * The configuration with each domain's synced shares added to its static
 * ones. A static share wins over a synced share with the same id (the
 * operator wrote it down on purpose); the collision is reported.
 */
export function mergeSynced(config: SgwConfig, synced: ReadonlyMap<string, SyncedDomain>): { config: SgwConfig; collisions: { domain: string; share: string }[] } {
  const collisions: { domain: string; share: string }[] = [];
  const staticIds = new Set(config.domains.flatMap((d) => d.shares.map((s) => s.id)));
  const domains: Domain[] = config.domains.map((d) => {
    const sd = synced.get(d.name);
    if (sd === undefined || d.shareNetwork === undefined || sd.shareNetworkId !== d.shareNetwork) {
      return d;
    }
    const extra: Share[] = [];
    for (const s of sd.shares) {
      // A state file written before ids were checked may still hold one.
      if (idProblem(s.id) !== null || (s.name !== undefined && idProblem(s.name) !== null)) {
        continue;
      }
      if (staticIds.has(s.id)) {
        collisions.push({ domain: d.name, share: s.id });
        continue;
      }
      extra.push(toModelShare(s));
    }
    return extra.length === 0 ? d : { ...d, shares: [...d.shares, ...extra] };
  });
  return { config: { ...config, domains }, collisions };
}
