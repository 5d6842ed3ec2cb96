import { AdminServer } from '../admin/server';
import { KernelRules } from '../dataplane/kernel/plane';
import type { KernelCounters } from '../dataplane/kernel/plane';
import { EgressRoutes } from '../dataplane/kernel/egress-apply';
import { ProxyPlane } from '../dataplane/proxy/plane';
import { describeError } from '../errors';
import type { SgwConfig } from '../model/config';
import type { DesiredState } from '../model/desired';
import type { Counters } from '../observability/counters';
import type { Logger } from '../observability/logger';
import { compileDesired } from '../policy/policy';
import { BoundedRunner } from '../control/runner';
import { MetricsServer } from '../observability/metrics';
import type { Health, MetricsSnapshot } from '../observability/metrics';
import { createNotifier, watchdogIntervalMs } from './notify';
import { logNativeOnce, nativeStatus } from '../native';
import type { Notifier } from './notify';
import { listFlows } from '../dataplane/kernel/conntrack';
import { explainCommand, flowsCommand } from '../admin/commands';
import type { AdminRequest } from '../admin/protocol';
import { ManilaSource } from '../control/manila/source';
import { mergeSynced } from '../control/manila/sync';
import { releaseTunnel } from '../tunnels/host';
import { KernelAccessLog } from './access-log';
import { capsStatus, KernelCapNotes } from './caps';
import { checkReload } from './reload';
import { Revoker } from './revoke';
import { DaemonState } from './state';
import { activeFlowsView, deniedView, healthOf, statusLine, statusView } from './status';
import type { ReloadResult, SyncResult } from './status';
import { SyncPipeline } from './sync';

/** On-demand syncs (reload, admin) run at once but no more often than this. */
const MIN_SYNC_INTERVAL_MS = 200;
/** First retry after a failed sync; doubles up to syncInterval. */
const RETRY_MIN_MS = 1000;

