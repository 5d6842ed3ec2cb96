import * as net from 'node:net';
import type { Counters } from '../../observability/counters';
import type { Logger } from '../../observability/logger';
import type { Direction, Refusal, Relay, StreamTransform } from '../../protocols/relay';
import { NativeError, ProxyError } from '../../errors';
import { activeSpliceRelay, activeTcpTuning, countFallback, egressSocket, resumeReading, tuneSocket } from '../../native';
import type { Impl, SpliceEvent, SpliceHandle, SpliceRelayShim, TcpTuning } from '../../native';
import type { BudgetConsumer, MemoryBudget } from './budget';

/** Settings a relay needs. */
export interface RelayOptions {
  backend: string;
  port: number;
  sourceIp: string;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  keepAliveMs: number;
  /** TCP_USER_TIMEOUT on both legs (native shim only); 0 leaves the kernel default. */
  userTimeoutMs: number;
  /** The zero-copy relay for sessions without a transform; default the addon's, null forces the JavaScript relay. */
  splice?: SpliceRelayShim | null;
  /** How dead peers are detected on both legs; default the addon's when loaded, else keepalive only. */
  tuning?: TcpTuning;
  /** Protocol-aware sessions: every chunk each way goes through it before anything is written. */
  transform?: StreamTransform;
  /**
   * The domain's own egress (ADR 0011): the backend leg is bound to this
   * device, so that it is routed by the domain's `oif` rule and two domains
   * may share a source IP. `sharedSourceIp`: another domain on this host
   * uses the same source IP, so the fallback (net.connect, routed by the
   * `from` rule) cannot tell them apart and the session fails closed.
   */
  egress?: { iface: string; sharedSourceIp: boolean };
  /** Makes the device-bound socket; default the addon's (null when it is not loaded). */
  egressSocket?: (device: string, address: string, port: number) => net.Socket | null;
  /**
   * Protocol-aware sessions: the most bytes the session may hold (see
   * heldBytes()) before it stops reading the guest; it reads again below
   * half of it. Unset or 0: no per-connection limit.
   */
  connectionBudget?: number;
  /** The proxy's global budget this session reports its bytes to. */
  memory?: MemoryBudget<Session>;
}

/** Why reading a socket is paused: a full sink, the connection's budget, the global budget. */
type Hold = 'sink' | 'budget' | 'shed';

/** Why a session ended; stable values (logs, counters). */
export type CloseReason = 'done' | 'guest-error' | 'backend-error' | 'connect-failed' | 'egress-unavailable' | 'idle' | 'half-closed' | 'shutdown' | 'revoked' | 'refused';

/**
 * How long a flow may stay half-closed (one side sent FIN, the other never
 * does) before both legs are closed. Same role and value as Linux's
 * tcp_fin_timeout for orphaned sockets: some NFS servers never close their
 * side after a client's FIN, and a relay must not keep such flows forever.
 */
export const HALF_CLOSE_TIMEOUT_MS = 60_000;

/**
 * The smallest payload a protocol-aware session hands to the splice relay:
 * below it, a thread and two pipes per record cost more than the copy.
 */
export const SPLICE_MIN_BYTES = 64 * 1024;

const PRIV_LOW = 600;
const PRIV_HIGH = 1023;
const BIND_TRIES = 8;

/**
 * One proxied connection: guest socket <-> backend socket.
 * State: the two sockets, bytes moved, and whether it has closed; the
 * native relay's handle while it owns the sockets, and the bytes it moved.
 * Without a transform the bytes go through the native splice relay when the
 * addon is loaded (kernel to kernel, on the addon's thread), else through
 * pipe(); with a transform, through forward(), except payloads the
 * transform lets pass unseen, which a one-direction relay moves (per
 * direction, `payload`). Backpressure comes from
 * pipe()/forward() (or the kernel's socket buffers for splice), and for
 * protocol-aware sessions also from what the session holds: the gateway's
 * own answers wait in the transform for a reply boundary, which a guest
 * that does not read never lets come, so reading the guest stops while
 * heldBytes() is over the connection's budget (issue 14) or the global
 * budget sheds this session. Each reason is a hold on the socket, and it
 * is read again only when no hold is left; half-close
 * is forwarded (allowHalfOpen, or shutdown(SHUT_WR) by the native relay),
 * any error destroys both legs, and the guest sees a reset when the backend
 * cannot be reached, as it would without a gateway.
 */
