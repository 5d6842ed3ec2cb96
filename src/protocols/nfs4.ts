/**
 * NFSv4.x COMPOUND requests (RFC 7530 section 16.2, RFC 8881 section 18,
 * RFC 7862 section 15, RFC 8276 section 8): the tag, the minor version and
 * the operations, walked to the end so the policy can tell whether the
 * compound changes the file system and which names it looks up. Arguments
 * are skipped by their XDR layout; every operation of v4.0, 4.1 and 4.2
 * (with the xattr operations) is known. A walk stops early only at an
 * operation code no minor version defines (the server would answer
 * NFS4ERR_OP_ILLEGAL), at arguments that are not valid XDR
 * (NFS4ERR_BADXDR), or where the bytes it was given end; the result says
 * which, and at which operation. Pure.
 */
import { ProtocolError } from '../errors';
import type { Pieces } from './rpc';

export const NFS4_OK = 0;
export const NFS4ERR_PERM = 1;
export const NFS4ERR_ACCESS = 13;
export const NFS4ERR_INVAL = 22;
export const NFS4ERR_ROFS = 30;
/** RFC 7530 section 13.1.3.4: a component longer than the server's maxname. */
export const NFS4ERR_NAMETOOLONG = 63;
/** RFC 7530 section 13.1.6.3: the server ran out of resources for this request (v4.0's answer to one too big). */
export const NFS4ERR_RESOURCE = 10018;
export const NFS4ERR_BADXDR = 10036;
/** RFC 7530 section 13.1.6.2 / RFC 8881 section 15.1.3.4: an operation number outside the protocol. */
export const NFS4ERR_OP_ILLEGAL = 10044;
/** RFC 8881 section 15.1.3.9: the request exceeds the session's limit (v4.1+). */
export const NFS4ERR_REQ_TOO_BIG = 10065;

export const OP_SEQUENCE = 53;
/** RFC 7530 section 16.37: the result op code for an operation number the server does not know. */
export const OP_ILLEGAL = 10044;
const OP_GETATTR = 9;
const OP_WRITE = 38;
const OP_OPEN = 18;
const OPENATTR = 19;

/** The longest name a LOOKUP, OPEN or CREATE may carry (NAME_MAX; nfs-ganesha's and Linux's maxname). */
export const NFS4_NAME_MAX = 255;

/** Every operation of NFSv4.0, 4.1 and 4.2 with the xattr extension, by number. */
export const NFS4_OPS: ReadonlyMap<number, string> = new Map([
  [3, 'ACCESS'], [4, 'CLOSE'], [5, 'COMMIT'], [6, 'CREATE'], [7, 'DELEGPURGE'], [8, 'DELEGRETURN'], [9, 'GETATTR'], [10, 'GETFH'],
  [11, 'LINK'], [12, 'LOCK'], [13, 'LOCKT'], [14, 'LOCKU'], [15, 'LOOKUP'], [16, 'LOOKUPP'], [17, 'NVERIFY'], [18, 'OPEN'],
  [19, 'OPENATTR'], [20, 'OPEN_CONFIRM'], [21, 'OPEN_DOWNGRADE'], [22, 'PUTFH'], [23, 'PUTPUBFH'], [24, 'PUTROOTFH'], [25, 'READ'],
  [26, 'READDIR'], [27, 'READLINK'], [28, 'REMOVE'], [29, 'RENAME'], [30, 'RENEW'], [31, 'RESTOREFH'], [32, 'SAVEFH'], [33, 'SECINFO'],
  [34, 'SETATTR'], [35, 'SETCLIENTID'], [36, 'SETCLIENTID_CONFIRM'], [37, 'VERIFY'], [38, 'WRITE'], [39, 'RELEASE_LOCKOWNER'],
  // RFC 8881
  [40, 'BACKCHANNEL_CTL'], [41, 'BIND_CONN_TO_SESSION'], [42, 'EXCHANGE_ID'], [43, 'CREATE_SESSION'], [44, 'DESTROY_SESSION'],
  [45, 'FREE_STATEID'], [46, 'GET_DIR_DELEGATION'], [47, 'GETDEVICEINFO'], [48, 'GETDEVICELIST'], [49, 'LAYOUTCOMMIT'],
  [50, 'LAYOUTGET'], [51, 'LAYOUTRETURN'], [52, 'SECINFO_NO_NAME'], [53, 'SEQUENCE'], [54, 'SET_SSV'], [55, 'TEST_STATEID'],
  [56, 'WANT_DELEGATION'], [57, 'DESTROY_CLIENTID'], [58, 'RECLAIM_COMPLETE'],
  // RFC 7862
  [59, 'ALLOCATE'], [60, 'COPY'], [61, 'COPY_NOTIFY'], [62, 'DEALLOCATE'], [63, 'IO_ADVISE'], [64, 'LAYOUTERROR'], [65, 'LAYOUTSTATS'],
  [66, 'OFFLOAD_CANCEL'], [67, 'OFFLOAD_STATUS'], [68, 'READ_PLUS'], [69, 'SEEK'], [70, 'WRITE_SAME'], [71, 'CLONE'],
  // RFC 8276
  [72, 'GETXATTR'], [73, 'SETXATTR'], [74, 'LISTXATTRS'], [75, 'REMOVEXATTR'],
]);

