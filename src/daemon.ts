import * as fs from 'node:fs';
import { AdminServer } from './admin/server';
import { loadConfig } from './config/load';
import { KernelRules } from './dataplane/kernel/plane';
import { EgressRoutes } from './dataplane/kernel/egress-apply';
import { rpFilterWarnings } from './dataplane/kernel/egress';
import type { EgressWarning } from './dataplane/kernel/egress';
import { ProxyPlane } from './dataplane/proxy/plane';
import { ConfigError, describeError, formatProblem } from './errors';
import type { SgwConfig } from './model/config';
import type { DesiredState, GuestState } from './model/desired';
import type { Counters } from './observability/counters';
import type { Logger } from './observability/logger';
import { compileDesired, grantPlane, proxiedPart } from './policy/policy';
import { dialectName } from './protocols/smb2';
import { BoundedRunner } from './control/runner';
import { MetricsServer } from './observability/metrics';
import type { Health, MetricsSnapshot } from './observability/metrics';
import { configDigest, STATE_VERSION, StateStore } from './persist/state-store';
import { createNotifier, watchdogIntervalMs } from './daemon/notify';
import { logNativeOnce, nativeStatus } from './native';
import type { Notifier } from './daemon/notify';
import { deleteFlows, getFlow, listFlows } from './dataplane/kernel/conntrack';
import type { KernelFlow } from './dataplane/kernel/conntrack';
import { FlowEvents } from './dataplane/kernel/flow-events';
import { explainCommand, flowsCommand } from './admin/commands';
import type { AdminRequest } from './admin/protocol';
import type { FlowTuple } from './dataplane/kernel/conntrack';
import { revocations } from './policy/revocations';
import { ManilaSource } from './control/manila/source';
import { mergeSynced } from './control/manila/sync';
import type { Revocation } from './policy/revocations';
import { vetTunnels } from './tunnels/vet';
import { adoptTunnels, enableConntrackAccounting, linkFacts, TUNNEL_KINDS, enableForwarding, isLocalAddress, releaseTunnel, releaseTunnelPeer } from './tunnels/host';
import type { OwnedTunnel } from './dataplane/kernel/render';
import type { TunnelState } from './tunnels/host';
import { capsView } from './policy/caps';
import type { CapRefusal, PlaneUse } from './policy/caps';
import type { KernelCounters } from './dataplane/kernel/plane';
import { LogRateLimiter, suppressedText } from './util/log-rate';

/** Outcome of the last sync, as status shows it. */
interface SyncResult {
  ok: boolean;
  at: string;
  durationMs: number;
  applied: boolean;
  error?: { code: string; message: string; context?: string };
}

/** On-demand syncs (reload, admin) run at once but no more often than this. */
const MIN_SYNC_INTERVAL_MS = 200;
/** Delay before conntrack entries of revoked grants are deleted (see cutRevoked). */
const CONNTRACK_GRACE_MS = 2000;

/** A revoked flow tuple and the source IP it was NATed to when revoked. */
interface RevokedTuple extends FlowTuple {
  sourceIp: string;
}
/** First retry after a failed sync; doubles up to syncInterval. */
const RETRY_MIN_MS = 1000;

/**
 * The daemon: owns the configuration, computes desired state, and drives
 * tunnels, kernel rules and (in proxy mode) the proxy plane.
 * State: the running config and its generation, the desired state, tunnel
 * adoption results, last sync and reload results, the sync timer, and a
 * one-deep queue so syncs never overlap.
 */
export class Daemon {
  private config: SgwConfig;
  private desired: DesiredState;
  /** The desired state whose grants were last fully enforced (rules and revocations). */
  private applied: DesiredState | null = null;
  private generation = 1;
  private readonly kernel = new KernelRules();
  /** Per-domain egress tables and policy rules (ADR 0011). */
  private readonly egress = new EgressRoutes();
  /** The last egress batch that applied only partly (status), or null. */
  private egressError: { message: string; context: string; at: string } | null = null;
  private egressWarnings: EgressWarning[] = [];
  /**
   * The proxy runs in both planes. In the kernel plane it carries only the
   * grants steered to it (an SMB or NFS policy the domain set, or `ro`) and
   * listens nowhere else.
   */
  private readonly proxy: ProxyPlane;
  private admin: AdminServer | null = null;
  private tunnels: TunnelState[] = [];
  private lastSync: SyncResult | null = null;
  private lastReload: { ok: boolean; at: string; problems: string[] } | null = null;
  /** The sync loop: periodic verify/repair, on-demand runs, backoff on failure. */
  private readonly runner: BoundedRunner;
  /** Last-known-good state on disk (stateDir). */
  private readonly store: StateStore;
  private readonly notifier: Notifier;
  private watchdogTimer: NodeJS.Timeout | null = null;
  private lastStateSave: { ok: boolean; at: string; error?: { code: string; message: string } } | null = null;
  private restored: { generation: number; savedAt: string; sameConfig: boolean } | null = null;
  private lastSavedKey = '';
  /** Tunnels found in the kernel's rules at start, released if no longer configured. */
  private orphans: OwnedTunnel[] = [];
  /** Conntrack deletions that failed, retried at each sync. */
  private pendingFlush: RevokedTuple[] = [];
  private forceNext = true;
  private metrics: MetricsServer | null = null;
  private flowEvents: FlowEvents | null = null;
  /** Counter reads for close records still under way; stop() waits for them so the stop record stays last. */
  private readonly pendingCloses = new Set<Promise<void>>();
  private lastSyncSuccessAt: number | null = null;
  /** READY=1 goes out after the first successful sync only. */
  private readySent = false;
  /** When the running sync started (performance.now()), for the watchdog. */
  private syncStartedAt: number | null = null;
  /** Guests refused adoption (not a tunnel interface), by key, with the reason. */
  private refused = new Map<string, string>();
  private stopped = false;
  private readonly warnedSource = new Set<string>();
  /** Shares, rules and share networks from Manila (null: no `manila` block). */
  private readonly manila: ManilaSource | null;
  /** The configuration with the synced shares merged in (what policy compiles). */
  private effective: SgwConfig;
  private readonly warnedCollision = new Set<string>();
  /** Kernel cap refusals already counted into sharegw_connection_cap_refusals_total, by rule key. */
  private kernelCapSeen: Record<string, number> = {};
  private readonly capLog = new LogRateLimiter(60_000, 1024);

