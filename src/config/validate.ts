import * as path from 'node:path';
import type { z } from 'zod';
import type { ConfigProblem } from '../errors';
import type { AccessRule, DaemonConfig, Domain, Guest, ManilaAuth, ManilaSettings, Share, SgwConfig } from '../model/config';
import { parseExportLocation } from '../model/export-location';
import { ID_WINDOW } from '../protocols/nfs-ids';
import { DIALECTS } from '../protocols/smb2';
import type { ExportLocation } from '../model/export-location';
import { parseCidr, parseIp } from '../util/ip';
import type { Ip } from '../util/ip';
import { parseDuration } from './duration';
import { parseSize } from './size';
import { accessRuleSchema, daemonFileSchema, domainTopSchema, guestSchema, shareSchema } from './schema';
import type { DaemonFile, ManilaFile } from './schema';
import { findCloud } from './clouds';
import { Secret } from './secret';
import { parseYaml } from './yaml-source';
import { idProblem, safeText } from '../util/safe-text';
import type { YamlSource } from './yaml-source';

/** A configuration file's name and text, read by the caller. */
export interface SourceText {
  file: string;
  text: string;
}

/** Result of validation: a config only when there are no problems. */
interface Checked {
  domain: Domain;
  src: YamlSource;
  /** Position in the file's `guests` / `shares` list of each entry of domain.guests / domain.shares. */
  guestIndex: number[];
  shareIndex: number[];
}

export interface ValidationResult {
  config: SgwConfig | null;
  problems: ConfigProblem[];
  warnings: ConfigProblem[];
}

const IFACE_RE = /^[A-Za-z0-9_.-]{1,15}$/;
const DEFAULT_PORT_RANGE = { from: 40000, to: 44999 };
/**
 * Defaults of `limits`: below nfs-ganesha's 1024 connections (and samba's
 * usual process limits), with room left for clients that do not pass
 * through the gateway; one domain gets at most a quarter of a backend.
 */
export const DEFAULT_LIMITS = { maxConnectionsPerBackend: 896, maxConnectionsPerDomainPerBackend: 256 } as const;
/** Defaults of the daemon's `egress` block (ADR 0011). */
export const DEFAULT_EGRESS = { tables: { from: 20000, to: 20999 }, rulePriority: 20000 } as const;
/** Tables the kernel reserves (RFC-less: rt_tables unspec, default, main, local). */
const RESERVED_TABLES = new Set([0, 253, 254, 255]);

/**
 * Validates a daemon file and its domain files completely, returning every
 * problem at once (an operator fixing a file wants the whole list).
 * Pure: the caller reads the files.
 */
export function validateConfig(daemonSrc: SourceText, domainSrcs: readonly SourceText[], domainsDir: string, clouds: SourceText | null = null): ValidationResult {
  const problems: ConfigProblem[] = [];
  const warnings: ConfigProblem[] = [];

  const dsrc = parseYaml(daemonSrc.file, daemonSrc.text);
  const daemon = checkDaemon(dsrc, problems, clouds);

  // Domains with problems still take part in the host-wide checks, with the
  // parts that parsed, so one run reports every collision too.
  const checked: Checked[] = [];
  let broken = false;
  for (const s of domainSrcs) {
    const src = parseYaml(s.file, s.text);
    const before = problems.length;
    const c = checkDomain(src, problems, warnings);
    broken ||= problems.length !== before;
    if (c !== null) {
      checked.push(c);
    }
  }
  crossDomainChecks(checked, problems);
  allocateTables(checked, daemon?.egress.tables ?? DEFAULT_EGRESS.tables, problems);
  const domains = broken ? [] : checked.map((c) => c.domain);

  if (daemon !== null) {
    daemon.domainsDir = domainsDir;
  }
  problems.sort(byPosition);
  const ok = problems.length === 0 && daemon !== null;
  return { config: ok ? { daemon, domains, warnings } : null, problems, warnings };
}

