/**
 * The gateway's NFS policy for one call, pure: what to do with an ONC RPC
 * call from a guest, given its grant.
 *
 * - identity (AUTH_SYS, any program): root squash rewrites uid/gid 0 to
 *   the domain's anonymous ids in place (same length, so the record is
 *   forwarded as is); a uid or gid outside the allowed ranges gets an
 *   AUTH_ERROR (AUTH_TOOWEAK) from the gateway. RPCSEC_GSS and other flavors
 *   pass untouched: their identity is the domain's own Kerberos.
 * - read-only (NFSv3, RFC 1813): the mutating procedures are answered by the
 *   gateway with NFS3ERR_ROFS in a well-formed result (status and empty
 *   wcc_data); reads pass. NFSv4.x (RFC 7530, 8881): a COMPOUND with a
 *   writing operation (WRITE, CREATE, REMOVE, RENAME, LINK, SETATTR, OPEN for
 *   write or create, ...) is answered with NFS4ERR_ROFS and no results, none
 *   of it executed; one the gateway cannot read to the end is too (fail
 *   closed).
 * - mount checks (MOUNT v3 MNT): only export paths of shares the guest is
 *   granted on this backend, or paths below them; otherwise MNT3ERR_ACCES.
 *   NFSv4 has no MOUNT: a COMPOUND's PUTROOTFH (or PUTPUBFH) and LOOKUPs
 *   are followed component by component, and a LOOKUP (or an OPEN by name)
 *   that leaves the granted exports and the pseudo-fs directories above
 *   them gets NFS4ERR_ACCESS, none of the compound executed. A PUTFH makes
 *   the path unknown: a handle from an earlier, checked compound is not
 *   checked again (the gateway keeps no handle table, see ADR 0008).
 *   MOUNT EXPORT is answered with the granted export paths only: the
 *   backend's own list names other tenants' exports.
 */
import type { ProtocolError } from '../errors';
import { ID_WINDOW, sattrIds } from './nfs-ids';
import { compoundError, NFS4ERR_ACCESS, NFS4ERR_PERM, NFS4ERR_ROFS, OP_SEQUENCE, walkCompound } from './nfs4';
import type { CompoundWalk } from './nfs4';
import { acceptedReply, authErrorReply, AUTH_TOOWEAK, decodeString, PROG_MOUNT, PROG_NFS } from './rpc';
import type { RpcCall } from './rpc';

export interface IdRange {
  from: number;
  to: number;
}

export interface IdentityPolicy {
  rootSquash: boolean;
  anonUid: number;
  anonGid: number;
  /** null: any id. */
  uids: IdRange[] | null;
  gids: IdRange[] | null;
  /** Offset map (nfs-ids.ts): guest id N is backend id N + idOffset; null: ids pass as they are. */
  idOffset: number | null;
}

export interface NfsPolicy {
  readOnly: boolean;
  identity: IdentityPolicy | null;
  /** Export paths the guest may mount on this backend; null: no check. May be a getter (the proxy reads the current grant). */
  readonly exports: readonly string[] | null;
}

/** Why the gateway answered or refused; stable values (metrics, access log). */
export type NfsAction = 'rofs' | 'uid-range' | 'mount-denied' | 'export-list' | 'owner-set';

/**
 * NFSv4.1+ answers keep the session's slot in step: the gateway sends the
 * compound's SEQUENCE on alone (the server advances the slot and caches
 * that reply), and rewrites the reply to carry the gateway's status on the
 * next operation. See RpcStream.
 */
export interface SequenceOnly {
  /** Offset of the operation count in the record, set to 1. */
  countAt: number;
  /** The record ends after SEQUENCE's arguments. */
  end: number;
  /** The operation after SEQUENCE, which the rewritten reply says failed; null if none. */
  nextOp: number | null;
  status: number;
  /** Credential patches (squash, id map) for the SEQUENCE call sent on. */
  patches: { at: number; value: number }[];
}