  constructor(
    config: SgwConfig,
    private readonly log: Logger,
    private readonly counters: Counters,
  ) {
    this.config = config;
    this.effective = config;
    this.desired = compileDesired(config);
    this.manila =
      config.daemon.manila === null
        ? null
        : new ManilaSource({
            settings: config.daemon.manila,
            node: config.daemon.node,
            stateDir: config.daemon.stateDir,
            log,
            counters,
            onChange: () => {
              this.recompute();
              void this.sync();
            },
          });
    this.proxy = new ProxyPlane(config.daemon.proxy, log, counters);
    this.store = new StateStore(config.daemon.stateDir, config.daemon.node, { log });
    logNativeOnce(log);
    this.notifier = createNotifier(process.env, log, { counters });
    this.runner = new BoundedRunner(() => this.doSync(), {
      minIntervalMs: MIN_SYNC_INTERVAL_MS,
      maxIntervalMs: config.daemon.syncIntervalMs,
      retryMinMs: Math.min(RETRY_MIN_MS, config.daemon.syncIntervalMs),
    });
  }

  /** Applies the configuration, opens the admin socket, starts the sync loop. */
  async start(): Promise<void> {
    for (const w of this.config.warnings) {
      this.log.warn({ code: w.code, file: w.file, line: w.line, key: w.pointer }, w.message);
    }
    // Synced shares (restored from manila.json, or fresh if Manila answers
    // in time) are part of the first sync's desired state.
    if (this.manila !== null) {
      await this.manila.start(this.config.domains);
      this.recompute();
    }
    await this.restoreState();
    await this.runner.runNow();
    this.admin = new AdminServer(this.config.daemon.adminSocket, (_cmd, req) => this.command(req), this.log, this.counters);
    await this.admin.listen();
    await this.startMetrics();
    if (this.config.daemon.dataplane === 'kernel') {
      this.startFlowEvents();
    }
    this.runner.start();
    if (this.lastSync?.ok === true) {
      this.readySent = true;
      void this.notifier.ready(this.statusLine());
    } else {
      // systemd keeps the unit "activating" (bounded by TimeoutStartSec)
      // until a sync succeeds; say why meanwhile.
      void this.notifier.status(`first sync failed, retrying: ${this.lastSync?.error?.message ?? 'unknown'}`);
    }
    const wd = watchdogIntervalMs();
    if (wd !== null) {
      this.watchdogTimer = setInterval(() => {
        // A sync stuck far beyond its interval (a hung iptables, say) stops
        // the pings, so systemd restarts us instead of believing we are fine.
        const stuck = this.syncStartedAt !== null && performance.now() - this.syncStartedAt > 2 * this.config.daemon.syncIntervalMs + 60_000;
        if (!stuck) {
          void this.notifier.watchdog();
        }
      }, wd);
      this.watchdogTimer.unref();
    }
    this.log.info(
      { node: this.config.daemon.node, dataplane: this.config.daemon.dataplane, domains: this.config.domains.length, guests: this.desired.guests.length },
      'sharegwd started',
    );
  }

  /**
   * Serves /metrics and /healthz when `metrics` is set. A port that cannot
   * be bound is logged and counted; the gateway itself keeps working.
   */
  private async startMetrics(): Promise<void> {
    const addr = this.config.daemon.metrics;
    if (addr === null) {
      return;
    }
    const m = new MetricsServer(addr, { counters: this.counters, snapshot: () => this.metricsSnapshot(), health: () => this.health() }, this.log);
    try {
      await m.listen();
      this.metrics = m;
      this.log.info({ addr }, 'metrics and health served');
    } catch (err) {
      this.counters.inc('sharegw_metrics_errors_total');
      this.log.error({ addr, err: (err as Error).message }, 'cannot serve metrics; running without');
    }
  }

  private async metricsSnapshot(): Promise<MetricsSnapshot> {
    const byDomain = new Map<string, number>();
    for (const f of this.proxy.flows()) {
      const d = f.guest.split('/')[0] ?? '?';
      byDomain.set(d, (byDomain.get(d) ?? 0) + 1);
    }
    const denied: MetricsSnapshot['denied'] = [];
    try {
      const k = await this.kernel.counters();
      this.noteKernelCaps(k);
      for (const [guest, reasons] of Object.entries(k.byGuest)) {
        for (const [reason, packets] of Object.entries(reasons)) {
          denied.push({ domain: guest.split('/')[0] ?? '?', guest, reason, packets });
        }
      }
    } catch {
      // iptables-save unavailable: denials are left out of this scrape
    }
    return {
      generation: this.generation,
      domains: this.config.domains.length,
      guests: this.desired.guests.length,
      activeFlows: [...byDomain].map(([domain, flows]) => ({ domain, plane: 'proxy', flows })),
      denied,
      lastSyncSuccess: this.lastSyncSuccessAt,
      lastSyncOk: this.lastSync?.ok ?? null,
      proxyBufferedBytes: this.proxy.bufferedBytes(),
    };
  }

