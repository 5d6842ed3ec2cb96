/**
 * The per-domain id offset map (src/protocols/nfs-ids.ts) over the real
 * captures (libnfs against nfs-ganesha) and hand-built replies: calls carry
 * backend ids (credential and sattr3), replies come back with guest ids
 * (every fattr3, NFSv4 numeric owner strings), foreign backend ids show as
 * the anonymous id, and the stream does it at every split.
 */
import t from 'tap';
import { ProtocolError } from '../../src/errors';
import { ID_WINDOW, mapCompound4, mapReply3, toGuest } from '../../src/protocols/nfs-ids';
import type { IdMap } from '../../src/protocols/nfs-ids';
import { judgeCall, NFS3ERR_PERM } from '../../src/protocols/nfs-policy';
import type { NfsPolicy } from '../../src/protocols/nfs-policy';
import { NFS4ERR_PERM, walkCompound } from '../../src/protocols/nfs4';
import type { CompoundWalk } from '../../src/protocols/nfs4';
import { AUTH_TOOWEAK, decodeCall, decodeReply, LAST_FRAGMENT } from '../../src/protocols/rpc';
import type { RpcCall } from '../../src/protocols/rpc';
import { RpcStream } from '../../src/protocols/rpc-stream';
import type { Relay } from '../../src/protocols/relay';
import { tcpStreams } from '../helpers/pcap';
import { frame, records, relay } from '../helpers/rpc';
import type { TcpStream } from '../helpers/pcap';

const MAP: IdMap = { offset: 100_000, anonUid: 65534, anonGid: 65534 };
const MAPPED: NfsPolicy = { readOnly: false, identity: { rootSquash: false, anonUid: 65534, anonGid: 65534, uids: null, gids: null, idOffset: 100_000 }, exports: null };