function schemaProblems(src: YamlSource, error: z.ZodError, out: ConfigProblem[], prefix: readonly (string | number)[] = []): void {
  for (const issue of error.issues) {
    const p = [...prefix, ...issue.path.filter((k): k is string | number => typeof k !== 'symbol')];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        out.push(src.problem([...p, key], 'SGW_ERR_CONFIG_UNKNOWN_KEY', `unknown key "${key}"`, true));
      }
      continue;
    }
    // zod's wording for an absent key ("expected string, received undefined")
    // sends operators looking for a value; say what is actually wrong.
    const last = p[p.length - 1];
    const missing = issue.code === 'invalid_type' && /received undefined$/.test(issue.message) && typeof last === 'string';
    out.push(src.problem(p, 'SGW_ERR_CONFIG_SCHEMA', missing ? `required key "${last}" is missing` : issue.message, false));
  }
}

/**
 * safeParse of one part of a file, with problems located under `prefix`.
 * When the only problems are unknown keys, they are reported and the part is
 * parsed again without them, so the rest of it is still checked.
 */
function part<T>(schema: z.ZodType<T>, value: unknown, src: YamlSource, out: ConfigProblem[], prefix: (string | number)[]): T | null {
  const r = schema.safeParse(value);
  if (r.success) {
    return r.data;
  }
  schemaProblems(src, r.error, out, prefix);
  if (!r.error.issues.every((i) => i.code === 'unrecognized_keys') || value === null || typeof value !== 'object') {
    return null;
  }
  const copy = structuredClone(value) as Record<string, unknown>;
  for (const issue of r.error.issues) {
    if (issue.code !== 'unrecognized_keys') {
      continue;
    }
    let obj: unknown = copy;
    for (const k of issue.path) {
      obj = (obj as Record<PropertyKey, unknown>)[k];
    }
    for (const k of issue.keys) {
      delete (obj as Record<string, unknown>)[k];
    }
  }
  const again = schema.safeParse(copy);
  return again.success ? again.data : null;
}

