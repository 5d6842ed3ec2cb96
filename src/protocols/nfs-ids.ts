/**
 * Per-domain id mapping (the offset map): guest uid/gid N is backend id
 * N + offset, so two domains' uid 500 land as two different owners on a
 * shared backend, and each domain sees its own files as uid 500. Pure.
 *
 * - Calls: the AUTH_SYS credential (done by the policy's same-length
 *   patches) and the ids a call sets: sattr3 in NFSv3 SETATTR, CREATE,
 *   MKDIR, SYMLINK and MKNOD, rewritten in place here.
 * - Replies: every fattr3 in an NFSv3 reply (post-op attributes, wcc data,
 *   READDIRPLUS entries) and every NFSv4 numeric owner and owner_group
 *   string (GETATTR, READDIR entries) are mapped back. A backend id outside
 *   the domain's window (another domain's, or the backend's own) shows as
 *   the domain's anonymous id: a guest never sees a foreign backend id.
 *
 * NFSv4 owner strings that are names (`alice@example.com`) are left alone:
 * with name-based id mapping the backend's idmapper decides, not the
 * gateway.
 */
import { ProtocolError } from '../errors';
import { XdrReader, XdrShort } from './xdr-reader';

/** Guest ids the map covers: 0 .. ID_WINDOW - 1. */
export const ID_WINDOW = 65536;

export interface IdMap {
  offset: number;
  /** Guest-side id shown for backend ids outside the window. */
  anonUid: number;
  anonGid: number;
}

/** The backend id of guest id `id` (which the policy has checked to be inside the window). */
export const toBackend = (m: IdMap, id: number): number => (m.offset + id) >>> 0;

/** The guest id of backend id `id`: inside the window, minus the offset; outside, the anonymous id. */
export function toGuest(m: IdMap, id: number, kind: 'uid' | 'gid'): number {
  const g = id - m.offset;
  return g >= 0 && g < ID_WINDOW ? g : kind === 'uid' ? m.anonUid : m.anonGid;
}

const bad = (msg: string): ProtocolError => new ProtocolError('SGW_ERR_PROTO_MALFORMED', msg);

// ---------------------------------------------------------------- NFSv3

const FATTR3 = 84;

function fattr3(x: XdrReader, m: IdMap): void {
  x.need(FATTR3);
  const b = x.b;
  b.writeUInt32BE(toGuest(m, b.readUInt32BE(x.at + 12), 'uid'), x.at + 12);
  b.writeUInt32BE(toGuest(m, b.readUInt32BE(x.at + 16), 'gid'), x.at + 16);
  x.at += FATTR3;
}

function postOpAttr(x: XdrReader, m: IdMap): void {
  if (x.bool()) {
    fattr3(x, m);
  }
}

function wccData(x: XdrReader, m: IdMap): void {
  if (x.bool()) {
    x.skip(24); // wcc_attr: size, mtime, ctime
  }
  postOpAttr(x, m);
}

function postOpFh(x: XdrReader): void {
  if (x.bool()) {
    x.opaque(64);
  }
}

/**
 * Maps back, in place, the attributes of an NFSv3 result (`res` from the
 * status on) of procedure `proc`. An error means the reply does not parse.
 */
export function mapReply3(proc: number, res: Buffer, m: IdMap): ProtocolError | null {
  if (proc === 0 || proc > 21) {
    return null; // NULL has no result; procedures past COMMIT are not NFSv3
  }
  const x = new XdrReader(res, 0);
  try {
    const ok = x.u32() === 0;
    switch (proc) {
      case 1: // GETATTR
        if (ok) {
          fattr3(x, m);
        }
        break;
      case 2: // SETATTR
      case 7: // WRITE
      case 12: // REMOVE
      case 13: // RMDIR
      case 21: // COMMIT
        wccData(x, m);
        break;
      case 3: // LOOKUP
        if (ok) {
          x.opaque(64);
          postOpAttr(x, m);
        }
        postOpAttr(x, m);
        break;
      case 4: // ACCESS
      case 5: // READLINK
      case 6: // READ
      case 16: // READDIR
      case 18: // FSSTAT
      case 19: // FSINFO
      case 20: // PATHCONF
        postOpAttr(x, m);
        break;
      case 8: // CREATE
      case 9: // MKDIR
      case 10: // SYMLINK
      case 11: // MKNOD
        if (ok) {
          postOpFh(x);
          postOpAttr(x, m);
        }
        wccData(x, m);
        break;
      case 14: // RENAME
        wccData(x, m);
        wccData(x, m);
        break;
      case 15: // LINK
        postOpAttr(x, m);
        wccData(x, m);
        break;
      case 17: // READDIRPLUS
        postOpAttr(x, m);
        if (ok) {
          x.skip(8); // cookieverf
          while (x.bool()) {
            x.skip(8); // fileid
            x.opaque(4096); // name
            x.skip(8); // cookie
            postOpAttr(x, m);
            postOpFh(x);
          }
        }
        break;
      default:
        break;
    }
  } catch (e) {
    if (e instanceof XdrShort) {
      return bad(`NFSv3 procedure ${proc} reply does not parse`);
    }
    throw e;
  }
  return null;
}

