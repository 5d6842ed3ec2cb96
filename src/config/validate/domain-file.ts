import type { ConfigProblem } from '../../errors';
import type { AccessRule, Domain, Guest, Share } from '../../model/config';
import { parseExportLocation } from '../../model/export-location';
import type { ExportLocation } from '../../model/export-location';
import { ID_WINDOW } from '../../protocols/nfs-ids';
import { DIALECTS } from '../../protocols/smb2';
import { parseCidr, parseIp } from '../../util/ip';
import type { Ip } from '../../util/ip';
import { idProblem, safeText } from '../../util/safe-text';
import { RESERVED_TABLES } from '../resolve-tables';
import { accessRuleSchema, domainTopSchema, guestSchema, shareSchema } from '../schema';
import type { YamlSource } from '../yaml-source';
import { part } from './part';

/** One domain file on its own; what only the other files can tell is in cross-domain.ts. */

/** A checked domain file, kept for the host-wide checks. */
export interface Checked {
  domain: Domain;
  src: YamlSource;
  /** Position in the file's `guests` / `shares` list of each entry of domain.guests / domain.shares. */
  guestIndex: number[];
  shareIndex: number[];
}

const IFACE_RE = /^[A-Za-z0-9_.-]{1,15}$/;

/**
 * The domain, or null when the file does not parse or its top-level fields
 * have problems. Guests and shares that fail are left out (their problems
 * are in `out`), so that the rest still takes part in the host-wide checks.
 */