  /**
   * Kernel-plane access log from conntrack events: an open record when the
   * rules accept a guest's flow, a close record (with bytes each way) when
   * it reaches CLOSE/TIME_WAIT, or when its entry is destroyed first
   * (expired, or deleted by a revocation).
   */
  private startFlowEvents(): void {
    const access = this.log.child({ log: 'access' });
    const open = new Map<string, { at: number; rec: Record<string, unknown>; closed: boolean }>();
    let lastEventsWarn = 0;
    const key = (f: KernelFlow): string => `${f.orig.src}:${f.orig.sport}>${f.orig.dst}:${f.orig.dport}`;
    const close = (k: string, f: KernelFlow, reason: string): void => {
      const o = open.get(k);
      if (o === undefined || o.closed) {
        return;
      }
      o.closed = true;
      access.info({ event: 'close', ...o.rec, bytesUp: f.orig.bytes, bytesDown: f.reply.bytes, durationMs: Date.now() - o.at, reason }, 'flow close');
    };
    this.flowEvents = new FlowEvents(
      (e) => {
        const f = e.flow;
        const k = key(f);
        if (e.type === 'new') {
          const g = this.applied?.guests.find((x) => x.guestIp === f.orig.src);
          const gr = g?.grants.find((x) => x.backend === f.orig.dst && x.port === f.orig.dport);
          // A flow DNATed to a proxy listener (a steered grant) is the proxy's to log.
          if (g === undefined || gr === undefined || f.reply.src !== f.orig.dst) {
            return;
          }
          const rec = { plane: 'kernel', domain: g.domain, guest: g.key, guestPort: f.orig.sport, backend: f.orig.dst, port: f.orig.dport, service: gr.service, shares: gr.shares.map((x) => x.id), natSource: f.reply.dst };
          if (open.size >= 200_000) {
            const oldest = open.keys().next().value;
            if (oldest !== undefined) {
              open.delete(oldest);
            }
          }
          open.set(k, { at: Date.now(), rec, closed: false });
          access.info({ event: 'open', ...rec }, 'flow open');
        } else if (e.type === 'update' && (f.state === 'CLOSE' || f.state === 'TIME_WAIT') && open.get(k)?.closed === false) {
          // UPDATE events carry no counters: read them while the entry lives.
          const guestDomain = this.applied?.guests.find((x) => x.guestIp === f.orig.src)?.domain;
          const zone = this.applied?.egress?.find((x) => x.domain === guestDomain)?.table;
          const p = getFlow(f.orig.src, f.orig.dst, f.orig.sport, f.orig.dport, zone).then((now) => close(k, now ?? f, f.state === 'CLOSE' ? 'reset' : 'done'));
          this.pendingCloses.add(p);
          void p.finally(() => this.pendingCloses.delete(p));
        } else if (e.type === 'destroy') {
          close(k, f, 'expired-or-deleted');
          open.delete(k);
        }
      },
      (code, stderr) => {
        this.counters.inc('sharegw_flow_events_errors_total');
        // It restarts every second: say so at most once a minute.
        const now = Date.now();
        if (now - lastEventsWarn > 60_000) {
          lastEventsWarn = now;
          this.log.warn({ code, stderr }, 'conntrack event stream ended; restarting (kernel-plane access log)');
        }
      },
    );
    this.flowEvents.start();
  }

  /** Ready: the first sync succeeded and the last one is good and recent. */
  health(): Health {
    if (!this.readySent) {
      return { ready: false, reason: 'no successful sync yet' };
    }
    if (this.lastSync?.ok !== true) {
      return { ready: false, reason: `last sync failed: ${this.lastSync?.error?.message ?? 'unknown'}` };
    }
    const age = Date.now() / 1000 - (this.lastSyncSuccessAt ?? 0);
    const limit = (3 * this.config.daemon.syncIntervalMs) / 1000 + 30;
    if (age > limit) {
      return { ready: false, reason: `no successful sync for ${Math.round(age)} s` };
    }
    return { ready: true, reason: `generation ${this.generation}` };
  }

  /** Asks for a sync now (rate-limited); resolves when one that started after the call is done. */
  sync(): Promise<void> {
    return this.runner.request();
  }