/** XDR builder for hand-made calls and replies. */
class W {
  parts: Buffer[] = [];
  u32(...v: number[]): this {
    for (const x of v) {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(x >>> 0, 0);
      this.parts.push(b);
    }
    return this;
  }
  u64(v: number): this {
    return this.u32(Math.floor(v / 2 ** 32), v % 2 ** 32);
  }
  str(s: string | Buffer): this {
    const b = typeof s === 'string' ? Buffer.from(s) : s;
    this.u32(b.length);
    this.parts.push(b, Buffer.alloc((4 - (b.length % 4)) % 4));
    return this;
  }
  fattr3(uid: number, gid: number): this {
    return this.u32(1, 0o644, 1, uid, gid).u64(10).u64(10).u64(0).u64(1).u64(7).u64(0).u64(0).u64(0);
  }
  get buf(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** A reply header (accepted, SUCCESS) around a result. */
const reply = (xid: number, res: Buffer): Buffer => Buffer.concat([new W().u32(xid, 1, 0, 0, 0, 0).buf, res]);
/** A call header with AUTH_SYS uid/gid. */
const call = (xid: number, vers: number, proc: number, uid: number, gid: number, args: Buffer): Buffer =>
  Buffer.concat([new W().u32(xid, 0, 2, 100003, vers, proc, 1).str(new W().u32(0).str('guest').u32(uid, gid, 1, gid).buf).u32(0, 0).buf, args]);

const uidsIn3 = (res: Buffer): number[] => {
  // Every fattr3 of a hand-built reply starts with type 1, mode 0644, nlink 1.
  const out: number[] = [];
  for (let at = 0; at + 20 <= res.length; at += 4) {
    if (res.readUInt32BE(at) === 1 && res.readUInt32BE(at + 4) === 0o644 && res.readUInt32BE(at + 8) === 1) {
      out.push(res.readUInt32BE(at + 12), res.readUInt32BE(at + 16));
    }
  }
  return out;
};

t.test('toGuest(): the window maps back, anything else is the anonymous id', async (t) => {
  t.equal(toGuest(MAP, 100_500, 'uid'), 500);
  t.equal(toGuest(MAP, 100_000, 'uid'), 0);
  t.equal(toGuest(MAP, 100_000 + ID_WINDOW - 1, 'gid'), ID_WINDOW - 1);
  t.equal(toGuest(MAP, 100_000 + ID_WINDOW, 'uid'), 65534, "the next domain's ids");
  t.equal(toGuest(MAP, 500, 'uid'), 65534, "the backend's own ids");
  t.equal(toGuest({ ...MAP, anonGid: 7 }, 0, 'gid'), 7);
});

t.test('NFSv3 replies in the capture: every procedure parses; only uid and gid words change', async (t) => {
  const conns = (await tcpStreams('nfs3-session.pcap')).filter((s) => s.serverPort === 2049);
  let replies = 0;
  let changedWords = 0;
  for (const s of conns) {
    const calls = new Map(records(Buffer.concat(s.up)).map((r) => decodeCall(r) as RpcCall).map((c) => [c.xid, c]));
    for (const rec of records(Buffer.concat(s.down))) {
      const r = decodeReply(rec);
      if (r instanceof ProtocolError) {
        t.fail(r.message);
        continue;
      }
      const c = calls.get(r.xid) as RpcCall;
      const same = Buffer.from(rec.subarray(r.resultAt));
      t.equal(mapReply3(c.proc, same, { offset: 0, anonUid: 65534, anonGid: 65534 }), null);
      t.ok(same.equals(rec.subarray(r.resultAt)), `proc ${c.proc}: with offset 0 (ids 0 inside the window) nothing changes`);
      const mapped = Buffer.from(rec.subarray(r.resultAt));
      t.equal(mapReply3(c.proc, mapped, MAP), null);
      for (let at = 0; at < mapped.length; at += 4) {
        if (mapped.readUInt32BE(at) !== rec.readUInt32BE(r.resultAt + at)) {
          changedWords++;
          t.equal(mapped.readUInt32BE(at), 65534, `proc ${c.proc}: a changed word is a backend id outside the window, now anonymous`);
        }
      }
      replies++;
    }
  }
  t.ok(replies >= 15 && changedWords >= 2 * 10, `${replies} replies, ${changedWords} id words mapped`);
});

t.test('NFSv3: attributes in LOOKUP, READDIRPLUS entries, CREATE and RENAME wcc data map back', async (t) => {
  const lookup = new W().u32(0).str(Buffer.alloc(28, 1)).u32(1).fattr3(100_500, 100_501).u32(1).fattr3(100_000, 100_000).buf;
  t.equal(mapReply3(3, lookup, MAP), null);
  t.same(uidsIn3(lookup), [500, 501, 0, 0], 'LOOKUP: object and directory');
  const rdp = new W().u32(0, 1).fattr3(100_000, 100_000).u64(99).u32(1).u64(1).str('a').u64(1).u32(1).fattr3(100_700, 7).u32(1).str(Buffer.alloc(16)).u32(1).u64(2).str('bb').u64(2).u32(1).fattr3(200_500, 100_500).u32(0).u32(0, 1).buf;
  t.equal(mapReply3(17, rdp, MAP), null);
  t.same(uidsIn3(rdp), [0, 0, 700, 65534, 65534, 500], "READDIRPLUS: the directory and each entry; foreign ids (another domain's 200500, the backend's 7) anonymous");
  const create = new W().u32(0, 1).str(Buffer.alloc(8)).u32(1).fattr3(100_001, 100_001).u32(1).u64(0).u64(0).u64(0).u32(1).fattr3(100_000, 100_000).buf;
  t.equal(mapReply3(8, create, MAP), null);
  t.same(uidsIn3(create), [1, 1, 0, 0], 'CREATE: the new object and the directory after');
  const rename = new W().u32(0, 0).u32(1).fattr3(100_002, 100_002).u32(0).u32(1).fattr3(100_003, 100_003).buf;
  t.equal(mapReply3(14, rename, MAP), null);
  t.same(uidsIn3(rename), [2, 2, 3, 3], 'RENAME: both directories');
  t.ok(mapReply3(1, new W().u32(0, 1, 2).buf, MAP) instanceof ProtocolError, 'a truncated GETATTR is an error, not a throw');
  t.equal(mapReply3(0, Buffer.alloc(0), MAP), null, 'NULL has no result');
});

t.test('NFSv4 replies in the captures parse to the end; names stay, numeric owners map back', async (t) => {
  for (const file of ['nfs4-session.pcap', 'nfs41-session.pcap']) {
    const conns = (await tcpStreams(file)).filter((s) => s.serverPort === 2049);
    let n = 0;
    for (const s of conns) {
      const calls = new Map(records(Buffer.concat(s.up)).map((r) => decodeCall(r) as RpcCall).map((c) => [c.xid, c]));
      for (const rec of records(Buffer.concat(s.down))) {
        const r = decodeReply(rec) as { xid: number; resultAt: number };
        if (calls.get(r.xid)?.proc !== 1) {
          continue;
        }
        const res = rec.subarray(r.resultAt);
        const m = mapCompound4(res, MAP);
        if (m instanceof ProtocolError) {
          t.fail(`${file}: ${m.message}`);
          continue;
        }
        t.notOk(m.partial, `${file}: every operation's result is known`);
        // The walk reached the last result (a server returns results up to the first failure).
        const tagLen = res.readUInt32BE(4);
        const countAt = 8 + tagLen + ((4 - (tagLen % 4)) % 4);
        const count = res.readUInt32BE(countAt);
        t.equal(m.walked, count, `${file}: every result walked (${count})`);
        t.ok(m.res.equals(res), `${file}: owners are names (root@localdomain) and stay as they are`);
        n++;
      }
    }
    t.ok(n >= 15, `${file}: ${n} compound replies`);
  }
  // GETATTR with mode, numlinks, owner, owner_group, size-after: the strings change length.
  const attrs = new W().u32(0o644, 1).str('100500').str('100501@example.org').u64(4096).buf;
  const res = new W().u32(0).str('tag').u32(2).u32(22, 0).u32(9, 0).u32(2, 0, (1 << 1) | (1 << 3) | (1 << 4)).str(attrs).buf;
  // bitmap words: word0 0, word1 bits 33 (mode), 35 (numlinks), 36 (owner); owner_group is bit 37
  res.writeUInt32BE((1 << 1) | (1 << 3) | (1 << 4) | (1 << 5), res.length - attrs.length - 4 - 4);
  const m = mapCompound4(res, MAP);
  if (m instanceof ProtocolError) {
    t.fail(m.message);
    return;
  }
  const text = m.res.toString('latin1');
  t.match(text, /\u0000\u0000\u0000\u0003500\u0000/, 'owner "100500" is "500"');
  t.match(text, /501@example\.org/, 'owner_group keeps its domain part');
  t.notMatch(text, /100500/);
  t.equal(m.res.length, res.length - 8, 'both strings are 4 bytes shorter, padding included');
  const again = mapCompound4(m.res, { offset: 0, anonUid: 1, anonGid: 1 });
  t.ok(!(again instanceof ProtocolError) && again.res.equals(m.res), 'the rebuilt reply parses again, and 500 maps to itself at offset 0');
  t.equal(m.res.readUInt32BE(m.res.length - 8) * 2 ** 32 + m.res.readUInt32BE(m.res.length - 4), 4096, 'the attributes after it are intact');
  const unknown = new W().u32(0).str('').u32(2).u32(9999, 0).u32(9, 0).buf;
  t.match(mapCompound4(unknown, MAP), { partial: true }, 'an unknown operation leaves the rest unmapped, and says so');
});

t.test('calls: AUTH_SYS and sattr3 ids are mapped to backend ids; ids outside the window refused', async (t) => {
  // SETATTR: object, sattr3 (mode set, uid set 600, gid set 601, size no, atime/mtime don't change), guard no
  const setattr = call(7, 3, 2, 500, 500, new W().str(Buffer.alloc(8)).u32(1, 0o600, 1, 600, 1, 601, 0, 0, 0, 0).buf);
  const c = decodeCall(setattr) as RpcCall;
  const v = judgeCall(c, setattr, MAPPED);
  t.equal(v.action, 'forward');
  if (v.action === 'forward') {
    const out = Buffer.from(setattr);
    for (const p of v.patches) {
      out.writeUInt32BE(p.value, p.at);
    }
    const d = decodeCall(out) as RpcCall;
    t.same([d.sys?.uid, d.sys?.gid, d.sys?.gids], [100_500, 100_500, [100_500]], 'the credential');
    t.same([out.readUInt32BE(out.length - 28), out.readUInt32BE(out.length - 20)], [100_600, 100_601], 'the uid and gid SETATTR sets');
  }
  const big = call(8, 3, 1, 70_000, 500, new W().str(Buffer.alloc(8)).buf);
  t.match(judgeCall(decodeCall(big) as RpcCall, big, MAPPED), { action: 'answer', reason: 'uid-range' }, 'a uid past the window gets AUTH_TOOWEAK');
  const r = judgeCall(decodeCall(big) as RpcCall, big, MAPPED);
  t.equal(r.action === 'answer' ? r.reply.readUInt32BE(4 + 16) : -1, AUTH_TOOWEAK);
  const chown = call(9, 3, 2, 500, 500, new W().str(Buffer.alloc(8)).u32(0, 1, 80_000, 0, 0, 0, 0, 0).buf);
  const cv = judgeCall(decodeCall(chown) as RpcCall, chown, MAPPED);
  t.match(cv, { action: 'answer', reason: 'uid-range' }, 'chown to a uid past the window');
  t.equal(cv.action === 'answer' ? cv.reply.readUInt32BE(4 + 24) : -1, NFS3ERR_PERM, 'NFS3ERR_PERM');
  // MKDIR: where (dir, name), sattr3 with mode only: just the credential
  const mkdir = call(10, 3, 9, 0, 0, new W().str(Buffer.alloc(8)).str('d').u32(1, 0o755, 0, 0, 0, 0, 0).buf);
  const mv = judgeCall(decodeCall(mkdir) as RpcCall, mkdir, { ...MAPPED, identity: { ...(MAPPED.identity as NonNullable<NfsPolicy['identity']>), rootSquash: true } });
  t.same(mv.action === 'forward' ? mv.patches.map((p) => p.value) : [], [165_534, 165_534, 165_534], "root squashed to the domain's own nobody (65534 + offset)");
  // NFSv4 SETATTR with owner: refused (the rewrite would change the call's length)
  const v4 = call(11, 4, 1, 500, 500, new W().str('').u32(0, 2).u32(22).str(Buffer.alloc(8)).u32(34).u32(0, 0, 0, 0).u32(2, 0, 1 << 4).str(new W().str('600').buf).buf);
  const v4v = judgeCall(decodeCall(v4) as RpcCall, v4, MAPPED);
  t.match(v4v, { action: 'answer', reason: 'owner-set' });
  t.equal(v4v.action === 'answer' ? v4v.reply.readUInt32BE(4 + 24) : -1, NFS4ERR_PERM, 'NFS4ERR_PERM');
});


t.test('the stream maps calls and replies of a real session identically at every split', async (t) => {
  for (const file of ['nfs3-session.pcap', 'nfs4-session.pcap']) {
    const s = (await tcpStreams(file)).filter((x) => x.serverPort === 2049).sort((a, b) => b.up.length - a.up.length)[0] as TcpStream;
    const whole = relay(new RpcStream(MAPPED), s, (b) => [b]);
    t.equal(whole.refusal, undefined, `${file}: no refusal`);
    const calls = records(whole.backend).map((r) => decodeCall(r) as RpcCall);
    t.ok(calls.every((c) => c.sys === null || (c.sys.uid >= 100_000 && c.sys.gid >= 100_000)), `${file}: every credential reaches the backend mapped`);
    const downs = records(whole.guest);
    t.equal(downs.length, records(Buffer.concat(s.down)).length, `${file}: every reply reaches the guest, one record each`);
    let bad = 0;
    for (let cut = 1; cut < 120; cut += 7) {
      const r = relay(new RpcStream(MAPPED), s, (b) => [b.subarray(0, cut), b.subarray(cut)].filter((x) => x.length > 0));
      if (!r.backend.equals(whole.backend) || !r.guest.equals(whole.guest)) {
        bad++;
      }
    }
    const bytewise = relay(new RpcStream(MAPPED), s, (b) => [...b].map((x) => Buffer.from([x])));
    t.equal(bad, 0, `${file}: two-piece splits give the same bytes`);
    t.ok(bytewise.backend.equals(whole.backend) && bytewise.guest.equals(whole.guest), `${file}: one byte at a time too`);
  }
  // A reply in two fragments is held whole and sent as one.
  const st = new RpcStream(MAPPED);
  const get = call(42, 3, 1, 500, 500, new W().str(Buffer.alloc(8)).buf);
  st.fromGuest(frame(get));
  const res = reply(42, new W().u32(0).fattr3(100_500, 100_500).buf);
  const p1 = Buffer.alloc(4);
  p1.writeUInt32BE(30, 0);
  const p2 = Buffer.alloc(4);
  p2.writeUInt32BE((LAST_FRAGMENT | (res.length - 30)) >>> 0, 0);
  const a = st.fromBackend(Buffer.concat([p1, res.subarray(0, 30)]));
  t.same(a.toGuest, [], 'nothing sent before the record is whole');
  const b = st.fromBackend(Buffer.concat([p2, res.subarray(30)]));
  const out = Buffer.concat(b.toGuest);
  t.equal(out.readUInt32BE(0), (LAST_FRAGMENT | res.length) >>> 0, 'one fragment');
  t.same(uidsIn3(out.subarray(4 + 24 + 4)), [500, 500], 'mapped back');
  const huge = Buffer.alloc(4);
  huge.writeUInt32BE(4 * 1024 * 1024 + 4096, 0);
  const st2 = new RpcStream(MAPPED);
  st2.fromBackend(huge);
  st2.fromBackend(Buffer.alloc(4 * 1024 * 1024 + 4096));
  t.match(st2.fromBackend(Buffer.concat([huge, Buffer.alloc(8)])), { refusal: { reason: 'malformed', code: 'SGW_ERR_PROTO_TOO_LARGE' } }, 'a reply too large to hold closes the connection');
});

t.test('RpcStream cuts a v4.1 compound at the refused operation: SEQUENCE and what precedes it go on, and the reply carries the status on that operation', async (t) => {
  const s = (await tcpStreams('nfs41-session.pcap')).filter((x) => x.serverPort === 2049).sort((a, b) => b.up.length - a.up.length)[0] as TcpStream;
  const ups = records(Buffer.concat(s.up));
  const downs = new Map(records(Buffer.concat(s.down)).map((r) => [(decodeReply(r) as { xid: number }).xid, r]));
  const RO: NfsPolicy = { readOnly: true, identity: null, exports: null };
  const write = ups.find((r) => {
    const c = decodeCall(r) as RpcCall;
    return c.proc === 1 && judgeCall(c, r, RO).action === 'answer';
  }) as Buffer;
  const read = ups.find((r) => {
    const c = decodeCall(r) as RpcCall;
    return c.proc === 1 && judgeCall(c, r, RO).action === 'forward' && downs.has(c.xid);
  }) as Buffer;
  t.ok(write !== undefined && read !== undefined, 'a writing and a reading compound in the v4.1 capture');
  const wc = decodeCall(write) as RpcCall;
  const v = judgeCall(wc, write, RO);
  if (v.action !== 'answer' || v.cut === undefined) {
    t.fail('the answer goes through SEQUENCE');
    return;
  }
  const cut = v.cut;
  const w = walkCompound(write, wc.argsAt) as CompoundWalk;
  t.same(w.ops.slice(0, cut.k), [53, 22], 'SEQUENCE and PUTFH go on');
  t.ok(w.mutating?.index === cut.k && cut.op === w.ops[cut.k], `the first writing operation (${w.mutating?.name ?? '?'}) is refused`);
  // What a server answers to SEQUENCE and PUTFH alone: the captured reply's first two results.
  const full = downs.get(wc.xid) as Buffer;
  const fr = decodeReply(full) as { resultAt: number };
  const tagLen = full.readUInt32BE(fr.resultAt + 4);
  const countAt = fr.resultAt + 8 + tagLen + ((4 - (tagLen % 4)) % 4);
  t.equal(full.readUInt32BE(countAt + 4), 53, 'the captured reply starts with SEQUENCE');
  const cutEnd = countAt + 4 + (8 + 36) + 8;
  t.equal(full.readUInt32BE(cutEnd - 8), 22, 'then PUTFH');
  const seqReply = Buffer.from(full.subarray(0, cutEnd));
  seqReply.writeUInt32BE(0, fr.resultAt);
  seqReply.writeUInt32BE(cut.k, countAt);

  const run = (split: (b: Buffer) => Buffer[]): { backend: Buffer; guest: Buffer; answered: string[] } => {
    const st = new RpcStream(RO);
    const backend: Buffer[] = [];
    const guest: Buffer[] = [];
    const answered: string[] = [];
    const take = (r: Relay): void => {
      backend.push(...r.toBackend);
      guest.push(...r.toGuest);
      answered.push(...(r.answered ?? []).map((a) => a.reason));
      t.equal(r.refusal, undefined);
    };
    const readReply = downs.get((decodeCall(read) as RpcCall).xid) as Buffer;
    for (const [bytes, side] of [[write, 'guest'], [seqReply, 'backend'], [read, 'guest'], [readReply, 'backend']] as const) {
      for (const c of split(frame(bytes))) {
        take(side === 'guest' ? st.fromGuest(c) : st.fromBackend(c));
      }
    }
    return { backend: Buffer.concat(backend), guest: Buffer.concat(guest), answered };
  };
  const whole = run((b) => [b]);
  t.same(whole.answered, ['rofs']);
  const sent = records(whole.backend);
  t.equal(sent.length, 2, 'two calls reached the server: the compound cut before the WRITE, then the read');
  const seqCall = sent[0] as Buffer;
  t.equal(seqCall.length, cut.at, 'the first ends where the writing operation began');
  t.equal(seqCall.readUInt32BE(cut.countAt), cut.k, `with ${cut.k} operations`);
  t.ok(seqCall.subarray(cut.countAt + 4).equals(write.subarray(cut.countAt + 4, cut.at)), "SEQUENCE's and PUTFH's arguments (session, sequence id, slot, handle) unchanged");
  t.ok((sent[1] as Buffer).equals(read), 'the read passes as it was');
  const got = records(whole.guest);
  t.equal(got.length, 2, 'two replies reached the guest');
  const ans = got[0] as Buffer;
  t.equal(ans.readUInt32BE(fr.resultAt), 30, 'compound status NFS4ERR_ROFS');
  t.equal(ans.readUInt32BE(countAt), 3, 'three results');
  t.ok(ans.subarray(countAt + 4, cutEnd).equals(full.subarray(countAt + 4, cutEnd)), "the server's own SEQUENCE and PUTFH results");
  t.same([ans.readUInt32BE(cutEnd), ans.readUInt32BE(cutEnd + 4)], [cut.op, 30], 'then the writing operation failing with ROFS');
  t.equal(ans.length, cutEnd + 8, 'and nothing more');
  t.ok((got[1] as Buffer).equals(downs.get((decodeCall(read) as RpcCall).xid) as Buffer), 'the next reply streams through unchanged');
  const bytewise = run((b) => [...b].map((x) => Buffer.from([x])));
  t.ok(bytewise.backend.equals(whole.backend) && bytewise.guest.equals(whole.guest), 'the same one byte at a time');
  // A SEQUENCE the server refuses (say, NFS4ERR_BADSESSION) reaches the guest as the server sent it.
  const bad = Buffer.from(seqReply);
  bad.writeUInt32BE(10052, fr.resultAt);
  bad.writeUInt32BE(10052, countAt + 8);
  const st = new RpcStream(RO);
  st.fromGuest(frame(write));
  t.ok(Buffer.concat(st.fromBackend(frame(bad)).toGuest).equals(frame(bad)), 'a failed SEQUENCE passes untouched');
});
