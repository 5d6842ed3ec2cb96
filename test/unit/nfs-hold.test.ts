/**
 * Issue 14, NFS: the RPC stream holds a COMPOUND until everything the
 * policy must see was seen (across fragments, to its last operation),
 * refuses at the failing operation as a server would, answers one too big
 * to hold, caps whole records, and lowers the transfer limits in replies.
 * Calls are built with the raw test client's encoders (test/helpers/
 * nfs4-client.ts, written from the RFCs apart from the gateway's walker).
 */
import t from 'tap';
import { clampCompound4, NFS_IO_MAX } from '../../src/protocols/nfs-limits';
import type { NfsPolicy } from '../../src/protocols/nfs-policy';
import { NFS4_OPS, walkCompound } from '../../src/protocols/nfs4';
import type { CompoundWalk } from '../../src/protocols/nfs4';
import { decodeCall, LAST_FRAGMENT, RPC_MAX_RECORD } from '../../src/protocols/rpc';
import type { RpcCall } from '../../src/protocols/rpc';
import { COMPOUND_HOLD_MAX, RpcStream } from '../../src/protocols/rpc-stream';
import type { Relay } from '../../src/protocols/relay';
import { compoundCall, decodeCompound, fragments, getattr, lookup, putfh, PUTROOTFH, read, sequence, write } from '../helpers/nfs4-client';
import type { Op } from '../helpers/nfs4-client';
import { records } from '../helpers/rpc';

const GRANTED: NfsPolicy = { readOnly: false, identity: null, exports: ['/export/acme'] };
const OPEN: NfsPolicy = { readOnly: false, identity: null, exports: null };
const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
};
const str = (s: string): Buffer => {
  const d = Buffer.from(s);
  return Buffer.concat([u32(d.length), d, Buffer.alloc((4 - (d.length % 4)) % 4)]);
};
const SID = Buffer.alloc(16, 9);

/** Feeds `bytes` to the stream in the given pieces; collects what each side got. */
function feed(st: RpcStream, dir: 'fromGuest' | 'fromBackend', pieces: Buffer[]): { backend: Buffer[]; guest: Buffer[]; answered: string[]; refusal: Relay['refusal']; firstOut: number } {
  const backend: Buffer[] = [];
  const guest: Buffer[] = [];
  const answered: string[] = [];
  let refusal: Relay['refusal'];
  let fed = 0;
  let firstOut = -1;
  for (const p of pieces) {
    const r = dir === 'fromGuest' ? st.fromGuest(p) : st.fromBackend(p);
    fed += p.length;
    if (firstOut === -1 && r.toBackend.length > 0) {
      firstOut = fed;
    }
    backend.push(...r.toBackend);
    guest.push(...r.toGuest);
    answered.push(...(r.answered ?? []).map((a) => a.reason));
    refusal ??= r.refusal;
  }
  return { backend, guest, answered, refusal, firstOut };
}
const splitAt = (b: Buffer, cut: number): Buffer[] => [b.subarray(0, cut), b.subarray(cut)].filter((x) => x.length > 0);

/** A server's accepted reply to `xid`: COMPOUND4res with these (op, status) results (a successful SEQUENCE with its 36 bytes). */
function serverReply(xid: number, status: number, results: [number, number][]): Buffer {
  const body = Buffer.concat([u32(xid), u32(1), u32(0), u32(0), u32(0), u32(0), u32(status), u32(0), u32(results.length), ...results.flatMap(([op, st]) => [u32(op), u32(st), Buffer.alloc(op === 53 && st === 0 ? 36 : 0)])]);
  return fragments(body);
}

const STEAL: Op[] = [PUTROOTFH, lookup('export'), lookup('acme-private'), lookup('hello.txt'), read(0, 4096)];