  private async doSync(): Promise<boolean> {
    let ok = false;
    const t0 = performance.now();
    this.syncStartedAt = t0;
    const force = this.forceNext;
    try {
      const before = this.tunnels;
      // Only real tunnel interfaces are adopted and get rules (see vet.ts).
      const vetted = vetTunnels(this.desired, await linkFacts(), TUNNEL_KINDS);
      const desired = vetted.desired;
      for (const [key, r] of vetted.refused) {
        if (this.refused.get(key) !== r.reason) {
          this.counters.inc('sharegw_tunnels_refused_total');
          this.log.error({ guest: key, iface: r.guest.iface, code: 'SGW_ERR_TUNNEL_REFUSED' }, r.reason);
        }
      }
      this.refused = new Map([...vetted.refused].map(([k, r]) => [k, r.reason]));
      // Addresses off the tunnels of removed guests before their chains go,
      // rules before new tunnels get their addresses: at no moment is a
      // tunnel addressed without its guest's chains (deny by default) in the
      // kernel, even if the apply fails.
      await this.releaseRemovedTunnels(desired);
      if (this.pendingFlush.length > 0) {
        await this.flushConntrack(this.pendingFlush.splice(0));
      }
      const proxied = proxiedPart(desired);
      const listening = this.proxy.listening(proxied);
      let report = await this.kernel.apply(desired, listening, !force);
      // Zones first (just applied), then routes: a domain's first packet
      // through its table already has its conntrack zone.
      const eg = await this.egress.apply(desired);
      const egressError = eg?.partial ?? null;
      if (egressError !== null && egressError.message !== this.egressError?.message) {
        this.counters.inc('sharegw_egress_errors_total');
        this.log.error({ code: 'SGW_ERR_KERNEL_ROUTES_FAILED', err: egressError.message, context: egressError.context }, 'some egress routes could not be applied; their domains fail closed (unreachable) until the next sync succeeds');
      }
      if (eg === null || egressError === null) {
        this.egressError = null;
      } else {
        this.egressError = { ...egressError, at: new Date().toISOString() };
      }
      this.checkEgressHost(desired);
      if (eg !== null && egressError === null) {
        if (eg.drifted) {
          this.counters.inc('sharegw_egress_drift_repairs_total');
          this.log.warn({ generation: this.generation, batch: eg.sample }, 'another program changed sharegw egress routes or rules; repaired');
        } else {
          this.log.info({ generation: this.generation, lines: eg.lines, batch: eg.sample }, 'egress routes and rules applied');
        }
      }
      this.tunnels = [
        ...(await adoptTunnels(desired.guests)),
        ...[...vetted.refused.values()].map((r) => ({ key: r.guest.key, iface: r.guest.iface, present: true, error: r.reason })),
      ];
      for (const t of this.tunnels) {
        if (t.error !== undefined && !before.some((b) => b.key === t.key && b.error === t.error)) {
          this.log.warn({ guest: t.key, iface: t.iface, error: t.error }, 'tunnel not ready');
        }
      }
      await this.checkSourceIps();
      // Listeners bind the tunnels' gateway addresses, so they open after
      // adoption; the DNAT rules for new listeners follow in a second apply.
      const ports = await this.proxy.open(proxied);
      // Usually no listener opened or moved: the rules just applied are
      // already right, and a second apply would only cost an iptables-save.
      const same = ports.size === listening.size && [...ports].every(([k, p]) => listening.get(k) === p);
      const second = same ? null : await this.kernel.apply(desired, ports, true);
      if (second !== null) {
        report = { ...second, drifted: second.drifted || report?.drifted === true };
      }
      await this.proxy.closeStale(ports);
      // Kernel cap refusals, from the counters this sync's save already read.
      this.noteKernelCaps(this.kernel.observed());
      if (desired.dataplane === 'kernel') {
        await enableForwarding();
        await enableConntrackAccounting();
      }
      // Rules now refuse what was taken away; cut what is still flowing.
      await this.cutRevoked(desired, t0);
      this.forceNext = false;
      this.lastSync = { ok: true, at: new Date().toISOString(), durationMs: performance.now() - t0, applied: report !== null };
      ok = true;
      this.lastSyncSuccessAt = Date.now() / 1000;
      if (report !== null) {
        this.metrics?.applyDuration.observe(report.durationMs / 1000);
      }
      await this.saveState();
      if (!this.readySent && this.admin !== null) {
        this.readySent = true;
        void this.notifier.ready(this.statusLine());
      }
      if (report?.drifted === true) {
        this.counters.inc('sharegw_rule_drift_repairs_total');
        this.log.warn({ generation: this.generation, diff: report.driftSample }, 'another program changed sharegw chains or jumps; repaired');
      }
      if (report !== null) {
        this.counters.inc('sharegw_rule_applies_total', { result: 'ok' });
        this.log.info({ generation: this.generation, lines: report.lines, ms: Math.round(report.durationMs) }, 'rules applied');
      }
    } catch (err) {
      const e = describeError(err);
      const context = (err as { context?: unknown }).context;
      this.counters.inc('sharegw_rule_applies_total', { result: 'error' });
      this.counters.inc('sharegw_sync_errors_total', { code: e.code });
      this.forceNext = true;
      this.lastSync = { ok: false, at: new Date().toISOString(), durationMs: performance.now() - t0, applied: false, error: { ...e, ...(typeof context === 'string' && context !== '' ? { context } : {}) } };
      this.log.error({ code: e.code, err: e.message, context }, 'sync failed; keeping the last applied state and retrying');
    }
    this.syncStartedAt = null;
    this.metrics?.syncDuration.observe((performance.now() - t0) / 1000);
    return ok;
  }

