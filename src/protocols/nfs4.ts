/**
 * NFSv4.x COMPOUND requests (RFC 7530 section 16.2, RFC 8881 section 18):
 * the tag, the minor version and the operations, walked far enough to tell
 * whether the compound changes the file system and which names it looks
 * up. Arguments are skipped by their XDR layout; an operation whose
 * arguments this walker cannot skip (or that lie past the bytes it was
 * given) ends the walk, and the result says so. Pure.
 */
import { ProtocolError } from '../errors';

export const NFS4ERR_PERM = 1;
export const OP_SEQUENCE = 53;
export const NFS4ERR_ACCESS = 13;
export const NFS4ERR_ROFS = 30;

/** Operations that change the file system whatever their arguments. */
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
  [63, 'DEALLOCATE'],
  [69, 'WRITE_SAME'],
  [71, 'CLONE'],
]);

const OPEN = 18;
const OPENATTR = 19;

export interface CompoundWalk {
  tag: Buffer;
  minorVersion: number;
  /** Operation codes in order, as far as the walk got. */
  ops: number[];
  /** Per operation: the component a LOOKUP, or an OPEN by name (CLAIM_NULL), names; null for the others. */
  names: (string | null)[];
  /** Some operation sets owner or owner_group (SETATTR, CREATE, OPEN with attributes, as far as the walk got). */
  setsOwner: boolean;
  /** Offset of the operation count in the record. */
  countAt: number;
  /** Offset just past the first operation's arguments, if walked. */
  firstOpEnd: number | null;
  /** The first operation that writes: its index and name. */
  mutating: { index: number; name: string } | null;
  /** The walk stopped before the last operation (an operation it cannot skip, or the end of what it was given). */
  incomplete: boolean;
}

class Cursor {
  /** A fattr4 skipped so far had owner (36) or owner_group (37) set. */
  ownerSet = false;
  constructor(
    private readonly b: Buffer,
    public at: number,
  ) {}
  has(n: number): boolean {
    return this.at + n <= this.b.length;
  }
  u32(): number {
    const v = this.b.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }
  skip(n: number): void {
    this.at += n;
  }
  /** Skips an opaque<max> / string; false if it does not fit. */
  opaque(max = 0xffffffff): boolean {
    if (!this.has(4)) {
      return false;
    }
    const len = this.u32();
    if (len > max) {
      return false;
    }
    const padded = len + ((4 - (len % 4)) % 4);
    if (!this.has(padded)) {
      return false;
    }
    this.at += padded;
    return true;
  }
  /** Reads a component4 (utf8str_cs<1024>); null if it does not fit. */
  component(): string | null {
    const start = this.at;
    if (!this.opaque(1024)) {
      return null;
    }
    const len = this.b.readUInt32BE(start);
    return this.b.toString('utf8', start + 4, start + 4 + len);
  }
  /** Skips a fattr4: bitmap4 then the attribute values as one opaque. */
  fattr(): boolean {
    const at = this.at;
    if (!this.bitmap()) {
      return false;
    }
    // owner and owner_group are bits 4 and 5 of the second word.
    if (this.b.readUInt32BE(at) >= 2 && (this.b.readUInt32BE(at + 8) & 0x30) !== 0) {
      this.ownerSet = true;
    }
    return this.opaque();
  }
  /** Skips a bitmap4 (uint32 count, then words). */
  bitmap(): boolean {
    if (!this.has(4)) {
      return false;
    }
    const n = this.u32();
    if (n > 64 || !this.has(4 * n)) {
      return false;
    }
    this.at += 4 * n;
    return true;
  }
  fixed(n: number): boolean {
    if (!this.has(n)) {
      return false;
    }
    this.at += n;
    return true;
  }
}

/**
 * Skips one operation's arguments. Returns false when it cannot (unknown
 * operation, or arguments past the end of `b`). Sets `writes` for an OPEN
 * that asks for write access or creates, and an OPENATTR that creates;
 * `name` for a LOOKUP and an OPEN by name.
 */