/** Where an NFSv3 call's sattr3 starts, by procedure; null: the call sets no attributes. */
function sattrAt(proc: number, x: XdrReader): boolean {
  switch (proc) {
    case 2: // SETATTR: object, new_attributes
      x.opaque(64);
      return true;
    case 8: {
      // CREATE: where (dir, name), how: UNCHECKED/GUARDED carry attributes, EXCLUSIVE a verifier
      x.opaque(64);
      x.opaque(4096);
      const how = x.u32();
      return how === 0 || how === 1;
    }
    case 9: // MKDIR: where, attributes
    case 10: // SYMLINK: where, symlinkdata (attributes, then the target)
      x.opaque(64);
      x.opaque(4096);
      return true;
    case 11: {
      // MKNOD: where, type, then attributes for devices, sockets and fifos
      x.opaque(64);
      x.opaque(4096);
      const type = x.u32();
      if (type === 3 || type === 4) {
        return true; // NF3CHR, NF3BLK: devicedata = sattr3 + specdata3
      }
      return type === 6 || type === 7; // NF3SOCK, NF3FIFO
    }
    default:
      return false;
  }
}

/**
 * The ids an NFSv3 call sets (chown, or the owner given at create), as
 * same-length patches to the backend's ids; `allowed` decides whether the
 * guest may name that id at all. Offsets are into `args` as given (the
 * record, starting at the call's arguments at `at`).
 */
export function sattrIds(proc: number, rec: Buffer, at: number): { uidAt: number | null; uid: number; gidAt: number | null; gid: number } | ProtocolError | null {
  const x = new XdrReader(rec, at);
  try {
    if (!sattrAt(proc, x)) {
      return null;
    }
    if (x.bool()) {
      x.skip(4); // mode
    }
    let uidAt: number | null = null;
    let uid = 0;
    let gidAt: number | null = null;
    let gid = 0;
    if (x.bool()) {
      uidAt = x.at;
      uid = x.u32();
    }
    if (x.bool()) {
      gidAt = x.at;
      gid = x.u32();
    }
    return uidAt === null && gidAt === null ? null : { uidAt, uid, gidAt, gid };
  } catch (e) {
    if (e instanceof XdrShort) {
      return bad(`NFSv3 procedure ${proc} attributes past the end of the call's head`);
    }
    throw e;
  }
}

// ---------------------------------------------------------------- NFSv4

const OWNER = 36;
const OWNER_GROUP = 37;

/**
 * Skips one attribute value (RFC 7530 section 5, RFC 8881 section 5) of those
 * that can precede owner_group (bits 0-35); throws XdrShort for one it cannot
 * size. Also the skipper of the maxread/maxwrite clamp (nfs-limits.ts).
 */
export function skipFattr4Attr(x: XdrReader, bit: number): void {
  switch (bit) {
    case 0: {
      // supported_attrs: bitmap4
      const n = x.u32();
      x.skip(4 * n);
      return;
    }
    case 1: // type
    case 2: // fh_expire_type
    case 10: // lease_time
    case 11: // rdattr_error
    case 13: // aclsupport
    case 28: // maxlink
    case 29: // maxname
    case 33: // mode
    case 35: // numlinks
    case 5: // link_support (bool)
    case 6: // symlink_support
    case 7: // named_attr
    case 9: // unique_handles
    case 14: // archive
    case 15: // cansettime
    case 16: // case_insensitive
    case 17: // case_preserving
    case 18: // chown_restricted
    case 25: // hidden
    case 26: // homogeneous
    case 34: // no_trunc
      x.skip(4);
      return;
    case 3: // change
    case 4: // size
    case 20: // fileid
    case 21: // files_avail
    case 22: // files_free
    case 23: // files_total
    case 27: // maxfilesize
    case 30: // maxread
    case 31: // maxwrite
      x.skip(8);
      return;
    case 8: // fsid: major, minor
      x.skip(16);
      return;
    case 19: // filehandle
      x.opaque(128);
      return;
    case 32: // mimetype
      x.opaque(4096);
      return;
    case 12: {
      // acl: nfsace4<>: type, flag, access_mask, who
      const n = x.u32();
      for (let i = 0; i < n; i++) {
        x.skip(12);
        x.opaque(4096);
      }
      return;
    }
    case 24: {
      // fs_locations: fs_root (pathname4), locations<> (server<>, rootpath)
      const path = (): void => {
        const n = x.u32();
        for (let i = 0; i < n; i++) {
          x.opaque(4096);
        }
      };
      path();
      const locs = x.u32();
      for (let i = 0; i < locs; i++) {
        path(); // server<> is a list of strings too
        path();
      }
      return;
    }
    default:
      throw new XdrShort(); // an attribute this mapper cannot size
  }
}

