import * as path from 'node:path';
import type { ConfigProblem } from '../../errors';
import type { DaemonConfig } from '../../model/config';
import { parseIp } from '../../util/ip';
import { RESERVED_TABLES } from '../resolve-tables';
import { daemonFileSchema } from '../schema';
import type { DaemonFile } from '../schema';
import { parseSize } from '../size';
import type { SourceText, YamlSource } from '../yaml-source';
import { checkManila } from './manila';
import { durations, part } from './part';

/** The daemon file: settings, their defaults, and its `manila:` block (manila.ts). */

const DEFAULT_PORT_RANGE = { from: 40000, to: 44999 };
/**
 * Defaults of `limits`: below nfs-ganesha's 1024 connections (and samba's
 * usual process limits), with room left for clients that do not pass
 * through the gateway; one domain gets at most a quarter of a backend.
 */
export const DEFAULT_LIMITS = { maxConnectionsPerBackend: 896, maxConnectionsPerDomainPerBackend: 256 } as const;
/** Defaults of the daemon's `egress` block (ADR 0011). */
export const DEFAULT_EGRESS = { tables: { from: 20000, to: 20999 }, rulePriority: 20000 } as const;

/** The daemon file's settings, or null when it has problems (reported in `out`). */
export function checkDaemon(src: YamlSource, out: ConfigProblem[], clouds: SourceText | null): DaemonConfig | null {
  if (src.problems.length > 0) {
    out.push(...src.problems);
    return null;
  }
  const f: DaemonFile | null = part(daemonFileSchema, src.value ?? {}, src, out, []);
  if (f === null) {
    return null;
  }
  const before = out.length;
  const dur = durations(src, out);
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
    manila: f.manila === undefined ? null : checkManila(f.manila, src, out, clouds),
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