export class Session implements BudgetConsumer {
  readonly guest: net.Socket;
  backendSock: net.Socket | null = null;
  readonly startedAt = Date.now();
  /** The guest's source port (kept: the socket forgets it once destroyed). */
  readonly guestPort: number;
  private closed = false;
  /** Why the protocol policy refused this session, if it did. */
  refusal: Refusal | null = null;
  /** Calls the gateway answered itself, by reason (for the access log). */
  readonly answered: Record<string, number> = {};
  /** Called with every batch of calls the gateway answered. */
  onAnswered: ((a: { reason: string; detail: string }[]) => void) | null = null;
  private halfCloseTimer: NodeJS.Timeout | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  /** The native relay while it owns both sockets. */
  private spliced: SpliceHandle | null = null;
  /** Bytes the native relays moved and are done with. */
  private splicedBytes = { ab: 0, ba: 0 };
  /** Protocol-aware sessions: the relay moving one payload, per direction. */
  private readonly payload: Record<Direction, SpliceHandle | null> = { fromGuest: null, fromBackend: null };
  /** Payloads a protocol-aware session moved with the splice relay. */
  splicedPayloads = 0;
  /** Which relay moves this session's bytes (null until the backend is connected). */
  relayImpl: Impl | null = null;
  /** Which dead-peer detection the guest leg got. */
  tuningImpl: Impl | null = null;
  private onClose: ((s: Session, reason: CloseReason) => void) | null;
  /** Why reading each socket is paused; it is read while its set is empty. */
  private readonly holds = new Map<net.Socket, Set<Hold>>();
  /** Times this session stopped reading its guest for its budget. */
  budgetPauses = 0;
  /** Called when the session first stops reading its guest for its budget, with what it held. */
  onBudget: ((bytes: number) => void) | null = null;

  constructor(
    guest: net.Socket,
    private readonly opts: RelayOptions,
    private readonly log: Logger,
    private readonly counters: Counters,
    onClose: (s: Session, reason: CloseReason) => void,
  ) {
    this.guest = guest;
    this.guestPort = guest.remotePort ?? 0;
    this.onClose = onClose;
  }

  /** Connects to the backend (privileged source port if the guest used one) and relays. */
  start(): void {
    const g = this.guest;
    g.pause();
    g.setNoDelay(true);
    this.tuningImpl = tuneSocket(g, this.tcpOptions(), this.counters, this.opts.tuning ?? activeTcpTuning());
    g.on('error', () => this.close('guest-error'));
    g.on('close', () => this.close('done'));
    const guestPort = g.remotePort ?? 0;
    const privileged = guestPort > 0 && guestPort < 1024;
    this.connect(privileged ? guestPort : 0, privileged, BIND_TRIES);
  }

  private connect(localPort: number, privileged: boolean, triesLeft: number): void {
    const o = this.opts;
    let sock: net.Socket | null = null;
    let failure: string | null = null;
    try {
      sock = this.egressBound(localPort);
    } catch (err) {
      if (err instanceof NativeError && err.errno === 'EADDRINUSE' && privileged && triesLeft > 1) {
        this.connect(this.otherPrivilegedPort(), privileged, triesLeft - 1);
        return;
      }
      countFallback(this.counters, 'egressSocket', err);
      failure = (err as Error).message;
    }
    if (sock === null && o.egress?.sharedSourceIp === true) {
      // The fallback's backend leg is routed by the `from <sourceIp>` rule,
      // which is ambiguous when two domains share the source IP.
      this.log.warn({ err: failure ?? 'addon not loaded', backend: o.backend, iface: o.egress.iface }, 'no native egressSocket and the source IP is shared: refusing rather than risk the other domain\'s network');
      this.close('egress-unavailable');
      return;
    }
    if (sock !== null) {
      sock.connect({ host: o.backend, port: o.port });
      sock.setNoDelay(true);
    }
    this.startBackend(
      sock ??
        net.connect({
          host: o.backend,
          port: o.port,
          localAddress: o.sourceIp,
          ...(localPort > 0 ? { localPort } : {}),
          noDelay: true,
          allowHalfOpen: true,
        }),
      privileged,
      triesLeft,
    );
  }

