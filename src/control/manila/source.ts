import { describeError } from '../../errors';
import type { Domain, ManilaSettings } from '../../model/config';
import type { Counters } from '../../observability/counters';
import type { Logger } from '../../observability/logger';
import { canonicalJson } from '../../util/canonical-json';
import { BoundedRunner } from '../runner';
import type { Clock } from '../runner';
import { ManilaClient } from './client';
import { ManilaNotifications } from './notifications';
import type { NotificationStatus } from './notifications';
import type { ExportLocationRecord } from './schemas';
import { ManilaStateFile } from './state';
import { syncDomain } from './sync';
import type { FetchedDomain, SyncedDomain } from './sync';

/** Log lines per sync and domain for bad records; the rest are summed up. */
const BAD_RECORD_LINES = 10;

/**
 * The Manila source: polls Manila for the share networks of this host's
 * domains on a bounded-frequency loop (at least every `interval`, at most
 * every `minInterval`, early on a notification hint), turns the answers
 * into synced shares (sync.ts), persists them as last-known-good, and
 * tells the daemon when they changed.
 *
 * State: the synced state per domain (the last good one; a domain whose
 * fetch failed keeps its previous state), per-domain errors, the export
 * location cache, the client (token, negotiated version), the runner and
 * the notification consumer.
 *
 * Cost per sync and domain: share network, security services, one shares
 * page per 500 shares, and per available share its access rules; export
 * locations only when a share is new or its `updated_at`/status changed
 * (see docs/scale.md).
 */
export interface ManilaSourceStatus {
  enabled: true;
  endpoint: string | null;
  auth: string;
  cloud: string | null;
  microversion: string | null;
  lastAttempt: string | null;
  lastSuccess: string | null;
  lastError: { code: string; message: string; at: string } | null;
  consecutiveFailures: number;
  restored: { savedAt: string } | null;
  requests: number;
  retries: number;
  tokensIssued: number;
  notifications: NotificationStatus | null;
  domains: {
    domain: string;
    shareNetwork: string;
    status: string;
    frozen: boolean;
    networkError: boolean;
    missing: boolean;
    /** The last fetch of this domain failed; the shown state is last-known-good. */
    stale: boolean;
    error: { code: string; message: string } | null;
    shares: number;
    skipped: SyncedDomain['skipped'];
    securityServices: { id: string; type: string; name: string | null; server: string | null }[];
    fetchedAt: string;
  }[];
}

export interface ManilaSourceOptions {
  settings: ManilaSettings;
  node: string;
  stateDir: string;
  log: Logger;
  counters: Counters;
  /** Called after the synced state changed (daemon recomputes and syncs). */
  onChange: () => void;
  client?: ManilaClient;
  clock?: Clock;
  /** How long the same transient items get follow-up syncs (default 30 s). */
  followUpMs?: number;
}

/** How long the same transient items get follow-up syncs at minInterval. */
const FOLLOW_UP_MS = 30_000;
/** States that change by themselves soon (rules and shares). */
const TRANSIENT = /^(?:state (?:queued_to_apply|applying|queued_to_deny|denying)|status (?:creating|deleting|extending|shrinking|migrating|manage_starting))$/;

type DomainRef = Pick<Domain, 'name' | 'project' | 'shareNetwork'>;
/** A domain that has a share network to sync. */
type Synced = { name: string; project: string; shareNetwork: string };

export class ManilaSource {
  private readonly client: ManilaClient;
  private readonly runner: BoundedRunner;
  private readonly stateFile: ManilaStateFile;
  private readonly log: Logger;
  private synced = new Map<string, SyncedDomain>();
  private errors = new Map<string, { code: string; message: string }>();
  private domains: Synced[] = [];
  private readonly exportCache = new Map<string, { key: string; locations: ExportLocationRecord[] }>();
  private notifications: ManilaNotifications | null = null;
  private lastSavedKey = '';
  /** The transient items seen last and since when (bounds follow-up polls). */
  private transit = { key: '', since: 0 };
  private st: Omit<ManilaSourceStatus, 'domains' | 'notifications' | 'requests' | 'retries' | 'tokensIssued'>;

