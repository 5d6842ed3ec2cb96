import type { SgwConfig } from '../model/config';
import type { DesiredState } from '../model/desired';
import type { Health, MetricsSnapshot } from '../observability/metrics';
import type { KernelCounters } from '../dataplane/kernel/plane';
import type { FlowInfo } from '../dataplane/proxy/plane';
import type { TunnelState } from '../tunnels/host';
import { grantPlane } from '../policy/policy';
import { dialectName } from '../protocols/smb2';

/** Outcome of the last sync, as status shows it. */
export interface SyncResult {
  ok: boolean;
  at: string;
  durationMs: number;
  applied: boolean;
  error?: { code: string; message: string; context?: string };
}

/** Outcome of the last reload, as status shows it. */
export interface ReloadResult {
  ok: boolean;
  at: string;
  problems: string[];
}

/**
 * What status shows that the daemon gathers from its parts (I/O done);
 * statusView only arranges it.
 */
export interface StatusInput {
  node: string;
  dataplane: SgwConfig['daemon']['dataplane'];
  pid: number;
  generation: number;
  lastSync: SyncResult | null;
  lastReload: ReloadResult | null;
  state: unknown;
  notify: string;
  manila: unknown;
  native: unknown;
  /** The configuration with the synced shares merged in. */
  effective: SgwConfig;
  desired: DesiredState;
  tunnels: readonly TunnelState[];
  /** Kernel rule counters, or the error reading them. */
  kernel: unknown;
  egressError: unknown;
  egressWarnings: unknown;
  proxy: { listeners: number; flows: unknown };
  caps: unknown;
  counters: unknown;
}

/** The domains of status: each with its guests, their tunnels and grants. Pure. */
export function domainsView(effective: SgwConfig, desired: DesiredState, tunnels: readonly TunnelState[]): unknown[] {
  const tunnelByKey = new Map(tunnels.map((t) => [t.key, t]));
  return effective.domains.map((d) => ({
    name: d.name,
    project: d.project,
    sourceIp: d.sourceIp.text,
    egress: d.egress === null ? null : { interface: d.egress.iface, via: d.egress.via?.text ?? null, table: d.egress.table, conntrackZone: d.egress.table },
    shares: d.shares.length,
    guests: desired.guests
      .filter((g) => g.domain === d.name)
      .map((g) => ({
        instance: g.instance,
        tunnel: g.iface,
        guestIp: g.guestIp,
        tunnelState: tunnelByKey.get(g.key)?.error ?? (tunnelByKey.get(g.key)?.present === true ? 'adopted' : 'unknown'),
        grants: g.grants.map((gr) => {
          const plane = grantPlane(desired.dataplane, gr);
          return {
            backend: `${gr.backend}:${gr.port}`,
            service: gr.service,
            level: gr.level,
            shares: gr.shares.map((s) => s.id),
            plane,
            ...(gr.smb !== undefined && plane === 'proxy' ? { smb: { minDialect: dialectName(gr.smb.minDialect), encryptionRequired: gr.smb.encryptionRequired, shares: gr.smb.shares } } : {}),
          };
        }),
      })),
  }));
}

/** Everything an operator needs to see; no secrets. Pure. */
export function statusView(s: StatusInput): unknown {
  return {
    node: s.node,
    dataplane: s.dataplane,
    pid: s.pid,
    generation: s.generation,
    lastSync: s.lastSync,
    lastReload: s.lastReload,
    state: s.state,
    notify: s.notify,
    manila: s.manila,
    native: s.native,
    domains: domainsView(s.effective, s.desired, s.tunnels),
    kernel: s.kernel,
    egressError: s.egressError,
    egressWarnings: s.egressWarnings,
    proxy: s.proxy,
    caps: s.caps,
    counters: s.counters,
  };
}

/** The one-line status systemd shows (sd_notify STATUS=). Pure. */
export function statusLine(generation: number, guests: number, lastSync: SyncResult | null): string {
  return `generation ${generation}, ${guests} guests, last sync ${lastSync === null ? 'never' : lastSync.ok ? 'ok' : 'FAILED'}`;
}

/** What health decides from. */
export interface HealthInput {
  readySent: boolean;
  lastSync: SyncResult | null;
  /** Unix seconds of the last successful sync, or null. */
  lastSyncSuccessAt: number | null;
  syncIntervalMs: number;
  generation: number;
  /** Unix seconds now. */
  now: number;
}

/** Ready: the first sync succeeded and the last one is good and recent. Pure. */
export function healthOf(h: HealthInput): Health {
  if (!h.readySent) {
    return { ready: false, reason: 'no successful sync yet' };
  }
  if (h.lastSync?.ok !== true) {
    return { ready: false, reason: `last sync failed: ${h.lastSync?.error?.message ?? 'unknown'}` };
  }
  const age = h.now - (h.lastSyncSuccessAt ?? 0);
  const limit = (3 * h.syncIntervalMs) / 1000 + 30;
  if (age > limit) {
    return { ready: false, reason: `no successful sync for ${Math.round(age)} s` };
  }
  return { ready: true, reason: `generation ${h.generation}` };
}

/** Live proxy flows by domain, for /metrics. Pure. */
export function activeFlowsView(flows: readonly FlowInfo[]): MetricsSnapshot['activeFlows'] {
  const byDomain = new Map<string, number>();
  for (const f of flows) {
    const d = f.guest.split('/')[0] ?? '?';
    byDomain.set(d, (byDomain.get(d) ?? 0) + 1);
  }
  return [...byDomain].map(([domain, flows]) => ({ domain, plane: 'proxy', flows }));
}

/** Packets the kernel rules denied, by guest and reason, for /metrics. Pure. */
export function deniedView(k: KernelCounters): MetricsSnapshot['denied'] {
  const denied: MetricsSnapshot['denied'] = [];
  for (const [guest, reasons] of Object.entries(k.byGuest)) {
    for (const [reason, packets] of Object.entries(reasons)) {
      denied.push({ domain: guest.split('/')[0] ?? '?', guest, reason, packets });
    }
  }
  return denied;
}