  /** Watches the connecting backend leg: relay once connected, retry a taken privileged port, else close. */
  private startBackend(sock: net.Socket, privileged: boolean, triesLeft: number): void {
    const o = this.opts;
    this.backendSock = sock;
    // Its code reaches the 'error' handler below like an errno, so the
    // timeout is counted as SGW_ERR_PROXY_CONNECT_TIMEOUT (it was `ERR`).
    const timer = setTimeout(() => sock.destroy(new ProxyError('SGW_ERR_PROXY_CONNECT_TIMEOUT', `connect timeout after ${o.connectTimeoutMs} ms`)), o.connectTimeoutMs);
    // Remembered: after an error such as ETIMEDOUT the socket no longer
    // knows its peer (remotePort is undefined).
    let established = false;
    sock.once('connect', () => {
      established = true;
      clearTimeout(timer);
      if (this.closed) {
        sock.destroy();
        return;
      }
      this.relay(sock);
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (this.closed) {
        return;
      }
      if (!established && (err.code === 'EADDRINUSE' || err.code === 'EADDRNOTAVAIL') && privileged && triesLeft > 1) {
        // Another guest of this domain uses that port to this backend: pick
        // another privileged one so `secure` exports still accept us. (With
        // SO_REUSEADDR, which libuv and egressSocket set, the bind succeeds
        // and connect() finds the 4-tuple taken: EADDRNOTAVAIL.)
        this.connect(this.otherPrivilegedPort(), privileged, triesLeft - 1);
        return;
      }
      const connected = established && sock.bytesRead + sock.bytesWritten > 0;
      this.counters.inc('sharegw_proxy_backend_errors_total', { code: err.code ?? 'ERR' });
      this.log.debug({ err: err.code, backend: o.backend, port: o.port }, 'backend leg failed');
      this.close(connected ? 'backend-error' : 'connect-failed');
    });
  }

  /** A random privileged port, for a retry after EADDRINUSE (`secure` exports want one). */
  private otherPrivilegedPort(): number {
    return PRIV_LOW + Math.floor(Math.random() * (PRIV_HIGH - PRIV_LOW + 1));
  }

  /** The backend socket bound to the domain's egress device, unconnected; null: use net.connect. */
  private egressBound(localPort: number): net.Socket | null {
    const o = this.opts;
    if (o.egress === undefined) {
      return null;
    }
    return (o.egressSocket ?? egressSocket)(o.egress.iface, o.sourceIp, localPort);
  }

  private tcpOptions(): { userTimeoutMs: number; keepAliveMs: number } {
    return { userTimeoutMs: this.opts.userTimeoutMs, keepAliveMs: this.opts.keepAliveMs };
  }

  private armHalfClose(): void {
    if (this.halfCloseTimer === null && !this.closed) {
      this.halfCloseTimer = setTimeout(() => this.close('half-closed'), HALF_CLOSE_TIMEOUT_MS);
      this.halfCloseTimer.unref();
    }
  }