export function checkDomain(src: YamlSource, out: ConfigProblem[], warn: ConfigProblem[]): Checked | null {
  if (src.problems.length > 0) {
    out.push(...src.problems);
    return null;
  }
  let f = part(domainTopSchema, src.value ?? {}, src, out, []);
  // A bad top-level field (its problem is already reported) must not hide
  // the problems of the guests and shares below it: check those anyway from
  // a lenient reading, and return no domain at the end.
  const broken = f === null;
  if (f === null) {
    const raw = (src.value !== null && typeof src.value === 'object' && !Array.isArray(src.value) ? src.value : {}) as Record<string, unknown>;
    f = {
      name: typeof raw['name'] === 'string' ? raw['name'] : '',
      project: '',
      sourceIp: typeof raw['sourceIp'] === 'string' ? raw['sourceIp'] : '',
      guests: Array.isArray(raw['guests']) ? (raw['guests'] as unknown[]) : [],
      shares: Array.isArray(raw['shares']) ? (raw['shares'] as unknown[]) : [],
    };
  }
  const ip = (text: string, key: (string | number)[], v4only = false): Ip => {
    const a = parseIp(text);
    if (a === null) {
      out.push(src.problem(key, 'SGW_ERR_CONFIG_BAD_IP', `"${text}" is not an IP address`));
    } else if (v4only && a.family !== 4) {
      out.push(src.problem(key, 'SGW_ERR_CONFIG_UNSUPPORTED', `"${text}": only IPv4 is supported here for now`));
    }
    return a ?? { family: 4, text, value: 0n };
  };

  // An empty sourceIp here means the schema problem was already reported.
  const sourceIp = f.sourceIp === '' && broken ? { family: 4 as const, text: '', value: 0n } : ip(f.sourceIp, ['sourceIp'], true);
  const guests: Guest[] = [];
  const guestIndex: number[] = [];
  f.guests.forEach((raw, gi) => {
    const base = ['guests', gi];
    const g = part(guestSchema, raw, src, out, base);
    if (g === null) {
      return;
    }
    badId(src, g.instance, [...base, 'instance'], 'instance', out);
    if (!IFACE_RE.test(g.tunnel.interface)) {
      out.push(src.problem([...base, 'tunnel', 'interface'], 'SGW_ERR_CONFIG_BAD_INTERFACE', `"${g.tunnel.interface}" is not a valid interface name (1-15 chars of A-Z a-z 0-9 _ . -)`));
    }
    const guestIp = ip(g.tunnel.guestIp, [...base, 'tunnel', 'guestIp'], true);
    const gatewayIp = ip(g.tunnel.gatewayIp, [...base, 'tunnel', 'gatewayIp'], true);
    if (guestIp.text === gatewayIp.text) {
      out.push(src.problem([...base, 'tunnel', 'gatewayIp'], 'SGW_ERR_CONFIG_DUPLICATE', 'gatewayIp must differ from guestIp'));
    }
    const addresses = g.addresses.map((a, ai) => ip(a, [...base, 'addresses', ai]));
    guests.push({ instance: g.instance, tunnel: { iface: g.tunnel.interface, guestIp, gatewayIp }, addresses });
    guestIndex.push(gi);
  });
  dupes(src, f.guests.map((g) => instanceOf(g)), (i) => ['guests', i, 'instance'], 'instance', out);

  const shares: Share[] = [];
  const shareIndex: number[] = [];
  f.shares.forEach((rawShare, si) => {
    const base = ['shares', si];
    const s = part(shareSchema, rawShare, src, out, base);
    if (s === null) {
      return;
    }
    badId(src, s.id, [...base, 'id'], 'share id', out);
    if (s.name !== undefined) {
      badId(src, s.name, [...base, 'name'], 'share name', out);
    }
    const exportLocations: ExportLocation[] = [];
    s.exportLocations.forEach((raw, ei) => {
      const loc = parseExportLocation(s.proto, raw);
      if (typeof loc === 'string') {
        out.push(src.problem([...base, 'exportLocations', ei], 'SGW_ERR_CONFIG_BAD_EXPORT', `"${raw}" is not a ${s.proto} export location: ${loc}`));
      } else if (loc.host.family !== 4) {
        out.push(src.problem([...base, 'exportLocations', ei], 'SGW_ERR_CONFIG_UNSUPPORTED', `"${raw}": IPv6 backends are not supported by the data planes yet`));
      } else {
        exportLocations.push(loc);
      }
    });
    const accessRules: AccessRule[] = [];
    s.accessRules.forEach((rawRule, ri) => {
      const r = part(accessRuleSchema, rawRule, src, out, [...base, 'accessRules', ri]);
      if (r === null) {
        return;
      }
      const key = [...base, 'accessRules', ri, 'accessTo'];
      let cidr = null;
      if (r.accessType === 'ip') {
        cidr = parseCidr(r.accessTo);
        if (cidr === null) {
          out.push(src.problem(key, 'SGW_ERR_CONFIG_BAD_CIDR', `"${r.accessTo}" is not an IP address or CIDR prefix`));
        } else if (cidr.hostBitsSet) {
          out.push(src.problem(key, 'SGW_ERR_CONFIG_BAD_CIDR', `"${r.accessTo}" has host bits set; did you mean ${cidr.network}/${cidr.prefix}?`));
        }
      } else {
        warn.push(src.problem([...base, 'accessRules', ri, 'accessType'], 'SGW_WARN_CONFIG_RULE_IGNORED', `accessType "${r.accessType}" is enforced by the backend, not the gateway; it grants no network access`));
      }
      if (r.accessLevel === 'ro' && r.accessType === 'ip' && s.proto === 'CIFS') {
        // NFS ro grants are enforced by the proxy (steered in the kernel plane);
        // SMB writes hide behind signing and encryption.
        warn.push(src.problem([...base, 'accessRules', ri, 'accessLevel'], 'SGW_WARN_CONFIG_RO_BACKEND_ONLY', 'read-only on a CIFS share is enforced by the backend: SMB3 signing and encryption keep writes out of the gateway\'s sight'));
      }
      accessRules.push({ type: r.accessType, to: r.accessTo, cidr, level: r.accessLevel });
    });
    if (s.proto !== 'CIFS' && s.encryption !== undefined) {
      out.push(src.problem([...base, 'encryption'], 'SGW_ERR_CONFIG_SCHEMA', 'only CIFS shares take encryption', true));
    }
    if (s.proto !== 'NFS' && (s.nfsv3 !== undefined || s.mountdPort !== undefined)) {
      out.push(src.problem([...base, s.nfsv3 !== undefined ? 'nfsv3' : 'mountdPort'], 'SGW_ERR_CONFIG_SCHEMA', 'only NFS shares take nfsv3/mountdPort', true));
    }
    const share: Share = {
      id: s.id,
      proto: s.proto,
      exportLocations,
      accessRules,
      nfsv3: s.nfsv3 ?? false,
      mountdPort: s.mountdPort ?? 20048,
      encryptionRequired: s.encryption === 'required',
    };
    if (s.name !== undefined) {
      share.name = s.name;
    }
    shares.push(share);
    shareIndex.push(si);
  });
  dupes(src, f.shares.map((x) => idOf(x)), (i) => ['shares', i, 'id'], 'share id', out);

  if (broken) {
    return null;
  }
  let nfs: Domain['nfs'] = null;
  if (f.nfs !== undefined) {
    const ranges = (key: 'uids' | 'gids'): { from: number; to: number }[] | null => {
      const raw = f.nfs?.[key];
      if (raw === undefined) {
        return null;
      }
      const list: { from: number; to: number }[] = [];
      raw.forEach((r, i) => {
        const m = typeof r === 'number' ? [String(r), String(r), String(r)] : /^(\d{1,10})(?:-(\d{1,10}))?$/.exec(r.trim());
        const from = Number(m?.[1]);
        const to = Number(m?.[2] ?? m?.[1]);
        if (m === null || from > to || to > 0xffffffff) {
          out.push(src.problem(['nfs', key, i], 'SGW_ERR_CONFIG_SCHEMA', `"${String(r)}" is not an id or a range FROM-TO (0-4294967295)`));
          return;
        }
        list.push({ from, to });
      });
      return list;
    };
    nfs = {
      rootSquash: f.nfs.rootSquash ?? true,
      anonUid: f.nfs.anonUid ?? 65534,
      anonGid: f.nfs.anonGid ?? 65534,
      uids: ranges('uids'),
      gids: ranges('gids'),
      idOffset: f.nfs.idOffset ?? null,
    };
    if (nfs.idOffset !== null) {
      // The map covers guest ids 0-65535: ranges and anonymous ids must lie inside.
      for (const key of ['uids', 'gids'] as const) {
        (nfs[key] ?? []).forEach((r, i) => {
          if (r.to >= ID_WINDOW) {
            out.push(src.problem(['nfs', key, i], 'SGW_ERR_CONFIG_SCHEMA', `with idOffset, guest ids are 0-${ID_WINDOW - 1}: ${r.from}-${r.to} reaches past them`));
          }
        });
      }
      for (const key of ['anonUid', 'anonGid'] as const) {
        if (nfs[key] >= ID_WINDOW) {
          out.push(src.problem(['nfs', key], 'SGW_ERR_CONFIG_SCHEMA', `with idOffset, ${key} is a guest id (0-${ID_WINDOW - 1}), not ${nfs[key]}`));
        }
      }
    }
  }
  let egress: Domain['egress'] = null;
  if (f.egress !== undefined) {
    if (!IFACE_RE.test(f.egress.interface)) {
      out.push(src.problem(['egress', 'interface'], 'SGW_ERR_CONFIG_BAD_INTERFACE', `"${f.egress.interface}" is not a valid interface name (1-15 chars of A-Z a-z 0-9 _ . -)`));
    }
    const via = f.egress.via === undefined ? null : ip(f.egress.via, ['egress', 'via'], true);
    if (f.egress.table !== undefined && RESERVED_TABLES.has(f.egress.table)) {
      out.push(src.problem(['egress', 'table'], 'SGW_ERR_CONFIG_BAD_TABLE', `table ${f.egress.table} is the kernel's own (253 default, 254 main, 255 local)`));
    }
    // Table 0 until allocateTables() gives one (after every file is read).
    egress = { iface: f.egress.interface, via, table: f.egress.table ?? 0, explicitTable: f.egress.table !== undefined };
  }
  const domain: Domain = {
    file: src.file,
    name: f.name,
    project: f.project,
    sourceIp,
    guests,
    shares,
    smb: { minDialect: DIALECTS[f.smb?.minDialect ?? '3.0'] ?? 0x0300, explicit: f.smb !== undefined },
    nfs,
    egress,
  };
  if (f.shareNetwork !== undefined) {
    domain.shareNetwork = f.shareNetwork;
  }
  return { domain, src, guestIndex, shareIndex };
}

