/**
 * Issue 14, finding 2: a guest that does not read while the backend's reply
 * is paused mid-record, and floods calls the gateway answers itself (ROFS
 * on a read-only grant), must not grow the proxy's memory without bound.
 * Over real sockets on 127.0.0.1 with the real RpcStream: the session stops
 * reading the guest while it holds more than its connection budget and
 * reads again once the answers drained; the global budget sheds the largest
 * session and the plane refuses new connections while over it.
 */
import * as net from 'node:net';
import t from 'tap';
import { frontRig } from '../helpers/session-rig';
import { MemoryBudget } from '../../src/dataplane/proxy/budget';
import type { BudgetConsumer } from '../../src/dataplane/proxy/budget';
import { ProxyPlane } from '../../src/dataplane/proxy/plane';
import type { Session } from '../../src/dataplane/proxy/session';
import type { DesiredState } from '../../src/model/desired';
import { Counters } from '../../src/observability/counters';
import { createLogger } from '../../src/observability/logger';
import { BUFFER_OVERHEAD } from '../../src/protocols/relay';
import { RpcStream } from '../../src/protocols/rpc-stream';
import { SmbStream } from '../../src/protocols/smb-stream';

const LAST = 0x80000000;

/** One record as a single last fragment. */
function frame(body: Buffer): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE((LAST | body.length) >>> 0, 0);
  return Buffer.concat([p, body]);
}

/** An NFSv3 call with AUTH_SYS root (RFC 5531 §9, RFC 1813). */
function call3(xid: number, proc: number, args: Buffer): Buffer {
  const h = Buffer.alloc(40 + 20);
  let o = 0;
  for (const v of [xid, 0, 2, 100003, 3, proc, 1, 20, 0, 0]) {
    h.writeUInt32BE(v, o);
    o += 4;
  }
  // machine name "" (length 0 above), uid 0, gid 0, no gids; then AUTH_NONE verifier.
  o = 40;
  for (const v of [0, 0, 0, 0, 0]) {
    h.writeUInt32BE(v, o);
    o += 4;
  }
  return frame(Buffer.concat([h, args]));
}

/** WRITE3args with a made-up 32-byte handle and no data: the gateway answers it on an ro grant. */
const WRITE_ARGS = Buffer.concat([Buffer.from([0, 0, 0, 32]), Buffer.alloc(32, 7), Buffer.alloc(8 + 4 + 4 + 4)]);

/** `n` WRITE calls back to back, xids from `xid`. */
function writes(xid: number, n: number): Buffer {
  return Buffer.concat(Array.from({ length: n }, (_, i) => call3(xid + i, 7, WRITE_ARGS)));
}

/** Reads RPC replies from a socket and counts the records. */
function countReplies(sock: net.Socket): { records: () => number } {
  let buf = Buffer.alloc(0);
  let n = 0;
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 4) {
      const len = buf.readUInt32BE(0) & 0x7fffffff;
      if (buf.length < 4 + len) {
        break;
      }
      buf = buf.subarray(4 + len);
      n++;
    }
  });
  return { records: () => n };
}