export type CallVerdict =
  | { action: 'forward'; patches: { at: number; value: number }[] }
  | { action: 'answer'; reply: Buffer; reason: NfsAction; detail: string; sequenceOnly?: SequenceOnly }
  | { action: 'refuse'; reason: 'malformed'; detail: string; error: ProtocolError };

/** NFSv3 procedures that change the file system, with the size of their empty wcc/attr result after the status. */
export const NFS3_MUTATING: ReadonlyMap<number, { name: string; failBytes: number }> = new Map([
  [2, { name: 'SETATTR', failBytes: 8 }],
  [7, { name: 'WRITE', failBytes: 8 }],
  [8, { name: 'CREATE', failBytes: 8 }],
  [9, { name: 'MKDIR', failBytes: 8 }],
  [10, { name: 'SYMLINK', failBytes: 8 }],
  [11, { name: 'MKNOD', failBytes: 8 }],
  [12, { name: 'REMOVE', failBytes: 8 }],
  [13, { name: 'RMDIR', failBytes: 8 }],
  [14, { name: 'RENAME', failBytes: 16 }],
  [15, { name: 'LINK', failBytes: 12 }],
  [21, { name: 'COMMIT', failBytes: 8 }],
]);

export const NFS3ERR_PERM = 1;
export const NFS3ERR_ROFS = 30;
export const MNT3ERR_ACCES = 13;
const MOUNTPROC3_MNT = 1;
const MOUNTPROC3_EXPORT = 5;

const inRanges = (id: number, ranges: readonly IdRange[] | null): boolean => ranges === null || ranges.some((r) => id >= r.from && id <= r.to);

/** A mount path is allowed if it is a granted export or lies below one. */
export function mountAllowed(dirpath: string, exports: readonly string[]): boolean {
  const norm = (p: string): string => (p.length > 1 ? p.replace(/\/+$/, '') : p);
  const want = norm(dirpath);
  if (want.split('/').includes('..')) {
    return false;
  }
  return exports.some((e) => {
    const x = norm(e);
    return want === x || want.startsWith(x === '/' ? '/' : `${x}/`);
  });
}

const components = (p: string): string[] => p.split('/').filter((x) => x !== '');

/** `a` is `b` or lies above it. */
const above = (a: readonly string[], b: readonly string[]): boolean => a.length <= b.length && a.every((x, i) => x === b[i]);

/**
 * Follows the current filehandle's path through a compound and returns the
 * first path it reaches outside the granted exports and the directories
 * above them (the pseudo-fs a guest walks down to reach its export), or
 * null. Components are compared whole, so a name with a slash or `..`
 * matches no export.
 */
export function leavesExports(w: CompoundWalk, exportPaths: readonly string[]): string | null {
  const granted = exportPaths.map(components);
  const visible = (p: readonly string[]): boolean => granted.some((e) => above(p, e) || above(e, p));
  let cur: string[] | null = null;
  let saved: string[] | null = null;
  for (let i = 0; i < w.ops.length; i++) {
    const op = w.ops[i];
    const name = w.names[i] ?? null;
    switch (op) {
      case 23: // PUTPUBFH
      case 24: // PUTROOTFH
        cur = [];
        break;
      case 22: // PUTFH: a handle the gateway cannot place
        cur = null;
        break;
      case 16: // LOOKUPP
        cur = cur === null ? null : cur.slice(0, -1);
        break;
      case 32: // SAVEFH
        saved = cur;
        break;
      case 31: // RESTOREFH
        cur = saved;
        break;
      case 15: // LOOKUP
      case 18: // OPEN by name: the file it opens or creates becomes current
        if (cur !== null && name !== null) {
          cur = [...cur, name];
          if (!visible(cur)) {
            return `/${cur.join('/')}`;
          }
        }
        break;
      default:
        break;
    }
  }
  return null;
}

/**
 * The verdict for one call whose head is `rec` (the record from its first
 * byte, at least up to the start of the arguments plus what is read there).
 */