t.test('RpcStream.fromGuest() holds a COMPOUND split over fragments and cuts it at the LOOKUP that leaves the exports, at every split', async (t) => {
  const body = compoundCall(7, 0, STEAL);
  const c = decodeCall(body) as RpcCall;
  const w = walkCompound(body, c.argsAt) as CompoundWalk;
  const wire = fragments(body, [w.opAt[2] as number, (w.opAt[3] as number) + 2]);
  let bad = 0;
  for (let cut = 1; cut < wire.length; cut++) {
    const st = new RpcStream(GRANTED);
    const r = feed(st, 'fromGuest', splitAt(wire, cut));
    const sent = Buffer.concat(r.backend);
    const expect = Buffer.from(body.subarray(0, w.opAt[2]));
    expect.writeUInt32BE(2, w.countAt);
    const ok = r.firstOut === wire.length && sent.equals(fragments(expect)) && r.answered.join() === 'mount-denied' && r.refusal === undefined;
    bad += ok ? 0 : 1;
  }
  t.equal(bad, 0, `nothing reaches the backend before the record's last byte, then operations 0-1 alone (${wire.length - 1} splits)`);
  const st = new RpcStream(GRANTED);
  feed(st, 'fromGuest', [wire]);
  const rep = feed(st, 'fromBackend', splitAt(serverReply(7, 0, [[24, 0], [15, 0]]), 17));
  const got = decodeCompound(records(Buffer.concat(rep.guest))[0] as Buffer);
  t.same([got.status, got.results.map((x) => [x.op, x.status])], [13, [[24, 0], [15, 0], [15, 13]]], "the server's two results, then LOOKUP acme-private with NFS4ERR_ACCESS");
  const st2 = new RpcStream(GRANTED);
  feed(st2, 'fromGuest', [wire]);
  const failed = serverReply(7, 2, [[24, 0], [15, 2]]);
  t.ok(Buffer.concat(feed(st2, 'fromBackend', [failed]).guest).equals(failed), 'a reply that failed earlier (NOENT at op 1) stands as the server sent it');
});

t.test('RpcStream.fromGuest() forwards a held COMPOUND that passes as one fragment with its payload unchanged, and pieces as views', async (t) => {
  const data = Buffer.alloc(200_000, 0x5a);
  const body = compoundCall(8, 1, [sequence(SID, 1), putfh(Buffer.alloc(32, 1)), write(0, data), getattr(4)]);
  const wire = fragments(body, [100, 5000]);
  for (const step of [1, 1000, 65536, wire.length]) {
    const st = new RpcStream(GRANTED);
    const pieces: Buffer[] = [];
    for (let off = 0; off < wire.length; off += step) {
      pieces.push(wire.subarray(off, off + step));
    }
    const r = feed(st, 'fromGuest', pieces);
    t.equal(r.firstOut, wire.length, `step ${step}: held to the end (a GETATTR follows the WRITE)`);
    t.equal(st.heldBytes(), 0, `step ${step}: nothing held once it went on`);
    t.ok(Buffer.concat(r.backend).equals(fragments(body)), `step ${step}: sent on as one fragment, byte for byte`);
    if (step >= 65536) {
      t.ok(r.backend.some((b) => b.buffer === wire.buffer && b.length >= 16 * 1024), `step ${step}: big pieces go on as views of the incoming chunk`);
    }
  }
  // A WRITE that ends the compound needs only its length: the data streams (and may be spliced).
  const tail = compoundCall(9, 0, [putfh(Buffer.alloc(32, 1)), write(0, Buffer.alloc(1024 * 1024, 1))]);
  const st = new RpcStream(GRANTED);
  const r = st.fromGuest(fragments(tail).subarray(0, 3000));
  t.ok(r.toBackend.length > 0, 'a compound ending in WRITE is decided at its head');
  t.ok(st.passThrough('fromGuest') > 1000 * 1000, 'and the rest of its data may pass unseen');
});

