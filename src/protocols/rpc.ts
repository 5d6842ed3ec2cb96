/**
 * ONC RPC over TCP (RFC 5531): record marking, the call header, AUTH_SYS
 * credentials (RFC 5531 appendix A) with their field offsets for in-place
 * rewriting, and encoders for the replies the gateway answers with itself
 * (an accepted reply with a procedure's result, or an AUTH_ERROR denial).
 * Pure decoders over a record's head; they return a ProtocolError, never
 * throw.
 */
import { ProtocolError } from '../errors';

/** The last-fragment bit of a record-marking header (RFC 5531 section 11). */
export const LAST_FRAGMENT = 0x80000000;

/** Largest fragment accepted: NFS moves 1 MiB per READ/WRITE, plus headers. */
export const RPC_MAX_FRAGMENT = 4 * 1024 * 1024 + 4096;

/**
 * Bytes of a call the policy needs: the call header, a credential and a
 * verifier of up to 400 bytes each (the protocol's limit), and the start of
 * the arguments (a MOUNT path of up to 1024 bytes, or a COMPOUND's tag of
 * up to 1024 bytes with its minor version and operation count).
 */
export const RPC_HEAD_MAX = 40 + 2 * 408 + 1036;

/**
 * Largest whole record (all its fragments) in either direction: a record
 * may not be larger than one fragment may be. RFC 5531 section 11 puts no
 * bound on a record; every client and server puts one (knfsd's
 * sv_max_mesg), and so does the gateway, before buffering anything.
 */
export const RPC_MAX_RECORD = RPC_MAX_FRAGMENT;

export const MSG_CALL = 0;
export const MSG_REPLY = 1;
export const AUTH_NONE = 0;
export const AUTH_SYS = 1;
export const RPCSEC_GSS = 6;
/** auth_stat: rejected for security reasons. */
export const AUTH_TOOWEAK = 5;

export const PROG_PORTMAP = 100000;
export const PROG_NFS = 100003;
export const PROG_MOUNT = 100005;

export interface AuthSys {
  stamp: number;
  machine: string;
  uid: number;
  gid: number;
  gids: number[];
  /** Offsets in the record of uid, gid and the first aux gid (for in-place rewrites). */
  uidAt: number;
  gidAt: number;
  gidsAt: number;
}

export interface RpcCall {
  xid: number;
  prog: number;
  vers: number;
  proc: number;
  credFlavor: number;
  /** Set for AUTH_SYS credentials. */
  sys: AuthSys | null;
  /** Offset of the procedure's arguments in the record. */
  argsAt: number;
}

const bad = (msg: string): ProtocolError => new ProtocolError('SGW_ERR_PROTO_MALFORMED', msg);

/** An XDR opaque<max> at `at`: its length and the offset after its padded body. */
function opaque(b: Buffer, at: number, max: number, what: string): { len: number; next: number } | ProtocolError {
  if (at + 4 > b.length) {
    return bad(`${what}: length past the end`);
  }
  const len = b.readUInt32BE(at);
  if (len > max) {
    return bad(`${what}: ${len} bytes exceed ${max}`);
  }
  const next = at + 4 + len + ((4 - (len % 4)) % 4);
  if (next > b.length) {
    return bad(`${what}: body past the end`);
  }
  return { len, next };
}

/** Decodes the call header at the start of a record (RFC 5531 section 9). */
export function decodeCall(rec: Buffer): RpcCall | ProtocolError {
  if (rec.length < 24) {
    return bad(`call of ${rec.length} bytes is shorter than its header`);
  }
  const xid = rec.readUInt32BE(0);
  if (rec.readUInt32BE(4) !== MSG_CALL) {
    return new ProtocolError('SGW_ERR_PROTO_UNEXPECTED', 'message from the client is not a CALL');
  }
  if (rec.readUInt32BE(8) !== 2) {
    return bad(`RPC version ${rec.readUInt32BE(8)}, not 2`);
  }
  const prog = rec.readUInt32BE(12);
  const vers = rec.readUInt32BE(16);
  const proc = rec.readUInt32BE(20);
  if (rec.length < 32) {
    return bad('call without a credential');
  }
  const credFlavor = rec.readUInt32BE(24);
  const cred = opaque(rec, 28, 400, 'credential');
  if (cred instanceof ProtocolError) {
    return cred;
  }
  if (cred.next + 4 > rec.length) {
    return bad('call without a verifier');
  }
  const verf = opaque(rec, cred.next + 4, 400, 'verifier');
  if (verf instanceof ProtocolError) {
    return verf;
  }
  let sys: AuthSys | null = null;
  if (credFlavor === AUTH_SYS) {
    const s = decodeAuthSys(rec, 32, 32 + cred.len);
    if (s instanceof ProtocolError) {
      return s;
    }
    sys = s;
  }
  return { xid, prog, vers, proc, credFlavor, sys, argsAt: verf.next };
}