  constructor(private readonly opts: ManilaSourceOptions) {
    this.log = opts.log.child({ component: 'manila' });
    this.client = opts.client ?? new ManilaClient(opts.settings);
    this.stateFile = new ManilaStateFile(opts.stateDir, opts.node, { log: this.log });
    const s = opts.settings;
    this.runner = new BoundedRunner(() => this.run(), { minIntervalMs: s.minIntervalMs, maxIntervalMs: s.intervalMs, retryMinMs: Math.min(1000, s.intervalMs), jitter: 0.2 }, opts.clock);
    this.st = {
      enabled: true,
      endpoint: s.endpoint,
      auth: s.auth.type,
      cloud: s.cloud?.name ?? null,
      microversion: null,
      lastAttempt: null,
      lastSuccess: null,
      lastError: null,
      consecutiveFailures: 0,
      restored: null,
    };
  }

  /** The domains to sync (those with a shareNetwork); set at start and on reload. */
  setDomains(domains: readonly DomainRef[]): void {
    this.domains = domains.flatMap((d) => (d.shareNetwork === undefined ? [] : [{ name: d.name, project: d.project, shareNetwork: d.shareNetwork }]));
    const names = new Set(this.domains.map((d) => d.name));
    for (const k of [...this.synced.keys()]) {
      if (!names.has(k)) {
        this.synced.delete(k);
      }
    }
  }

  /**
   * Loads the persisted state (so a restart while Manila is down serves
   * the last synced shares), then tries one sync, waiting at most one
   * request timeout for it, and starts the loop and the notification
   * consumer.
   */
  async start(domains: readonly DomainRef[]): Promise<void> {
    this.setDomains(domains);
    const r = await this.stateFile.load();
    if (r.kind === 'ok') {
      const wanted = new Map(this.domains.map((d) => [d.name, d.shareNetwork]));
      for (const d of r.domains) {
        if (wanted.get(d.domain) === d.shareNetworkId) {
          this.synced.set(d.domain, d);
        }
      }
      this.st.restored = { savedAt: r.savedAt };
      this.lastSavedKey = canonicalJson(this.ordered());
      this.log.info({ savedAt: r.savedAt, domains: this.synced.size }, 'last-known-good Manila state restored');
    } else if (r.kind === 'invalid') {
      this.opts.counters.inc('sharegw_manila_state_errors_total');
      this.log.error({ reason: r.reason }, 'Manila state file unusable; waiting for Manila');
    }
    const first = this.runner.runNow();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([first, new Promise<void>((res) => (timer = setTimeout(res, this.opts.settings.timeoutMs)))]);
    clearTimeout(timer);
    this.runner.start();
    if (this.opts.settings.notifications !== null) {
      this.notifications = new ManilaNotifications(this.opts.settings.notifications, this.opts.settings.notificationsExchange, (event) => {
        this.opts.counters.inc('sharegw_manila_notifications_total');
        this.log.debug({ event }, 'Manila notification: early resync');
        void this.request();
      }, this.log);
      this.notifications.start();
    }
  }

  /** An early resync (notification, admin); coalesced and rate-limited by the runner. */
  request(): Promise<void> {
    return this.runner.request();
  }

  /** The synced state in force, per domain name. */
  snapshot(): ReadonlyMap<string, SyncedDomain> {
    return this.synced;
  }

  async stop(): Promise<void> {
    await this.notifications?.close();
    await this.runner.stop();
    this.client.close();
  }