t.test('RpcStream answers a COMPOUND too big to hold as a server would: REQ_TOO_BIG after SEQUENCE (v4.1), RESOURCE (v4.0)', async (t) => {
  const big = Buffer.alloc(COMPOUND_HOLD_MAX, 2);
  const v41 = compoundCall(10, 1, [sequence(SID, 5), putfh(Buffer.alloc(32, 1)), write(0, big), getattr(4)]);
  const next = compoundCall(11, 1, [sequence(SID, 6), PUTROOTFH, lookup('export')]);
  const st = new RpcStream(GRANTED);
  const wire = Buffer.concat([fragments(v41, [65536, 500_000]), fragments(next)]);
  const part = feed(st, 'fromGuest', [wire.subarray(0, 70_000)]);
  t.ok(part.backend.length === 0 && st.heldBytes() > 60_000 && st.heldBytes() <= COMPOUND_HOLD_MAX, `held while undecided: ${st.heldBytes()} bytes`);
  const r = feed(st, 'fromGuest', [wire.subarray(70_000)]);
  t.ok(st.heldBytes() <= COMPOUND_HOLD_MAX, 'never more than the bound');
  t.equal(r.refusal, undefined, 'no close');
  t.same(r.answered, ['too-big'], 'counted as too-big');
  const sent = records(Buffer.concat(r.backend));
  t.equal(sent.length, 2, 'SEQUENCE alone, then the next call');
  const w = walkCompound(v41, (decodeCall(v41) as RpcCall).argsAt) as CompoundWalk;
  t.equal(sent[0]?.length, w.opAt[1], 'the first cut after SEQUENCE');
  t.ok(sent[1]?.equals(next), 'the next call passes as it was');
  const rep = feed(st, 'fromBackend', [serverReply(10, 0, [[53, 0]])]);
  t.same(decodeCompound(records(Buffer.concat(rep.guest))[0] as Buffer).results.map((x) => [x.op, x.status]), [[53, 0], [22, 10065]], 'PUTFH fails with NFS4ERR_REQ_TOO_BIG');
  const v40 = compoundCall(12, 0, [putfh(Buffer.alloc(32, 1)), write(0, big), getattr(4)]);
  const st0 = new RpcStream(GRANTED);
  const r0 = feed(st0, 'fromGuest', [fragments(v40, [1000])]);
  t.same([r0.backend.length, r0.answered], [0, ['too-big']], 'v4.0: nothing sent');
  t.same(decodeCompound(records(Buffer.concat(r0.guest))[0] as Buffer), { xid: 12, status: 10018, results: [{ op: 22, status: 10018, body: Buffer.alloc(0) }] }, 'the gateway answers NFS4ERR_RESOURCE');
});

t.test('RpcStream refuses records past RPC_MAX_RECORD across fragments, on every stream', async (t) => {
  const frag = (n: number, last: boolean): Buffer => Buffer.concat([u32(((last ? LAST_FRAGMENT : 0) | n) >>> 0), Buffer.alloc(n)]);
  const call = compoundCall(13, 0, [PUTROOTFH]);
  const head = Buffer.concat([u32(call.length), call]);
  for (const policy of [OPEN, GRANTED]) {
    const st = new RpcStream(policy);
    const pieces = [head, frag(RPC_MAX_RECORD / 2, false), frag(RPC_MAX_RECORD / 2, false)];
    t.match(feed(st, 'fromGuest', pieces).refusal, { code: 'SGW_ERR_PROTO_TOO_LARGE' }, `calls (${policy.exports === null ? 'no policy' : 'mount checks'})`);
  }
  const st = new RpcStream(OPEN);
  t.match(feed(st, 'fromBackend', [frag(3 * 1024 * 1024, false), frag(2 * 1024 * 1024, true)]).refusal, { code: 'SGW_ERR_PROTO_TOO_LARGE' }, 'replies');
});

t.test('judgeCall() answers an operation code no version defines with OP_ILLEGAL on its index, and names as a server does', async (t) => {
  const st = new RpcStream(GRANTED);
  const r = feed(st, 'fromGuest', [fragments(compoundCall(14, 0, [{ op: 9999, args: Buffer.alloc(0) }, PUTROOTFH]))]);
  t.same(decodeCompound(records(Buffer.concat(r.guest))[0] as Buffer), { xid: 14, status: 10044, results: [{ op: 10044, status: 10044, body: Buffer.alloc(0) }] }, 'answered whole at operation 0');
  for (const [name, status] of [['', 22], ['x'.repeat(256), 63], ['x'.repeat(255), 13]] as const) {
    const s = new RpcStream(GRANTED);
    feed(s, 'fromGuest', [fragments(compoundCall(15, 0, [PUTROOTFH, lookup('export'), lookup(name)]))]);
    const rep = feed(s, 'fromBackend', [serverReply(15, 0, [[24, 0], [15, 0]])]);
    t.equal(decodeCompound(records(Buffer.concat(rep.guest))[0] as Buffer).results[2]?.status, status, `a ${name.length}-byte name in /export: ${status}`);
  }
});