function checkDaemon(src: YamlSource, out: ConfigProblem[], clouds: SourceText | null): DaemonConfig | null {
  if (src.problems.length > 0) {
    out.push(...src.problems);
    return null;
  }
  const f: DaemonFile | null = part(daemonFileSchema, src.value ?? {}, src, out, []);
  if (f === null) {
    return null;
  }
  const before = out.length;
  const dur = (v: string | number | undefined, key: readonly (string | number)[], dflt: number, min = 0): number => {
    if (v === undefined) {
      return dflt;
    }
    const ms = parseDuration(v);
    if (ms === null || ms < min) {
      out.push(src.problem(key, 'SGW_ERR_CONFIG_BAD_DURATION', `"${String(v)}" is not a duration like 500ms, 10s, 5m, 1h${min > 0 ? ` (at least ${min} ms)` : ''}`));
      return dflt;
    }
    return ms;
  };
  let portRange = DEFAULT_PORT_RANGE;
  if (f.proxy?.portRange !== undefined) {
    const m = /^(\d{1,5})-(\d{1,5})$/.exec(f.proxy.portRange);
    const from = Number(m?.[1]);
    const to = Number(m?.[2]);
    if (m === null || from < 1024 || to > 65535 || from > to) {
      out.push(src.problem(['proxy', 'portRange'], 'SGW_ERR_CONFIG_BAD_PORT_RANGE', `"${f.proxy.portRange}" is not a range FROM-TO within 1024-65535`));
    } else {
      portRange = { from, to };
    }
  }
  let egressTables: { from: number; to: number } = DEFAULT_EGRESS.tables;
  if (f.egress?.tables !== undefined) {
    const m = /^(\d{1,5})-(\d{1,5})$/.exec(f.egress.tables);
    const from = Number(m?.[1]);
    const to = Number(m?.[2]);
    // Table numbers double as conntrack zones, which are 16 bits.
    if (m === null || from < 1 || to > 65535 || from > to || [...RESERVED_TABLES].some((r) => r >= from && r <= to)) {
      out.push(src.problem(['egress', 'tables'], 'SGW_ERR_CONFIG_BAD_TABLE_RANGE', `"${f.egress.tables}" is not a range FROM-TO within 1-65535 that avoids the kernel's tables 253-255`));
    } else {
      egressTables = { from, to };
    }
  }
  if (typeof f.metrics === 'string') {
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)|localhost):(\d{1,5})$/.exec(f.metrics);
    const host = m?.[1] ?? m?.[2];
    const port = Number(m?.[3]);
    if (m === null || (host !== undefined && parseIp(host) === null) || port < 1 || port > 65535) {
      out.push(src.problem(['metrics'], 'SGW_ERR_CONFIG_BAD_ADDRESS', `"${f.metrics}" is not HOST:PORT (an IP address or localhost, port 1-65535)`));
    }
  }
  const budgets = proxyBudgets(f.proxy?.connectionBudget, f.proxy?.memoryBudget, src, out);
  const dir = path.dirname(src.file);
  const cfg: DaemonConfig = {
    file: src.file,
    node: f.node,
    dataplane: f.dataplane,
    domainsDir: path.resolve(dir, f.domainsDir),
    stateDir: path.resolve(dir, f.stateDir),
    adminSocket: path.resolve(dir, f.adminSocket),
    metrics: typeof f.metrics === 'string' ? f.metrics : null,
    syncIntervalMs: dur(f.syncInterval, ['syncInterval'], 10_000, 100),
    logLevel: f.log?.level ?? 'info',
    keepRulesOnExit: f.kernel?.keepRulesOnExit ?? true,
    egress: { tables: egressTables, rulePriority: f.egress?.rulePriority ?? DEFAULT_EGRESS.rulePriority },
    proxy: {
      portRange,
      connectTimeoutMs: dur(f.proxy?.connectTimeout, ['proxy', 'connectTimeout'], 5_000, 1),
      idleTimeoutMs: dur(f.proxy?.idleTimeout, ['proxy', 'idleTimeout'], 3_600_000),
      keepAliveMs: dur(f.proxy?.keepAlive, ['proxy', 'keepAlive'], 30_000, 1000),
      userTimeoutMs: dur(f.proxy?.userTimeout, ['proxy', 'userTimeout'], 20_000),
      drainTimeoutMs: dur(f.proxy?.drainTimeout, ['proxy', 'drainTimeout'], 10_000),
      maxConnectionsPerGuest: f.proxy?.maxConnectionsPerGuest ?? 256,
      ...budgets,
    },
    limits: {
      maxConnectionsPerBackend: f.limits?.maxConnectionsPerBackend ?? DEFAULT_LIMITS.maxConnectionsPerBackend,
      maxConnectionsPerDomainPerBackend: f.limits?.maxConnectionsPerDomainPerBackend ?? DEFAULT_LIMITS.maxConnectionsPerDomainPerBackend,
    },
    manila: f.manila === undefined ? null : checkManila(f.manila, src, out, dur, clouds),
  };
  return out.length === before ? cfg : null;
}

/** Default and bounds of proxy.connectionBudget and proxy.memoryBudget (README). */
export const PROXY_BUDGETS = {
  connection: { dflt: 4 * 1024 ** 2, min: 64 * 1024, max: 1024 ** 3 },
  memory: { dflt: 512 * 1024 ** 2, min: 1024 ** 2, max: 64 * 1024 ** 3 },
} as const;

/**
 * proxy.connectionBudget and proxy.memoryBudget: sizes within their bounds,
 * and the global budget no smaller than one connection's.
 */
function proxyBudgets(conn: string | number | undefined, mem: string | number | undefined, src: YamlSource, out: ConfigProblem[]): { connectionBudget: number; memoryBudget: number } {
  const size = (v: string | number | undefined, key: string, b: { dflt: number; min: number; max: number }): number => {
    if (v === undefined) {
      return b.dflt;
    }
    const n = parseSize(v);
    if (n === null || n < b.min || n > b.max) {
      out.push(src.problem(['proxy', key], 'SGW_ERR_CONFIG_BAD_SIZE', `"${String(v)}" is not a size like 512KiB, 4MiB, 1GiB within ${b.min}-${b.max} bytes`));
      return b.dflt;
    }
    return n;
  };
  const connectionBudget = size(conn, 'connectionBudget', PROXY_BUDGETS.connection);
  const memoryBudget = size(mem, 'memoryBudget', PROXY_BUDGETS.memory);
  if (memoryBudget < connectionBudget) {
    out.push(src.problem(['proxy', 'memoryBudget'], 'SGW_ERR_CONFIG_BAD_SIZE', `must not be smaller than proxy.connectionBudget (${connectionBudget} bytes)`));
  }
  return { connectionBudget, memoryBudget };
}