/** Operations that change the file system whatever their arguments (OPEN and OPENATTR depend on theirs). */
export const NFS4_MUTATING: ReadonlyMap<number, string> = new Map([
  [5, 'COMMIT'],
  [6, 'CREATE'],
  [11, 'LINK'],
  [28, 'REMOVE'],
  [29, 'RENAME'],
  [34, 'SETATTR'],
  [38, 'WRITE'],
  [49, 'LAYOUTCOMMIT'],
  [59, 'ALLOCATE'],
  [60, 'COPY'],
  [62, 'DEALLOCATE'],
  [70, 'WRITE_SAME'],
  [71, 'CLONE'],
  [73, 'SETXATTR'],
  [75, 'REMOVEXATTR'],
]);

/** Why a walk ended before the compound's last operation. */
export type WalkStop = 'short' | 'illegal' | 'badxdr';

export interface CompoundWalk {
  tag: Buffer;
  minorVersion: number;
  /** Offset of the operation count in the record. */
  countAt: number;
  /** The number of operations the compound declares. */
  count: number;
  /** Operation codes in order: every one walked, then the one the walk stopped at (if its code was read). */
  ops: number[];
  /** Per entry of `ops`: the offset of its operation code in the record. */
  opAt: number[];
  /** Per operation: the component a LOOKUP, an OPEN by name or a CREATE names; null for the others. */
  names: (string | null)[];
  /** Per operation: the byte length of that name (names past 1024 bytes are not decoded). */
  nameLens: (number | null)[];
  /** Some operation sets owner or owner_group (SETATTR, CREATE, OPEN with attributes). */
  setsOwner: boolean;
  /** The first operation that sets owner or owner_group. */
  ownerAt: number | null;
  /** Offset just past the first operation's arguments, if walked. */
  firstOpEnd: number | null;
  /** The first operation that writes: its index and name. */
  mutating: { index: number; name: string } | null;
  /** A GETATTR asks for FATTR4_MAXREAD or FATTR4_MAXWRITE (its reply is clamped, nfs-limits.ts). */
  asksLimits: boolean;
  /** Where and why the walk ended early; null when every operation was walked. */
  stop: { index: number; why: WalkStop } | null;
  /** Offset just past the last operation walked (the end of the arguments when complete). */
  end: number;
  /** stop !== null (kept for readers that only need to know). */
  incomplete: boolean;
}

/** What a walk reads from: a record as one buffer, or as the pieces it arrived in. */
interface Src {
  readonly length: number;
  u32(at: number): number;
  bytes(at: number, n: number): Buffer;
}

const bufferSrc = (b: Buffer): Src => ({ length: b.length, u32: (at) => b.readUInt32BE(at), bytes: (at, n) => b.subarray(at, at + n) });

/**
 * A forward reader over XDR. A read past the end sets `short` (more bytes
 * might complete it); a value XDR or the protocol forbids sets `bad`.
 */
