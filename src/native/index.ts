/**
 * The TypeScript side of native-shims/: the only module that loads the
 * addon (once) and reaches a Node socket's file descriptor.
 *
 * Every shim is an interface with two implementations, the native one and
 * a pure-TypeScript fallback that does the same job another way:
 *
 * | shim           | native                       | fallback                                        |
 * |----------------|------------------------------|-------------------------------------------------|
 * | originalDst    | getsockopt(SO_ORIGINAL_DST)  | the capture port names the destination (ADR 0003) |
 * | sdNotify       | AF_UNIX datagram             | the systemd-notify command (daemon/notify.ts)   |
 * | tcpUserTimeout | TCP_USER_TIMEOUT + keepalive | keepalive only (Node's setKeepAlive)            |
 * | spliceRelay    | splice(2) on its own thread  | the JavaScript relay (dataplane/proxy/session.ts) |
 * | egressSocket   | SO_BINDTODEVICE + bind       | net.connect from the source IP, routed by the `from` rule (unique source IPs only, ADR 0011) |
 *
 * `SGW_NATIVE=off` forces every fallback; `SGW_NATIVE_ADDON` names another
 * .node file (tests use a missing one). A native call that fails for one
 * connection or message throws NativeError; the caller falls back for that
 * one use and counts it (sharegw_native_fallbacks_total{shim,code}).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { NativeError } from '../errors';
import type { Counters } from '../observability/counters';
import type { Logger } from '../observability/logger';
import { ABI_VERSION } from './binding';
import type { NativeBinding, RawRelayEvent, RawSpliceRelay } from './binding';

/** The shims, in the order status shows them. */
export const SHIMS = ['originalDst', 'sdNotify', 'tcpUserTimeout', 'spliceRelay', 'egressSocket'] as const;
export type ShimName = (typeof SHIMS)[number];
export type Impl = 'native' | 'fallback';

/** Counter of uses that fell back from a native shim at run time, by shim and code. */
export const NATIVE_FALLBACKS_COUNTER = 'sharegw_native_fallbacks_total';

/** Where the install script (scripts/build-native.mjs) puts the addon, from dist/src/native/. */
export const DEFAULT_ADDON_PATH = path.resolve(__dirname, '..', '..', '..', 'native-shims', 'build', 'Release', 'sharegw_native.node');

/** Which implementation is active, and why not native when it is not. */
export interface NativeStatus {
  loaded: boolean;
  path: string;
  /** Why the addon is not in use (null when loaded). */
  reason: string | null;
  shims: Record<ShimName, Impl>;
}

interface Loaded {
  binding: NativeBinding | null;
  status: NativeStatus;
}

let cached: Loaded | null = null;
let logged = false;

/**
 * Loads the addon, once per process (later calls return the first
 * result). Only "not there" and "not loadable here" (missing file, bad ELF,
 * other ABI) mean fallbacks; any other load error is a bug and is thrown.
 */
export function loadNative(env: NodeJS.ProcessEnv = process.env): Loaded {
  if (cached === null) {
    cached = tryLoad(env);
  }
  return cached;
}