  private relay(b: net.Socket): void {
    const g = this.guest;
    tuneSocket(b, this.tcpOptions(), this.counters, this.opts.tuning ?? activeTcpTuning());
    b.on('close', () => this.close('done'));
    const tf = this.opts.transform;
    if (tf === undefined && this.startSplice(g, b)) {
      return;
    }
    this.relayImpl = 'fallback';
    if (this.opts.idleTimeoutMs > 0) {
      g.setTimeout(this.opts.idleTimeoutMs, () => this.close('idle'));
    }
    g.once('end', () => this.armHalfClose());
    b.once('end', () => this.armHalfClose());
    if (tf === undefined) {
      g.pipe(b);
      b.pipe(g);
    } else {
      this.forward(g, b, 'fromGuest', (c) => tf.fromGuest(c));
      this.forward(b, g, 'fromBackend', (c) => tf.fromBackend(c));
      // What the session holds shrinks when a sink drains, too.
      g.on('drain', () => this.account());
      b.on('drain', () => this.account());
    }
    if (!this.isHeld(g)) {
      // Shed by the global budget while the backend leg was connecting.
      g.resume();
    }
  }

  /**
   * Hands both sockets to the native splice relay (plain forwarding: no
   * transform). False when there is no addon, or it refused this session
   * (counted): the caller relays in JavaScript instead.
   */
  private spliceShim(): SpliceRelayShim | null {
    return this.opts.splice === undefined ? activeSpliceRelay() : this.opts.splice;
  }

  private startSplice(g: net.Socket, b: net.Socket): boolean {
    const shim = this.spliceShim();
    if (shim === null) {
      return false;
    }
    try {
      this.spliced = shim.start(g, b, { ab: -1, ba: -1 }, (e) => this.onSplice(e));
    } catch (err) {
      countFallback(this.counters, 'spliceRelay', err);
      this.log.debug({ err: (err as Error).message, backend: this.opts.backend, port: this.opts.port }, 'splice relay refused this session; relaying in JavaScript');
      return false;
    }
    this.relayImpl = 'native';
    if (this.opts.idleTimeoutMs > 0) {
      // Node sees no activity on sockets the addon relays: idle means no
      // byte moved between two ticks (so between 1x and 2x the timeout).
      let last = -1;
      this.idleTimer = setInterval(() => {
        const now = this.splicedTotal();
        if (now === last) {
          this.close('idle');
        }
        last = now;
      }, this.opts.idleTimeoutMs);
      this.idleTimer.unref();
    }
    return true;
  }

  private splicedTotal(): number {
    const x = this.spliced?.bytes() ?? this.splicedBytes;
    return x.ab + x.ba;
  }

  /**
   * Protocol-aware sessions: when the transform lets the next `n` bytes of
   * `dir` pass unseen (the rest of a checked record) and nothing waits in
   * Node either way, the splice relay moves exactly those bytes, and `from`
   * goes back to Node at the next header.
   */
  private maybeSplicePayload(from: net.Socket, to: net.Socket, dir: Direction): void {
    const tf = this.opts.transform;
    if (tf?.passThrough === undefined || this.closed || this.payload[dir] !== null || this.isHeld(from) || from.readableLength > 0 || to.writableLength > 0) {
      return;
    }
    const n = tf.passThrough(dir);
    const shim = n >= SPLICE_MIN_BYTES ? this.spliceShim() : null;
    if (shim === null) {
      return;
    }
    try {
      this.payload[dir] = shim.start(from, to, { ab: n, ba: 0 }, (e) => {
        if (e.type === 'done') {
          this.payloadDone(from, dir, e);
        }
      });
      this.splicedPayloads++;
    } catch (err) {
      if (!(err instanceof NativeError && err.code === 'SGW_ERR_NATIVE_BUFFERED')) {
        countFallback(this.counters, 'spliceRelay', err);
      }
    }
  }

  private payloadDone(from: net.Socket, dir: Direction, e: Extract<SpliceEvent, { type: 'done' }>): void {
    const tf = this.opts.transform;
    if (this.closed || tf?.passed === undefined) {
      // close() counted this relay's bytes when it stopped it.
      return;
    }
    this.payload[dir] = null;
    this.splicedBytes[dir === 'fromGuest' ? 'ab' : 'ba'] += e.ab;
    if (e.reason === 'error') {
      // Side a is `from`.
      const guestSide = (e.error?.side === 'a') === (dir === 'fromGuest');
      if (!guestSide) {
        this.counters.inc('sharegw_proxy_backend_errors_total', { code: e.error?.code ?? 'ERR' });
      }
      this.close(guestSide ? 'guest-error' : 'backend-error');
      return;
    }
    if (e.ab > 0) {
      const r = tf.passed(dir, e.ab);
      if (r.refusal !== undefined) {
        this.refusal = r.refusal;
        this.close('refused');
        return;
      }
      for (const x of r.toGuest) {
        this.guest.write(x);
      }
      for (const x of r.toBackend) {
        this.backendSock?.write(x);
      }
    }
    // A source that ended early shows its EOF to Node again ('end').
    resumeReading(from);
    if (this.isHeld(from)) {
      // A hold taken while the native relay owned the socket.
      from.pause();
    }
    this.account();
  }