/** AUTH_SYS body (RFC 5531 appendix A) between `at` and `end`. */
function decodeAuthSys(b: Buffer, at: number, end: number): AuthSys | ProtocolError {
  const body = b.subarray(0, end);
  if (at + 8 > end) {
    return bad('AUTH_SYS credential too short');
  }
  const stamp = body.readUInt32BE(at);
  const name = opaque(body, at + 4, 255, 'AUTH_SYS machinename');
  if (name instanceof ProtocolError) {
    return name;
  }
  const machine = body.toString('latin1', at + 8, at + 8 + name.len);
  const uidAt = name.next;
  if (uidAt + 12 > end) {
    return bad('AUTH_SYS credential too short for uid, gid and gids');
  }
  const n = body.readUInt32BE(uidAt + 8);
  if (n > 16) {
    return bad(`AUTH_SYS has ${n} aux gids, more than 16`);
  }
  const gidsAt = uidAt + 12;
  if (gidsAt + 4 * n !== end) {
    return bad('AUTH_SYS length does not match its gids');
  }
  const gids: number[] = [];
  for (let i = 0; i < n; i++) {
    gids.push(body.readUInt32BE(gidsAt + 4 * i));
  }
  return { stamp, machine, uid: body.readUInt32BE(uidAt), gid: body.readUInt32BE(uidAt + 4), gids, uidAt, gidAt: uidAt + 4, gidsAt };
}

/** An XDR string<max> at `at` (e.g. a MOUNT dirpath). */
export function decodeString(rec: Buffer, at: number, max: number, what: string): string | ProtocolError {
  const o = opaque(rec, at, max, what);
  if (o instanceof ProtocolError) {
    return o;
  }
  return rec.toString('utf8', at + 4, at + 4 + o.len);
}

/** One whole record (a single last fragment) around `body`. */
function record(body: Buffer): Buffer {
  const out = Buffer.alloc(4 + body.length);
  out.writeUInt32BE((LAST_FRAGMENT | body.length) >>> 0, 0);
  body.copy(out, 4);
  return out;
}

/** MSG_ACCEPTED, SUCCESS, AUTH_NONE verifier, then the procedure's result. */
export function acceptedReply(xid: number, result: Buffer): Buffer {
  const h = Buffer.alloc(24);
  h.writeUInt32BE(xid, 0);
  h.writeUInt32BE(MSG_REPLY, 4);
  // reply_stat MSG_ACCEPTED (0), verifier AUTH_NONE (0, 0), accept_stat SUCCESS (0)
  return record(Buffer.concat([h, result]));
}

/** MSG_DENIED, AUTH_ERROR with `stat`. */
export function authErrorReply(xid: number, stat: number): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt32BE(xid, 0);
  h.writeUInt32BE(MSG_REPLY, 4);
  h.writeUInt32BE(1, 8); // MSG_DENIED
  h.writeUInt32BE(1, 12); // AUTH_ERROR
  h.writeUInt32BE(stat, 16);
  return record(h);
}

/** A reply's xid and whether the server accepted it (for tests and logs). */
export function decodeReply(rec: Buffer): { xid: number; accepted: boolean; acceptStat: number | null; authStat: number | null; resultAt: number } | ProtocolError {
  if (rec.length < 12 || rec.readUInt32BE(4) !== MSG_REPLY) {
    return bad('not an RPC reply');
  }
  const xid = rec.readUInt32BE(0);
  if (rec.readUInt32BE(8) === 1) {
    if (rec.length < 20) {
      return bad('denied reply too short');
    }
    return { xid, accepted: false, acceptStat: null, authStat: rec.readUInt32BE(12) === 1 ? rec.readUInt32BE(16) : null, resultAt: rec.length };
  }
  const verf = opaque(rec, 16, 400, 'reply verifier');
  if (verf instanceof ProtocolError) {
    return verf;
  }
  if (verf.next + 4 > rec.length) {
    return bad('reply without accept_stat');
  }
  return { xid, accepted: true, acceptStat: rec.readUInt32BE(verf.next), authStat: null, resultAt: verf.next + 4 };
}

/**
 * A record's bytes as the pieces they arrived in, read without joining
 * them (a held COMPOUND with a 1 MiB WRITE is walked, not copied). Reads
 * that straddle two pieces copy the few bytes they need.
 */
export class Pieces {
  readonly length: number;
  private readonly starts: number[] = [];
  /** The piece of the last read: walks move forward, so most reads start there. */
  private last = 0;

  constructor(private readonly bufs: readonly Buffer[]) {
    let n = 0;
    for (const b of bufs) {
      this.starts.push(n);
      n += b.length;
    }
    this.length = n;
  }

  private find(at: number): number {
    let i = this.last;
    if ((this.starts[i] ?? 0) > at) {
      i = 0;
    }
    while (i + 1 < this.bufs.length && (this.starts[i + 1] ?? 0) <= at) {
      i++;
    }
    this.last = i;
    return i;
  }

  /** `n` bytes at `at`: a view when they lie in one piece, else a copy. The caller checked the bounds. */
  bytes(at: number, n: number): Buffer {
    const i = this.find(at);
    const b = this.bufs[i] as Buffer;
    const off = at - (this.starts[i] ?? 0);
    if (off + n <= b.length) {
      return b.subarray(off, off + n);
    }
    const out = Buffer.alloc(n);
    let have = 0;
    for (let j = i, o = off; have < n && j < this.bufs.length; j++, o = 0) {
      const src = this.bufs[j] as Buffer;
      have += src.copy(out, have, o, Math.min(src.length, o + n - have));
    }
    return out;
  }

  u32(at: number): number {
    return this.bytes(at, 4).readUInt32BE(0);
  }
}