/** Loads without caching: for tests that compare a present and an absent addon. */
export function tryLoad(env: NodeJS.ProcessEnv): Loaded {
  const file = env['SGW_NATIVE_ADDON'] !== undefined && env['SGW_NATIVE_ADDON'] !== '' ? path.resolve(env['SGW_NATIVE_ADDON']) : DEFAULT_ADDON_PATH;
  const off = (reason: string): Loaded => ({ binding: null, status: { loaded: false, path: file, reason, shims: allAs('fallback') } });
  if (env['SGW_NATIVE'] === 'off') {
    return off('SGW_NATIVE=off');
  }
  let b: NativeBinding;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    b = require(file) as NativeBinding;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'MODULE_NOT_FOUND') {
      return off(`addon not built (${file} missing)`);
    }
    if (e.code === 'ERR_DLOPEN_FAILED' && /invalid ELF|wrong ELF class|file too short|cannot open shared object/i.test(e.message)) {
      return off(`addon not loadable here: ${e.message.split('\n')[0] ?? ''}`);
    }
    throw err;
  }
  // The smoke call: an addon of another ABI, or one whose calls fail, is
  // not trusted (mediasoup runs its worker binary once for the same reason).
  try {
    if (b.abiVersion !== ABI_VERSION) {
      return off(`addon ABI ${String(b.abiVersion)}, expected ${ABI_VERSION}`);
    }
    // No such fd: the call must get as far as the kernel and say EBADF.
    b.originalDst(0x7fffffff);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EBADF') {
      return off(`addon smoke call failed: ${(err as Error).message}`);
    }
  }
  return { binding: b, status: { loaded: true, path: file, reason: null, shims: allAs('native') } };
}

function allAs(impl: Impl): Record<ShimName, Impl> {
  return { originalDst: impl, sdNotify: impl, tcpUserTimeout: impl, spliceRelay: impl, egressSocket: impl };
}

/** Which implementation each shim uses in this process. */
export function nativeStatus(): NativeStatus {
  return loadNative().status;
}

/** Logs once per process which implementations are active (warn when on fallbacks). */
export function logNativeOnce(log: Logger): void {
  if (logged) {
    return;
  }
  logged = true;
  const s = nativeStatus();
  if (s.loaded) {
    log.info({ addon: s.path, shims: s.shims }, 'native shims loaded');
  } else {
    log.warn({ reason: s.reason, shims: s.shims }, 'native shims not loaded; running on the TypeScript fallbacks');
  }
}

/** Counts one use that fell back from a native shim. */
export function countFallback(counters: Counters | undefined, shim: ShimName, err: unknown): void {
  const code = err instanceof NativeError ? (err.errno ?? err.code) : ((err as NodeJS.ErrnoException).code ?? 'ERR');
  counters?.inc(NATIVE_FALLBACKS_COUNTER, { shim, code });
}

// --- Node internals: a socket's libuv handle -------------------------------

interface HandleInternals {
  fd?: number;
  reading?: boolean;
  readStop?: () => number;
  readStart?: () => number;
}

function handleOf(sock: net.Socket): HandleInternals | null {
  return (sock as unknown as { _handle?: HandleInternals | null })._handle ?? null;
}

/** The socket's file descriptor (Node internals: `_handle.fd`). Throws SGW_ERR_NATIVE_NO_FD. */
export function socketFd(sock: net.Socket): number {
  const fd = handleOf(sock)?.fd;
  if (typeof fd !== 'number' || fd < 0 || sock.destroyed) {
    throw new NativeError('SGW_ERR_NATIVE_NO_FD', 'socket has no file descriptor (closed, or not a TCP socket)');
  }
  return fd;
}

/**
 * Stops libuv reading from the socket, so that the native thread alone reads
 * it. Node restarts a stopped handle whenever its stream wants more bytes
 * (read-ahead after a push, `read(0)` after connect) if `reading` is false:
 * the flag is left true, so Node leaves the handle alone until
 * resumeReading().
 */
function stopReading(sock: net.Socket): void {
  sock.pause();
  const h = handleOf(sock);
  if (h?.readStop !== undefined) {
    if (h.reading === true) {
      h.readStop();
    }
    h.reading = true;
  }
}

/**
 * Gives a socket back to Node after the native relay moved its budget:
 * libuv reads it again and 'data' events resume.
 */
export function resumeReading(sock: net.Socket): void {
  const h = handleOf(sock);
  if (h?.readStart !== undefined && !sock.destroyed) {
    h.reading = true;
    h.readStart();
  }
  sock.resume();
}

function nativeCall<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new NativeError('SGW_ERR_NATIVE_CALL', `${what}: ${e.message}`, { cause: err, ...(typeof e.code === 'string' ? { errno: e.code } : {}) });
  }
}

