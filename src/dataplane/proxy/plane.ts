import * as net from 'node:net';
import type { ProxySettings } from '../../model/config';
import type { Revocation } from '../../policy/revocations';
import type { DesiredState, GuestState } from '../../model/desired';
import type { Counters } from '../../observability/counters';
import type { Logger } from '../../observability/logger';
import { proxyKey } from '../kernel/render';
import { RpcStream } from '../../protocols/rpc-stream';
import type { StreamTransform } from '../../protocols/relay';
import { SmbStream } from '../../protocols/smb-stream';
import type { Grant } from '../../model/desired';
import { sharedSourceIps } from '../../model/desired';
import { Session } from './session';
import type { CloseReason } from './session';
import { LogRateLimiter, suppressedText } from '../../util/log-rate';

/** Where a refused connection's cap applies (sharegw_connection_cap_refusals_total{scope}). */
export type CapScope = 'guest' | 'domain' | 'backend';

/** One backend's cap use, as status shows it. */
export interface CapUse {
  /** `address:port` (and `%iface` for a domain's own egress). */
  backend: string;
  inUse: number;
  domains: { domain: string; inUse: number }[];
}
import { MemoryBudget } from './budget';

/** How often every session's bytes are re-read (socket buffers shrink without an event). */
const BUDGET_SWEEP_MS = 1000;
/** At most one budget log line of each kind per this long (with the count suppressed). */
const BUDGET_LOG_MS = 10_000;

/** One listener: the port identifies guest, backend and port (no SO_ORIGINAL_DST needed). */
interface Listener {
  key: string;
  guestKey: string;
  backend: string;
  port: number;
  localPort: number;
  bindAddr: string;
  server: net.Server;
}

/** A live proxied flow, as status shows it. */
export interface FlowInfo {
  guest: string;
  backend: string;
  port: number;
  guestPort: number;
  up: number;
  down: number;
  ageMs: number;
}

/**
 * The user-space data plane. The kernel DNATs each granted (guest, backend,
 * port) to its own local port on the guest's gateway address, so the
 * listening port tells us the original destination and which guest it is;
 * the kernel rules also make sure only that guest's tunnel reaches it.
 * State: listeners by key, allocated ports (stable across reloads), live
 * sessions, and the current desired state that every new connection is
 * checked against.
 */
export class ProxyPlane {
  private readonly listeners = new Map<string, Listener>();
  private readonly ports = new Map<string, number>();
  /** Ports another process held when we tried them (EADDRINUSE). */
  private readonly avoid = new Set<number>();
  private readonly sessions = new Set<Session>();
  private readonly perGuest = new Map<string, number>();
  /** Live sessions per backend key and per `domain|backend key` (limits). */
  private readonly perBackend = new Map<string, number>();
  private readonly perDomainBackend = new Map<string, number>();
  private limits: DesiredState['limits'];
  /** Cap refusals by `scope|domain|backend key`; pruned to the current grants at each open(). */
  private readonly capRefused = new Map<string, number>();
  /** Refusal log lines: the first per domain and reason, then a count (issue 14). */
  private readonly refusalLog = new LogRateLimiter(60_000, 1024);
  private refusalTimer: NodeJS.Timeout | null = null;
  private readonly meta = new WeakMap<Session, { guestKey: string; domain: string; backend: string; port: number; backendKey: string; service: string; shares: string[] }>();
  /** The access log: a child logger whose records carry log: "access". */
  private readonly access: Logger;
  private guests = new Map<string, GuestState>();
  /** Per domain with its own egress: the device its backend legs are bound to, and whether its source IP is shared. */
  private egress = new Map<string, { iface: string; sharedSourceIp: boolean }>();
  private closing = false;
  /** What all sessions hold, against proxy.memoryBudget (issue 14). */
  private readonly memory: MemoryBudget<Session>;
  private readonly budgetLog = new LogRateLimiter(BUDGET_LOG_MS, 16);
  private sweep: NodeJS.Timeout | null = null;