class Cursor {
  /** A fattr4 skipped so far had owner (36) or owner_group (37) set. */
  ownerSet = false;
  short = false;
  bad = false;
  constructor(
    private readonly b: Src,
    public at: number,
  ) {}
  has(n: number): boolean {
    if (this.at + n <= this.b.length) {
      return true;
    }
    this.short = true;
    return false;
  }
  u32(): number {
    const v = this.b.u32(this.at);
    this.at += 4;
    return v;
  }
  /** Reads a uint32 if it is there; null (short) if not. */
  word(): number | null {
    return this.has(4) ? this.u32() : null;
  }
  fail(): false {
    this.bad = true;
    return false;
  }
  fixed(n: number): boolean {
    if (!this.has(n)) {
      return false;
    }
    this.at += n;
    return true;
  }
  /** Skips an opaque<max> / string<max>. */
  opaque(max = 0xffffffff): boolean {
    const len = this.word();
    if (len === null) {
      return false;
    }
    if (len > max) {
      return this.fail();
    }
    return this.fixed(len + ((4 - (len % 4)) % 4));
  }
  /** Reads an opaque's length and moves past its body, which need not be there yet. */
  opaqueLength(): boolean {
    const len = this.word();
    if (len === null) {
      return false;
    }
    this.at += len + ((4 - (len % 4)) % 4);
    return true;
  }
  /** Reads a component4 (utf8str_cs, no XDR bound): its byte length, and the name when up to 1024 bytes. */
  component(): { name: string; len: number } | null {
    const start = this.at;
    if (!this.opaque()) {
      return null;
    }
    const len = this.b.u32(start);
    return { name: len <= 1024 ? this.b.bytes(start + 4, len).toString('utf8') : '', len };
  }
  /** Skips a bitmap4 (uint32 count, then words); returns its first word (0 when empty), or null. */
  bitmap(): number | null {
    const n = this.word();
    if (n === null) {
      return null;
    }
    if (n > 64) {
      this.fail();
      return null;
    }
    if (!this.has(4 * n)) {
      return null;
    }
    const first = n > 0 ? this.b.u32(this.at) : 0;
    if (n >= 2 && (this.b.u32(this.at + 4) & 0x30) !== 0) {
      // owner and owner_group are bits 4 and 5 of the second word (36, 37).
      this.bitmapOwner = true;
    }
    this.at += 4 * n;
    return first;
  }
  private bitmapOwner = false;
  /** Skips a fattr4: bitmap4 then the attribute values as one opaque. */
  fattr(): boolean {
    this.bitmapOwner = false;
    if (this.bitmap() === null) {
      return false;
    }
    if (this.bitmapOwner) {
      this.ownerSet = true;
    }
    return this.opaque();
  }
  /** Skips an array of at most `max` elements, each skipped by `each`. */
  array(max: number, each: () => boolean): boolean {
    const n = this.word();
    if (n === null) {
      return false;
    }
    if (n > max) {
      return this.fail();
    }
    for (let i = 0; i < n; i++) {
      if (!each()) {
        return false;
      }
    }
    return true;
  }
  /** A bool followed by `then` when true. */
  optional(then: () => boolean): boolean {
    const b = this.word();
    if (b === null) {
      return false;
    }
    return b === 0 ? true : b === 1 ? then() : this.fail();
  }
}

/** NFS4_OPAQUE_LIMIT (RFC 7530 section 2.1): client ids, owners, lock owners. */
const OPAQUE_LIMIT = 1024;
/** NFS4_FHSIZE. */
const FH_MAX = 128;