function checkDomain(src: YamlSource, out: ConfigProblem[], warn: ConfigProblem[]): Checked | null {
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

/** `file:line` of an earlier claim, for the message about the one that collides with it. */
function whereIs(prev: { c: Checked; path: (string | number)[] }): string {
  const line = prev.c.src.problem(prev.path, '', '').line;
  return `${path.basename(prev.c.src.file)}${line === undefined ? '' : `:${line}`}`;
}

/** Host-wide uniqueness: names, source IPs, tunnels, guest IPs, instances, share ids. */
function crossDomainChecks(checked: readonly Checked[], out: ConfigProblem[]): void {
  const claims = new Map<string, { c: Checked; path: (string | number)[] }>();
  // Source IPs of domains with their own egress, with their links.
  const sources = new Map<string, { c: Checked; path: (string | number)[]; iface: string }[]>();
  const claim = (kind: string, value: string, c: Checked, p: (string | number)[], what: string): void => {
    const k = `${kind}\u0000${value}`;
    const prev = claims.get(k);
    if (prev === undefined) {
      claims.set(k, { c, path: p });
      return;
    }
    if (prev.c === c && (kind === 'instance' || kind === 'share')) {
      return; // a repeat within one file is already reported by dupes()
    }
    out.push(c.src.problem(p, 'SGW_ERR_CONFIG_DUPLICATE', `${what} "${value}" is already claimed by domain "${prev.c.domain.name}" (${whereIs(prev)})`));
  };
  for (const c of checked) {
    const d = c.domain;
    claim('name', d.name, c, ['name'], 'domain name');
    if (d.egress === null) {
      claim('addr', d.sourceIp.text, c, ['sourceIp'], 'source IP');
    } else {
      // Overlapping tenant address spaces (ADR 0011): domains on separate
      // egress links may have the same source IP, as two tenant networks
      // may give the gateway the same address. On one link, or against a
      // guest IP or a host-routed domain's source IP, it is still a clash.
      const ip = d.sourceIp.text;
      const list = sources.get(ip) ?? [];
      const sameLink = list.find((x) => x.iface === d.egress?.iface);
      if (sameLink !== undefined) {
        out.push(c.src.problem(['sourceIp'], 'SGW_ERR_CONFIG_DUPLICATE', `source IP "${ip}" is already used on egress ${sameLink.iface} by domain "${sameLink.c.domain.name}" (${whereIs(sameLink)})`));
      } else if (list.length === 0) {
        claim('addr', ip, c, ['sourceIp'], 'source IP');
      }
      list.push({ c, path: ['sourceIp'], iface: d.egress.iface });
      sources.set(ip, list);
    }
    d.guests.forEach((g, n) => {
      const i = c.guestIndex[n] ?? 0;
      claim('instance', g.instance, c, ['guests', i, 'instance'], 'instance');
      claim('iface', g.tunnel.iface, c, ['guests', i, 'tunnel', 'interface'], 'tunnel interface');
      // Guest and source addresses share one namespace: a tunnel address
      // must never double as another guest's or a domain's source address.
      claim('addr', g.tunnel.guestIp.text, c, ['guests', i, 'tunnel', 'guestIp'], 'guest IP');
    });
    d.shares.forEach((s, n) => {
      claim('share', s.id, c, ['shares', c.shareIndex[n] ?? 0, 'id'], 'share id');
    });
  }
  // Two domains on different share networks that use one backend address
  // mean two servers in two tenant networks (Manila puts a share server on
  // each share network): the host's routing reaches only one of them, so at
  // least one domain needs its own egress (issue 6). Domains without a
  // share network, or on the same one, may share a server through the host
  // routing as before (DHSS=False share servers serve every tenant; ADR 0011).
  const backends = new Map<string, { c: Checked; path: (string | number)[] }>();
  for (const c of checked) {
    const seen = new Set<string>();
    c.domain.shares.forEach((s, n) => {
      s.exportLocations.forEach((l, ei) => {
        const a = l.host.text;
        if (seen.has(a)) {
          return;
        }
        seen.add(a);
        const p = ['shares', c.shareIndex[n] ?? 0, 'exportLocations', ei];
        const prev = backends.get(a);
        if (prev === undefined) {
          backends.set(a, { c, path: p });
          return;
        }
        const n1 = prev.c.domain.shareNetwork;
        const n2 = c.domain.shareNetwork;
        const twoNetworks = n1 !== undefined && n2 !== undefined && n1 !== n2;
        if (twoNetworks && prev.c.domain.egress === null && c.domain.egress === null) {
          out.push(
            c.src.problem(p, 'SGW_ERR_CONFIG_SHARED_BACKEND', `backend address ${a} is also used by domain "${prev.c.domain.name}" (${whereIs(prev)}); ${path.basename(c.src.file)} and ${path.basename(prev.c.src.file)} are on different share networks and may share it only if at least one of them has its own egress`),
          );
        }
      });
    });
  }
  // Offset maps: each domain owns backend ids [idOffset, idOffset + 65536).
  // Two windows that overlap would give two domains one backend owner.
  const windows = checked.filter((c) => c.domain.nfs?.idOffset != null).sort((a, b) => (a.domain.nfs?.idOffset ?? 0) - (b.domain.nfs?.idOffset ?? 0));
  for (let i = 1; i < windows.length; i++) {
    const prev = windows[i - 1] as Checked;
    const c = windows[i] as Checked;
    const a = prev.domain.nfs?.idOffset ?? 0;
    const b = c.domain.nfs?.idOffset ?? 0;
    if (b < a + ID_WINDOW) {
      const where = path.basename(prev.src.file);
      out.push(c.src.problem(['nfs', 'idOffset'], 'SGW_ERR_CONFIG_DUPLICATE', `idOffset ${b} overlaps domain "${prev.domain.name}" (${where}, idOffset ${a}): backend ids ${b}-${a + ID_WINDOW - 1} would belong to both; offsets must be at least ${ID_WINDOW} apart`));
    }
  }
}

/**
 * Gives every domain with an egress its table (and conntrack zone). An
 * explicit table is claimed first; the others get, in name order, the first
 * free table at or after a slot picked by a hash of the domain name, so a
 * domain keeps its table across restarts and reloads as long as no new
 * domain takes that slot first (ADR 0011).
 */
export function allocateTables(checked: readonly { domain: Domain; src: YamlSource }[], range: { from: number; to: number }, out: ConfigProblem[]): void {
  const taken = new Map<number, string>();
  for (const c of checked) {
    const e = c.domain.egress;
    if (e === null || !e.explicitTable) {
      continue;
    }
    const prev = taken.get(e.table);
    if (prev !== undefined) {
      out.push(c.src.problem(['egress', 'table'], 'SGW_ERR_CONFIG_DUPLICATE', `table ${e.table} is already claimed by domain "${prev}"`));
      continue;
    }
    taken.set(e.table, c.domain.name);
  }
  const size = range.to - range.from + 1;
  const rest = checked.filter((c) => c.domain.egress !== null && !c.domain.egress.explicitTable).sort((a, b) => (a.domain.name < b.domain.name ? -1 : a.domain.name > b.domain.name ? 1 : 0));
  for (const c of rest) {
    const e = c.domain.egress as NonNullable<Domain['egress']>;
    const start = nameSlot(c.domain.name, size);
    let got: number | null = null;
    for (let i = 0; i < size; i++) {
      const t = range.from + ((start + i) % size);
      if (!taken.has(t) && !RESERVED_TABLES.has(t)) {
        got = t;
        break;
      }
    }
    if (got === null) {
      out.push(c.src.problem(['egress'], 'SGW_ERR_CONFIG_NO_TABLE', `no free table left in ${range.from}-${range.to} (daemon egress.tables)`));
      continue;
    }
    e.table = got;
    taken.set(got, c.domain.name);
  }
}

/** FNV-1a of the name, modulo `size`: pure and stable across versions of Node. */
function nameSlot(name: string, size: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % size;
}

function byPosition(a: ConfigProblem, b: ConfigProblem): number {
  if (a.file !== b.file) {
    return a.file < b.file ? -1 : 1;
  }
  return (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0);
}

type DurFn = (v: string | number | undefined, key: readonly (string | number)[], dflt: number, min?: number) => number;

/**
 * The `manila:` block with its clouds.yaml entry merged in (explicit keys
 * win). Problems never quote a credential: they name the key only.
 */
function checkManila(m: ManilaFile, src: YamlSource, out: ConfigProblem[], dur: DurFn, clouds: SourceText | null): ManilaSettings | null {
  const before = out.length;
  const at = (key: string): string[] => ['manila', key];
  let cloud: ManilaSettings['cloud'] = null;
  let entry: Exclude<ReturnType<typeof findCloud>, string> | null = null;
  if (m.cloud !== undefined) {
    if (clouds === null) {
      out.push(src.problem(at('cloud'), 'SGW_ERR_CONFIG_CLOUD', `cloud "${m.cloud}": no clouds.yaml found (OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml)`));
    } else {
      const doc = parseYaml(clouds.file, clouds.text);
      const found = doc.problems.length > 0 ? `is not valid YAML (line ${doc.problems[0]?.line ?? '?'})` : findCloud(doc.value, m.cloud);
      if (typeof found === 'string') {
        out.push(src.problem(at('cloud'), 'SGW_ERR_CONFIG_CLOUD', `${clouds.file} ${found}`));
      } else {
        entry = found;
        cloud = { name: m.cloud, file: clouds.file };
      }
    }
  }
  const ca = entry?.auth;
  let auth: ManilaAuth | null = null;
  if (m.auth !== undefined) {
    const a = m.auth;
    if (a.type === 'password') {
      if ((a.project === undefined) === (a.projectId === undefined)) {
        out.push(src.problem(['manila', 'auth'], 'SGW_ERR_CONFIG_SCHEMA', 'password auth needs exactly one of project (a name) or projectId'));
      }
      const domain = a.domain ?? 'Default';
      auth = {
        type: 'password',
        username: a.username,
        password: new Secret(a.password),
        project: a.projectId !== undefined ? { id: a.projectId } : { name: a.project ?? '', domain: a.projectDomain ?? domain },
        userDomain: a.userDomain ?? domain,
      };
    } else if (a.type === 'applicationCredential') {
      auth = { type: 'applicationCredential', id: a.id, secret: new Secret(a.secret) };
    } else {
      if (!/^[0-9a-fA-F-]{1,64}$/.test(a.project)) {
        out.push(src.problem(['manila', 'auth', 'project'], 'SGW_ERR_CONFIG_SCHEMA', 'a noauth project must be a hex project id (Manila refuses other ids in URLs)'));
      }
      auth = { type: 'noauth', user: a.user, project: a.project };
    }
  } else if (ca !== undefined) {
    const authType = entry?.auth_type ?? (ca.application_credential_id !== undefined ? 'v3applicationcredential' : 'password');
    if (authType === 'v3applicationcredential' || authType === 'applicationcredential') {
      if (ca.application_credential_id === undefined || ca.application_credential_secret === undefined) {
        out.push(src.problem(at('cloud'), 'SGW_ERR_CONFIG_CLOUD', `cloud "${m.cloud ?? ''}": application credential auth needs auth.application_credential_id and auth.application_credential_secret`));
      } else {
        auth = { type: 'applicationCredential', id: ca.application_credential_id, secret: new Secret(ca.application_credential_secret) };
      }
    } else if (authType === 'password' || authType === 'v3password') {
      const domain = ca.domain_name ?? 'Default';
      if (ca.username === undefined || ca.password === undefined || (ca.project_name === undefined && ca.project_id === undefined)) {
        out.push(src.problem(at('cloud'), 'SGW_ERR_CONFIG_CLOUD', `cloud "${m.cloud ?? ''}": password auth needs auth.username, auth.password and auth.project_name or auth.project_id`));
      } else {
        auth = {
          type: 'password',
          username: ca.username,
          password: new Secret(ca.password),
          project: ca.project_id !== undefined ? { id: ca.project_id } : { name: ca.project_name ?? '', domain: ca.project_domain_name ?? ca.project_domain_id ?? domain },
          userDomain: ca.user_domain_name ?? ca.user_domain_id ?? domain,
        };
      }
    } else {
      out.push(src.problem(at('cloud'), 'SGW_ERR_CONFIG_CLOUD', `cloud "${m.cloud ?? ''}": auth_type "${authType}" is not supported (password, v3password, v3applicationcredential)`));
    }
  } else if (m.cloud === undefined) {
    out.push(src.problem(['manila'], 'SGW_ERR_CONFIG_SCHEMA', 'required key "auth" is missing (or name a clouds.yaml entry with "cloud")'));
  }
  const url = (v: string | undefined, key: string, schemes: string[]): string | null => {
    if (v === undefined) {
      return null;
    }
    try {
      const u = new URL(v);
      if (!schemes.includes(u.protocol)) {
        out.push(src.problem(at(key), 'SGW_ERR_CONFIG_BAD_URL', `must be a ${schemes.map((x) => x.replace(':', '')).join(' or ')} URL`));
        return null;
      }
      if ((u.protocol === 'http:' || u.protocol === 'https:') && (u.username !== '' || u.password !== '')) {
        // Status shows these URLs; credentials belong in `auth`.
        out.push(src.problem(at(key), 'SGW_ERR_CONFIG_BAD_URL', 'must not carry a user or password (put credentials in "auth")'));
        return null;
      }
      return v;
    } catch {
      // The URL may carry a password: say what is wrong without quoting it.
      out.push(src.problem(at(key), 'SGW_ERR_CONFIG_BAD_URL', 'is not a URL'));
      return null;
    }
  };
  const authUrl = url(m.authUrl ?? ca?.auth_url, 'authUrl', ['http:', 'https:']);
  const endpoint = url(m.endpoint ?? entry?.sharev2_endpoint_override, 'endpoint', ['http:', 'https:']);
  const amqp = url(m.notifications, 'notifications', ['amqp:', 'amqps:']);
  if (auth !== null && auth.type !== 'noauth' && authUrl === null && out.length === before) {
    out.push(src.problem(['manila'], 'SGW_ERR_CONFIG_SCHEMA', 'required key "authUrl" is missing (Keystone v3, e.g. https://keystone.example:5000/v3)'));
  }
  if (auth?.type === 'noauth' && endpoint === null && out.length === before) {
    out.push(src.problem(['manila'], 'SGW_ERR_CONFIG_SCHEMA', 'noauth has no service catalog: set "endpoint" (e.g. http://127.0.0.1:18786/v2)'));
  }
  const intervalMs = dur(m.interval, at('interval'), 10_000, 1000);
  const minIntervalMs = dur(m.minInterval, at('minInterval'), 1000, 100);
  if (minIntervalMs > intervalMs) {
    out.push(src.problem(at('minInterval'), 'SGW_ERR_CONFIG_BAD_DURATION', 'must not be longer than interval'));
  }
  const ifaceRaw = m.interface ?? entry?.interface ?? entry?.endpoint_type?.replace(/URL$/, '');
  const iface = ifaceRaw === 'internal' || ifaceRaw === 'admin' ? ifaceRaw : 'public';
  const caFile = m.caFile ?? entry?.cacert;
  const settings: ManilaSettings | null =
    auth === null
      ? null
      : {
          cloud,
          authUrl: auth.type === 'noauth' ? null : authUrl,
          auth,
          endpoint,
          interface: iface,
          region: m.region ?? entry?.region_name ?? null,
          caFile: caFile === undefined ? null : path.resolve(path.dirname(src.file), caFile),
          timeoutMs: dur(m.timeout, at('timeout'), 10_000, 100),
          intervalMs,
          minIntervalMs,
          notifications: amqp === null ? null : new Secret(amqp),
          notificationsExchange: m.notificationsExchange ?? 'openstack',
        };
  return out.length === before ? settings : null;
}