  status(): ManilaSourceStatus {
    return {
      ...this.st,
      requests: this.client.http.stats.requests,
      retries: this.client.http.stats.retries,
      tokensIssued: this.client.tokens.issued,
      notifications: this.notifications === null ? null : { ...this.notifications.status },
      domains: this.domains.map((d) => {
        const s = this.synced.get(d.name);
        return {
          domain: d.name,
          shareNetwork: d.shareNetwork,
          status: s?.network?.status ?? (s?.flags.missing === true ? 'missing' : 'unknown'),
          frozen: s?.flags.frozen ?? false,
          networkError: s?.flags.networkError ?? false,
          missing: s?.flags.missing ?? false,
          stale: this.errors.has(d.name),
          error: this.errors.get(d.name) ?? null,
          shares: s?.shares.length ?? 0,
          skipped: s?.skipped ?? [],
          securityServices: (s?.network?.securityServices ?? []).map((x) => ({ id: x.id, type: x.type, name: x.name, server: x.server })),
          fetchedAt: s?.fetchedAt ?? '',
        };
      }),
    };
  }

  private ordered(): SyncedDomain[] {
    return [...this.synced.values()].sort((a, b) => (a.domain < b.domain ? -1 : a.domain > b.domain ? 1 : 0));
  }

  /** One sync of every domain; never throws (runner contract). */
  private async run(): Promise<boolean> {
    const at = new Date().toISOString();
    this.st.lastAttempt = at;
    const before = canonicalJson(this.ordered().map((d) => [d.domain, d.shares]));
    let failed: { code: string; message: string } | null = null;
    try {
      const f = await this.client.features();
      this.st.microversion = f.microversion;
    } catch (err) {
      failed = describeError(err);
    }
    if (failed === null) {
      for (const d of this.domains) {
        try {
          const fetched = await this.fetch(d);
          const next = syncDomain(fetched, this.synced.get(d.name) ?? null);
          const prev = this.synced.get(d.name);
          if (prev?.network?.status !== next.network?.status && prev !== undefined) {
            this.log.info({ domain: d.name, shareNetwork: d.shareNetwork, from: prev.network?.status ?? null, to: next.network?.status ?? null }, 'share network status changed');
          }
          this.reportBadRecords(d.name, prev, next);
          this.synced.set(d.name, next);
          if (this.errors.delete(d.name)) {
            this.log.info({ domain: d.name }, 'Manila sync of domain recovered');
          }
        } catch (err) {
          const e = describeError(err);
          failed = e;
          if (this.errors.get(d.name)?.code !== e.code) {
            this.log.error({ domain: d.name, code: e.code, err: e.message }, 'Manila sync of domain failed; keeping its last-known-good state');
          }
          this.errors.set(d.name, e);
        }
      }
    }
    if (failed !== null) {
      this.st.consecutiveFailures++;
      this.opts.counters.inc('sharegw_manila_sync_errors_total', { code: failed.code });
      if (this.st.lastError?.code !== failed.code) {
        this.log.error({ code: failed.code, err: failed.message }, 'Manila sync failed; keeping the last-known-good state and retrying');
      }
      this.st.lastError = { ...failed, at };
    } else {
      if (this.st.consecutiveFailures > 0) {
        this.log.info({ after: this.st.consecutiveFailures }, 'Manila sync works again');
      }
      this.st.consecutiveFailures = 0;
      this.st.lastError = null;
      this.st.lastSuccess = at;
      this.opts.counters.inc('sharegw_manila_syncs_total');
    }
    const after = canonicalJson(this.ordered().map((d) => [d.domain, d.shares]));
    await this.persist();
    // A rule or share on its way (queued, applying, denying, creating,
    // deleting) is followed closely, so a grant follows Manila's own
    // activation instead of the next full interval. Bounded by minInterval,
    // and only while something is moving.
    // Something stuck in a transient state (a share hanging in `creating`)
    // must not keep a host polling at minInterval: follow-ups stop after
    // FOLLOW_UP_MS of the same set of transient items.
    const moving = this.ordered().flatMap((d) => d.skipped.filter((x) => TRANSIENT.test(x.reason)).map((x) => `${d.domain} ${x.share} ${x.what} ${x.reason}`));
    const movingKey = moving.sort().join('\n');
    if (movingKey !== this.transit.key) {
      this.transit = { key: movingKey, since: Date.now() };
    }
    if (failed === null && moving.length > 0 && Date.now() - this.transit.since < (this.opts.followUpMs ?? FOLLOW_UP_MS)) {
      void this.runner.request();
    }
    if (after !== before) {
      this.opts.onChange();
    }
    return failed === null;
  }