/** netaddr4: r_netid, r_addr (RFC 5665). */
const netaddr = (c: Cursor): boolean => c.opaque() && c.opaque();
/** netloc4 (RFC 7862 section 4.10.1): a name, a URL or a netaddr4. */
function netloc(c: Cursor): boolean {
  const type = c.word();
  return type === null ? false : type === 1 || type === 2 ? c.opaque() : type === 3 ? netaddr(c) : c.fail();
}
/** callback_sec_parms4 (RFC 8881 section 18.36): AUTH_NONE, AUTH_SYS parameters or RPCSEC_GSS handles. */
function callbackSec(c: Cursor): boolean {
  const flavor = c.word();
  switch (flavor) {
    case null:
      return false;
    case 0:
      return true;
    case 1: // authsys_parms: stamp, machinename<255>, uid, gid, gids<16>
      return c.fixed(4) && c.opaque(255) && c.fixed(8) && c.array(16, () => c.fixed(4));
    case 6: // gss_cb_handles4: service, handle from server, handle from client
      return c.fixed(4) && c.opaque() && c.opaque();
    default:
      return c.fail();
  }
}
/** channel_attrs4: six counts, then ca_rdma_ird<1>. */
const channelAttrs = (c: Cursor): boolean => c.fixed(24) && c.array(1, () => c.fixed(4));
/** state_protect_ops4: two bitmaps. */
const protectOps = (c: Cursor): boolean => c.bitmap() !== null && c.bitmap() !== null;
/** layoutupdate4: layout type, then an opaque body. */
const layoutUpdate = (c: Cursor): boolean => c.fixed(4) && c.opaque();

interface OpFacts {
  writes: boolean;
  name: { name: string; len: number } | null;
  asksLimits: boolean;
}

/**
 * Skips one known operation's arguments. Returns false when it cannot:
 * the cursor says whether bytes ran out (`short`) or the arguments are not
 * valid XDR (`bad`). Sets `writes` for an OPEN that asks for write access
 * or creates and an OPENATTR that creates; `name` for a LOOKUP, an OPEN by
 * name and a CREATE; `asksLimits` for a GETATTR of maxread or maxwrite.
 */
