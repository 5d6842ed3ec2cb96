/**
 * The fuzzers' seed corpus: every record and message of the real captures
 * in test/fixtures/pcaps (RPC calls and replies of NFSv3, MOUNT, portmap,
 * NFSv4.0 and 4.1; SMB 3.1.1 both ways), plus generated valid messages the
 * captures lack (each NFSv3 procedure, MOUNT MNT and EXPORT, NFSv4
 * compounds that write, look up or set owners, SMB2 heads with every
 * dialect, tree connects, compounds).
 */
import { PROG_MOUNT, PROG_NFS, decodeCall, decodeReply } from '../../src/protocols/rpc';
import { ProtocolError } from '../../src/errors';
import { tcpStreams } from '../helpers/pcap';
import { records } from '../helpers/rpc';

/** An XDR writer for generated messages. */
export class Xdr {
  private readonly parts: Buffer[] = [];
  u32(...vs: number[]): this {
    for (const v of vs) {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(v >>> 0, 0);
      this.parts.push(b);
    }
    return this;
  }
  u64(v: number): this {
    return this.u32(Math.floor(v / 0x100000000), v >>> 0);
  }
  opaque(s: string | Buffer): this {
    const b = typeof s === 'string' ? Buffer.from(s) : s;
    this.u32(b.length);
    this.parts.push(b, Buffer.alloc((4 - (b.length % 4)) % 4));
    return this;
  }
  raw(b: Buffer): this {
    this.parts.push(b);
    return this;
  }
  get buf(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** An RPC call with AUTH_SYS (uid, gid, aux gids) and an AUTH_NONE verifier. */
export function rpcCall(xid: number, prog: number, vers: number, proc: number, args: Buffer, id: { uid: number; gid: number; gids?: number[] } = { uid: 1000, gid: 1000 }): Buffer {
  const gids = id.gids ?? [id.gid];
  const cred = new Xdr().u32(0).opaque('guest').u32(id.uid, id.gid, gids.length, ...gids).buf;
  return new Xdr().u32(xid, 0, 2, prog, vers, proc, 1).opaque(cred).u32(0, 0).raw(args).buf;
}

/** An accepted, successful reply around `res`. */
export function rpcReply(xid: number, res: Buffer): Buffer {
  return new Xdr().u32(xid, 1, 0, 0, 0, 0).raw(res).buf;
}

const FH = Buffer.alloc(28, 7);
const fattr3 = (uid: number, gid: number): Buffer => new Xdr().u32(1, 0o644, 1, uid, gid).u64(10).u64(10).u64(0).u64(1).u64(7).u64(0).u64(0).u64(0).buf;
/** sattr3 setting mode, uid and gid (set_it true each), no size or times. */
const sattr3 = (uid: number, gid: number): Buffer => new Xdr().u32(1, 0o600, 1, uid, 1, gid, 0, 0, 0).buf;

/** NFSv4 COMPOUND args: tag, minorversion, then each operation (its code and argument words). */
export function compound(minor: number, ops: Buffer[], tag = ''): Buffer {
  return new Xdr().opaque(tag).u32(minor, ops.length).raw(Buffer.concat(ops)).buf;
}
const op = (code: number, args: Buffer = Buffer.alloc(0)): Buffer => Buffer.concat([new Xdr().u32(code).buf, args]);
const lookup = (name: string): Buffer => op(15, new Xdr().opaque(name).buf);
const sequence = (): Buffer => op(53, Buffer.alloc(32, 1));
const putfh = (): Buffer => op(22, new Xdr().opaque(FH).buf);
/** fattr4 with owner (bit 36) set to `who`. */
const ownerAttr = (who: string): Buffer => new Xdr().u32(2, 0, 0x10).opaque(new Xdr().opaque(who).buf).buf;

function generatedCalls(): Buffer[] {
  const out: Buffer[] = [];
  let xid = 0x5eed0000;
  const ids = [{ uid: 0, gid: 0 }, { uid: 1000, gid: 1000 }, { uid: 65534, gid: 65534, gids: [1, 2, 3] }, { uid: 70000, gid: 5, gids: Array.from({ length: 16 }, (_, i) => i) }];
  for (const id of ids) {
    out.push(rpcCall(xid++, PROG_NFS, 3, 0, Buffer.alloc(0), id));
    // Every NFSv3 procedure with a plausible argument start: a handle, then a name, sattr3 or offsets.
    for (let proc = 1; proc <= 21; proc++) {
      const fh = new Xdr().opaque(FH);
      const args = proc === 2 ? fh.raw(sattr3(id.uid, id.gid)).u32(0).buf : proc === 8 || proc === 9 ? fh.opaque('new').u32(0).raw(sattr3(id.uid, id.gid)).buf : proc === 7 ? fh.u64(0).u32(5, 0).opaque('hello').buf : proc === 10 ? fh.opaque('sym').raw(sattr3(id.uid, id.gid)).opaque('target').buf : proc === 11 ? fh.opaque('dev').u32(3).raw(sattr3(id.uid, id.gid)).u32(1, 2).buf : fh.opaque('name').u32(0, 0, 4096).buf;
      out.push(rpcCall(xid++, PROG_NFS, 3, proc, args, id));
    }
  }
  for (const p of ['/export/acme', '/export/acme/sub', '/export/beta', '/export/acme/../beta', '/', '']) {
    out.push(rpcCall(xid++, PROG_MOUNT, 3, 1, new Xdr().opaque(p).buf));
  }
  out.push(rpcCall(xid++, PROG_MOUNT, 3, 5, Buffer.alloc(0)));
  out.push(rpcCall(xid++, 100000, 2, 3, new Xdr().u32(PROG_NFS, 3, 6, 0).buf));
  const v4 = (minor: number, ops: Buffer[]): Buffer => rpcCall(xid++, PROG_NFS, 4, 1, compound(minor, ops, 'fuzz'));
  out.push(v4(0, [op(24), lookup('export'), lookup('acme'), op(10), op(9, new Xdr().u32(2, 0x18, 0x30).buf)]));
  out.push(v4(0, [op(24), lookup('export'), lookup('beta'), op(10)]));
  out.push(v4(0, [putfh(), op(38, Buffer.concat([Buffer.alloc(16), new Xdr().u64(0).u32(2).opaque('data').buf]))]));
  out.push(v4(1, [sequence(), putfh(), op(38, Buffer.concat([Buffer.alloc(16), new Xdr().u64(0).u32(2).opaque('data').buf]))]));
  out.push(v4(1, [sequence(), op(24), lookup('export'), lookup('acme'), op(28, new Xdr().opaque('f').buf)]));
  out.push(v4(1, [sequence(), putfh(), op(34, Buffer.concat([Buffer.alloc(16), ownerAttr('1000')]))]));
  // OPEN for read by name (CLAIM_NULL), and OPEN with create (UNCHECKED4 with an owner).
  const openHead = new Xdr().u32(0, 1, 0).u64(1).opaque('owner').buf;
  out.push(v4(1, [sequence(), putfh(), op(18, Buffer.concat([openHead, new Xdr().u32(0, 0).opaque('file').buf])), op(10)]));
  out.push(v4(1, [sequence(), putfh(), op(18, Buffer.concat([new Xdr().u32(0, 2, 0).u64(1).opaque('owner').buf, new Xdr().u32(1, 0).buf, ownerAttr('0'), new Xdr().u32(0).opaque('new').buf]))]));
  out.push(v4(0, [op(24), op(32), lookup('export'), op(31), op(16), op(6, Buffer.concat([new Xdr().u32(2).opaque('dir').buf, new Xdr().u32(0, 0).buf]))]));
  out.push(v4(2, [sequence(), putfh(), op(59, Buffer.alloc(32))]));
  out.push(v4(0, [op(9999), op(24)]));
  return out;
}

function generatedReplies(): Buffer[] {
  const out: Buffer[] = [];
  const post = (uid: number, gid: number): Buffer => Buffer.concat([new Xdr().u32(1).buf, fattr3(uid, gid)]);
  for (const [uid, gid] of [[0, 0], [131072 + 1000, 131072 + 1000], [5, 6]] as const) {
    out.push(rpcReply(0x5eed0001, Buffer.concat([new Xdr().u32(0).buf, fattr3(uid, gid)])));
    out.push(rpcReply(0x5eed0003, Buffer.concat([new Xdr().u32(0).opaque(FH).buf, post(uid, gid), post(uid, gid)])));
  }
  out.push(new Xdr().u32(0x5eed0002, 1, 1, 1, 5).buf);
  out.push(new Xdr().u32(0x5eed0004, 1, 0, 0, 0, 2).buf);
  return out;
}

/** SMB2 header (MS-SMB2 2.2.1). */
export function smbHeader(command: number, opts: { response?: boolean; status?: number; next?: number; mid?: number } = {}): Buffer {
  const h = Buffer.alloc(64);
  h.writeUInt32BE(0xfe534d42, 0);
  h.writeUInt16LE(64, 4);
  h.writeUInt32LE(opts.status ?? 0, 8);
  h.writeUInt16LE(command, 12);
  h.writeUInt32LE(opts.response === true ? 1 : 0, 16);
  h.writeUInt32LE(opts.next ?? 0, 20);
  h.writeBigUInt64LE(BigInt(opts.mid ?? 0), 24);
  return h;
}

export function smbNegotiateRequest(dialects: number[]): Buffer {
  const body = Buffer.alloc(36 + 2 * dialects.length);
  body.writeUInt16LE(36, 0);
  body.writeUInt16LE(dialects.length, 2);
  dialects.forEach((d, i) => body.writeUInt16LE(d, 36 + 2 * i));
  return Buffer.concat([smbHeader(0), body]);
}

export function smbNegotiateResponse(dialect: number): Buffer {
  const body = Buffer.alloc(65);
  body.writeUInt16LE(65, 0);
  body.writeUInt16LE(dialect, 4);
  return Buffer.concat([smbHeader(0, { response: true }), body]);
}

export function smbTreeConnect(path: string, mid = 3): Buffer {
  const p = Buffer.from(path, 'utf16le');
  const body = Buffer.alloc(8);
  body.writeUInt16LE(9, 0);
  body.writeUInt16LE(72, 4);
  body.writeUInt16LE(p.length, 6);
  return Buffer.concat([smbHeader(3, { mid }), body, p]);
}

export const smbSessionSetupOk = (): Buffer => Buffer.concat([smbHeader(1, { response: true }), Buffer.alloc(8)]);

/** Pads each command to 8 bytes and chains them by NextCommand (MS-SMB2 3.2.4.1.4). */
export function smbChain(cmds: Buffer[]): Buffer {
  return Buffer.concat(
    cmds.map((c, i) => {
      const p = i === cmds.length - 1 ? Buffer.from(c) : Buffer.concat([c, Buffer.alloc((8 - (c.length % 8)) % 8)]);
      if (i < cmds.length - 1) {
        p.writeUInt32LE(p.length, 20);
      }
      return p;
    }),
  );
}

function generatedSmbUp(): Buffer[] {
  const D = [0x0202, 0x0210, 0x0300, 0x0302, 0x0311];
  return [
    smbNegotiateRequest(D),
    smbNegotiateRequest([0x0202]),
    smbNegotiateRequest([0x02ff, 0x0311]),
    Buffer.concat([smbHeader(1, { mid: 1 }), Buffer.alloc(24)]),
    smbTreeConnect('\\\\198.18.0.100\\acme'),
    smbTreeConnect('\\\\198.18.0.100\\beta'),
    smbTreeConnect('\\\\198.18.0.100\\IPC$'),
    smbChain([Buffer.concat([smbHeader(5, { mid: 4 }), Buffer.alloc(56)]), smbTreeConnect('\\\\h\\beta', 5), Buffer.concat([smbHeader(6, { mid: 6 }), Buffer.alloc(24)])]),
    Buffer.concat([Buffer.from([0xff, 0x53, 0x4d, 0x42]), Buffer.alloc(40)]),
    Buffer.concat([Buffer.from([0xfd, 0x53, 0x4d, 0x42]), Buffer.alloc(60, 9)]),
    Buffer.concat([Buffer.from([0xfc, 0x53, 0x4d, 0x42]), Buffer.alloc(12, 1)]),
  ];
}

function generatedSmbDown(): Buffer[] {
  return [smbNegotiateResponse(0x0311), smbNegotiateResponse(0x0300), smbNegotiateResponse(0x0202), smbSessionSetupOk(), Buffer.concat([smbHeader(3, { response: true }), Buffer.alloc(16)]), Buffer.concat([smbHeader(3, { response: true, status: 0xc00000cc }), Buffer.alloc(9)])];
}

/** Direct-TCP frames of one direction's bytes (whole frames only). */
function smbMessages(stream: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off + 4 <= stream.length; ) {
    const len = stream.readUIntBE(off + 1, 3);
    out.push(stream.subarray(off + 4, off + 4 + len));
    off += 4 + len;
  }
  return out;
}

/** A reply with the call it answers (for the id-map targets, which need the procedure). */
export interface CallReply {
  vers: number;
  proc: number;
  reply: Buffer;
}

export interface Corpus {
  /** RPC call records (payloads, no marks), captured then generated. */
  rpcCalls: Buffer[];
  /** RPC reply records. */
  rpcReplies: Buffer[];
  /** NFS replies paired with their call's version and procedure. */
  nfsReplies: CallReply[];
  /** Whole NFSv4 COMPOUND args (from the tag on). */
  compounds: Buffer[];
  smbUp: Buffer[];
  smbDown: Buffer[];
}

let cached: Promise<Corpus> | null = null;

/** Loads (once per process) the corpus. */
export function loadCorpus(): Promise<Corpus> {
  cached ??= build();
  return cached;
}

async function build(): Promise<Corpus> {
  const c: Corpus = { rpcCalls: [], rpcReplies: [], nfsReplies: [], compounds: [], smbUp: [], smbDown: [] };
  for (const f of ['nfs3-session.pcap', 'nfs4-session.pcap', 'nfs41-session.pcap']) {
    for (const s of await tcpStreams(f)) {
      c.rpcCalls.push(...records(Buffer.concat(s.up)));
      c.rpcReplies.push(...records(Buffer.concat(s.down)));
    }
  }
  for (const f of ['smb3-session.pcap', 'smb3-badauth.pcap']) {
    for (const s of await tcpStreams(f)) {
      c.smbUp.push(...smbMessages(Buffer.concat(s.up)));
      c.smbDown.push(...smbMessages(Buffer.concat(s.down)));
    }
  }
  c.rpcCalls.push(...generatedCalls());
  c.rpcReplies.push(...generatedReplies());
  c.smbUp.push(...generatedSmbUp());
  c.smbDown.push(...generatedSmbDown());
  // Pair replies with their calls by xid.
  const calls = new Map<number, { vers: number; proc: number }>();
  for (const r of c.rpcCalls) {
    const call = decodeCall(r);
    if (call instanceof ProtocolError || call.prog !== PROG_NFS) {
      continue;
    }
    calls.set(call.xid, { vers: call.vers, proc: call.proc });
    if (call.vers === 4 && call.proc === 1) {
      c.compounds.push(r.subarray(call.argsAt));
    }
  }
  for (const r of c.rpcReplies) {
    const rep = decodeReply(r);
    const call = rep instanceof ProtocolError ? undefined : calls.get(rep.xid);
    if (call !== undefined) {
      c.nfsReplies.push({ ...call, reply: r });
    }
  }
  return c;
}