function skipArgs(op: number, c: Cursor, out: { writes: boolean; name: string | null }): boolean {
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
    case 30: // RENEW
    case 57: // DESTROY_CLIENTID
      return c.fixed(8);
    case 36: // SETCLIENTID_CONFIRM
    case 44: // DESTROY_SESSION
    case 45: // FREE_STATEID
      return c.fixed(16);
    case 4: // CLOSE: seqid, stateid
    case 20: // OPEN_CONFIRM: stateid, seqid
      return c.fixed(20);
    case 41: // BIND_CONN_TO_SESSION
      return c.fixed(24);
    case 21: // OPEN_DOWNGRADE
    case 25: // READ: stateid, offset, count
      return c.fixed(28);
    case 53: // SEQUENCE
      return c.fixed(32);
    case 14: // LOCKU
      return c.fixed(40);
    case 9: // GETATTR
      return c.bitmap();
    case 55: {
      // TEST_STATEID: stateid4<>
      if (!c.has(4)) {
        return false;
      }
      const n = c.u32();
      return n <= 1024 && c.fixed(16 * n);
    }
    case 15: // LOOKUP
      out.name = c.component();
      return out.name !== null;
    case 11: // LINK: newname
    case 28: // REMOVE: target
    case 33: // SECINFO
      return c.opaque(1024);
    case 29: // RENAME: oldname, newname
      return c.opaque(1024) && c.opaque(1024);
    case 5: // COMMIT: offset, count
      return c.fixed(12);
    case 34: // SETATTR: stateid, fattr4
      return c.fixed(16) && c.fattr();
    case 38: // WRITE: stateid, offset, stable, data
      return c.fixed(28) && c.opaque();
    case 6: {
      // CREATE: createtype4 (a symlink's target, a device's numbers), objname, createattrs
      if (!c.has(4)) {
        return false;
      }
      const type = c.u32();
      const body = type === 5 ? c.opaque() : type === 3 || type === 4 ? c.fixed(8) : true;
      return body && c.opaque(1024) && c.fattr();
    }
    case 22: // PUTFH
      return c.opaque(128);
    case 17: // NVERIFY
    case 37: // VERIFY
      return c.bitmap() && c.opaque();
    case 26: // READDIR: cookie, verifier, dircount, maxcount, attr_request
      return c.fixed(24) && c.bitmap();
    case 39: // RELEASE_LOCKOWNER: clientid, owner
      return c.fixed(8) && c.opaque(1024);
    case 13: // LOCKT: locktype, offset, length, clientid, owner
      return c.fixed(28) && c.opaque(1024);
    case 12: {
      // LOCK: locktype, reclaim, offset, length, then the locker
      if (!c.fixed(24) || !c.has(4)) {
        return false;
      }
      return c.u32() !== 0 ? c.fixed(24 + 8) && c.opaque(1024) : c.fixed(20);
    }
    case OPENATTR: {
      if (!c.has(4)) {
        return false;
      }
      out.writes = c.u32() !== 0;
      return true;
    }
    case OPEN: {
      // seqid, share_access, share_deny, owner (clientid + opaque), openhow, claim
      if (!c.has(12)) {
        return false;
      }
      c.skip(4);
      const access = c.u32() & 0xff;
      c.skip(4);
      if (!c.fixed(8) || !c.opaque(1024) || !c.has(4)) {
        return false;
      }
      const opentype = c.u32();
      // OPEN4_SHARE_ACCESS_WRITE, or OPEN4_CREATE: a write either way.
      out.writes = (access & 2) !== 0 || opentype !== 0;
      if (opentype !== 0) {
        // createhow4: UNCHECKED4 and GUARDED4 carry attributes, EXCLUSIVE4 a
        // verifier, EXCLUSIVE4_1 (v4.1) both.
        if (!c.has(4)) {
          return false;
        }
        const mode = c.u32();
        const ok = mode === 0 || mode === 1 ? c.fattr() : mode === 2 ? c.fixed(8) : mode === 3 ? c.fixed(8) && c.fattr() : false;
        if (!ok) {
          return false;
        }
      }
      if (!c.has(4)) {
        return false;
      }
      const claim = c.u32();
      switch (claim) {
        case 0: // CLAIM_NULL: component
          out.name = c.component();
          return out.name !== null;
        case 3: // CLAIM_DELEGATE_PREV: component
          return c.opaque(1024);
        case 1: // CLAIM_PREVIOUS: delegation type
          return c.fixed(4);
        case 2: // CLAIM_DELEGATE_CUR: stateid, component
          return c.fixed(16) && c.opaque(1024);
        case 4: // CLAIM_FH
        case 6: // CLAIM_DELEG_PREV_FH
          return true;
        case 5: // CLAIM_DELEG_CUR_FH: stateid
          return c.fixed(16);
        default:
          return false;
      }
    }
    default:
      return false;
  }
}

/**
 * Walks a COMPOUND's arguments starting at `at` in `rec` (the RPC call's
 * args), past writing operations too, so that the mount checks see every
 * LOOKUP a readable compound holds.
 */
export function walkCompound(rec: Buffer, at: number): CompoundWalk | ProtocolError {
  const c = new Cursor(rec, at);
  const tagStart = at;
  if (!c.opaque(1024)) {
    return new ProtocolError('SGW_ERR_PROTO_MALFORMED', 'COMPOUND tag past the end');
  }
  const tag = rec.subarray(tagStart, c.at);
  if (!c.has(8)) {
    return new ProtocolError('SGW_ERR_PROTO_MALFORMED', 'COMPOUND without minorversion and operations');
  }
  const minorVersion = c.u32();
  const countAt = c.at;
  const n = c.u32();
  if (n > 1024) {
    return new ProtocolError('SGW_ERR_PROTO_MALFORMED', `COMPOUND of ${n} operations`);
  }
  const w: CompoundWalk = { tag, minorVersion, ops: [], names: [], setsOwner: false, countAt, firstOpEnd: null, mutating: null, incomplete: false };
  for (let i = 0; i < n; i++) {
    if (!c.has(4)) {
      w.incomplete = true;
      return w;
    }
    const op = c.u32();
    const flags = { writes: false, name: null as string | null };
    const skipped = skipArgs(op, c, flags);
    w.ops.push(op);
    w.names.push(flags.name);
    w.setsOwner = c.ownerSet;
    const name = NFS4_MUTATING.get(op) ?? (flags.writes ? (op === OPEN ? 'OPEN for write or create' : 'OPENATTR create') : undefined);
    if (name !== undefined && w.mutating === null) {
      w.mutating = { index: i, name };
    }
    if (!skipped) {
      w.incomplete = i < n - 1;
      return w;
    }
    if (i === 0) {
      w.firstOpEnd = c.at;
    }
  }
  return w;
}

/** COMPOUND4res with `status` and no results (the gateway executed nothing). */
export function compoundError(tag: Buffer, status: number): Buffer {
  const s = Buffer.alloc(4);
  s.writeUInt32BE(status, 0);
  const n = Buffer.alloc(4); // resarray<> of 0
  return Buffer.concat([s, tag, n]);
}