function skipArgs(op: number, c: Cursor, out: OpFacts): boolean {
  switch (op) {
    case 10: // GETFH
    case 16: // LOOKUPP
    case 23: // PUTPUBFH
    case 24: // PUTROOTFH
    case 27: // READLINK
    case 31: // RESTOREFH
    case 32: // SAVEFH
      return true;
    case 3: // ACCESS
    case 52: // SECINFO_NO_NAME
    case 58: // RECLAIM_COMPLETE
      return c.fixed(4);
    case 7: // DELEGPURGE: clientid
    case 30: // RENEW
    case 57: // DESTROY_CLIENTID
      return c.fixed(8);
    case 74: // LISTXATTRS: cookie, maxcount
      return c.fixed(12);
    case 8: // DELEGRETURN: stateid
    case 36: // SETCLIENTID_CONFIRM: clientid, verifier
    case 44: // DESTROY_SESSION: sessionid
    case 45: // FREE_STATEID
    case 66: // OFFLOAD_CANCEL: stateid
    case 67: // OFFLOAD_STATUS
      return c.fixed(16);
    case 4: // CLOSE: seqid, stateid
    case 20: // OPEN_CONFIRM: stateid, seqid
      return c.fixed(20);
    case 41: // BIND_CONN_TO_SESSION: sessionid, dir, use_rdma
    case 48: // GETDEVICELIST: type, maxdevices, cookie, verifier
      return c.fixed(24);
    case 21: // OPEN_DOWNGRADE: stateid, seqid, access, deny
    case 25: // READ: stateid, offset, count
    case 68: // READ_PLUS: stateid, offset, count
    case 69: // SEEK: stateid, offset, what
      return c.fixed(28);
    case 53: // SEQUENCE: sessionid, sequenceid, slotid, highest slotid, cachethis
    case 59: // ALLOCATE: stateid, offset, length
    case 62: // DEALLOCATE
      return c.fixed(32);
    case 14: // LOCKU: type, seqid, stateid, offset, length
      return c.fixed(40);
    case 50: // LAYOUTGET: signal, type, iomode, offset, length, minlength, stateid, maxcount
    case 71: // CLONE: two stateids, two offsets, count
      return c.fixed(56);
    case 9: {
      // GETATTR: bitmap4; maxread and maxwrite are bits 30 and 31 of word 0.
      const first = c.bitmap();
      out.asksLimits = first !== null && (first & 0xc0000000) !== 0;
      return first !== null;
    }
    case 55: // TEST_STATEID: stateid4<>
      return c.array(1024, () => c.fixed(16));
    case 15: // LOOKUP
      out.name = c.component();
      return out.name !== null;
    case 11: // LINK: newname
    case 28: // REMOVE: target
    case 33: // SECINFO: name
    case 72: // GETXATTR: name
    case 75: // REMOVEXATTR: name
      return c.opaque();
    case 29: // RENAME: oldname, newname
      return c.opaque() && c.opaque();
    case 5: // COMMIT: offset, count
      return c.fixed(12);
    case 34: // SETATTR: stateid, fattr4
      return c.fixed(16) && c.fattr();
    case 38: // WRITE: stateid, offset, stable, data
      return c.fixed(28) && c.opaque();
    case 73: // SETXATTR: option, name, value
      return c.fixed(4) && c.opaque() && c.opaque();
    case 6: {
      // CREATE: createtype4 (a symlink's target, a device's numbers), objname, createattrs
      const type = c.word();
      if (type === null) {
        return false;
      }
      if (type < 1 || type > 9) {
        return c.fail();
      }
      if (!(type === 5 ? c.opaque() : type === 3 || type === 4 ? c.fixed(8) : true)) {
        return false;
      }
      out.name = c.component();
      return out.name !== null && c.fattr();
    }
    case 22: // PUTFH
      return c.opaque(FH_MAX);
    case 17: // NVERIFY
    case 37: // VERIFY
      return c.fattr();
    case 26: // READDIR: cookie, verifier, dircount, maxcount, attr_request
      return c.fixed(24) && c.bitmap() !== null;
    case 39: // RELEASE_LOCKOWNER: clientid, owner
      return c.fixed(8) && c.opaque(OPAQUE_LIMIT);
    case 13: // LOCKT: locktype, offset, length, clientid, owner
      return c.fixed(28) && c.opaque(OPAQUE_LIMIT);
    case 12: {
      // LOCK: locktype, reclaim, offset, length, then locker4: a new lock
      // owner (open seqid, open stateid, lock seqid, clientid, owner) or an
      // existing one (lock stateid, lock seqid).
      if (!c.fixed(24)) {
        return false;
      }
      const isNew = c.word();
      return isNew === null ? false : isNew === 1 ? c.fixed(32) && c.opaque(OPAQUE_LIMIT) : isNew === 0 ? c.fixed(20) : c.fail();
    }
    case 35: // SETCLIENTID: verifier, id, callback (program, netaddr4), callback_ident
      return c.fixed(8) && c.opaque(OPAQUE_LIMIT) && c.fixed(4) && netaddr(c) && c.fixed(4);
    case 40: // BACKCHANNEL_CTL: program, callback_sec_parms4<>
      return c.fixed(4) && c.array(16, () => callbackSec(c));
    case 42: {
      // EXCHANGE_ID: client_owner4 (verifier, ownerid), flags,
      // state_protect4_a, nfs_impl_id4<1> (domain, name, date).
      if (!(c.fixed(8) && c.opaque(OPAQUE_LIMIT) && c.fixed(4))) {
        return false;
      }
      const how = c.word();
      const sp = how === null ? false : how === 0 ? true : how === 1 ? protectOps(c) : how === 2 ? protectOps(c) && c.array(64, () => c.opaque()) && c.array(64, () => c.opaque()) && c.fixed(8) : c.fail();
      return sp && c.array(1, () => c.opaque() && c.opaque() && c.fixed(12));
    }
    case 43: // CREATE_SESSION: clientid, sequence, flags, fore and back channel attrs, cb program, sec parms<>
      return c.fixed(16) && channelAttrs(c) && channelAttrs(c) && c.fixed(4) && c.array(16, () => callbackSec(c));
    case 46: // GET_DIR_DELEGATION: signal, notification types, two attr_notice4, two bitmaps
      return c.fixed(4) && c.bitmap() !== null && c.fixed(24) && c.bitmap() !== null && c.bitmap() !== null;
    case 47: // GETDEVICEINFO: deviceid, type, maxcount, notify types
      return c.fixed(24) && c.bitmap() !== null;
    case 49: // LAYOUTCOMMIT: offset, length, reclaim, stateid, newoffset4, newtime4, layoutupdate4
      return c.fixed(36) && c.optional(() => c.fixed(8)) && c.optional(() => c.fixed(12)) && layoutUpdate(c);
    case 51: {
      // LAYOUTRETURN: reclaim, type, iomode, layoutreturn4 (a file range with a body, or FSID / ALL)
      if (!c.fixed(12)) {
        return false;
      }
      const type = c.word();
      return type === null ? false : type === 1 ? c.fixed(32) && c.opaque() : type === 2 || type === 3 ? true : c.fail();
    }
    case 54: // SET_SSV: ssv, digest
      return c.opaque() && c.opaque();
    case 56: {
      // WANT_DELEGATION: want, deleg_claim4 (CLAIM_FH, CLAIM_DELEG_PREV_FH, or CLAIM_PREVIOUS with a type)
      if (!c.fixed(4)) {
        return false;
      }
      const claim = c.word();
      return claim === null ? false : claim === 4 || claim === 6 ? true : claim === 1 ? c.fixed(4) : c.fail();
    }
    case 60: // COPY: two stateids, two offsets, count, consecutive, synchronous, netloc4<>
      return c.fixed(64) && c.array(64, () => netloc(c));
    case 61: // COPY_NOTIFY: stateid, netloc4
      return c.fixed(16) && netloc(c);
    case 63: // IO_ADVISE: stateid, offset, count, hints
      return c.fixed(32) && c.bitmap() !== null;
    case 64: // LAYOUTERROR: offset, length, stateid, device_error4<> (deviceid, status, opnum)
      return c.fixed(32) && c.array(1024, () => c.fixed(24));
    case 65: // LAYOUTSTATS: offset, length, stateid, read and write io_info4, deviceid, layoutupdate4
      return c.fixed(80) && layoutUpdate(c);
    case 70: // WRITE_SAME: stateid, stable, app_data_block4 (five counts, then the data)
      return c.fixed(20) && c.fixed(44) && c.opaque();
    case OPENATTR: {
      const create = c.word();
      if (create === null) {
        return false;
      }
      out.writes = create !== 0;
      return true;
    }
    case OP_OPEN:
      return skipOpen(c, out);
    default:
      return c.fail();
  }
}

