/**
 * Protocol-aware NFS sessions with RPC record payloads moved by the splice
 * relay after their header was checked, against the same session relaying
 * every byte in JavaScript: pipelined calls with 1 MiB payloads each way,
 * with an open policy (all forwarded) and a read-only one (WRITEs answered
 * by the gateway, their replies put between spliced backend replies). The
 * backend must get exactly the forwarded calls, and the guest one intact
 * reply per call.
 */
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import t from 'tap';
import { sessionRig } from '../helpers/session-rig';
import type { Test } from 'tap';
import { Session } from '../../src/dataplane/proxy/session';
import type { CloseReason } from '../../src/dataplane/proxy/session';
import { SpliceRelayShim, loadNative } from '../../src/native';
import { Counters } from '../../src/observability/counters';
import type { NfsPolicy } from '../../src/protocols/nfs-policy';
import { NFS3ERR_ROFS } from '../../src/protocols/nfs-policy';
import { decodeReply, LAST_FRAGMENT } from '../../src/protocols/rpc';
import { RpcStream } from '../../src/protocols/rpc-stream';

const NATIVE = loadNative().binding;
const impls: { name: 'native' | 'fallback'; splice: SpliceRelayShim | null }[] = [
  ...(NATIVE !== null ? [{ name: 'native' as const, splice: new SpliceRelayShim(NATIVE) }] : []),
  { name: 'fallback', splice: null },
];
t.comment(`relays under test: ${impls.map((i) => i.name).join(', ')}`);

const OPEN: NfsPolicy = { readOnly: false, identity: null, exports: null };
const READ_ONLY: NfsPolicy = { readOnly: true, identity: null, exports: null };
const MiB = 1024 * 1024;
const NULL_PROC = 0;
const WRITE_PROC = 7;

/** Deterministic bytes for one xid (AES-128-CTR of zeros). */
function bytesFor(xid: number, n: number, salt: string): Buffer {
  const key = crypto.createHash('sha256').update(`${salt}:${xid}`).digest().subarray(0, 16);
  return crypto.createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

function record(body: Buffer): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE((LAST_FRAGMENT | body.length) >>> 0, 0);
  return Buffer.concat([p, body]);
}

/** An NFSv3 call (AUTH_NONE) with `n` payload bytes after its header. */
function call(xid: number, proc: number, n: number): Buffer {
  const h = Buffer.alloc(40);
  [xid, 0, 2, 100003, 3, proc, 0, 0, 0, 0].forEach((v, i) => h.writeUInt32BE(v, 4 * i));
  return record(Buffer.concat([h, bytesFor(xid, n, 'call')]));
}

/** The backend's accepted reply to `xid` with `n` result bytes. */
function reply(xid: number, n: number): Buffer {
  const h = Buffer.alloc(24);
  [xid, 1, 0, 0, 0, 0].forEach((v, i) => h.writeUInt32BE(v, 4 * i));
  return record(Buffer.concat([h, bytesFor(xid, n, 'reply')]));
}

/** Whole single-fragment records out of a growing stream. */
class Records {
  private buf = Buffer.alloc(0);
  push(chunk: Buffer): Buffer[] {
    this.buf = Buffer.concat([this.buf, chunk]);
    const out: Buffer[] = [];
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0) & 0x7fffffff;
      if (this.buf.length < 4 + len) {
        break;
      }
      out.push(this.buf.subarray(4, 4 + len));
      this.buf = this.buf.subarray(4 + len);
    }
    return out;
  }
}

interface Outcome {
  backendSha: string;
  replies: Map<number, Buffer>;
  session: Session;
  reason: CloseReason;
  counters: Counters;
}

/** Runs `calls` through a Session with an RpcStream; the backend answers each call with `replyBytes(xid)`. */
async function runSession(t: Test, splice: SpliceRelayShim | null, policy: NfsPolicy, calls: { xid: number; proc: number; n: number }[], replyBytes: (xid: number) => number): Promise<Outcome> {
  const backendHash = crypto.createHash('sha256');
  const backend = net.createServer((s) => {
    const rx = new Records();
    s.on('data', (d: Buffer) => {
      backendHash.update(d);
      for (const r of rx.push(d)) {
        s.write(reply(r.readUInt32BE(0), replyBytes(r.readUInt32BE(0))));
      }
    });
    s.on('end', () => s.end());
    s.on('error', () => undefined);
  });
  let onDone: (x: { s: Session; reason: CloseReason }) => void = () => undefined;
  const done = new Promise<{ s: Session; reason: CloseReason }>((r) => (onDone = r));
  const { guest, counters } = await sessionRig(t, backend, { splice, transform: new RpcStream(policy) }, { onClosed: (ended, reason) => onDone({ s: ended, reason }) });
  const replies = new Map<number, Buffer>();
  const rx = new Records();
  const all = new Promise<void>((resolve) =>
    guest.on('data', (d: Buffer) => {
      for (const r of rx.push(d)) {
        replies.set(r.readUInt32BE(0), Buffer.from(r));
      }
      if (replies.size === calls.length) {
        resolve();
      }
    }),
  );
  for (const c of calls) {
    if (!guest.write(call(c.xid, c.proc, c.n))) {
      await new Promise((r) => guest.once('drain', r));
    }
  }
  await all;
  guest.end();
  const d = await done;
  return { backendSha: backendHash.digest('hex'), replies, session: d.s, reason: d.reason, counters };
}