/** A numeric owner string (`500`, or `500@domain`) mapped back; names and non-numeric strings unchanged. */
function mapOwner(s: string, m: IdMap, kind: 'uid' | 'gid'): string {
  const at = s.indexOf('@');
  const num = at === -1 ? s : s.slice(0, at);
  if (!/^\d{1,10}$/.test(num)) {
    return s;
  }
  const id = Number(num);
  if (id > 0xffffffff) {
    return s;
  }
  return String(toGuest(m, id, kind)) + (at === -1 ? '' : s.slice(at));
}

/**
 * A fattr4 at x.at: the replacement attrlist4 if owner or owner_group was
 * mapped (bitmap + new opaque), else null; x moves past it either way.
 */
function fattr4(x: XdrReader, m: IdMap): { from: number; to: number; bytes: Buffer } | null {
  const n = x.u32();
  if (n > 8) {
    throw new XdrShort();
  }
  const words: number[] = [];
  for (let i = 0; i < n; i++) {
    words.push(x.u32());
  }
  const has = (bit: number): boolean => ((words[bit >>> 5] ?? 0) & (1 << (bit & 31))) !== 0;
  const list = x.opaque(1 << 20);
  if (!has(OWNER) && !has(OWNER_GROUP)) {
    return null;
  }
  const v = new XdrReader(x.b.subarray(list.start, list.start + list.len), 0);
  const parts: Buffer[] = [];
  let from = 0;
  for (let bit = 0; bit <= OWNER_GROUP; bit++) {
    if (!has(bit)) {
      continue;
    }
    if (bit === OWNER || bit === OWNER_GROUP) {
      const before = v.at;
      const s = v.opaque(1024);
      const old = v.b.toString('utf8', s.start, s.start + s.len);
      const mapped = mapOwner(old, m, bit === OWNER ? 'uid' : 'gid');
      parts.push(v.b.subarray(from, before), xdrString(mapped));
      from = v.at;
    } else {
      skipFattr4Attr(v, bit);
    }
  }
  parts.push(v.b.subarray(from));
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length, 0);
  const pad = Buffer.alloc((4 - (body.length % 4)) % 4);
  return { from: list.start - 4, to: x.at, bytes: Buffer.concat([head, body, pad]) };
}

function xdrString(s: string): Buffer {
  const body = Buffer.from(s, 'utf8');
  const out = Buffer.alloc(4 + body.length + ((4 - (body.length % 4)) % 4));
  out.writeUInt32BE(body.length, 0);
  body.copy(out, 4);
  return out;
}