/** OPEN: seqid, share_access, share_deny, owner (clientid + opaque), openflag4, open_claim4. */
function skipOpen(c: Cursor, out: OpFacts): boolean {
  if (!c.has(12)) {
    return false;
  }
  c.fixed(4);
  const access = c.u32() & 0xff;
  c.fixed(4);
  if (!c.fixed(8) || !c.opaque(OPAQUE_LIMIT)) {
    return false;
  }
  const opentype = c.word();
  if (opentype === null) {
    return false;
  }
  // OPEN4_SHARE_ACCESS_WRITE, or OPEN4_CREATE: a write either way.
  out.writes = (access & 2) !== 0 || opentype !== 0;
  if (opentype === 1) {
    // createhow4: UNCHECKED4 and GUARDED4 carry attributes, EXCLUSIVE4 a
    // verifier, EXCLUSIVE4_1 (v4.1) both.
    const mode = c.word();
    const ok = mode === null ? false : mode === 0 || mode === 1 ? c.fattr() : mode === 2 ? c.fixed(8) : mode === 3 ? c.fixed(8) && c.fattr() : c.fail();
    if (!ok) {
      return false;
    }
  } else if (opentype !== 0) {
    return c.fail();
  }
  const claim = c.word();
  switch (claim) {
    case null:
      return false;
    case 0: // CLAIM_NULL: component
    case 3: // CLAIM_DELEGATE_PREV: component
      out.name = c.component();
      return out.name !== null;
    case 1: // CLAIM_PREVIOUS: delegation type
      return c.fixed(4);
    case 2: // CLAIM_DELEGATE_CUR: stateid, component
      if (!c.fixed(16)) {
        return false;
      }
      out.name = c.component();
      return out.name !== null;
    case 4: // CLAIM_FH
    case 6: // CLAIM_DELEG_PREV_FH
      return true;
    case 5: // CLAIM_DELEG_CUR_FH: stateid
      return c.fixed(16);
    default:
      return c.fail();
  }
}

/** The largest operation count accepted; more is a malformed call (the issue 14 review held here). */
export const NFS4_MAX_OPS = 1024;

