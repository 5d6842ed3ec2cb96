/**
 * The relay of plain-forwarding sessions, native (splice(2) on the addon's
 * thread) and fallback (pipe() in JavaScript), from one table over real
 * sockets on 127.0.0.1: byte-exact 1 GiB each way at once (sha256),
 * half-close in both orders, a backend reset, and the per-session fallback
 * when the native relay refuses. The log names the implementations run.
 */
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import t from 'tap';
import { listen, sessionRig } from '../helpers/session-rig';
import type { Test } from 'tap';
import { Session } from '../../src/dataplane/proxy/session';
import type { CloseReason } from '../../src/dataplane/proxy/session';
import { KeepAliveTuning, NATIVE_FALLBACKS_COUNTER, NativeTcpTuning, SpliceRelayShim, loadNative, resumeReading, socketFd } from '../../src/native';
import type { NativeBinding } from '../../src/native/binding';
import { Counters } from '../../src/observability/counters';

const NATIVE = loadNative().binding;
const impls: { name: 'native' | 'fallback'; splice: SpliceRelayShim | null }[] = [
  ...(NATIVE !== null ? [{ name: 'native' as const, splice: new SpliceRelayShim(NATIVE) }] : []),
  { name: 'fallback', splice: null },
];
t.comment(`relays under test: ${impls.map((i) => i.name).join(', ')}${NATIVE === null ? ` (addon not loaded: ${String(loadNative().status.reason)})` : ''}`);

const GiB = 1024 ** 3;
const CHUNK = 1024 * 1024;

/** A deterministic pseudo-random byte stream (AES-128-CTR of zeros) and its running sha256. */
function source(seed: string, total: number): { next: () => Buffer | null; digest: () => string } {
  const key = crypto.createHash('sha256').update(seed).digest().subarray(0, 16);
  const c = crypto.createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(CHUNK);
  const h = crypto.createHash('sha256');
  let left = total;
  return {
    next: () => {
      if (left === 0) {
        return null;
      }
      const n = Math.min(CHUNK, left);
      left -= n;
      const b = c.update(n === CHUNK ? zeros : zeros.subarray(0, n));
      h.update(b);
      return b;
    },
    digest: () => h.digest('hex'),
  };
}