/**
 * Ids reach terminals (status, explain, flows) and logs: one that a
 * terminal would act on (ESC sequences, bidi overrides, newlines) or that
 * is unbounded is refused here, at the edge. The message shows it escaped.
 */
function badId(src: YamlSource, value: string, key: (string | number)[], what: string, out: ConfigProblem[]): void {
  const why = idProblem(value);
  if (why !== null) {
    out.push(src.problem(key, 'SGW_ERR_CONFIG_BAD_ID', `${what} "${safeText(value.slice(0, 64))}${value.length > 64 ? '...' : ''}" ${why}`));
  }
}

function instanceOf(v: unknown): string | undefined {
  const x = (v as { instance?: unknown } | null)?.instance;
  return typeof x === 'string' ? x : undefined;
}

function idOf(v: unknown): string | undefined {
  const x = (v as { id?: unknown } | null)?.id;
  return typeof x === 'string' ? x : undefined;
}

function dupes(src: YamlSource, values: (string | undefined)[], key: (i: number) => (string | number)[], what: string, out: ConfigProblem[]): void {
  const seen = new Map<string, number>();
  values.forEach((v, i) => {
    if (v === undefined) {
      return;
    }
    const first = seen.get(v);
    if (first === undefined) {
      seen.set(v, i);
    } else {
      out.push(src.problem(key(i), 'SGW_ERR_CONFIG_DUPLICATE', `${what} "${v}" is already used at index ${first}`));
    }
  });
}