export function judgeCall(call: RpcCall, rec: Buffer, policy: NfsPolicy): CallVerdict {
  const patches: { at: number; value: number }[] = [];
  // The proxy's export list is a live lookup of the guest's current grant:
  // read it once, and only for the calls the mount checks look at.
  const granted = (call.prog === PROG_NFS && call.vers === 4 && call.proc === 1) || call.prog === PROG_MOUNT ? policy.exports : null;
  const id = policy.identity;
  const offset = id?.idOffset ?? null;
  if (id !== null && call.sys !== null) {
    const s = call.sys;
    // Squash first (a guest-side id), then check, then map: the anonymous id
    // is mapped like any other, so each domain's nobody is its own.
    const one = (value: number, at: number, anon: number, ranges: IdRange[] | null, what: string): string | null => {
      let v = value;
      if (id.rootSquash && v === 0) {
        v = anon;
      } else if (!inRanges(v, ranges)) {
        return `${what} ${value} is outside the domain's allowed range`;
      }
      if (offset !== null && v >= ID_WINDOW) {
        return `${what} ${value} is outside the domain's id map (0-${ID_WINDOW - 1})`;
      }
      const out = offset === null ? v : v + offset;
      if (out !== value) {
        patches.push({ at, value: out });
      }
      return null;
    };
    const refused =
      one(s.uid, s.uidAt, id.anonUid, id.uids, 'uid') ??
      one(s.gid, s.gidAt, id.anonGid, id.gids, 'gid') ??
      s.gids.reduce<string | null>((r, g, i) => r ?? one(g, s.gidsAt + 4 * i, id.anonGid, id.gids, 'aux gid'), null);
    if (refused !== null) {
      return { action: 'answer', reply: authErrorReply(call.xid, AUTH_TOOWEAK), reason: 'uid-range', detail: refused };
    }
  }
  if (offset !== null && call.prog === PROG_NFS && call.vers === 3) {
    // The ids a call sets (chown, or the owner at create) are guest ids too.
    const set = sattrIds(call.proc, rec, call.argsAt);
    if (set instanceof Error) {
      return { action: 'refuse', reason: 'malformed', detail: set.message, error: set };
    }
    if (set !== null) {
      const outside = [set.uidAt !== null && (set.uid >= ID_WINDOW || !inRanges(set.uid, id?.uids ?? null)) ? `uid ${set.uid}` : null, set.gidAt !== null && (set.gid >= ID_WINDOW || !inRanges(set.gid, id?.gids ?? null)) ? `gid ${set.gid}` : null].filter((x) => x !== null);
      if (outside.length > 0) {
        const res = Buffer.alloc(4 + 8); // status, then empty wcc_data (or obj + wcc for creates: both start with two false bools)
        res.writeUInt32BE(NFS3ERR_PERM, 0);
        return { action: 'answer', reply: acceptedReply(call.xid, res), reason: 'uid-range', detail: `NFSv3 procedure ${call.proc} sets ${outside.join(' and ')}, outside the domain's ids` };
      }
      if (set.uidAt !== null) {
        patches.push({ at: set.uidAt, value: set.uid + offset });
      }
      if (set.gidAt !== null) {
        patches.push({ at: set.gidAt, value: set.gid + offset });
      }
    }
  }
  if (call.prog === PROG_NFS && call.vers === 3 && policy.readOnly) {
    const m = NFS3_MUTATING.get(call.proc);
    if (m !== undefined) {
      const res = Buffer.alloc(4 + m.failBytes);
      res.writeUInt32BE(NFS3ERR_ROFS, 0);
      return { action: 'answer', reply: acceptedReply(call.xid, res), reason: 'rofs', detail: `NFSv3 ${m.name} on a read-only grant` };
    }
  }
  if (call.prog === PROG_NFS && call.vers === 4 && call.proc === 1 && (policy.readOnly || granted !== null || offset !== null)) {
    const w = walkCompound(rec, call.argsAt);
    if (w instanceof Error) {
      return { action: 'refuse', reason: 'malformed', detail: w.message, error: w };
    }
    // v4.1+: a compound that starts with SEQUENCE is answered through it.
    const seq = (status: number): { sequenceOnly?: SequenceOnly } =>
      w.minorVersion >= 1 && w.ops[0] === OP_SEQUENCE && w.firstOpEnd !== null ? { sequenceOnly: { countAt: w.countAt, end: w.firstOpEnd, nextOp: w.ops[1] ?? null, status, patches } } : {};
    if (offset !== null && w.setsOwner) {
      // Mapping an owner string changes its length, and the gateway rewrites
      // calls only in place: a chown over NFSv4 is refused, not passed raw.
      return { action: 'answer', reply: acceptedReply(call.xid, compoundError(w.tag, NFS4ERR_PERM)), reason: 'owner-set', detail: `NFSv4.${w.minorVersion} sets owner or owner_group on an id-mapped grant`, ...seq(NFS4ERR_PERM) };
    }
    if (granted !== null) {
      const out = leavesExports(w, granted);
      if (out !== null) {
        return { action: 'answer', reply: acceptedReply(call.xid, compoundError(w.tag, NFS4ERR_ACCESS)), reason: 'mount-denied', detail: `NFSv4.${w.minorVersion} LOOKUP of ${out} is outside the granted exports`, ...seq(NFS4ERR_ACCESS) };
      }
    }
    // Fail closed: on a read-only grant, a compound the gateway cannot read to
    // the end might hide a write behind an operation it does not know.
    if (policy.readOnly && (w.mutating !== null || w.incomplete)) {
      const detail = w.mutating !== null ? `NFSv4.${w.minorVersion} ${w.mutating.name} on a read-only grant` : `NFSv4.${w.minorVersion} compound not understood past operation ${w.ops[w.ops.length - 1] ?? '?'} on a read-only grant`;
      return { action: 'answer', reply: acceptedReply(call.xid, compoundError(w.tag, NFS4ERR_ROFS)), reason: 'rofs', detail, ...seq(NFS4ERR_ROFS) };
    }
  }
  if (call.prog === PROG_MOUNT && call.vers === 3 && call.proc === MOUNTPROC3_MNT && granted !== null) {
    const dir = decodeString(rec, call.argsAt, 1024, 'MNT dirpath');
    if (typeof dir !== 'string') {
      return { action: 'refuse', reason: 'malformed', detail: dir.message, error: dir };
    }
    if (!mountAllowed(dir, granted)) {
      const res = Buffer.alloc(4);
      res.writeUInt32BE(MNT3ERR_ACCES, 0);
      return { action: 'answer', reply: acceptedReply(call.xid, res), reason: 'mount-denied', detail: `MNT ${dir} is not a granted export` };
    }
  }
  if (call.prog === PROG_MOUNT && call.vers === 3 && call.proc === MOUNTPROC3_EXPORT && granted !== null) {
    // The backend's list names every tenant's exports: answer with the guest's own.
    return { action: 'answer', reply: acceptedReply(call.xid, exportList(granted)), reason: 'export-list', detail: 'MOUNT EXPORT answered with the granted exports' };
  }
  return { action: 'forward', patches };
}

/** A MOUNT v3 exports list (RFC 1813 section 5.2.5): each path, with no group restriction shown. */
export function exportList(paths: readonly string[]): Buffer {
  const parts: Buffer[] = [];
  for (const p of paths) {
    const name = Buffer.from(p, 'utf8');
    const pad = (4 - (name.length % 4)) % 4;
    const head = Buffer.alloc(8);
    head.writeUInt32BE(1, 0); // value follows
    head.writeUInt32BE(name.length, 4);
    parts.push(head, name, Buffer.alloc(pad), Buffer.alloc(4)); // ex_groups: none
  }
  parts.push(Buffer.alloc(4)); // end of list
  return Buffer.concat(parts);
}
