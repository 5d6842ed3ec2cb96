import * as http from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Counters } from './counters';
import type { Logger } from './logger';

/**
 * Prometheus metrics and health on the daemon's `metrics` address:
 * GET /metrics (text exposition) and GET /healthz (200 once the first sync
 * succeeded and the last one is recent and good, else 503 with the reason).
 * Everything counted in `Counters` is exported as a counter of the same
 * name and labels, so one `inc()` feeds `sharegw status` and Prometheus.
 * Labels carry only ids and stable codes, never secrets.
 */

/** What the daemon reports at scrape time. */
export interface MetricsSnapshot {
  generation: number;
  domains: number;
  guests: number;
  /** Live flows by domain and plane. */
  activeFlows: { domain: string; plane: string; flows: number }[];
  /** Packets the kernel denied or dropped, by guest and reason (deny, deny-local, antispoof). */
  denied: { domain: string; guest: string; reason: string; packets: number }[];
  /** Unix seconds of the last successful sync, or null. */
  lastSyncSuccess: number | null;
  lastSyncOk: boolean | null;
  /** Bytes the proxy's sessions hold (queued answers, held records, socket buffers), against proxy.memoryBudget. */
  proxyBufferedBytes?: number;
}

export interface Health {
  ready: boolean;
  reason: string;
}

export interface MetricsSource {
  counters: Counters;
  snapshot(): Promise<MetricsSnapshot>;
  health(): Health;
}

const HELP: Record<string, string> = {
  sharegw_rule_applies_total: 'Rule applies (iptables-restore) by result',
  sharegw_sync_errors_total: 'Failed syncs by error code',
  sharegw_rule_drift_repairs_total: 'Repairs of sharegw chains or jumps changed by another program',
  sharegw_egress_drift_repairs_total: 'Repairs of sharegw egress routes or policy rules changed by another program',
  sharegw_egress_errors_total: 'Egress batches that applied only partly (the affected domains fail closed)',
  sharegw_egress_warnings_total: 'Host settings found breaking a domain\'s egress (strict rp_filter on a link with a shared source IP), counted when they change',
  sharegw_revocations_total: 'Revoked grants by reason',
  sharegw_flows_cut_total: 'Established flows cut by revocation, by plane',
  sharegw_conntrack_errors_total: 'Failed conntrack deletions by error code',
  sharegw_reloads_total: 'Configuration reloads by result',
  sharegw_proxy_connections_total: 'Connections accepted by the proxy, by domain',
  sharegw_proxy_denied_total: 'Connections refused by the proxy, by reason',
  sharegw_proxy_closed_total: 'Proxied connections closed, by reason',
  sharegw_proxy_bytes_total: 'Bytes relayed by the proxy, by domain and direction',
  sharegw_proxy_backend_errors_total: 'Backend connection errors, by errno code',
  sharegw_protocol_refusals_total: 'Sessions the protocol-aware proxy refused, by protocol and reason (smb1, dialect, unencrypted, malformed, uninspectable)',
  sharegw_protocol_answers_total: 'Calls the gateway answered itself instead of the backend, by protocol and reason (rofs, uid-range, mount-denied; smb: share, answered by the backend to a neutered tree connect)',
  sharegw_protocol_errors_total: 'Malformed protocol bytes that closed a session, by protocol and error code',
  sharegw_proxy_listen_errors_total: 'Proxy listeners that could not open, by code',
  sharegw_native_fallbacks_total: 'Uses of a native shim that failed and fell back to the TypeScript implementation, by shim and code',
  sharegw_state_load_errors_total: 'Unusable state files at start, by code',
  sharegw_state_save_errors_total: 'Failed state writes, by code',
  sharegw_tunnels_refused_total: 'Configured tunnels refused because the interface is not a tunnel',
  sharegw_admin_errors_total: 'Bad admin requests, by code',
  sharegw_notify_errors_total: 'Failed systemd notifications, by code',
  sharegw_metrics_errors_total: 'Failed metrics scrapes',
  sharegw_flow_events_errors_total: 'Restarts of the conntrack event stream (kernel-plane access log)',
  sharegw_connection_cap_refusals_total: 'Connections refused by a connection cap, by scope (guest, domain: limits.maxConnectionsPerDomainPerBackend, backend: limits.maxConnectionsPerBackend) and plane (kernel: read from the rule counters at every sync, scrape and status)',
  sharegw_manila_records_skipped_total: 'Manila records left out of a sync because they were bad in themselves (an id or name with control characters, or too long), by code',
  sharegw_proxy_budget_pauses_total: 'Times a protocol-aware session stopped reading its guest because it held more than proxy.connectionBudget',
  sharegw_proxy_shed_total: 'Load shed because the proxy held more than proxy.memoryBudget, by reason (paused: a large session\'s guest no longer read; refused: a new connection closed at once)',
};