/** Writes the whole source with backpressure, then end(); resolves with its sha256. */
function send(sock: net.Socket, src: ReturnType<typeof source>): Promise<string> {
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    const pump = (): void => {
      for (;;) {
        const b = src.next();
        if (b === null) {
          sock.end(() => resolve(src.digest()));
          return;
        }
        if (!sock.write(b)) {
          sock.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
}

/** Reads until EOF; resolves with the byte count and sha256. */
function receive(sock: net.Socket): Promise<{ n: number; sha: string }> {
  return new Promise((resolve, reject) => {
    const h = crypto.createHash('sha256');
    let n = 0;
    sock.on('data', (d: Buffer) => {
      n += d.length;
      h.update(d);
    });
    sock.once('error', reject);
    sock.once('end', () => resolve({ n, sha: h.digest('hex') }));
  });
}

interface Rig {
  guest: net.Socket;
  /** The backend's side of the session's backend leg. */
  backendSide: Promise<net.Socket>;
  session: Promise<Session>;
  closed: Promise<CloseReason>;
  counters: Counters;
}

/** A backend, a front listener whose connections become Sessions, and one guest connection. */
async function rig(t: Test, splice: SpliceRelayShim | null): Promise<Rig> {
  let onBackend: (s: net.Socket) => void = () => undefined;
  const backendSide = new Promise<net.Socket>((r) => (onBackend = r));
  const backend = net.createServer({ allowHalfOpen: true }, (s) => {
    // The session resets this leg when it closes; the tests look at the guest.
    s.on('error', () => undefined);
    onBackend(s);
  });
  let onSession: (s: Session) => void = () => undefined;
  const session = new Promise<Session>((r) => (onSession = r));
  let onClosed: (r: CloseReason) => void = () => undefined;
  const closed = new Promise<CloseReason>((r) => (onClosed = r));
  const { guest, counters } = await sessionRig(t, backend, { splice }, { onSession, onClosed: (_s, reason) => onClosed(reason) });
  return { guest, backendSide, session, closed, counters };
}

for (const impl of impls) {
  t.test(`Session relay (${impl.name}) moves 1 GiB each way at once, byte-exact (sha256)`, async (t) => {
    const r = await rig(t, impl.splice);
    const b = await r.backendSide;
    const t0 = Date.now();
    const [sentUp, gotUp, sentDown, gotDown] = await Promise.all([
      send(r.guest, source('up', GiB)),
      receive(b),
      send(b, source('down', GiB)),
      receive(r.guest),
    ]);
    const s = await r.session;
    t.equal(gotUp.n, GiB, 'backend got 1 GiB');
    t.equal(gotUp.sha, sentUp, 'guest -> backend sha256');
    t.equal(gotDown.n, GiB, 'guest got 1 GiB');
    t.equal(gotDown.sha, sentDown, 'backend -> guest sha256');
    t.equal(await r.closed, 'done');
    t.equal(s.relayImpl, impl.name, `relayed by the ${impl.name} relay`);
    t.strictSame(s.bytes(), { up: GiB, down: GiB }, 'byte counts');
    t.strictSame(r.counters.snapshot(), {}, 'no fallbacks, no errors');
    t.comment(`${impl.name}: 2 GiB through in ${Date.now() - t0} ms (with generation and hashing)`);
  });

  for (const first of ['guest', 'backend'] as const) {
    t.test(`Session relay (${impl.name}) forwards a half-close from the ${first} and relays the answer after it`, async (t) => {
      const r = await rig(t, impl.splice);
      const b = await r.backendSide;
      const [closer, other] = first === 'guest' ? [r.guest, b] : [b, r.guest];
      const otherGot = receive(other);
      closer.end('request');
      other.resume();
      const got = await otherGot; // EOF arrived: the FIN was forwarded
      t.equal(got.n, 'request'.length);
      const closerGot = receive(closer);
      other.end('answer after the FIN');
      t.equal((await closerGot).n, 'answer after the FIN'.length, 'the half-open direction still carries data');
      t.equal(await r.closed, 'done');
    });
  }

  t.test(`Session relay (${impl.name}) resets the guest when the backend resets`, async (t) => {
    const r = await rig(t, impl.splice);
    const b = await r.backendSide;
    const guestErr = new Promise<string>((resolve) => {
      r.guest.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? '?'));
      r.guest.once('close', () => resolve('closed'));
    });
    r.guest.write('x'.repeat(1000));
    await new Promise((res) => b.once('data', res));
    b.resetAndDestroy();
    r.guest.resume();
    t.equal(await guestErr, 'ECONNRESET', 'the guest sees a reset');
    t.match(await r.closed, /^(backend-error|connect-failed)$/);
  });
}

t.test('Session falls back to the JavaScript relay, and counts it, when the native relay refuses a session', async (t) => {
  // The addon's constructor failing (as with EMFILE): a binding whose
  // SpliceRelay throws; nothing else of it is called.
  const refusing = new SpliceRelayShim({
    SpliceRelay: class {
      constructor() {
        throw Object.assign(new Error('pipe2: Too many open files'), { code: 'EMFILE' });
      }
    },
  } as unknown as NativeBinding);
  const r = await rig(t, refusing);
  const b = await r.backendSide;
  const got = receive(b);
  const sent = await send(r.guest, source('fb', 8 * CHUNK));
  t.equal((await got).sha, sent, 'the bytes went through JavaScript');
  t.equal((await r.session).relayImpl, 'fallback');
  t.equal(r.counters.get(NATIVE_FALLBACKS_COUNTER, { shim: 'spliceRelay', code: 'EMFILE' }), 1, 'counted');
});

t.test('Session relays in JavaScript, and counts it, beyond the splice relay limit; the slot frees when a relay ends', { skip: NATIVE === null ? 'addon not loaded' : false }, async (t) => {
  if (NATIVE === null) {
    return;
  }
  const shim = new SpliceRelayShim(NATIVE, 1);
  const first = await rig(t, shim);
  (await first.backendSide).on('error', () => undefined);
  const s1 = await first.session;
  while (s1.relayImpl === null) {
    await new Promise((r) => setTimeout(r, 5));
  }
  t.equal(s1.relayImpl, 'native', 'the first session splices');
  t.equal(shim.running(), 1);
  const second = await rig(t, shim);
  const b2 = await second.backendSide;
  const got = receive(b2);
  const sent = await send(second.guest, source('limit', 4 * CHUNK));
  t.equal((await got).sha, sent, 'the second session still relays, byte-exact');
  t.equal((await second.session).relayImpl, 'fallback', 'in JavaScript');
  t.equal(second.counters.get(NATIVE_FALLBACKS_COUNTER, { shim: 'spliceRelay', code: 'SGW_ERR_NATIVE_LIMIT' }), 1, 'counted');
  s1.close('shutdown');
  t.equal(shim.running(), 0, 'the slot is free again');
});

t.test('SpliceRelayShim with a byte budget moves exactly that many bytes, then Node reads the rest', { skip: NATIVE === null ? 'addon not loaded' : false }, async (t) => {
  if (NATIVE === null) {
    return;
  }
  // Two connected pairs: x -> a ==relay==> b -> y.
  const pair = async (): Promise<[net.Socket, net.Socket]> => {
    const srv = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
    const port = await listen(srv);
    const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
    const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    await new Promise((r) => c.once('connect', r));
    const s = await accepted;
    srv.close();
    t.teardown(() => {
      c.destroy();
      s.destroy();
    });
    return [c, s];
  };
  const [x, a] = await pair();
  const [b, y] = await pair();
  const BUDGET = 3 * CHUNK + 17;
  const data = crypto.randomBytes(4 * CHUNK);
  const done = new Promise<{ ab: number; reason: string }>((resolve) => {
    new SpliceRelayShim(NATIVE).start(a, b, { ab: BUDGET, ba: 0 }, (e) => {
      if (e.type === 'done') {
        resolve(e);
      }
    });
  });
  x.end(data);
  const yGot = receive(y);
  y.resume();
  const d = await done;
  t.equal(d.reason, 'complete');
  t.equal(d.ab, BUDGET, 'exactly the budget');
  // JavaScript takes over at the boundary: the rest arrives through 'data'.
  const rest: Buffer[] = [];
  a.on('data', (c: Buffer) => rest.push(c));
  a.once('end', () => b.end());
  resumeReading(a);
  a.on('data', (c: Buffer) => b.write(c));
  const got = await yGot;
  t.equal(Buffer.concat(rest).length, data.length - BUDGET, 'Node read the bytes after the budget');
  t.equal(got.n, data.length);
  t.equal(got.sha, crypto.createHash('sha256').update(data).digest('hex'), 'byte-exact across the hand-back');
});

t.test('TCP tuning: native sets TCP_USER_TIMEOUT and keepalive probes; the fallback keepalive only', async (t) => {
  const srv = net.createServer();
  const port = await listen(srv);
  const c = net.connect(port, '127.0.0.1');
  await new Promise((r) => c.once('connect', r));
  t.teardown(() => {
    c.destroy();
    srv.close();
  });
  new KeepAliveTuning().apply(c, { userTimeoutMs: 20_000, keepAliveMs: 7000 });
  if (NATIVE === null) {
    t.pass('fallback applied (cannot read socket options without the addon)');
    return;
  }
  const fd = socketFd(c);
  t.equal(NATIVE.getTcpUserTimeout(fd), 0, 'fallback: no TCP_USER_TIMEOUT');
  t.match(NATIVE.getKeepAlive(fd), { enabled: true, idleS: 7 }, 'fallback: keepalive after keepAlive');
  new NativeTcpTuning(NATIVE).apply(c, { userTimeoutMs: 20_000, keepAliveMs: 7000 });
  t.equal(NATIVE.getTcpUserTimeout(fd), 20_000, 'native: TCP_USER_TIMEOUT');
  t.strictSame(NATIVE.getKeepAlive(fd), { enabled: true, idleS: 7, intervalS: 5, count: 4 }, 'native: four probes within the user timeout');
});