  /**
   * Ends established flows of grants that `desired` no longer has (compared
   * with the last fully enforced state).
   * - Proxy plane: the sessions are reset now.
   * - Kernel plane: the rules just applied already do it. A guest's flow has
   *   no ESTABLISHED shortcut in its chain, so the guest's next packet on a
   *   revoked flow meets the REJECT and the guest gets a reset. The conntrack
   *   entries are deleted a moment later (CONNTRACK_GRACE_MS): deleting them
   *   at once would also stop the backend's packets reaching the guest, and a
   *   guest that only waits for data would then hang instead of being reset.
   *   Deleting them resets the backend's side (its next packet finds no NAT
   *   entry) and keeps an idle revoked flow from resuming if the grant comes
   *   back. A failed deletion is retried at every sync.
   */
  private async cutRevoked(desired: DesiredState, t0: number): Promise<void> {
    // The kernel plane forwards rw and ro grants alike (the backend enforces
    // ro until the protocol-aware proxy does): a level change alone changes
    // nothing it enforces, so only the proxy plane cuts for it.
    // Each revoked grant is cut by the plane that carried it under the state
    // its flows were admitted by.
    const prev = this.applied;
    const planeOf = (r: Revocation): 'kernel' | 'proxy' => {
      const gr = prev?.guests.find((g) => g.key === r.guestKey)?.grants.find((x) => x.backend === r.backend && x.port === r.port);
      return gr === undefined || prev === null ? 'kernel' : grantPlane(prev.dataplane, gr);
    };
    const revs = revocations(prev, desired).filter((r) => planeOf(r) === 'proxy' || r.reason !== 'level-changed');
    if (revs.length > 0) {
      for (const r of revs) {
        this.counters.inc('sharegw_revocations_total', { reason: r.reason });
      }
      const viaProxy = revs.filter((r) => planeOf(r) === 'proxy');
      const viaKernel = revs.filter((r) => planeOf(r) === 'kernel');
      if (viaProxy.length > 0) {
        const cut = this.proxy.revoke(viaProxy);
        this.counters.inc('sharegw_flows_cut_total', { plane: 'proxy' }, cut);
        this.log.info({ plane: 'proxy', revoked: viaProxy.map((r) => `${r.guestKey} ${r.backend}:${r.port} ${r.reason}`), flowsCut: cut, ms: Math.round(performance.now() - t0) }, 'access revoked; established flows cut');
      }
      if (viaKernel.length > 0) {
        this.log.info({ plane: 'kernel', revoked: viaKernel.map((r) => `${r.guestKey} ${r.backend}:${r.port} ${r.reason}`), ms: Math.round(performance.now() - t0) }, 'access revoked; established flows cut at their next packet');
        const tuples = viaKernel.map((r) => ({ src: r.guestIp, dst: r.backend, dport: r.port, sourceIp: this.sourceOf(r.guestKey) }));
        const timer = setTimeout(() => void this.flushConntrack(tuples), CONNTRACK_GRACE_MS);
        timer.unref();
      }
    }
    this.applied = desired;
  }

  /** The source IP a guest's flows were NATed to under the last enforced state. */
  private sourceOf(guestKey: string): string {
    return this.applied?.guests.find((g) => g.key === guestKey)?.sourceIp ?? '';
  }

  /** Deletes conntrack entries of revoked grants; keeps them for a retry on failure. */
  private async flushConntrack(all: RevokedTuple[]): Promise<void> {
    // A grant given back since it was revoked keeps its new flows.
    // (Same guest address, backend and port, NATed to the same source IP.)
    const granted = new Set((this.applied?.guests ?? []).flatMap((g) => g.grants.map((gr) => `${g.guestIp} ${gr.backend}:${gr.port} ${g.sourceIp}`)));
    const tuples = all.filter((t) => !granted.has(`${t.src} ${t.dst}:${t.dport} ${t.sourceIp}`));
    if (tuples.length === 0) {
      return;
    }
    try {
      const n = await deleteFlows(tuples);
      this.counters.inc('sharegw_flows_cut_total', { plane: 'kernel' }, n);
      this.log.info({ entries: n }, 'conntrack entries of revoked grants deleted');
    } catch (err) {
      const e = describeError(err);
      this.counters.inc('sharegw_conntrack_errors_total', { code: e.code });
      this.log.error({ code: e.code, err: e.message }, 'cannot delete conntrack entries of revoked grants; retrying at the next sync');
      this.pendingFlush = this.pendingFlush.concat(tuples);
    }
  }

  /**
   * Loads the last-known-good state. It tells which grants were enforced
   * before a restart (so grants removed while the daemon was down are cut at
   * the first sync) and which proxy ports were in use (so the first sync
   * renders the rules already in the kernel). A corrupt or foreign file is
   * set aside by the store; we rebuild from configuration and say so.
   */
  private async restoreState(): Promise<void> {
    // Whatever the state file says, the rules in the kernel name the tunnels
    // a previous run guarded: those no longer configured are released at the
    // first sync (before their chains go), even without a usable state file.
    try {
      this.orphans = await this.kernel.ownedTunnels();
    } catch (err) {
      this.log.warn({ ...describeError(err) }, 'cannot read existing rules for tunnels to release');
    }
    const r = await this.store.load();
    if (r.kind === 'invalid') {
      this.counters.inc('sharegw_state_load_errors_total', { code: r.error.code });
      this.log.error({ code: r.error.code, err: r.error.message, movedTo: r.movedTo }, 'state file unusable; rebuilding from configuration');
      return;
    }
    if (r.kind === 'none') {
      return;
    }
    const st = r.state;
    if (st.desired.dataplane !== this.config.daemon.dataplane) {
      this.log.warn({ was: st.desired.dataplane }, 'state was written for the other data plane; not reused');
      return;
    }
    this.applied = st.desired;
    this.previousGuests = st.desired.guests;
    this.proxy.seedPorts(st.proxyPorts);
    const sameConfig = st.configDigest === configDigest(this.config);
    this.generation = sameConfig ? st.generation : st.generation + 1;
    this.restored = { generation: st.generation, savedAt: st.savedAt, sameConfig };
    this.log.info({ generation: st.generation, savedAt: st.savedAt, sameConfig }, 'last-known-good state restored');
  }

