/**
 * The transfer sizes a server advertises, lowered in its replies to what
 * the gateway accepts, in place (same length, so nothing else moves):
 * NFSv3 FSINFO's rtmax/rtpref/wtmax/wtpref (RFC 1813 section 3.3.19) and
 * NFSv4 GETATTR's FATTR4_MAXREAD/FATTR4_MAXWRITE (attributes 30 and 31,
 * uint64; RFC 7530 section 5.7). nfs-ganesha advertises 64 MiB; a client
 * that believed it would send WRITEs the gateway must refuse (a fragment
 * past RPC_MAX_FRAGMENT, a COMPOUND past what it holds to inspect), and
 * the whole connection would be reset. Told the lower size, the client
 * splits its I/O and every request fits. Pure.
 */
import { ProtocolError } from '../errors';
import { skipFattr4Attr } from './nfs-ids';
import { XdrReader, XdrShort } from './xdr-reader';

/**
 * The largest READ or WRITE the gateway lets a client negotiate: 1 MiB,
 * the Linux client's and nfs-ganesha's default, well inside both the
 * fragment limit and the COMPOUND hold bound (rpc-stream.ts).
 */
export const NFS_IO_MAX = 1024 * 1024;

const bad = (msg: string): ProtocolError => new ProtocolError('SGW_ERR_PROTO_MALFORMED', msg);

/** Lowers a uint32 at `at` to `max`; true if it changed. */
function clamp32(b: Buffer, at: number, max: number): boolean {
  if (b.readUInt32BE(at) <= max) {
    return false;
  }
  b.writeUInt32BE(max, at);
  return true;
}

/** Lowers a uint64 at `at` to `max`; true if it changed. */
function clamp64(b: Buffer, at: number, max: number): boolean {
  if (b.readUInt32BE(at) === 0 && b.readUInt32BE(at + 4) <= max) {
    return false;
  }
  b.writeUInt32BE(0, at);
  b.writeUInt32BE(max, at + 4);
  return true;
}

/**
 * FSINFO3res (`res` from its status on): rtmax, rtpref, wtmax and wtpref
 * lowered to `max`. Returns how many fields changed.
 */
export function clampFsinfo3(res: Buffer, max = NFS_IO_MAX): number | ProtocolError {
  if (res.length < 8) {
    return bad('FSINFO reply too short');
  }
  if (res.readUInt32BE(0) !== 0) {
    return 0;
  }
  // post_op_attr: a bool, then a fattr3 of 84 bytes when set.
  const at = 8 + (res.readUInt32BE(4) !== 0 ? 84 : 0);
  if (res.length < at + 20) {
    return bad('FSINFO reply too short for its limits');
  }
  let n = 0;
  for (const off of [0, 4, 12, 16]) {
    n += clamp32(res, at + off, max) ? 1 : 0;
  }
  return n;
}

/** A fattr4 at the cursor: maxread and maxwrite lowered in place. Returns how many changed. */
function clampFattr4(x: XdrReader, max: number): number {
  const words = x.bitmap();
  const len = x.u32();
  const end = x.at + len;
  x.need(len);
  const w0 = words[0] ?? 0;
  if ((w0 & 0xc0000000) === 0) {
    x.at = end + ((4 - (len % 4)) % 4);
    return 0;
  }
  const vals = new XdrReader(x.b.subarray(0, end), x.at);
  let n = 0;
  for (let bit = 0; bit < 32; bit++) {
    if ((w0 & (1 << bit)) === 0) {
      continue;
    }
    if (bit === 30 || bit === 31) {
      vals.need(8);
      n += clamp64(x.b, vals.at, max) ? 1 : 0;
      vals.at += 8;
    } else {
      skipFattr4Attr(vals, bit);
    }
  }
  x.at = end + ((4 - (len % 4)) % 4);
  return n;
}

/** Skips one operation's successful result, for the operations a compound puts before a GETATTR; false for the others. */
function skipResult(op: number, x: XdrReader): boolean {
  switch (op) {
    case 7: // DELEGPURGE
    case 8: // DELEGRETURN
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
    case 58: // RECLAIM_COMPLETE
      return true;
    case 3: // ACCESS: supported, access
      x.skip(8);
      return true;
    case 10: // GETFH
    case 27: // READLINK
      x.opaque();
      return true;
    case 53: // SEQUENCE: sessionid, sequenceid, slotid, highest, target highest, status flags
      x.skip(36);
      return true;
    default:
      return false;
  }
}

/**
 * COMPOUND4res (`res` from its status on): FATTR4_MAXREAD and
 * FATTR4_MAXWRITE lowered to `max` in every GETATTR result the walk
 * reaches. The walk stops at the first failed operation, and at one whose
 * result it does not skip (what follows is left as it is). Returns how
 * many values changed.
 */
export function clampCompound4(res: Buffer, max = NFS_IO_MAX): number | ProtocolError {
  const x = new XdrReader(res, 0);
  let n = 0;
  try {
    x.skip(4); // status
    x.opaque(); // tag
    const count = x.u32();
    for (let i = 0; i < count; i++) {
      const op = x.u32();
      if (x.u32() !== 0) {
        break;
      }
      if (op === 9) {
        n += clampFattr4(x, max);
      } else if (!skipResult(op, x)) {
        break;
      }
    }
  } catch (e) {
    if (e instanceof XdrShort) {
      return bad('NFSv4 COMPOUND reply does not parse');
    }
    throw e;
  }
  return n;
}