t.test('judgeCall() answers a minor version past 4.2 as a server does: NFS4ERR_MINOR_VERS_MISMATCH, no results, nothing forwarded', async (t) => {
  for (const ops of [[{ op: 9999, args: Buffer.alloc(0) }], [PUTROOTFH, lookup('export')]]) {
    const st = new RpcStream(GRANTED);
    const r = feed(st, 'fromGuest', [fragments(compoundCall(16, 50, ops))]);
    t.same(r.backend, [], 'nothing reaches the server');
    t.same(r.answered, ['minor-version']);
    t.same(decodeCompound(records(Buffer.concat(r.guest))[0] as Buffer), { xid: 16, status: 10021, results: [] }, `minor version 50 with ${ops.length} operations`);
  }
  const st = new RpcStream(GRANTED);
  const r = feed(st, 'fromGuest', [fragments(compoundCall(17, 2, [PUTROOTFH, lookup('export')]))]);
  t.same(r.answered, [], '4.2 is judged as before');
});

t.test('walkCompound() walks every operation of v4.0, 4.1 and 4.2 (with xattrs), each followed by another', async (t) => {
  const z = (n: number): Buffer => Buffer.alloc(n);
  const bitmap = Buffer.concat([u32(2), u32(1 << 4), u32(0)]);
  const fattr = Buffer.concat([bitmap, str('12345678')]);
  const sys = Buffer.concat([u32(1), u32(0), str('host'), u32(0), u32(0), u32(1), u32(5)]);
  const chan = Buffer.concat([z(24), u32(1), u32(0)]);
  // Arguments per operation, from the XDR of RFC 7530 section 16, RFC 8881 section 18, RFC 7862 section 15, RFC 8276 section 8.
  const args: Record<number, Buffer> = {
    3: u32(0x3f), 4: z(20), 5: z(12), 6: Buffer.concat([u32(5), str('target'), str('link'), fattr]), 7: z(8), 8: z(16), 9: bitmap, 10: z(0),
    11: str('hard'), 12: Buffer.concat([u32(2), u32(0), z(16), u32(1), z(4), z(16), z(4), z(8), str('lockowner')]), 13: Buffer.concat([u32(1), z(16), z(8), str('o')]),
    14: z(40), 15: str('x'), 16: z(0), 17: fattr,
    18: Buffer.concat([z(4), u32(2), u32(0), z(8), str('owner'), u32(1), u32(3), z(8), fattr, u32(0), str('new')]),
    19: u32(0), 20: z(20), 21: z(28), 22: str('handle'), 23: z(0), 24: z(0), 25: z(28), 26: Buffer.concat([z(24), bitmap]), 27: z(0), 28: str('gone'),
    29: Buffer.concat([str('a'), str('b')]), 30: z(8), 31: z(0), 32: z(0), 33: str('n'), 34: Buffer.concat([z(16), fattr]),
    35: Buffer.concat([z(8), str('client'), u32(1), str('tcp'), str('1.2.3.4.5.6'), u32(1)]), 36: z(16), 37: fattr,
    38: Buffer.concat([z(16), z(8), u32(2), str('data')]), 39: Buffer.concat([z(8), str('owner')]),
    40: Buffer.concat([u32(1), u32(2), u32(0), sys]), 41: z(24),
    42: Buffer.concat([z(8), str('owner'), u32(0), u32(2), bitmap, bitmap, u32(1), str('oid'), u32(0), z(8), u32(1), str('dom'), str('name'), z(12)]),
    43: Buffer.concat([z(16), chan, chan, u32(1), u32(2), u32(6), z(4), str('s'), str('c'), sys]), 44: z(16), 45: z(16),
    46: Buffer.concat([u32(0), bitmap, z(24), bitmap, bitmap]), 47: Buffer.concat([z(24), bitmap]), 48: z(24),
    49: Buffer.concat([z(36), u32(1), z(8), u32(1), z(12), u32(1), str('body')]), 50: z(56), 51: Buffer.concat([z(12), u32(1), z(32), str('body')]),
    52: u32(0), 53: z(32), 54: Buffer.concat([str('ssv'), str('digest')]), 55: Buffer.concat([u32(2), z(32)]), 56: Buffer.concat([u32(0), u32(1), u32(1)]),
    57: z(8), 58: u32(0), 59: z(32), 60: Buffer.concat([z(64), u32(2), u32(1), str('srv'), u32(3), str('tcp'), str('a')]), 61: Buffer.concat([z(16), u32(2), str('url')]),
    62: z(32), 63: Buffer.concat([z(32), bitmap]), 64: Buffer.concat([z(32), u32(1), z(24)]), 65: Buffer.concat([z(80), u32(1), str('b')]), 66: z(16), 67: z(16),
    68: z(28), 69: z(28), 70: Buffer.concat([z(20), z(44), str('pattern')]), 71: z(56), 72: str('user.a'), 73: Buffer.concat([u32(0), str('user.a'), str('v')]),
    74: z(12), 75: str('user.a'),
  };
  const known = [...NFS4_OPS.keys()];
  t.same(known.filter((op) => args[op] === undefined), [], 'a sample for every operation');
  for (const op of known) {
    const body = compoundCall(16, 2, [{ op, args: args[op] as Buffer }, PUTROOTFH]);
    const w = walkCompound(body, (decodeCall(body) as RpcCall).argsAt) as CompoundWalk;
    if (w.stop !== null || w.ops.join() !== `${op},24` || w.end !== body.length) {
      t.fail(`${NFS4_OPS.get(op) ?? op} (${op}): ${JSON.stringify(w.stop)} at ${w.end} of ${body.length}`);
    }
  }
  t.pass(`${known.length} operations walk`);
  const ro = (ops: Op[]): string | undefined => {
    const body = compoundCall(17, 2, ops);
    return (walkCompound(body, (decodeCall(body) as RpcCall).argsAt) as CompoundWalk).mutating?.name;
  };
  for (const [op, name] of [[62, 'DEALLOCATE'], [70, 'WRITE_SAME'], [73, 'SETXATTR'], [75, 'REMOVEXATTR']] as const) {
    t.equal(ro([PUTROOTFH, { op, args: args[op] as Buffer }]), name, `${name} (${op}) writes`);
  }
  t.equal(ro([PUTROOTFH, { op: 63, args: args[63] as Buffer }]), undefined, 'IO_ADVISE (63) does not');
  t.equal(ro([PUTROOTFH, { op: 69, args: args[69] as Buffer }]), undefined, 'SEEK (69) does not');
});