  /** Writes the enforced state; a failure is reported and counted, never fatal. */
  private async saveState(): Promise<void> {
    if (this.applied === null) {
      return;
    }
    const at = new Date().toISOString();
    const content = {
      generation: this.generation,
      configDigest: configDigest(this.config),
      desired: this.applied,
      proxyPorts: this.proxy.allocatedPorts(),
    };
    // Periodic syncs change nothing most of the time: no disk write then.
    const key = JSON.stringify(content);
    if (key === this.lastSavedKey && this.lastStateSave?.ok === true) {
      return;
    }
    try {
      await this.store.save({ version: STATE_VERSION, node: this.config.daemon.node, savedAt: at, ...content });
      this.lastSavedKey = key;
      if (this.lastStateSave?.ok === false) {
        this.log.info('state file written again');
      }
      this.lastStateSave = { ok: true, at };
    } catch (err) {
      const e = describeError(err);
      this.counters.inc('sharegw_state_save_errors_total', { code: e.code });
      if (this.lastStateSave?.ok !== false) {
        this.log.error({ code: e.code, err: e.message }, 'cannot write state file; running on, will retry every sync');
      }
      this.lastStateSave = { ok: false, at, error: { code: e.code, message: e.message } };
    }
  }

  private statusLine(): string {
    const s = this.lastSync;
    return `generation ${this.generation}, ${this.desired.guests.length} guests, last sync ${s === null ? 'never' : s.ok ? 'ok' : 'FAILED'}`;
  }

  /**
   * Takes the gateway address off tunnels of guests that are no longer
   * configured (their chains are gone with this sync: an addressed tunnel
   * without rules would be an open route). The previous guests come from the
   * last sync, or after a restart from the state file, so a guest removed
   * while the daemon was down is released too.
   */
  private async releaseRemovedTunnels(desired: DesiredState): Promise<void> {
    if (this.orphans.length > 0) {
      const wanted = new Set(desired.guests.map((g) => `${g.iface} ${g.guestIp}`));
      for (const o of this.orphans) {
        if (!wanted.has(`${o.iface} ${o.guestIp}`)) {
          await releaseTunnelPeer(o.iface, o.guestIp);
        }
      }
      this.orphans = [];
    }
    const keep = new Set(desired.guests.map((g) => `${g.iface} ${g.gatewayIp} ${g.guestIp}`));
    for (const old of this.previousGuests) {
      if (!keep.has(`${old.iface} ${old.gatewayIp} ${old.guestIp}`)) {
        await releaseTunnel(old.iface, old.gatewayIp, old.guestIp);
      }
    }
    this.previousGuests = desired.guests;
  }

  /**
   * Desired state from the configuration plus the synced shares. Called at
   * start, on reload and whenever the Manila source's state changed.
   */
  private recompute(): void {
    const merged = this.manila === null ? { config: this.config, collisions: [] } : mergeSynced(this.config, this.manila.snapshot());
    for (const c of merged.collisions) {
      const k = `${c.domain}/${c.share}`;
      if (!this.warnedCollision.has(k)) {
        this.warnedCollision.add(k);
        this.log.warn({ domain: c.domain, share: c.share }, 'a domain file defines a share Manila also syncs; the domain file wins');
      }
    }
    this.effective = merged.config;
    this.desired = compileDesired(merged.config);
  }

  /** Guests whose tunnels the last sync (or, after a restart, the state file) held. */
  private previousGuests: readonly GuestState[] = [];

  private async checkSourceIps(): Promise<void> {
    for (const d of this.config.domains) {
      const ip = d.sourceIp.text;
      if (!this.warnedSource.has(ip) && !(await isLocalAddress(ip))) {
        this.warnedSource.add(ip);
        this.log.warn({ domain: d.name, sourceIp: ip }, 'source IP is not assigned to any interface here; backends cannot answer it');
      }
    }
  }

  /**
   * Re-reads and fully validates the configuration. On success swaps it in
   * and syncs; on failure keeps running on the old one and reports every
   * problem. Returns the problems (empty on success).
   */
  async reload(): Promise<string[]> {
    void this.notifier.reloading();
    try {
      return await this.reloadConfig();
    } finally {
      // Also after a rejected reload: systemd must leave "reloading".
      void this.notifier.ready(this.statusLine());
    }
  }

  private async reloadConfig(): Promise<string[]> {
    const at = new Date().toISOString();
    let next: SgwConfig;
    try {
      next = loadConfig(this.config.daemon.file);
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems.map(formatProblem) : [describeError(err).message];
      for (const p of problems) {
        this.log.error({ code: 'SGW_ERR_CONFIG_RELOAD_REJECTED' }, p);
      }
      this.counters.inc('sharegw_reloads_total', { result: 'rejected' });
      this.lastReload = { ok: false, at, problems };
      return problems;
    }
    const fixed = restartOnly(this.config, next);
    if (fixed.length > 0) {
      const problems = [`${fixed.join(', ')} cannot change on reload; restart the daemon`];
      this.log.error({ code: 'SGW_ERR_CONFIG_RELOAD_REJECTED' }, problems[0]);
      this.counters.inc('sharegw_reloads_total', { result: 'rejected' });
      this.lastReload = { ok: false, at, problems };
      return problems;
    }
    this.config = next;
    this.manila?.setDomains(next.domains);
    this.recompute();
    // A domain may have gained a share network: ask Manila now, not at the
    // next interval (the source calls back when the answer changes things).
    void this.manila?.request();
    this.log.level = next.daemon.logLevel;
    this.runner.setMaxInterval(next.daemon.syncIntervalMs);
    this.generation++;
    this.forceNext = true;
    this.lastReload = { ok: true, at, problems: [] };
    this.counters.inc('sharegw_reloads_total', { result: 'ok' });
    this.log.info({ generation: this.generation, domains: next.domains.length, guests: this.desired.guests.length }, 'configuration reloaded');
    for (const w of next.warnings) {
      this.log.warn({ code: w.code, file: w.file, line: w.line, key: w.pointer }, w.message);
    }
    await this.sync();
    if (this.lastSync?.ok !== true) {
      // The new configuration is in force as far as it got; say that
      // applying it failed (the loop keeps retrying).
      const problems = [`configuration accepted, but applying it failed: ${this.lastSync?.error?.message ?? 'unknown error'}; retrying`];
      this.lastReload = { ok: false, at, problems };
      return problems;
    }
    return [];
  }