  private onSplice(e: SpliceEvent): void {
    if (e.type === 'eof') {
      this.armHalfClose();
      return;
    }
    this.splicedBytes = { ab: e.ab, ba: e.ba };
    this.spliced = null;
    if (this.closed) {
      return;
    }
    if (e.reason === 'complete') {
      // Both directions reached EOF and the FINs were forwarded.
      this.close('done');
      return;
    }
    const code = e.error?.code ?? 'ERR';
    if (e.error?.side === 'b') {
      this.counters.inc('sharegw_proxy_backend_errors_total', { code });
      this.log.debug({ err: code, backend: this.opts.backend, port: this.opts.port }, 'backend leg failed');
      this.close('backend-error');
    } else {
      this.close('guest-error');
    }
  }

  /**
   * pipe() through a transform: what it returns is written to each side, with
   * the same backpressure (pause the source while the sink's buffer is full)
   * and half-close forwarding. A refusal ends the session before anything of
   * that chunk is written.
   */
  private forward(from: net.Socket, to: net.Socket, dir: Direction, step: (chunk: Buffer) => Relay): void {
    // `to` is where this direction's bytes go; it gets the FIN when `from` ends.
    const g = this.guest;
    from.on('data', (chunk: Buffer) => {
      if (this.closed) {
        return;
      }
      const r = step(chunk);
      if (r.refusal !== undefined) {
        this.refusal = r.refusal;
        this.close('refused');
        return;
      }
      if (r.answered !== undefined) {
        for (const a of r.answered) {
          this.answered[a.reason] = (this.answered[a.reason] ?? 0) + 1;
        }
        this.onAnswered?.(r.answered);
      }
      // Either side may be written to from either direction (the gateway's
      // own answers go to the guest while reading the guest): wait for every
      // socket whose buffer filled up, not just `to`, before reading on.
      const b = this.backendSock;
      const full: net.Socket[] = [];
      for (const x of r.toBackend) {
        if (b !== null && !b.write(x) && !full.includes(b)) {
          full.push(b);
        }
      }
      for (const x of r.toGuest) {
        if (!g.write(x) && !full.includes(g)) {
          full.push(g);
        }
      }
      if (full.length > 0) {
        this.hold(from, 'sink');
        let waiting = full.length;
        for (const sock of full) {
          sock.once('drain', () => {
            if (--waiting === 0) {
              this.release(from, 'sink');
            }
          });
        }
      }
      this.account();
      if (full.length === 0) {
        this.maybeSplicePayload(from, to, dir);
      }
    });
    from.once('end', () => {
      if (!this.closed) {
        to.end();
      }
    });
  }

  /**
   * Bytes this session holds in memory: its transform's queued answers and
   * held records, and what waits in both sockets' buffers in Node.
   */
  heldBytes(): number {
    const g = this.guest;
    const b = this.backendSock;
    const tf = this.opts.transform?.buffered?.() ?? 0;
    return tf + g.writableLength + g.readableLength + (b === null ? 0 : b.writableLength + b.readableLength);
  }