// --- originalDst -----------------------------------------------------------

/** A connection's destination before the kernel redirected it. */
export interface Destination {
  address: string;
  port: number;
}

/** Where a redirected connection was going. */
export interface OriginalDst {
  readonly impl: Impl;
  /** The original destination, or null when this implementation cannot tell (not redirected, unknown port). */
  lookup(sock: net.Socket): Destination | null;
}

/** getsockopt(SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST) on the accepted socket. */
export class NativeOriginalDst implements OriginalDst {
  readonly impl = 'native' as const;
  constructor(private readonly b: NativeBinding) {}
  lookup(sock: net.Socket): Destination | null {
    const fd = socketFd(sock);
    try {
      const d = this.b.originalDst(fd);
      return { address: d.address, port: d.port };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        return null;
      }
      return nativeCall('originalDst', () => {
        throw err;
      });
    }
  }
}

/**
 * ADR 0003: the kernel DNATs each destination to its own local port, so the
 * (local address, local port) the connection arrived on names it.
 */
export class CapturePortOriginalDst implements OriginalDst {
  readonly impl = 'fallback' as const;
  constructor(private readonly byLocal: (address: string, port: number) => Destination | undefined) {}
  lookup(sock: net.Socket): Destination | null {
    const a = sock.localAddress;
    const p = sock.localPort;
    if (a === undefined || p === undefined) {
      return null;
    }
    return this.byLocal(a.startsWith('::ffff:') ? a.slice(7) : a, p) ?? null;
  }
}

// --- sdNotify ----------------------------------------------------------------

/** Delivers one sd_notify message (assignments, one per line) to NOTIFY_SOCKET. */
export interface NotifyTransport {
  readonly impl: Impl;
  send(socket: string, assignments: readonly string[]): Promise<void>;
}