  private async command(req: AdminRequest): Promise<unknown> {
    switch (req.cmd) {
      case 'ping': {
        return { pong: true };
      }
      case 'reload': {
        const problems = await this.reload();
        return { ok: problems.length === 0, problems };
      }
      case 'flows': {
        return flowsCommand(req, {
          desired: this.desired,
          proxyFlows: this.proxy.flows(),
          // In the proxy plane the kernel holds only the DNATed guest legs;
          // the proxy's own rows stand for them. In the kernel plane both
          // (flows command): steered grants are the proxy's rows.
          kernelFlows: this.config.daemon.dataplane === 'kernel' ? listFlows : null,
        });
      }
      case 'explain': {
        return explainCommand(req, this.effective, this.desired);
      }
      default: {
        return this.status();
      }
    }
  }

  /**
   * Counts kernel cap refusals (rule counters, read at every sync, scrape
   * and status)
   * into sharegw_connection_cap_refusals_total{scope,plane=kernel} and logs
   * them: the first per domain and scope, then counts (rate-limited).
   */
  private noteKernelCaps(k: KernelCounters): void {
    const now = Date.now();
    for (const [key, n] of Object.entries(k.caps ?? {})) {
      const delta = n - (this.kernelCapSeen[key] ?? 0);
      if (delta <= 0) {
        continue;
      }
      this.kernelCapSeen[key] = n;
      const [scope = '', domain = '', backend = ''] = key.split(' ');
      this.counters.inc('sharegw_connection_cap_refusals_total', { scope, plane: 'kernel' }, delta);
      const hit = this.capLog.hit(`${domain} ${scope}`, now);
      if (hit !== null) {
        this.log.warn({ plane: 'kernel', scope, domain, backend, refused: delta, ...(hit.suppressed > 0 ? { suppressed: hit.suppressed } : {}) }, `connections refused by the ${scope} cap${hit.suppressed > 0 ? ` (and ${suppressedText(hit.suppressed, hit.windowMs)})` : ''}`);
      }
    }
  }

  /** The caps view of status: limits, live use per backend and domain, refusals. */
  private async capsStatus(k: KernelCounters | null): Promise<unknown> {
    const use: PlaneUse[] = [];
    for (const u of this.proxy.capUse()) {
      for (const d of u.domains) {
        use.push({ plane: 'proxy', backend: u.backend, domain: d.domain, inUse: d.inUse });
      }
    }
    const refusals: CapRefusal[] = this.proxy.capRefusals().map((r) => ({ plane: 'proxy', ...r }));
    for (const [key, n] of Object.entries(k?.caps ?? {})) {
      const [scope = '', domain = '', backend = ''] = key.split(' ');
      refusals.push({ plane: 'kernel', scope: scope === 'domain' ? 'domain' : 'backend', domain, backend, refused: n });
    }
    const applied = this.applied ?? this.desired;
    if (this.config.daemon.dataplane === 'kernel') {
      // Kernel-plane connections: conntrack entries of guests' flows that
      // were not DNATed to a proxy listener and still count for connlimit
      // (not CLOSE or TIME_WAIT).
      const byIp = new Map(applied.guests.map((g) => [g.guestIp, g]));
      try {
        const counted = new Map<string, number>();
        for (const f of await listFlows((f) => byIp.has(f.orig.src) && f.reply.src === f.orig.dst && f.state !== 'CLOSE' && f.state !== 'TIME_WAIT')) {
          const g = byIp.get(f.orig.src);
          const gr = g?.grants.find((x) => x.backend === f.orig.dst && x.port === f.orig.dport);
          if (g === undefined || gr === undefined || grantPlane(applied.dataplane, gr) !== 'kernel') {
            continue;
          }
          const key = `${g.domain} ${f.orig.dst}:${f.orig.dport}`;
          counted.set(key, (counted.get(key) ?? 0) + 1);
        }
        for (const [key, n] of counted) {
          const [domain = '', backend = ''] = key.split(' ');
          use.push({ plane: 'kernel', backend, domain, inUse: n });
        }
      } catch (err) {
        return { ...capsView(applied, use, refusals), kernelUseError: describeError(err) };
      }
    }
    return capsView(applied, use, refusals);
  }