  /**
   * Re-checks what the session holds against its budget (hysteresis: stop
   * reading the guest above the budget, read again at half of it) and
   * reports it to the global budget. Called after every step, drain and
   * passed payload, and by the plane's periodic sweep.
   */
  account(): void {
    if (this.closed) {
      return;
    }
    const n = this.heldBytes();
    const limit = this.opts.connectionBudget ?? 0;
    if (limit > 0 && this.opts.transform !== undefined) {
      const held = this.holds.get(this.guest)?.has('budget') === true;
      if (!held && n > limit) {
        this.hold(this.guest, 'budget');
        this.counters.inc('sharegw_proxy_budget_pauses_total');
        if (this.budgetPauses++ === 0) {
          this.onBudget?.(n);
        }
      } else if (held && n <= limit / 2) {
        this.release(this.guest, 'budget');
      }
    }
    this.opts.memory?.update(this, n);
  }

  /**
   * The global budget sheds (true) or releases (false) this session: its
   * guest is not read meanwhile. Plain relays (no transform) hold at most a
   * socket buffer, and pipe() owns their pausing: they are left alone.
   */
  shed(on: boolean): void {
    if (this.opts.transform === undefined || this.closed) {
      return;
    }
    if (on) {
      this.hold(this.guest, 'shed');
    } else {
      this.release(this.guest, 'shed');
    }
  }

  private isHeld(sock: net.Socket): boolean {
    return (this.holds.get(sock)?.size ?? 0) > 0;
  }

  private hold(sock: net.Socket, why: Hold): void {
    let set = this.holds.get(sock);
    if (set === undefined) {
      set = new Set();
      this.holds.set(sock, set);
    }
    set.add(why);
    sock.pause();
  }

  /** Drops one hold; the socket is read again when none is left (unless the native relay owns it: payloadDone resumes it). */
  private release(sock: net.Socket, why: Hold): void {
    const set = this.holds.get(sock);
    if (set === undefined || !set.delete(why) || set.size > 0 || this.closed) {
      return;
    }
    if (this.payload[sock === this.guest ? 'fromGuest' : 'fromBackend'] === null) {
      sock.resume();
    }
  }

  /** Bytes guest->backend and backend->guest so far. */
  bytes(): { up: number; down: number } {
    const n = this.spliced?.bytes() ?? { ...this.splicedBytes };
    n.ab += this.payload.fromGuest?.bytes().ab ?? 0;
    n.ba += this.payload.fromBackend?.bytes().ab ?? 0;
    return { up: this.guest.bytesRead + n.ab, down: this.guest.bytesWritten + n.ba };
  }

  /** Closes both legs once; a reset tells the guest at once that it is over. */
  close(reason: CloseReason): void {
    if (this.closed) {
      return;
    }
    this.closed = true;
    if (this.halfCloseTimer !== null) {
      clearTimeout(this.halfCloseTimer);
    }
    if (this.idleTimer !== null) {
      clearInterval(this.idleTimer);
    }
    const b = this.backendSock;
    const native = this.relayImpl === 'native';
    if (this.spliced !== null) {
      // The addon's thread must let go of the fds before they are closed.
      this.splicedBytes = this.spliced.bytes();
      this.spliced.stop();
      this.spliced = null;
    }
    for (const dir of ['fromGuest', 'fromBackend'] as const) {
      const h = this.payload[dir];
      if (h !== null) {
        this.splicedBytes[dir === 'fromGuest' ? 'ab' : 'ba'] += h.bytes().ab;
        h.stop();
        this.payload[dir] = null;
      }
    }
    if (reason === 'done' && native) {
      // The native relay already forwarded both FINs and read both EOFs.
      this.guest.destroy();
      b?.destroy();
    } else if (reason === 'done') {
      // Orderly end of one side: let pipe() finish flushing the other.
      this.guest.end();
      b?.end();
      setTimeout(() => {
        this.guest.destroy();
        b?.destroy();
      }, 2000).unref();
    } else {
      if (!this.guest.destroyed) {
        this.guest.resetAndDestroy();
      }
      if (b !== null && !b.destroyed) {
        if (b.connecting) {
          b.destroy();
        } else {
          b.resetAndDestroy();
        }
      }
    }
    this.opts.memory?.remove(this);
    const cb = this.onClose;
    this.onClose = null;
    cb?.(this, reason);
  }
}