/** One AF_UNIX datagram from this process (the kernel adds our credentials). */
export class NativeNotifyTransport implements NotifyTransport {
  readonly impl = 'native' as const;
  constructor(private readonly b: NativeBinding) {}
  send(socket: string, assignments: readonly string[]): Promise<void> {
    try {
      nativeCall('sdNotify', () => this.b.sdNotify(socket, assignments.join('\n')));
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }
}

/** The native transport when the addon is loaded, else null (the caller's fallback applies). */
export function nativeNotifyTransport(): NotifyTransport | null {
  const b = loadNative().binding;
  return b === null ? null : new NativeNotifyTransport(b);
}

// --- tcpUserTimeout ----------------------------------------------------------

export interface TcpTuningOptions {
  /** TCP_USER_TIMEOUT in ms; 0 leaves the kernel default. */
  userTimeoutMs: number;
  /** Idle time before the first keepalive probe, in ms. */
  keepAliveMs: number;
}

/** Detection of a dead peer on one leg. */
export interface TcpTuning {
  readonly impl: Impl;
  apply(sock: net.Socket, o: TcpTuningOptions): void;
}

/**
 * Keepalive probe spacing: with TCP_USER_TIMEOUT set, Linux drops an idle
 * connection once probes went unanswered for that long (tcp(7)), so four
 * probes fit in it; without it, four probes after the idle time.
 */
export function keepAliveProbes(o: TcpTuningOptions): { idleS: number; intervalS: number; count: number } {
  const idleS = Math.min(32767, Math.max(1, Math.round(o.keepAliveMs / 1000)));
  const spanS = o.userTimeoutMs > 0 ? o.userTimeoutMs / 1000 : idleS;
  return { idleS, intervalS: Math.min(32767, Math.max(1, Math.floor(spanS / 4))), count: 4 };
}

/** Fallback: Node's keepalive (first probe after keepAliveMs); unacknowledged data waits for the retransmission limit. */
export class KeepAliveTuning implements TcpTuning {
  readonly impl = 'fallback' as const;
  apply(sock: net.Socket, o: TcpTuningOptions): void {
    sock.setKeepAlive(true, o.keepAliveMs);
  }
}

/** TCP_USER_TIMEOUT plus keepalive idle/interval/count. */
export class NativeTcpTuning implements TcpTuning {
  readonly impl = 'native' as const;
  constructor(private readonly b: NativeBinding) {}
  apply(sock: net.Socket, o: TcpTuningOptions): void {
    sock.setKeepAlive(true, o.keepAliveMs);
    const fd = socketFd(sock);
    const k = keepAliveProbes(o);
    nativeCall('tcpUserTimeout', () => {
      if (o.userTimeoutMs > 0) {
        this.b.setTcpUserTimeout(fd, Math.min(o.userTimeoutMs, 0x7fffffff));
      }
      this.b.setKeepAlive(fd, k.idleS, k.intervalS, k.count);
    });
  }
}

/**
 * Applies the active tuning; when the native one fails for this socket,
 * counts it and applies the fallback. Returns the implementation used.
 */
export function tuneSocket(sock: net.Socket, o: TcpTuningOptions, counters?: Counters, tuning: TcpTuning = activeTcpTuning()): Impl {
  if (tuning.impl === 'native') {
    try {
      tuning.apply(sock, o);
      return 'native';
    } catch (err) {
      countFallback(counters, 'tcpUserTimeout', err);
    }
  }
  new KeepAliveTuning().apply(sock, o);
  return 'fallback';
}

/** The tuning this process uses. */
export function activeTcpTuning(): TcpTuning {
  const b = loadNative().binding;
  return b === null ? new KeepAliveTuning() : new NativeTcpTuning(b);
}

// --- spliceRelay -------------------------------------------------------------

/** What the relay reports. */
export type SpliceEvent = RawRelayEvent;

/** A running native relay. */
export interface SpliceHandle {
  /** Bytes delivered so far: a->b, b->a. */
  bytes(): { ab: number; ba: number };
  /** Stops and joins the thread; for teardown (bytes in flight are lost). */
  stop(): void;
}

/** Byte budget per direction: -1 until EOF, 0 not relayed natively, n exactly n bytes. */
export interface SpliceBudget {
  ab: number;
  ba: number;
}

/**
 * The zero-copy relay between two connected sockets. Its fallback is the
 * JavaScript relay in dataplane/proxy/session.ts (pipe() or the protocol
 * transform); this interface is only the native side.
 */
export class SpliceRelayShim {
  readonly impl = 'native' as const;
  private active = 0;

  /**
   * `max`: relays running at once. Each holds a thread and two pipes (five
   * descriptors beside the two sockets); sessions beyond it relay in
   * JavaScript (SGW_ERR_NATIVE_LIMIT, counted), so thousands of idle NFS
   * connections cost neither threads nor descriptors.
   */
  constructor(
    private readonly b: NativeBinding,
    readonly max = DEFAULT_MAX_SPLICE_RELAYS,
  ) {}

  /** Relays running now. */
  running(): number {
    return this.active;
  }