  constructor(
    private readonly settings: ProxySettings,
    private readonly log: Logger,
    private readonly counters: Counters,
  ) {
    this.access = log.child({ log: 'access' });
    this.memory = new MemoryBudget<Session>(settings.memoryBudget, (s, bytes, total) => {
      this.counters.inc('sharegw_proxy_shed_total', { reason: 'paused' });
      const m = this.meta.get(s);
      const l = this.budgetLog.hit('paused', Date.now());
      if (l !== null) {
        this.log.warn({ domain: m?.domain, guest: m?.guestKey, backend: m?.backend, port: m?.port, bytes, total, limit: settings.memoryBudget, suppressed: l.suppressed }, 'proxy memory budget exceeded: no longer reading the guests of the largest sessions');
      }
    });
  }

  /** Bytes all sessions hold now, as last accounted (gauge sharegw_proxy_buffered_bytes). */
  bufferedBytes(): number {
    return this.memory.total;
  }

  /** Re-accounts every session now and then: socket buffers drain without telling. */
  private startSweep(): void {
    if (this.sweep === null) {
      this.sweep = setInterval(() => {
        for (const s of this.sessions) {
          s.account();
        }
      }, BUDGET_SWEEP_MS);
      this.sweep.unref();
    }
  }

  /**
   * Reuses the listener ports of a previous run (last-known-good state), so
   * the DNAT rules a restart renders are the ones already in the kernel.
   * Ports outside the configured range, or already taken, are ignored.
   */
  seedPorts(ports: Readonly<Record<string, number>>): void {
    const used = new Set(this.ports.values());
    for (const [key, port] of Object.entries(ports)) {
      if (!this.ports.has(key) && !used.has(port) && port >= this.settings.portRange.from && port <= this.settings.portRange.to) {
        this.ports.set(key, port);
        used.add(port);
      }
    }
  }