export class MetricsServer {
  private readonly registry = new Registry();
  private server: http.Server | null = null;
  /** Duration of whole syncs (rules, tunnels, revocations, state). */
  readonly syncDuration: Histogram;
  /** Duration of rule applies (render + iptables-save/-restore). */
  readonly applyDuration: Histogram;
  private snapshot: MetricsSnapshot | null = null;

  constructor(
    private readonly address: string,
    private readonly source: MetricsSource,
    private readonly log: Logger,
  ) {
    const r = [this.registry];
    this.syncDuration = new Histogram({ name: 'sharegw_sync_duration_seconds', help: 'Sync duration', buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: r });
    this.applyDuration = new Histogram({ name: 'sharegw_rule_apply_duration_seconds', help: 'Rule apply duration (render + restore)', buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: r });
    const snap = (): MetricsSnapshot | null => this.snapshot;
    new Gauge({
      name: 'sharegw_flows_active',
      help: 'Live flows by domain and plane',
      labelNames: ['domain', 'plane'],
      registers: r,
      collect() {
        this.reset();
        for (const f of snap()?.activeFlows ?? []) {
          this.set({ domain: f.domain, plane: f.plane }, f.flows);
        }
      },
    });
    new Gauge({
      name: 'sharegw_denied_packets',
      help: 'Packets denied (deny, deny-local) or dropped as spoofed (antispoof) by the kernel rules, by guest; a counter that restarts with the daemon',
      labelNames: ['domain', 'guest', 'reason'],
      registers: r,
      collect() {
        this.reset();
        for (const d of snap()?.denied ?? []) {
          this.set({ domain: d.domain, guest: d.guest, reason: d.reason }, d.packets);
        }
      },
    });
    new Gauge({
      name: 'sharegw_info',
      help: 'Configuration generation, domains and guests',
      labelNames: ['what'],
      registers: r,
      collect() {
        const s = snap();
        this.set({ what: 'generation' }, s?.generation ?? 0);
        this.set({ what: 'domains' }, s?.domains ?? 0);
        this.set({ what: 'guests' }, s?.guests ?? 0);
      },
    });
    new Gauge({
      name: 'sharegw_last_sync_success_timestamp_seconds',
      help: 'Unix time of the last successful sync',
      registers: r,
      collect() {
        this.set(snap()?.lastSyncSuccess ?? 0);
      },
    });
    new Gauge({
      name: 'sharegw_proxy_buffered_bytes',
      help: 'Bytes the proxy\'s sessions hold now (queued gateway answers, held records, socket buffers), accounted against proxy.memoryBudget',
      registers: r,
      collect() {
        this.set(snap()?.proxyBufferedBytes ?? 0);
      },
    });
    new Gauge({
      name: 'sharegw_last_sync_ok',
      help: '1 if the last sync succeeded',
      registers: r,
      collect() {
        this.set(snap()?.lastSyncOk === true ? 1 : 0);
      },
    });
  }

  /** The exposition text (also used by tests without a socket). */
  async render(): Promise<string> {
    this.snapshot = await this.source.snapshot();
    const dynamic = new Registry();
    const byName = new Map<string, { labels: Record<string, string>; value: number }[]>();
    for (const e of this.source.counters.entries()) {
      const list = byName.get(e.name) ?? [];
      list.push({ labels: e.labels, value: e.value });
      byName.set(e.name, list);
    }
    for (const [name, list] of byName) {
      // One label set per name, the union of what was used: a missing label is "".
      const labelNames = [...new Set(list.flatMap((x) => Object.keys(x.labels)))].sort();
      const c = new Counter({ name, help: HELP[name] ?? 'sharegw counter', labelNames, registers: [dynamic] });
      for (const x of list) {
        c.inc(Object.fromEntries(labelNames.map((l) => [l, x.labels[l] ?? ''])), x.value);
      }
    }
    return Registry.merge([this.registry, dynamic]).metrics();
  }

  async listen(): Promise<void> {
    const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(this.address);
    const host = m?.[1] ?? m?.[2] ?? '127.0.0.1';
    const port = Number(m?.[3] ?? '0');
    const server = http.createServer((req, res) => void this.handle(req, res));
    // Scrapers keep connections alive; do not let them hold up shutdown.
    server.keepAliveTimeout = 5_000;
    server.headersTimeout = 10_000;
    server.requestTimeout = 10_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error({ err: err.message }, 'metrics server error'));
  }

  /** The bound port (useful when the address asked for port 0). */
  port(): number {
    const a = this.server?.address();
    return a !== null && typeof a === 'object' ? a.port : 0;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (url === '/metrics') {
      try {
        const text = await this.render();
        res.writeHead(200, { 'content-type': this.registry.contentType }).end(req.method === 'HEAD' ? undefined : text);
      } catch (err) {
        this.source.counters.inc('sharegw_metrics_errors_total');
        this.log.error({ err: (err as Error).message }, 'metrics scrape failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
      }
      return;
    }
    if (url === '/healthz') {
      const h = this.source.health();
      res.writeHead(h.ready ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify({ status: h.ready ? 'ok' : 'unavailable', reason: h.reason })}\n`);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s !== null) {
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  }
}