/** Skips the rest of one operation's successful result (after its status). False: an operation this walker does not know. */
function skipResult(op: number, x: XdrReader, m: IdMap, edits: { from: number; to: number; bytes: Buffer }[]): boolean {
  const changeInfo = (): void => x.skip(20);
  const bitmap = (): void => {
    const n = x.u32();
    x.skip(4 * n);
  };
  switch (op) {
    case 7: // DELEGPURGE
    case 8: // DELEGRETURN
    case 13: // LOCKT (denied results are handled by the caller)
    case 15: // LOOKUP
    case 16: // LOOKUPP
    case 17: // NVERIFY
    case 19: // OPENATTR
    case 22: // PUTFH
    case 23: // PUTPUBFH
    case 24: // PUTROOTFH
    case 30: // RENEW
    case 31: // RESTOREFH
    case 32: // SAVEFH
    case 36: // SETCLIENTID_CONFIRM
    case 37: // VERIFY
    case 39: // RELEASE_LOCKOWNER
    case 40: // BACKCHANNEL_CTL
    case 44: // DESTROY_SESSION
    case 45: // FREE_STATEID
    case 57: // DESTROY_CLIENTID
    case 58: // RECLAIM_COMPLETE
      return true;
    case 3: // ACCESS
    case 5: // COMMIT
      x.skip(8);
      return true;
    case 4: // CLOSE
    case 12: // LOCK
    case 14: // LOCKU
    case 20: // OPEN_CONFIRM
    case 21: // OPEN_DOWNGRADE
      x.skip(16);
      return true;
    case 6: // CREATE: change_info, attrset
      changeInfo();
      bitmap();
      return true;
    case 9: {
      // GETATTR
      const e = fattr4(x, m);
      if (e !== null) {
        edits.push(e);
      }
      return true;
    }
    case 10: // GETFH
    case 27: // READLINK
      x.opaque(1 << 20);
      return true;
    case 11: // LINK
    case 28: // REMOVE
      changeInfo();
      return true;
    case 29: // RENAME
      x.skip(40);
      return true;
    case 25: // READ: eof, data
      x.skip(4);
      x.opaque(1 << 26);
      return true;
    case 26: {
      // READDIR: cookieverf, entries (cookie, name, attrs), eof
      x.skip(8);
      while (x.bool()) {
        x.skip(8);
        x.opaque(4096);
        const e = fattr4(x, m);
        if (e !== null) {
          edits.push(e);
        }
      }
      x.skip(4);
      return true;
    }
    case 33: // SECINFO
    case 52: {
      // SECINFO_NO_NAME: flavors, RPCSEC_GSS with oid, qop, service
      const n = x.u32();
      for (let i = 0; i < n; i++) {
        if (x.u32() === 6) {
          x.opaque(1024);
          x.skip(8);
        }
      }
      return true;
    }
    case 35: // SETCLIENTID: clientid, verifier
      x.skip(16);
      return true;
    case 38: // WRITE: count, committed, verifier
      x.skip(16);
      return true;
    case 41: // BIND_CONN_TO_SESSION
      x.skip(24);
      return true;
    case 53: // SEQUENCE: sessionid, sequenceid, slotid, highest_slotid, target_highest_slotid, status_flags
      x.skip(36);
      return true;
    case 55: {
      // TEST_STATEID: status per stateid
      const n = x.u32();
      x.skip(4 * n);
      return true;
    }
    case 18: {
      // OPEN: stateid, change_info, rflags, attrset, delegation
      x.skip(16);
      changeInfo();
      x.skip(4);
      bitmap();
      const type = x.u32();
      const ace = (): void => {
        x.skip(12);
        x.opaque(4096);
      };
      if (type === 1) {
        x.skip(20); // stateid, recall
        ace();
      } else if (type === 2) {
        x.skip(20);
        x.skip(4 + 8); // space_limit: limitby, then filesize or (num_blocks, bytes_per_block)
        ace();
      } else if (type === 3) {
        const why = x.u32(); // open_none_delegation4 (v4.1)
        if (why === 1 || why === 2) {
          x.skip(4);
        }
      } else if (type !== 0) {
        return false;
      }
      return true;
    }
    default:
      return false;
  }
}

/**
 * Maps back the owner strings in an NFSv4 COMPOUND result (`res` from its
 * status on). Returns the result to send: `res` itself when nothing
 * changed, or a rebuilt one (owner strings change length). `partial`: the
 * walk stopped at an operation it does not know, and what follows it went
 * unmapped. `walked`: results read, the failed one included.
 */
export function mapCompound4(res: Buffer, m: IdMap): { res: Buffer; partial: boolean; walked: number } | ProtocolError {
  const x = new XdrReader(res, 0);
  const edits: { from: number; to: number; bytes: Buffer }[] = [];
  let partial = false;
  let walked = 0;
  try {
    x.skip(4); // status
    x.opaque(1024); // tag
    const n = x.u32();
    for (let i = 0; i < n; i++, walked++) {
      const op = x.u32();
      const status = x.u32();
      if (status !== 0) {
        // A failure ends the compound; its result carries nothing the map needs.
        walked++;
        break;
      }
      if (op === 34) {
        const w = x.u32();
        x.skip(4 * w);
        continue;
      }
      if (!skipResult(op, x, m, edits)) {
        partial = true;
        break;
      }
    }
  } catch (e) {
    if (e instanceof XdrShort) {
      return bad('NFSv4 COMPOUND reply does not parse');
    }
    throw e;
  }
  if (edits.length === 0) {
    return { res, partial, walked };
  }
  const parts: Buffer[] = [];
  let from = 0;
  for (const e of edits) {
    parts.push(res.subarray(from, e.from), e.bytes);
    from = e.to;
  }
  parts.push(res.subarray(from));
  return { res: Buffer.concat(parts), partial, walked };
}