  /** Every allocated port by grant key (for the state file). */
  allocatedPorts(): Record<string, number> {
    return Object.fromEntries([...this.ports.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
  }

  /**
   * Ports of the grants of `desired` whose listeners are already open, as
   * they would be after open() but without opening anything: used to render
   * rules before tunnels are adopted.
   */
  listening(desired: DesiredState): Map<string, number> {
    const out = new Map<string, number>();
    for (const g of desired.guests) {
      for (const gr of g.grants) {
        const key = proxyKey(g.key, gr.backend, gr.port);
        const have = this.listeners.get(key);
        if (have !== undefined && have.bindAddr === g.gatewayIp) {
          out.set(key, have.localPort);
        }
      }
    }
    return out;
  }

  /**
   * Opens listeners for every grant of `desired` (new ones only) and makes
   * `desired` the state new connections are checked against. Returns the
   * ports that are listening, for the DNAT rules; a grant whose listener
   * could not bind (tunnel not there yet) is left out and retried next sync.
   */
  async open(desired: DesiredState): Promise<Map<string, number>> {
    this.guests = new Map(desired.guests.map((g) => [g.key, g]));
    this.egress = egressByDomain(desired);
    this.limits = desired.limits;
    this.pruneCapRefusals(desired);
    const active = this.listening(desired);
    for (const g of desired.guests) {
      for (const gr of g.grants) {
        const key = proxyKey(g.key, gr.backend, gr.port);
        if (active.has(key)) {
          continue;
        }
        const have = this.listeners.get(key);
        if (have !== undefined) {
          // The guest's gateway address changed: its flows through the old
          // listener can no longer be reached by the guest (DNAT now points
          // elsewhere); cut them rather than let them wait for keepalive.
          await this.closeListener(have);
          this.revoke([{ guestKey: g.key, guestIp: g.guestIp, backend: gr.backend, port: gr.port, reason: 'tunnel-changed' }]);
        }
        const localPort = this.allocate(key);
        if (localPort === null) {
          this.log.error({ guest: g.key }, 'proxy port range exhausted');
          this.counters.inc('sharegw_proxy_listen_errors_total', { code: 'SGW_ERR_PROXY_PORTS_EXHAUSTED' });
          continue;
        }
        try {
          const l = await this.listen(key, g, gr.backend, gr.port, localPort);
          this.listeners.set(key, l);
          active.set(key, localPort);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code ?? 'ERR';
          this.counters.inc('sharegw_proxy_listen_errors_total', { code });
          if (code === 'EADDRINUSE') {
            // Someone else holds that port: pick another one next time.
            this.ports.delete(key);
            this.avoid.add(localPort);
          }
          this.log.warn({ guest: g.key, addr: `${g.gatewayIp}:${localPort}`, code }, 'proxy listener not ready; will retry');
        }
      }
    }
    return active;
  }

  /**
   * Cuts the live sessions of revoked grants (reset both legs). Returns how
   * many were cut. New connections for them are already refused by the rules.
   */
  revoke(revs: readonly Revocation[]): number {
    if (revs.length === 0) {
      return 0;
    }
    const cut = new Set(revs.map((r) => proxyKey(r.guestKey, r.backend, r.port)));
    let n = 0;
    for (const s of [...this.sessions]) {
      const m = this.meta.get(s);
      if (m !== undefined && cut.has(proxyKey(m.guestKey, m.backend, m.port))) {
        s.close('revoked');
        n++;
      }
    }
    return n;
  }

  /** Closes listeners no grant of the current state needs (call after rules moved off them). */
  async closeStale(active: ReadonlyMap<string, number>): Promise<void> {
    for (const [key, l] of [...this.listeners]) {
      if (!active.has(key)) {
        await this.closeListener(l);
        this.ports.delete(key);
      }
    }
    // Ports reserved for grants that no longer exist (including ones whose
    // listener never opened) go back to the pool.
    const wanted = new Set([...this.guests.values()].flatMap((g) => g.grants.map((gr) => proxyKey(g.key, gr.backend, gr.port))));
    for (const key of [...this.ports.keys()]) {
      if (!wanted.has(key)) {
        this.ports.delete(key);
      }
    }
  }

  private allocate(key: string): number | null {
    const have = this.ports.get(key);
    if (have !== undefined) {
      return have;
    }
    const used = new Set(this.ports.values());
    for (let p = this.settings.portRange.from; p <= this.settings.portRange.to; p++) {
      if (!used.has(p) && !this.avoid.has(p)) {
        this.ports.set(key, p);
        return p;
      }
    }
    return null;
  }

  private listen(key: string, g: GuestState, backend: string, port: number, localPort: number): Promise<Listener> {
    return new Promise((resolve, reject) => {
      const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
      const l: Listener = { key, guestKey: g.key, backend, port, localPort, bindAddr: g.gatewayIp, server };
      server.on('connection', (sock) => this.accept(l, sock));
      server.once('error', reject);
      server.listen({ host: g.gatewayIp, port: localPort, backlog: 511 }, () => {
        server.off('error', reject);
        server.on('error', (err) => this.log.error({ err: (err as Error).message, key }, 'listener error'));
        resolve(l);
      });
    });
  }

  private deny(sock: net.Socket, guest: string, reason: string, extra: Record<string, unknown> = {}): void {
    this.counters.inc('sharegw_proxy_denied_total', { reason });
    // A guest retrying in a loop must not flood the log: the first refusal
    // per domain and reason is logged, the rest are counted into one line.
    const domain = guest.split('/')[0] ?? '?';
    const hit = this.refusalLog.hit(`denied|${domain}|${reason}`, Date.now());
    if (hit !== null) {
      this.log.info({ guest, reason, ...extra, from: `${sock.remoteAddress ?? '?'}:${sock.remotePort ?? 0}`, ...(hit.suppressed > 0 ? { suppressed: hit.suppressed } : {}) }, hit.suppressed > 0 ? `proxy connection denied (and ${suppressedText(hit.suppressed, hit.windowMs)})` : 'proxy connection denied');
      this.scheduleRefusalSummary();
    }
    sock.on('error', () => undefined);
    sock.resetAndDestroy();
  }

  /** Logs the counts of refusal windows that ended without another refusal. */
  private scheduleRefusalSummary(): void {
    if (this.refusalTimer !== null) {
      return;
    }
    this.refusalTimer = setTimeout(() => {
      this.refusalTimer = null;
      const ended = this.refusalLog.drain(Date.now());
      for (const e of ended) {
        const [kind = '', domain, reason] = e.key.split('|');
        const what = kind === 'denied' ? 'proxy connections denied' : kind === 'answered' ? 'requests refused by protocol policy' : kind === 'refused' ? 'sessions refused by protocol policy' : 'proxy refusals';
        this.log.info({ domain, reason, suppressed: e.suppressed }, `${what}: ${suppressedText(e.suppressed, e.windowMs)}`);
      }
      if (this.refusalLog.size > 0) {
        this.scheduleRefusalSummary();
      }
    }, 60_000);
    this.refusalTimer.unref();
  }

  /** Forgets refusal counts of domains and backends no grant has any more (bounded map). */
  private pruneCapRefusals(desired: DesiredState): void {
    const keep = new Set<string>();
    for (const g of desired.guests) {
      const eg = this.egress.get(g.domain);
      for (const gr of g.grants) {
        const bk = `${gr.backend}:${gr.port}${eg === undefined ? '' : `%${eg.iface}`}`;
        keep.add(`domain|${g.domain}|${bk}`);
        keep.add(`backend|-|${bk}`);
      }
    }
    for (const k of [...this.capRefused.keys()]) {
      if (!keep.has(k)) {
        this.capRefused.delete(k);
      }
    }
  }

  /** The cap a new session of `domain` to `backendKey` would exceed, or null. */
  private capExceeded(domain: string, backendKey: string): { scope: CapScope; cap: number; inUse: number } | null {
    const l = this.limits;
    if (l === undefined) {
      return null;
    }
    const d = this.perDomainBackend.get(`${domain}|${backendKey}`) ?? 0;
    if (d >= l.perDomainPerBackend) {
      return { scope: 'domain', cap: l.perDomainPerBackend, inUse: d };
    }
    const b = this.perBackend.get(backendKey) ?? 0;
    if (b >= l.perBackend) {
      return { scope: 'backend', cap: l.perBackend, inUse: b };
    }
    return null;
  }

  /** Cap refusals so far by scope, domain (`-` for the backend scope) and backend, for status. */
  capRefusals(): { scope: 'domain' | 'backend'; domain: string; backend: string; refused: number }[] {
    return [...this.capRefused].map(([k, refused]) => {
      const [scope = '', domain = '', backend = ''] = k.split('|');
      return { scope: scope === 'domain' ? 'domain' : 'backend', domain, backend, refused };
    });
  }

  /** Live sessions per backend and per domain on it, for status. */
  capUse(): CapUse[] {
    const out = new Map<string, CapUse>();
    for (const [k, n] of this.perBackend) {
      if (n > 0) {
        out.set(k, { backend: k, inUse: n, domains: [] });
      }
    }
    for (const [k, n] of this.perDomainBackend) {
      const i = k.indexOf('|');
      const u = out.get(k.slice(i + 1));
      if (u !== undefined && n > 0) {
        u.domains.push({ domain: k.slice(0, i), inUse: n });
      }
    }
    return [...out.values()].sort((a, b) => (a.backend < b.backend ? -1 : 1));
  }

  /** Over the memory budget: a new connection is closed at once, counted and logged (rate-limited). */
  private shedConnection(sock: net.Socket, guest: string): void {
    this.counters.inc('sharegw_proxy_shed_total', { reason: 'refused' });
    const l = this.budgetLog.hit('refused', Date.now());
    if (l !== null) {
      this.log.warn({ guest, total: this.memory.total, limit: this.settings.memoryBudget, suppressed: l.suppressed }, 'proxy memory budget exceeded: refusing new connections');
    }
    sock.on('error', () => undefined);
    sock.destroy();
  }

  private accept(l: Listener, sock: net.Socket): void {
    const g = this.guests.get(l.guestKey);
    if (this.closing) {
      this.deny(sock, l.guestKey, 'shutting-down');
      return;
    }
    if (this.memory.over) {
      this.shedConnection(sock, l.guestKey);
      return;
    }
    if (g === undefined) {
      this.deny(sock, l.guestKey, 'no-such-guest');
      return;
    }
    // Defence in depth: the kernel only lets this guest's tunnel reach here.
    if (sock.remoteAddress !== g.guestIp && sock.remoteAddress !== `::ffff:${g.guestIp}`) {
      this.deny(sock, g.key, 'identity-mismatch');
      return;
    }
    if (!g.grants.some((gr) => gr.backend === l.backend && gr.port === l.port)) {
      this.deny(sock, g.key, 'no-grant');
      return;
    }
    const n = this.perGuest.get(g.key) ?? 0;
    if (n >= this.settings.maxConnectionsPerGuest) {
      this.counters.inc('sharegw_connection_cap_refusals_total', { scope: 'guest', plane: 'proxy' });
      this.deny(sock, g.key, 'connection-limit');
      return;
    }
    const egress = this.egress.get(g.domain);
    // A domain with its own egress may reach another server behind the
    // same address (ADR 0011): its backends are counted apart, as the
    // kernel's connlimit does by conntrack zone.
    const backendKey = `${l.backend}:${l.port}${egress === undefined ? '' : `%${egress.iface}`}`;
    const over = this.capExceeded(g.domain, backendKey);
    if (over !== null) {
      this.counters.inc('sharegw_connection_cap_refusals_total', { scope: over.scope, plane: 'proxy' });
      const rk = `${over.scope}|${over.scope === 'domain' ? g.domain : '-'}|${backendKey}`;
      this.capRefused.set(rk, (this.capRefused.get(rk) ?? 0) + 1);
      this.deny(sock, g.key, over.scope === 'domain' ? 'domain-backend-cap' : 'backend-cap', { backend: backendKey, cap: over.cap, inUse: over.inUse });
      return;
    }
    this.perGuest.set(g.key, n + 1);
    this.perBackend.set(backendKey, (this.perBackend.get(backendKey) ?? 0) + 1);
    const dk = `${g.domain}|${backendKey}`;
    this.perDomainBackend.set(dk, (this.perDomainBackend.get(dk) ?? 0) + 1);
    this.counters.inc('sharegw_proxy_connections_total', { domain: g.domain });
    const grant = g.grants.find((gr) => gr.backend === l.backend && gr.port === l.port);
    const tf = transformFor(grant, () => this.guests.get(g.key)?.grants.find((gr) => gr.backend === l.backend && gr.port === l.port)?.nfs?.exports ?? []);
    const s = new Session(
      sock,
      {
        backend: l.backend,
        port: l.port,
        sourceIp: g.sourceIp,
        connectTimeoutMs: this.settings.connectTimeoutMs,
        idleTimeoutMs: this.settings.idleTimeoutMs,
        keepAliveMs: this.settings.keepAliveMs,
        userTimeoutMs: this.settings.userTimeoutMs,
        connectionBudget: this.settings.connectionBudget,
        memory: this.memory,
        ...(egress !== undefined ? { egress } : {}),
        ...tf,
      },
      this.log,
      this.counters,
      (ended, reason) => this.ended(ended, reason),
    );
    this.sessions.add(s);
    this.meta.set(s, { guestKey: g.key, domain: g.domain, backend: l.backend, port: l.port, backendKey, service: grant?.service ?? '?', shares: grant?.shares.map((x) => x.id) ?? [] });
    // Access log: one record per flow open and close (ids and addresses, never secrets).
    this.access.info(
      { event: 'open', plane: 'proxy', domain: g.domain, guest: g.key, guestPort: sock.remotePort, backend: l.backend, port: l.port, service: grant?.service, shares: grant?.shares.map((x) => x.id) },
      'flow open',
    );
    const proto = tf.transform?.proto ?? 'nfs';
    s.onBudget = (bytes) => {
      const b = this.budgetLog.hit('connection', Date.now());
      if (b !== null) {
        this.log.warn({ domain: g.domain, guest: g.key, backend: l.backend, port: l.port, proto, bytes, limit: this.settings.connectionBudget, suppressed: b.suppressed }, 'connection budget spent: no longer reading the guest until it drains');
      }
    };
    this.startSweep();
    s.onAnswered = (answered) => {
      for (const a of answered) {
        this.counters.inc('sharegw_protocol_answers_total', { proto, reason: a.reason });
        // Rate-limited per domain and reason (a guest looping on a refused
        // call must not flood the log); the flow's close record counts them all.
        const hit = this.refusalLog.hit(`answered|${g.domain}|${proto}:${a.reason}`, Date.now());
        if (hit !== null) {
          this.log.warn({ domain: g.domain, guest: g.key, backend: l.backend, port: l.port, proto, reason: a.reason, detail: a.detail, ...(hit.suppressed > 0 ? { suppressed: hit.suppressed } : {}) }, hit.suppressed > 0 ? `request refused by protocol policy (and ${suppressedText(hit.suppressed, hit.windowMs)})` : 'request refused by protocol policy');
          this.scheduleRefusalSummary();
        }
      }
    };
    s.start();
  }

  private ended(s: Session, reason: CloseReason): void {
    this.sessions.delete(s);
    const m = this.meta.get(s);
    if (m !== undefined) {
      this.perGuest.set(m.guestKey, Math.max(0, (this.perGuest.get(m.guestKey) ?? 1) - 1));
      decrement(this.perBackend, m.backendKey);
      decrement(this.perDomainBackend, `${m.domain}|${m.backendKey}`);
    }
    const b = s.bytes();
    const domain = m?.domain ?? '?';
    this.counters.inc('sharegw_proxy_closed_total', { reason });
    const refusal = s.refusal;
    if (refusal !== null) {
      this.counters.inc('sharegw_protocol_refusals_total', { proto: refusal.proto, reason: refusal.reason });
      if (refusal.code !== undefined) {
        this.counters.inc('sharegw_protocol_errors_total', { proto: refusal.proto, code: refusal.code });
      }
      // Rate-limited like the other refusals: a fuzzing or looping guest makes one line a minute per reason.
      const hit = this.refusalLog.hit(`refused|${domain}|${refusal.proto}:${refusal.reason}`, Date.now());
      if (hit !== null) {
        this.log.warn({ domain, guest: m?.guestKey, backend: m?.backend, port: m?.port, proto: refusal.proto, reason: refusal.reason, code: refusal.code, detail: refusal.detail, ...(hit.suppressed > 0 ? { suppressed: hit.suppressed } : {}) }, hit.suppressed > 0 ? `session refused by protocol policy (and ${suppressedText(hit.suppressed, hit.windowMs)})` : 'session refused by protocol policy');
        this.scheduleRefusalSummary();
      }
    }
    this.counters.inc('sharegw_proxy_bytes_total', { dir: 'up', domain }, b.up);
    this.counters.inc('sharegw_proxy_bytes_total', { dir: 'down', domain }, b.down);
    this.access.info(
      {
        event: 'close',
        plane: 'proxy',
        domain,
        guest: m?.guestKey,
        guestPort: s.guestPort,
        backend: m?.backend,
        port: m?.port,
        service: m?.service,
        shares: m?.shares,
        bytesUp: b.up,
        bytesDown: b.down,
        durationMs: Date.now() - s.startedAt,
        reason,
        ...(s.relayImpl !== null ? { relay: s.relayImpl === 'native' ? 'splice' : 'js' } : {}),
        ...(refusal !== null ? { refusal: refusal.reason } : {}),
        ...(Object.keys(s.answered).length > 0 ? { answered: s.answered } : {}),
        ...(s.budgetPauses > 0 ? { budgetPauses: s.budgetPauses } : {}),
      },
      'flow close',
    );
  }

  /**
   * Stops accepting on a listener. Does not wait for server.close()'s callback:
   * that fires only after every accepted connection has ended, which for an
   * NFS client may be days; sessions are drained or closed by the caller.
   */
  private closeListener(l: Listener): Promise<void> {
    this.listeners.delete(l.key);
    l.server.close();
    return Promise.resolve();
  }

  /** Live flows, for status. */
  flows(): FlowInfo[] {
    const now = Date.now();
    return [...this.sessions].map((s) => {
      const m = this.meta.get(s);
      const b = s.bytes();
      return {
        guest: m?.guestKey ?? '?',
        backend: m?.backend ?? '?',
        port: m?.port ?? 0,
        guestPort: s.guest.remotePort ?? 0,
        up: b.up,
        down: b.down,
        ageMs: now - s.startedAt,
      };
    });
  }

  /** Listener count, for status. */
  listenerCount(): number {
    return this.listeners.size;
  }

  /** Stops accepting, lets flows drain up to `drainMs`, then resets the rest. */
  async close(drainMs: number): Promise<void> {
    this.closing = true;
    if (this.refusalTimer !== null) {
      clearTimeout(this.refusalTimer);
      this.refusalTimer = null;
    }
    if (this.sweep !== null) {
      clearInterval(this.sweep);
      this.sweep = null;
    }
    await Promise.all([...this.listeners.values()].map((l) => this.closeListener(l)));
    const deadline = Date.now() + drainMs;
    while (this.sessions.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const s of [...this.sessions]) {
      s.close('shutdown');
    }
  }
}

/**
 * The protocol-aware transform a grant needs, if any: the SMB policy on SMB
 * grants; the NFS policy (ro, identity) and mount checks (MOUNT on mountd
 * grants, PUTROOTFH/LOOKUP paths in NFSv4 compounds on nfs grants) on NFS
 * grants. Everything else is a plain relay. ro and identity changes cut
 * the session (revocations.ts); exports follow the current state.
 */
function transformFor(grant: Grant | undefined, liveExports: () => readonly string[]): { transform?: StreamTransform } {
  if (grant?.smb !== undefined) {
    const p = grant.smb;
    return { transform: new SmbStream({ minDialect: p.minDialect, encryptionRequired: p.encryptionRequired, shares: new Set(p.shares) }) };
  }
  if (grant?.nfs !== undefined) {
    const p = grant.nfs;
    // Exports are read live: a share granted later on the same backend is
    // mountable over a connection the guest already has (clients share one
    // connection per server between mounts), and one revoked is not.
    return {
      transform: new RpcStream({
        readOnly: p.readOnly,
        identity: p.identity,
        get exports() {
          return liveExports();
        },
      }),
    };
  }
  return {};
}

/** One less live session under `key`; the entry goes at zero (bounded maps). */
function decrement(m: Map<string, number>, key: string): void {
  const n = (m.get(key) ?? 1) - 1;
  if (n <= 0) {
    m.delete(key);
  } else {
    m.set(key, n);
  }
}

/** The egress of each domain that has one (ADR 0011), as sessions need it. */
export function egressByDomain(desired: DesiredState): Map<string, { iface: string; sharedSourceIp: boolean }> {
  const shared = sharedSourceIps(desired.egress);
  return new Map((desired.egress ?? []).map((e) => [e.domain, { iface: e.iface, sharedSourceIp: shared.has(e.sourceIp) }]));
}