  /**
   * Counts and logs the records Manila sent that were bad in themselves
   * (an id with control characters, say): each new one once, while the
   * rest of the sync went on without it.
   */
  private reportBadRecords(domain: string, prev: SyncedDomain | undefined, next: SyncedDomain): void {
    const seen = new Set((prev?.skipped ?? []).filter((x) => x.code !== undefined).map((x) => `${x.share} ${x.reason}`));
    let held = 0;
    for (const x of next.skipped) {
      if (x.code === undefined || seen.has(`${x.share} ${x.reason}`)) {
        continue;
      }
      this.opts.counters.inc('sharegw_manila_records_skipped_total', { code: x.code });
      // A few lines per sync and domain; a hostile project's thousands of
      // bad shares are counted, and summed up in one more line.
      held++;
      if (held <= BAD_RECORD_LINES) {
        this.log.error({ domain, code: x.code, share: x.share, reason: x.reason }, 'Manila record skipped: bad id; the rest of the sync goes on');
      }
    }
    if (held > BAD_RECORD_LINES) {
      this.log.error({ domain, code: 'SGW_ERR_MANILA_BAD_ID', more: held - BAD_RECORD_LINES }, `Manila records skipped: ${held - BAD_RECORD_LINES} more in this sync`);
    }
  }

  private async fetch(d: Synced): Promise<FetchedDomain> {
    const snId = d.shareNetwork;
    const fetchedAt = new Date().toISOString();
    const network = await this.client.shareNetwork(snId);
    if (network === null) {
      return { domain: d.name, shareNetworkId: snId, network: null, securityServices: [], shares: [], fetchedAt };
    }
    const securityServices = await this.client.securityServices(snId, d.project);
    const shares = await this.client.shares(snId, d.project);
    const out: FetchedDomain['shares'] = [];
    const live = new Set<string>();
    for (const share of shares) {
      live.add(share.id);
      if (share.status !== 'available') {
        out.push({ share, exportLocations: [], accessRules: [] });
        continue;
      }
      // Export locations change only with the share (migration, server
      // change: status and updated_at move); rules change without a trace
      // on the share, so they are read every time.
      const key = `${share.status}|${share.updated_at ?? ''}`;
      let cached = this.exportCache.get(share.id);
      if (cached?.key !== key) {
        cached = { key, locations: await this.client.exportLocations(share.id) };
        this.exportCache.set(share.id, cached);
      }
      out.push({ share, exportLocations: cached.locations, accessRules: await this.client.accessRules(share.id) });
    }
    for (const id of [...this.exportCache.keys()]) {
      if (!live.has(id) && shares.length > 0) {
        this.exportCache.delete(id);
      }
    }
    return { domain: d.name, shareNetworkId: snId, network, securityServices, shares: out, fetchedAt };
  }

  private async persist(): Promise<void> {
    const domains = this.ordered();
    const key = canonicalJson(domains.map((d) => ({ ...d, fetchedAt: '' })));
    if (key === this.lastSavedKey) {
      return;
    }
    try {
      await this.stateFile.save(domains);
      this.lastSavedKey = key;
    } catch (err) {
      const e = describeError(err);
      this.opts.counters.inc('sharegw_manila_state_errors_total');
      this.log.error({ code: e.code, err: e.message }, 'cannot write the Manila state file; retrying at the next sync');
    }
  }
}