t.test('clampCompound4() lowers FATTR4_MAXREAD and FATTR4_MAXWRITE in place, and RpcStream holds only the reply that asked', async (t) => {
  const u64 = (v: bigint): Buffer => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(v, 0);
    return b;
  };
  // GETATTR of supported_attrs (0), size (4), maxread (30), maxwrite (31).
  const w0 = ((1 << 0) | (1 << 4) | (1 << 30) | (1 << 31)) >>> 0;
  const vals = Buffer.concat([u32(1), u32(0xffffffff), u64(123n), u64(64n << 20n), u64(64n << 20n)]);
  const res = Buffer.concat([u32(0), str('tag'), u32(3), u32(53), u32(0), z36(), u32(22), u32(0), u32(9), u32(0), u32(1), u32(w0), u32(vals.length), vals]);
  const before = Buffer.from(res);
  t.equal(clampCompound4(res), 2, 'two values lowered');
  t.equal(res.length, before.length, 'same length');
  const at = res.length - 16;
  t.same([res.readBigUInt64BE(at), res.readBigUInt64BE(at + 8)], [BigInt(NFS_IO_MAX), BigInt(NFS_IO_MAX)], 'to 1 MiB');
  t.ok(res.subarray(0, at).equals(before.subarray(0, at)), 'nothing else changed (size stays 123)');

  const st = new RpcStream(OPEN);
  feed(st, 'fromGuest', [fragments(compoundCall(21, 1, [sequence(SID, 1), putfh(Buffer.alloc(8)), getattr(30, 31)]))]);
  const other = serverReply(99, 0, [[24, 0]]);
  const passed = feed(st, 'fromBackend', splitAt(other, 6));
  t.ok(Buffer.concat(passed.guest).equals(other), 'another reply passes as it is, while the GETATTR reply is awaited');
  const reply = fragments(Buffer.concat([u32(21), u32(1), u32(0), u32(0), u32(0), u32(0), before]));
  const r = feed(st, 'fromBackend', [reply.subarray(0, 9), reply.subarray(9)]);
  const got = Buffer.concat(r.guest);
  t.equal(got.length, reply.length, 'the awaited reply keeps its length');
  t.same([got.readBigUInt64BE(got.length - 16), got.readBigUInt64BE(got.length - 8)], [BigInt(NFS_IO_MAX), BigInt(NFS_IO_MAX)], 'and is clamped');
});

function z36(): Buffer {
  return Buffer.alloc(36);
}