/**
 * Walks a COMPOUND's arguments starting at `at` in `rec` (the RPC call's
 * record, whole or in pieces), past writing operations too, so that the
 * mount checks see every LOOKUP a readable compound holds. A tag or
 * operation count the walker cannot accept is an error; everything after
 * them ends in `stop` or walks to the end.
 */
export function walkCompound(rec: Buffer | Pieces, at: number): CompoundWalk | ProtocolError {
  const src = Buffer.isBuffer(rec) ? bufferSrc(rec) : rec;
  const c = new Cursor(src, at);
  const tagStart = at;
  if (!c.opaque(1024)) {
    return new ProtocolError('SGW_ERR_PROTO_MALFORMED', 'COMPOUND tag past the end');
  }
  const tag = src.bytes(tagStart, c.at - tagStart);
  if (!c.has(8)) {
    return new ProtocolError('SGW_ERR_PROTO_MALFORMED', 'COMPOUND without minorversion and operations');
  }
  const minorVersion = c.u32();
  const countAt = c.at;
  const n = c.u32();
  if (n > NFS4_MAX_OPS) {
    return new ProtocolError('SGW_ERR_PROTO_MALFORMED', `COMPOUND of ${n} operations`);
  }
  const w: CompoundWalk = {
    tag: Buffer.from(tag),
    minorVersion,
    countAt,
    count: n,
    ops: [],
    opAt: [],
    names: [],
    nameLens: [],
    setsOwner: false,
    ownerAt: null,
    firstOpEnd: null,
    mutating: null,
    asksLimits: false,
    stop: null,
    end: c.at,
    incomplete: false,
  };
  const stop = (index: number, why: WalkStop): CompoundWalk => {
    w.stop = { index, why };
    w.incomplete = true;
    return w;
  };
  for (let i = 0; i < n; i++) {
    const opAt = c.at;
    const op = c.word();
    if (op === null) {
      return stop(i, 'short');
    }
    w.ops.push(op);
    w.opAt.push(opAt);
    if (!NFS4_OPS.has(op)) {
      w.names.push(null);
      w.nameLens.push(null);
      return stop(i, 'illegal');
    }
    const facts: OpFacts = { writes: false, name: null, asksLimits: false };
    c.ownerSet = false;
    // A WRITE that ends the compound needs no more than its data's length
    // to be judged: nothing can follow it, so its data may stream past.
    const skipped = op === OP_WRITE && i === n - 1 ? c.fixed(28) && c.opaqueLength() : skipArgs(op, c, facts);
    w.names.push(facts.name?.name ?? null);
    w.nameLens.push(facts.name?.len ?? null);
    const name = NFS4_MUTATING.get(op) ?? (facts.writes ? (op === OP_OPEN ? 'OPEN for write or create' : 'OPENATTR create') : undefined);
    if (name !== undefined && w.mutating === null) {
      w.mutating = { index: i, name };
    }
    if (!skipped) {
      return stop(i, c.bad ? 'badxdr' : 'short');
    }
    if (c.ownerSet && w.ownerAt === null) {
      w.ownerAt = i;
      w.setsOwner = true;
    }
    w.asksLimits ||= facts.asksLimits && op === OP_GETATTR;
    w.end = c.at;
    if (i === 0) {
      w.firstOpEnd = c.at;
    }
  }
  return w;
}

/**
 * COMPOUND4res (RFC 7530 section 16.2.2): `status`, the tag, and the
 * results given (each an operation code and its status, which is all a
 * failed operation's result holds).
 */
export function compoundReply(tag: Buffer, status: number, results: readonly { op: number; status: number }[]): Buffer {
  const s = Buffer.alloc(4);
  s.writeUInt32BE(status, 0);
  const r = Buffer.alloc(4 + 8 * results.length);
  r.writeUInt32BE(results.length, 0);
  results.forEach((x, i) => {
    r.writeUInt32BE(x.op, 4 + 8 * i);
    r.writeUInt32BE(x.status, 8 + 8 * i);
  });
  return Buffer.concat([s, tag, r]);
}

/** COMPOUND4res with `status` and no results (nothing was executed). */
export function compoundError(tag: Buffer, status: number): Buffer {
  return compoundReply(tag, status, []);
}