// Big and small calls and replies, NULLs and WRITEs, all pipelined.
const CALLS = Array.from({ length: 24 }, (_, i) => ({ xid: 1000 + i, proc: i % 3 === 1 ? WRITE_PROC : NULL_PROC, n: i % 4 === 3 ? 100 : MiB }));
const replyBytes = (xid: number): number => (xid % 5 === 0 ? 64 : MiB + 8);
const sha = (bufs: Buffer[]): string => crypto.createHash('sha256').update(Buffer.concat(bufs)).digest('hex');

for (const impl of impls) {
  for (const [name, policy] of [
    ['open', OPEN],
    ['read-only', READ_ONLY],
  ] as const) {
    t.test(`RpcStream session (${impl.name} relay, ${name} policy): forwarded calls reach the backend byte-exact, every call gets one intact reply`, async (t) => {
      const o = await runSession(t, impl.splice, policy, CALLS, replyBytes);
      const answered = (c: (typeof CALLS)[number]): boolean => policy.readOnly && c.proc === WRITE_PROC;
      t.equal(o.backendSha, sha(CALLS.filter((c) => !answered(c)).map((c) => call(c.xid, c.proc, c.n))), 'the backend got exactly the forwarded calls');
      t.equal(o.replies.size, CALLS.length, 'one reply per call');
      let intact = 0;
      for (const c of CALLS) {
        const r = o.replies.get(c.xid);
        if (answered(c)) {
          const d = r === undefined ? null : decodeReply(r);
          if (d !== null && !(d instanceof Error) && d.accepted && r !== undefined && r.readUInt32BE(24) === NFS3ERR_ROFS) {
            intact++;
          }
        } else if (r !== undefined && r.equals(reply(c.xid, replyBytes(c.xid)).subarray(4))) {
          intact++;
        }
      }
      t.equal(intact, CALLS.length, 'every reply intact (backend replies byte-exact, gateway answers NFS3ERR_ROFS)');
      t.equal(o.reason, 'done');
      if (impl.name === 'native') {
        t.ok(o.session.splicedPayloads > 0, `payloads spliced: ${o.session.splicedPayloads}`);
      } else {
        t.equal(o.session.splicedPayloads, 0, 'every byte through JavaScript');
      }
      t.same(o.counters.snapshot(), policy.readOnly ? {} : {}, 'no fallbacks, no errors');
    });
  }
}

t.test('RpcStream.passThrough()/passed(): skipping what it allows forwards the same bytes as seeing them, at every split', async (t) => {
  // Calls (one answered under the read-only policy) and replies, as the
  // two byte streams of a session.
  const calls = [call(1, NULL_PROC, 300_000), call(2, WRITE_PROC, 200_000), call(3, NULL_PROC, 100), call(4, NULL_PROC, 150_000)];
  const replies = [reply(1, 250_000), reply(3, 10), reply(4, 70_000)];
  const up = Buffer.concat(calls);
  const down = Buffer.concat(replies);
  /** Feeds a direction in `step`-byte chunks; with `skip`, lets through unseen what passThrough() allows after each chunk. */
  const run = (step: number, skip: boolean): { toBackend: Buffer; toGuest: Buffer; skipped: number } => {
    const st = new RpcStream(READ_ONLY);
    const toBackend: Buffer[] = [];
    const toGuest: Buffer[] = [];
    let skipped = 0;
    const feed = (dir: 'fromGuest' | 'fromBackend', bytes: Buffer): void => {
      for (let off = 0; off < bytes.length; ) {
        const chunk = bytes.subarray(off, off + step);
        off += chunk.length;
        const r = dir === 'fromGuest' ? st.fromGuest(chunk) : st.fromBackend(chunk);
        toBackend.push(...r.toBackend);
        toGuest.push(...r.toGuest);
        const n = skip ? Math.min(st.passThrough(dir), bytes.length - off) : 0;
        if (n > 0) {
          // The splice relay would move these bytes to the other side as they are.
          (dir === 'fromGuest' ? toBackend : toGuest).push(bytes.subarray(off, off + n));
          off += n;
          skipped += n;
          const p = st.passed(dir, n);
          t.equal(p.refusal, undefined);
          toBackend.push(...p.toBackend);
          toGuest.push(...p.toGuest);
        }
      }
    };
    feed('fromGuest', up);
    feed('fromBackend', down);
    return { toBackend: Buffer.concat(toBackend), toGuest: Buffer.concat(toGuest), skipped };
  };
  const seen = run(up.length + down.length, false);
  t.equal(seen.skipped, 0);
  for (const step of [1, 7, 4096, 65536, 300_123]) {
    const r = run(step, true);
    t.ok(r.toBackend.equals(seen.toBackend), `step ${step}: the backend gets the same bytes`);
    t.ok(r.toGuest.equals(seen.toGuest), `step ${step}: the guest gets the same bytes (the ROFS answer at a reply boundary)`);
    if (step > 1) {
      t.ok(r.skipped > 0, `step ${step}: ${r.skipped} bytes passed unseen`);
    }
  }
  const st = new RpcStream(READ_ONLY);
  st.fromGuest(calls[0]?.subarray(0, 100) ?? Buffer.alloc(0));
  t.equal(st.passThrough('fromGuest'), 0, 'nothing passes while the head is being decided');
  t.match(st.passed('fromGuest', 10).refusal, { code: 'SGW_ERR_PROTO_FRAMING' }, 'passing more than allowed is a framing error');
});