  /**
   * Takes over the relayed directions of `a` and `b`: Node stops reading the
   * source sockets, the addon's thread moves the bytes. For each relayed
   * direction nothing may wait in Node, neither read from the source nor
   * written to the destination (SGW_ERR_NATIVE_BUFFERED); else nothing is
   * changed and it throws. Node may go on writing to a source socket (the
   * other direction) meanwhile, never to a destination. After 'done' (or stop()) the sockets
   * are Node's again: close them, or resumeReading() after a budget.
   */
  start(a: net.Socket, b: net.Socket, budget: SpliceBudget, onEvent: (e: SpliceEvent) => void): SpliceHandle {
    if (this.active >= this.max) {
      throw new NativeError('SGW_ERR_NATIVE_LIMIT', `${this.max} splice relays run already`);
    }
    const fa = socketFd(a);
    const fb = socketFd(b);
    // Per relayed direction: nothing of the source waits in Node's read
    // buffer, nothing of Node's writes waits for the destination.
    const dirs: [net.Socket, net.Socket, number][] = [
      [a, b, budget.ab],
      [b, a, budget.ba],
    ];
    for (const [src, dst, n] of dirs) {
      if (n !== 0 && (src.readableLength > 0 || dst.writableLength > 0 || src.connecting || dst.connecting)) {
        throw new NativeError('SGW_ERR_NATIVE_BUFFERED', 'socket has bytes buffered in Node or is not connected yet');
      }
    }
    const stopped: { s: net.Socket; reading: boolean; paused: boolean }[] = [];
    for (const [s, n] of [
      [a, budget.ab],
      [b, budget.ba],
    ] as const) {
      if (n !== 0) {
        stopped.push({ s, reading: handleOf(s)?.reading === true, paused: s.isPaused() });
        stopReading(s);
      }
    }
    let finished = false;
    const finish = (): void => {
      if (!finished) {
        finished = true;
        this.active--;
      }
    };
    let r: RawSpliceRelay;
    try {
      r = nativeCall(
        'spliceRelay',
        () =>
          new this.b.SpliceRelay(fa, fb, budget.ab, budget.ba, (e) => {
            if (e.type === 'done') {
              finish();
            }
            onEvent(e);
          }),
      );
    } catch (err) {
      // Not started: each socket reads (or not) as it did before.
      for (const x of stopped) {
        const h = handleOf(x.s);
        if (h !== null) {
          h.reading = x.reading;
        }
        if (x.reading && h?.readStart !== undefined && !x.s.destroyed) {
          h.readStart();
        }
        if (!x.paused) {
          x.s.resume();
        }
      }
      throw err;
    }
    this.active++;
    return {
      bytes: () => {
        const [ab, ba] = r.bytes();
        return { ab, ba };
      },
      stop: () => {
        r.stop();
        finish();
      },
    };
  }
}

/** Splice relays at once, by default (see SpliceRelayShim). */
export const DEFAULT_MAX_SPLICE_RELAYS = 512;

let sharedSplice: SpliceRelayShim | null | undefined;

/** The process's splice relay (one limit for all sessions) when the addon is loaded, else null (use the JavaScript relay). */
export function activeSpliceRelay(): SpliceRelayShim | null {
  if (sharedSplice === undefined) {
    const b = loadNative().binding;
    sharedSplice = b === null ? null : new SpliceRelayShim(b);
  }
  return sharedSplice;
}

// --- egressSocket ----------------------------------------------------------

/**
 * A TCP socket for the backend leg of a domain with its own egress, bound
 * to the egress device and the domain's source IP (and `port`, 0 for any),
 * not yet connected: the caller connects it. Null when the addon is not
 * loaded (the caller then uses net.connect with localAddress, which the
 * `from <sourceIp>` rule routes; only possible when no other domain shares
 * the source IP). Throws NativeError (errno EADDRINUSE for a port taken on
 * that device, ENODEV for a missing device, ...).
 */
export function egressSocket(device: string, address: string, port: number): net.Socket | null {
  const b = loadNative().binding;
  if (b === null) {
    return null;
  }
  const fd = nativeCall('egressSocket', () => b.egressSocket(device, address, port));
  try {
    // manualStart: no read(0) on a socket that is not connected yet (Node
    // starts reading after connect); the socket owns and closes the fd.
    const opts = { fd, allowHalfOpen: true, readable: true, writable: true, manualStart: true } as net.SocketConstructorOpts;
    return new net.Socket(opts);
  } catch (err) {
    closeFd(fd);
    throw new NativeError('SGW_ERR_NATIVE_CALL', `egressSocket: ${(err as Error).message}`, { cause: err });
  }
}

function closeFd(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already gone
  }
}