  /** Everything an operator needs to see; no secrets. */
  async status(): Promise<unknown> {
    let kernel: unknown = null;
    let kc: KernelCounters | null = null;
    try {
      kc = await this.kernel.counters();
      kernel = kc;
      this.noteKernelCaps(kc);
    } catch (err) {
      kernel = { error: describeError(err) };
    }
    const caps = await this.capsStatus(kc);
    const tunnelByKey = new Map(this.tunnels.map((t) => [t.key, t]));
    return {
      node: this.config.daemon.node,
      dataplane: this.config.daemon.dataplane,
      pid: process.pid,
      generation: this.generation,
      lastSync: this.lastSync,
      lastReload: this.lastReload,
      state: { dir: this.config.daemon.stateDir, lastSave: this.lastStateSave, restored: this.restored },
      notify: this.notifier.kind,
      manila: this.manila?.status() ?? null,
      native: nativeStatus(),
      domains: this.effective.domains.map((d) => ({
        name: d.name,
        project: d.project,
        sourceIp: d.sourceIp.text,
        egress: d.egress === null ? null : { interface: d.egress.iface, via: d.egress.via?.text ?? null, table: d.egress.table, conntrackZone: d.egress.table },
        shares: d.shares.length,
        guests: this.desired.guests
          .filter((g) => g.domain === d.name)
          .map((g) => ({
            instance: g.instance,
            tunnel: g.iface,
            guestIp: g.guestIp,
            tunnelState: tunnelByKey.get(g.key)?.error ?? (tunnelByKey.get(g.key)?.present === true ? 'adopted' : 'unknown'),
            grants: g.grants.map((gr) => {
              const plane = grantPlane(this.desired.dataplane, gr);
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
      })),
      kernel,
      egressError: this.egressError,
      egressWarnings: this.egressWarnings,
      proxy: { listeners: this.proxy.listenerCount(), flows: this.proxy.flows() },
      caps,
      counters: this.counters.snapshot(),
    };
  }

  /** Host settings that break an egress without failing its apply (rp_filter); logged when they change. */
  private checkEgressHost(desired: DesiredState): void {
    const warnings = rpFilterWarnings(desired.egress ?? [], readRpFilter);
    const key = (w: EgressWarning[]): string => w.map((x) => `${x.domain} ${x.code} ${x.message}`).join('\n');
    if (key(warnings) !== key(this.egressWarnings)) {
      for (const w of warnings) {
        this.log.warn({ code: w.code, domain: w.domain, iface: w.iface }, w.message);
      }
      if (warnings.length > 0) {
        this.counters.inc('sharegw_egress_warnings_total', {}, warnings.length);
      }
    }
    this.egressWarnings = warnings;
  }

  /** Orderly stop: no new work, drain proxied flows, keep or remove rules. */
  async stop(): Promise<void> {
    if (this.stopped) {
      return;
    }
    this.stopped = true;
    void this.notifier.stopping();
    if (this.watchdogTimer !== null) {
      clearInterval(this.watchdogTimer);
    }

    await this.admin?.close();
    await this.metrics?.close();
    this.flowEvents?.stop();
    await Promise.allSettled([...this.pendingCloses]);
    await this.manila?.stop();
    await this.runner.stop();
    await this.proxy.close(this.config.daemon.proxy.drainTimeoutMs);
    if (!this.config.daemon.keepRulesOnExit) {
      // Addresses first, rules second: without our rules an addressed
      // tunnel is a plain routed link into the storage network, so no
      // tunnel may keep its address once its chains are gone, not even for
      // the moment between the two steps or after a failed restore.
      let released = true;
      for (const g of this.applied?.guests ?? this.desired.guests) {
        try {
          await releaseTunnel(g.iface, g.gatewayIp, g.guestIp);
        } catch (err) {
          released = false;
          this.log.error({ guest: g.key, ...describeError(err) }, 'cannot release tunnel on exit');
        }
      }
      if (released) {
        try {
          await this.kernel.cleanup();
          await this.egress.cleanup();
        } catch (err) {
          this.log.error({ ...describeError(err) }, 'cleanup on exit failed');
        }
      } else {
        this.log.error('rules kept: some tunnels still have their addresses');
      }
    }
    this.log.info({ keptRules: this.config.daemon.keepRulesOnExit }, 'sharegwd stopped');
  }
}

/**
 * Settings a reload cannot change in place: the admin socket and the data
 * plane are bound at start, the state store is keyed by node and stateDir,
 * and proxy listeners are sized and numbered by the proxy settings.
 */
function restartOnly(cur: SgwConfig, next: SgwConfig): string[] {
  const a = cur.daemon;
  const b = next.daemon;
  const out: string[] = [];
  const same = (x: unknown, y: unknown): boolean => JSON.stringify(x) === JSON.stringify(y);
  // Credentials print as [redacted]: compare them apart.
  const am = a.manila;
  const bm = b.manila;
  const secret = (m: SgwConfig['daemon']['manila']): unknown[] => (m === null ? [] : [m.auth.type === 'password' ? m.auth.password : m.auth.type === 'applicationCredential' ? m.auth.secret : null, m.notifications]);
  const sa = secret(am);
  const sb = secret(bm);
  if (sa.length !== sb.length || sa.some((x, i) => (x === null ? sb[i] !== null : !(x as { equals(o: unknown): boolean }).equals(sb[i])))) {
    out.push('manila credentials');
  }
  for (const [name, x, y] of [
    ['dataplane', a.dataplane, b.dataplane],
    ['adminSocket', a.adminSocket, b.adminSocket],
    ['node', a.node, b.node],
    ['stateDir', a.stateDir, b.stateDir],
    ['proxy', a.proxy, b.proxy],
    // The Manila source is built at start (client, token, notifications).
    ['manila', a.manila, b.manila],
  ] as const) {
    if (!same(x, y)) {
      out.push(name);
    }
  }
  return out;
}

/** net.ipv4.conf.<name>.rp_filter of this network namespace; null when there is no such link. */
function readRpFilter(name: string): number | null {
  try {
    const v = Number(fs.readFileSync(`/proc/sys/net/ipv4/conf/${name}/rp_filter`, 'utf8').trim());
    return Number.isInteger(v) ? v : null;
  } catch {
    return null;
  }
}