async function until(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) {
      throw new Error(`timed out waiting for: ${what}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A backend that answers the first call with the head of a 1 MiB reply
 * record and then stops mid-record until `finish()` sends the rest.
 */
function stallingBackend(): { server: net.Server; finish: () => void; started: () => boolean } {
  let sock: net.Socket | null = null;
  let replied = false;
  const server = net.createServer((s) => {
    s.on('error', () => undefined);
    s.once('data', () => {
      sock = s;
      const head = Buffer.alloc(4 + 1024);
      head.writeUInt32BE((LAST | (1024 * 1024)) >>> 0, 0);
      s.write(head);
      replied = true;
    });
  });
  return { server, started: () => replied, finish: () => sock?.write(Buffer.alloc(1024 * 1024 - 1024)) };
}

const roPolicy = (): RpcStream => new RpcStream({ readOnly: true, identity: null, exports: null });

t.test('Session.account() stops reading the guest while queued answers exceed connectionBudget, and reads again once they drain', async (t) => {
  const BUDGET = 256 * 1024;
  const be = stallingBackend();
  let session: Session | null = null;
  const rig = await frontRig(t, be.server, { transform: roPolicy(), connectionBudget: BUDGET }, { onSession: (s) => (session = s) });
  const guest = await rig.guest();
  guest.pause(); // reads nothing yet
  guest.write(call3(1, 1, Buffer.from([0, 0, 0, 32, ...Buffer.alloc(32, 7)]))); // GETATTR: forwarded
  await until('the backend is mid-reply', be.started);
  // 24 MB of WRITE calls, each answered ROFS by the gateway and queued
  // behind the reply the guest is not reading.
  const calls = 200_000;
  const flood = writes(100, calls);
  guest.write(flood);
  const s = session as unknown as Session;
  await until('the session spends its budget', () => s.budgetPauses > 0);
  await until('the guest leg is paused', () => s.guest.isPaused());
  let peak = 0;
  for (let i = 0; i < 25; i++) {
    peak = Math.max(peak, s.heldBytes());
    await new Promise((r) => setTimeout(r, 20));
  }
  // One chunk of calls may be answered past the budget before it is checked.
  t.ok(peak > BUDGET / 2 && peak <= BUDGET + 512 * 1024, `held bytes stay near the budget (${peak}, budget ${BUDGET})`);
  t.ok(s.bytes().up < flood.length, `the gateway stopped reading the guest (${s.bytes().up} of ${flood.length} bytes read)`);
  t.equal(rig.counters.get('sharegw_proxy_budget_pauses_total'), s.budgetPauses, 'counted');

  // The backend ends its reply and the guest reads: every call is answered.
  const replies = countReplies(guest);
  be.finish();
  guest.resume();
  await until('every call answered', () => replies.records() === calls + 1, 30_000);
  t.equal(replies.records(), calls + 1, 'the reply, then an answer for each WRITE');
  t.equal(s.bytes().up, flood.length + 100, 'the whole flood was read once the answers drained');
  t.ok(s.budgetPauses >= 1, `paused and released ${s.budgetPauses} time(s)`);
  t.notOk(s.guest.isPaused(), 'and the guest is read again');
});

t.test('Session: without a connection budget the same flood is held in the transform (the bug this guards)', async (t) => {
  const be = stallingBackend();
  let session: Session | null = null;
  const rig = await frontRig(t, be.server, { transform: roPolicy() }, { onSession: (s) => (session = s) });
  const guest = await rig.guest();
  guest.pause();
  guest.write(call3(1, 1, Buffer.from([0, 0, 0, 32, ...Buffer.alloc(32, 7)])));
  await until('the backend is mid-reply', be.started);
  const flood = writes(100, 20_000);
  guest.write(flood);
  const s = session as unknown as Session;
  await until('the flood is read', () => s.bytes().up >= flood.length);
  t.ok(s.heldBytes() > 20_000 * 36, `every answer is queued (${s.heldBytes()} bytes held)`);
  t.equal(s.budgetPauses, 0);
});

t.test('RpcStream.buffered() counts the answers queued behind a reply mid-record, each with its overhead, until the boundary', async (t) => {
  const st = roPolicy();
  t.equal(st.buffered(), 0);
  const fwd = st.fromGuest(call3(1, 1, Buffer.from([0, 0, 0, 32, ...Buffer.alloc(32, 7)])));
  t.equal(fwd.toBackend.length > 0, true, 'GETATTR goes on');
  const head = Buffer.alloc(4 + 100);
  head.writeUInt32BE((LAST | 1000) >>> 0, 0);
  st.fromBackend(head);
  const r = st.fromGuest(writes(10, 10));
  t.equal(r.answered?.length, 10, 'ten WRITEs answered ROFS');
  t.same(r.toGuest, [], 'none sent: the reply is mid-record');
  const one = st.buffered() / 10;
  t.ok(one > BUFFER_OVERHEAD && one < BUFFER_OVERHEAD + 100, `each queued answer counts its bytes and ${BUFFER_OVERHEAD} more (${one})`);
  const rest = st.fromBackend(Buffer.alloc(900));
  t.equal(rest.toGuest.length, 11, 'the rest of the reply, then the ten answers');
  t.equal(st.buffered(), 0, 'nothing held after the boundary');
});

t.test('SmbStream.buffered() is 0 between frames and counts a head held for its decision', async (t) => {
  const st = new SmbStream({ minDialect: 0x0300, encryptionRequired: false, shares: new Set(['acme']) });
  t.equal(st.buffered(), 0);
  // A direct-TCP header announcing 100 bytes, then the protocol id: held until decided.
  st.fromGuest(Buffer.from([0, 0, 0, 100, 0xfe]));
  t.ok(st.buffered() >= 5, `held (${st.buffered()})`);
});

/** A consumer that records what the budget asked of it. */
class Fake implements BudgetConsumer {
  shedNow = false;
  calls: boolean[] = [];
  shed(on: boolean): void {
    this.shedNow = on;
    this.calls.push(on);
  }
}

t.test('MemoryBudget.update() sheds the largest consumers first, any that grows while over, and releases all at low water', async (t) => {
  const shedLog: [number, number][] = [];
  const b = new MemoryBudget<Fake>(1000, (_c, n, total) => shedLog.push([n, total]));
  const [small, big, mid, late] = [new Fake(), new Fake(), new Fake(), new Fake()];
  b.update(small, 100);
  b.update(big, 500);
  b.update(mid, 300);
  t.equal(b.total, 900);
  t.notOk(b.over);
  t.equal(b.shedCount, 0, 'under the limit nothing is shed');
  b.update(late, 200); // 1100: 350 over low water (750)
  t.ok(b.over);
  t.same([big.shedNow, mid.shedNow, late.shedNow, small.shedNow], [true, false, false, false], 'the largest alone covers the excess');
  t.same(shedLog, [[500, 1100]]);
  b.update(small, 150); // grows while over: shed too
  t.ok(small.shedNow, 'a consumer growing while over is shed');
  b.update(mid, 250); // shrinks: left alone
  t.notOk(mid.shedNow);
  b.update(big, 200); // 800: under the limit, over low water
  t.notOk(b.over);
  t.ok(big.shedNow && small.shedNow, 'still shed between low water and the limit (hysteresis)');
  b.remove(late); // 600
  t.same([big.shedNow, small.shedNow], [false, false], 'released at low water');
  t.equal(b.total, 600);
  t.equal(b.shedCount, 0);
  b.update(big, 2000);
  t.ok(big.shedNow, 'one consumer over the limit alone');
  b.remove(big);
  t.equal(b.total, 400);
  t.same(big.calls, [true, false, true], 'a removed consumer is not called again');
});

t.test('ProxyPlane: over proxy.memoryBudget the largest session is shed and new connections are refused, until it drains', async (t) => {
  const be = stallingBackend();
  const backendPort = await new Promise<number>((r) => be.server.listen(0, '127.0.0.1', () => r((be.server.address() as net.AddressInfo).port)));
  t.teardown(() => be.server.close());
  const counters = new Counters();
  const from = 47000 + (process.pid % 1000) * 2;
  const plane = new ProxyPlane(
    {
      portRange: { from, to: from + 1 },
      connectTimeoutMs: 2000,
      idleTimeoutMs: 0,
      keepAliveMs: 10_000,
      userTimeoutMs: 0,
      drainTimeoutMs: 0,
      maxConnectionsPerGuest: 16,
      connectionBudget: 0,
      memoryBudget: 1024 * 1024,
    },
    createLogger('silent'),
    counters,
  );
  t.teardown(() => plane.close(0));
  const desired: DesiredState = {
    dataplane: 'proxy',
    guests: [
      {
        key: 'acme/g1',
        domain: 'acme',
        instance: 'g1',
        iface: 'lo',
        guestIp: '127.0.0.1',
        gatewayIp: '127.0.0.1',
        sourceIp: '127.0.0.1',
        grants: [{ backend: '127.0.0.1', port: backendPort, service: 'nfs', proto: 'NFS', level: 'ro', shares: [{ id: 's', level: 'ro' }], nfs: { readOnly: true, identity: null, exports: [], steer: true } }],
      },
    ],
  };
  const ports = await plane.open(desired);
  const port = [...ports.values()][0] ?? 0;
  t.ok(port >= from, `listening on ${port}`);
  const connect = async (): Promise<{ sock: net.Socket; closed: () => boolean }> => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let closed = false;
    sock.on('error', () => undefined);
    sock.on('close', () => (closed = true));
    await new Promise((r) => {
      sock.once('connect', r);
      sock.once('close', r);
    });
    t.teardown(() => sock.destroy());
    return { sock, closed: () => closed };
  };
  const a = await connect();
  a.sock.pause();
  a.sock.write(call3(1, 1, Buffer.from([0, 0, 0, 32, ...Buffer.alloc(32, 7)])));
  await until('the backend is mid-reply', be.started);
  const flood = writes(100, 100_000);
  a.sock.write(flood);
  await until('the session is shed', () => counters.get('sharegw_proxy_shed_total', { reason: 'paused' }) > 0);
  t.ok(plane.bufferedBytes() > 1024 * 1024, `over the budget (${plane.bufferedBytes()} bytes accounted)`);
  const peak = plane.bufferedBytes();
  await new Promise((r) => setTimeout(r, 300));
  t.ok(plane.bufferedBytes() <= peak, `the shed session no longer grows (${plane.bufferedBytes()} <= ${peak})`);
  const b = await connect();
  await until('the new connection is closed', b.closed);
  t.equal(counters.get('sharegw_proxy_shed_total', { reason: 'refused' }), 1, 'refused and counted');
  t.equal(plane.flows().length, 1, 'only the flooding session lives');

  // The reply completes and the guest reads its answers: back under low water.
  const replies = countReplies(a.sock);
  be.finish();
  a.sock.resume();
  await until('every call answered', () => replies.records() === 100_001, 30_000);
  await until('accounted back under low water', () => plane.bufferedBytes() <= 768 * 1024);
  const c = await connect();
  await new Promise((r) => setTimeout(r, 200));
  t.notOk(c.closed(), 'a new connection is accepted again');
  t.equal(plane.flows().length, 2);
  t.equal(counters.get('sharegw_proxy_shed_total', { reason: 'refused' }), 1);
});