/**
 * The daemon: owns the configuration, computes desired state, and drives
 * tunnels, kernel rules and (in proxy mode) the proxy plane through its
 * parts (sync pipeline, revoker, state file, access log, cap notes).
 * State: the running config and its generation, the desired state and the
 * last enforced one, last sync and reload results, readiness, the sync
 * runner (a one-deep queue so syncs never overlap) and the watchdog.
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
  /**
   * The proxy runs in both planes. In the kernel plane it carries only the
   * grants steered to it (an SMB or NFS policy the domain set, or `ro`) and
   * listens nowhere else.
   */
  private readonly proxy: ProxyPlane;
  private admin: AdminServer | null = null;
  private lastSync: SyncResult | null = null;
  private lastReload: ReloadResult | null = null;
  /** The sync loop: periodic verify/repair, on-demand runs, backoff on failure. */
  private readonly runner: BoundedRunner;
  /** Last-known-good state on disk (stateDir). */
  private readonly state: DaemonState;
  private readonly notifier: Notifier;
  private watchdogTimer: NodeJS.Timeout | null = null;
  private readonly pipeline: SyncPipeline;
  private readonly revoker: Revoker;
  private readonly caps: KernelCapNotes;
  private readonly accessLog: KernelAccessLog;
  private forceNext = true;
  private metrics: MetricsServer | null = null;
  private lastSyncSuccessAt: number | null = null;
  /** READY=1 goes out after the first successful sync only. */
  private readySent = false;
  /** When the running sync started (performance.now()), for the watchdog. */
  private syncStartedAt: number | null = null;
  private stopped = false;
  /** Shares, rules and share networks from Manila (null: no `manila` block). */
  private readonly manila: ManilaSource | null;
  /** The configuration with the synced shares merged in (what policy compiles). */
  private effective: SgwConfig;
  private readonly warnedCollision = new Set<string>();

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
    this.state = new DaemonState(config.daemon.stateDir, config.daemon.node, log, counters);
    const applied = (): DesiredState | null => this.applied;
    this.revoker = new Revoker(log, counters, this.proxy, applied);
    this.caps = new KernelCapNotes(log, counters);
    this.accessLog = new KernelAccessLog(log, counters, applied);
    this.pipeline = new SyncPipeline(log, counters, { kernel: this.kernel, egress: this.egress, proxy: this.proxy, revoker: this.revoker, caps: this.caps });
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
    this.logWarnings(this.config);
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
      this.accessLog.start();
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

  /** Logs the configuration's warnings (at start and after each reload). */
  private logWarnings(config: SgwConfig): void {
    for (const w of config.warnings) {
      this.log.warn({ code: w.code, file: w.file, line: w.line, key: w.pointer }, w.message);
    }
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
    const activeFlows = activeFlowsView(this.proxy.flows());
    let denied: MetricsSnapshot['denied'] = [];
    try {
      const k = await this.kernel.counters();
      this.caps.note(k);
      denied = deniedView(k);
    } catch {
      // iptables-save unavailable: denials are left out of this scrape
    }
    return {
      generation: this.generation,
      domains: this.config.domains.length,
      guests: this.desired.guests.length,
      activeFlows,
      denied,
      lastSyncSuccess: this.lastSyncSuccessAt,
      lastSyncOk: this.lastSync?.ok ?? null,
      proxyBufferedBytes: this.proxy.bufferedBytes(),
    };
  }

  /** Ready: the first sync succeeded and the last one is good and recent. */
  health(): Health {
    return healthOf({
      readySent: this.readySent,
      lastSync: this.lastSync,
      lastSyncSuccessAt: this.lastSyncSuccessAt,
      syncIntervalMs: this.config.daemon.syncIntervalMs,
      generation: this.generation,
      now: Date.now() / 1000,
    });
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
      const { desired, report } = await this.pipeline.run(this.desired, force, this.generation, this.config.domains);
      // Rules now refuse what was taken away; cut what is still flowing.
      this.revoker.cut(this.applied, desired, t0);
      this.applied = desired;
      this.forceNext = false;
      this.lastSync = { ok: true, at: new Date().toISOString(), durationMs: performance.now() - t0, applied: report !== null };
      ok = true;
      this.lastSyncSuccessAt = Date.now() / 1000;
      if (report !== null) {
        this.metrics?.applyDuration.observe(report.durationMs / 1000);
      }
      await this.state.save(this.generation, this.config, this.applied, this.proxy.allocatedPorts());
      if (!this.readySent && this.admin !== null) {
        this.readySent = true;
        void this.notifier.ready(this.statusLine());
      }
      this.pipeline.logApplied(report, this.generation);
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

  /** Takes over the tunnels and the last-known-good state of a previous run. */
  private async restoreState(): Promise<void> {
    await this.pipeline.loadOrphans();
    const st = await this.state.load(this.config);
    if (st === null) {
      return;
    }
    this.applied = st.desired;
    this.pipeline.restorePrevious(st.desired.guests);
    this.proxy.seedPorts(st.proxyPorts);
    this.generation = st.generation;
  }

  private statusLine(): string {
    return statusLine(this.generation, this.desired.guests.length, this.lastSync);
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
    const r = checkReload(this.config, this.log, this.counters);
    if (!r.ok) {
      this.lastReload = { ok: false, at, problems: r.problems };
      return r.problems;
    }
    const next = r.next;
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
    this.logWarnings(next);
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

  /** Everything an operator needs to see; no secrets. */
  async status(): Promise<unknown> {
    let kernel: unknown = null;
    let kc: KernelCounters | null = null;
    try {
      kc = await this.kernel.counters();
      kernel = kc;
      this.caps.note(kc);
    } catch (err) {
      kernel = { error: describeError(err) };
    }
    const caps = await capsStatus(this.proxy, kc, this.applied ?? this.desired, this.config.daemon.dataplane);
    return statusView({
      node: this.config.daemon.node,
      dataplane: this.config.daemon.dataplane,
      pid: process.pid,
      generation: this.generation,
      lastSync: this.lastSync,
      lastReload: this.lastReload,
      state: this.state.view(),
      notify: this.notifier.kind,
      manila: this.manila?.status() ?? null,
      native: nativeStatus(),
      effective: this.effective,
      desired: this.desired,
      tunnels: this.pipeline.tunnels,
      kernel,
      egressError: this.pipeline.egressError,
      egressWarnings: this.pipeline.egressWarnings,
      proxy: { listeners: this.proxy.listenerCount(), flows: this.proxy.flows() },
      caps,
      counters: this.counters.snapshot(),
    });
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
    await this.accessLog.stop();
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
