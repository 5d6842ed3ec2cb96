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
 *   wcc_data); reads pass. NFSv4.x (RFC 7530, 8881): a COMPOUND's first
 *   writing operation (WRITE, CREATE, REMOVE, RENAME, LINK, SETATTR, OPEN for
 *   write or create, ...) fails with NFS4ERR_ROFS, as a server's read-only
 *   export would fail it (see "Refusing at an operation" below).
 * - mount checks (MOUNT v3 MNT): only export paths of shares the guest is
 *   granted on this backend, or paths below them; otherwise MNT3ERR_ACCES.
 *   NFSv4 has no MOUNT: a COMPOUND's PUTROOTFH (or PUTPUBFH) and LOOKUPs
 *   are followed component by component, and a LOOKUP (or an OPEN by name)
 *   that leaves the granted exports and the pseudo-fs directories above
 *   them gets NFS4ERR_ACCESS. A zero-length name gets NFS4ERR_INVAL and one
 *   longer than NAME_MAX NFS4ERR_NAMETOOLONG, as the server answers. A PUTFH makes
 *   the path unknown: a handle from an earlier, checked compound is not
 *   checked again (the gateway keeps no handle table, see ADR 0008).
 *   MOUNT EXPORT is answered with the granted export paths only: the
 *   backend's own list names other tenants' exports.
 *
 * Fail closed: on a grant with any of these policies a COMPOUND is decided
 * only once every operation was walked. While the record is incomplete
 * the verdict is `more` (the stream holds the record); an operation code
 * no minor version defines fails with NFS4ERR_OP_ILLEGAL, arguments that
 * are not valid XDR with NFS4ERR_BADXDR, never forwarded uninspected.
 *
 * Refusing at an operation: the first operation k that fails a check gets
 * the status, as a server would give it. k = 0: the gateway answers the
 * whole compound (that one result). k > 0: operations 0..k-1 go to the
 * server (the record cut at k, its count set to k), and the stream appends
 * {op k, status} to the server's reply, so a v4.1 session's SEQUENCE (and
 * everything before k) is executed and the slot stays in step.
 */
import type { ProtocolError } from '../errors';
import { ID_WINDOW, sattrIds } from './nfs-ids';
import { compoundReply, NFS4_NAME_MAX, NFS4_OPS, NFS4ERR_ACCESS, NFS4ERR_BADXDR, NFS4ERR_INVAL, NFS4ERR_NAMETOOLONG, NFS4ERR_OP_ILLEGAL, NFS4ERR_PERM, NFS4ERR_REQ_TOO_BIG, NFS4ERR_RESOURCE, NFS4ERR_ROFS, OP_ILLEGAL, OP_SEQUENCE, walkCompound } from './nfs4';
import type { CompoundWalk } from './nfs4';

/** The highest NFSv4 minor version (RFC 7862, 4.2). */
const NFS4_MINOR_MAX = 2;
/** RFC 7530 section 13.1.7.4 / RFC 8881 section 15.1.5.4. */
const NFS4ERR_MINOR_VERS_MISMATCH = 10021;
import { acceptedReply, authErrorReply, AUTH_TOOWEAK, decodeString, PROG_MOUNT, PROG_NFS } from './rpc';
import type { Pieces, RpcCall } from './rpc';

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
export type NfsAction = 'rofs' | 'uid-range' | 'mount-denied' | 'export-list' | 'owner-set' | 'bad-name' | 'op-illegal' | 'badxdr' | 'too-big' | 'minor-version';

/**
 * A compound refused at operation k > 0: the stream sends operations
 * 0..k-1 on (the record cut at `at`, the count at `countAt` set to k) and
 * appends {op, status} to the server's reply. See RpcStream.
 */
export interface CompoundCut {
  k: number;
  /** The result's operation code (OP_ILLEGAL for a code no version defines). */
  op: number;
  status: number;
  /** Offset of the operation count in the record. */
  countAt: number;
  /** Offset of operation k's code in the record: the record sent on ends there. */
  at: number;
  /** Credential patches (squash, id map) for the part sent on. */
  patches: { at: number; value: number }[];
}

/** Which reply carries limits the gateway lowers (nfs-limits.ts): NFSv3 FSINFO, or an NFSv4 GETATTR of maxread/maxwrite. */
export type LimitsReply = 'fsinfo3' | 'getattr4';

export type CallVerdict =
  | { action: 'forward'; patches: { at: number; value: number }[]; limits?: LimitsReply }
  | { action: 'answer'; reply: Buffer; reason: NfsAction; detail: string; cut?: CompoundCut }
  | { action: 'more' }
  | { action: 'refuse'; reason: 'malformed'; detail: string; error: ProtocolError };

/** An operation the policy refuses: its index in the compound, the result's op code and status. */
interface OpRefusal {
  index: number;
  op: number;
  status: number;
  reason: NfsAction;
  detail: string;
}

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
const NFSPROC3_FSINFO = 19;

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
 * first operation that fails the mount checks, or null: a name a server
 * rejects (zero length: NFS4ERR_INVAL; longer than NAME_MAX:
 * NFS4ERR_NAMETOOLONG), or a LOOKUP, OPEN by name, CREATE or OPENATTR that
 * reaches outside the granted exports and the directories above them (the
 * pseudo-fs a guest walks down to reach its export): NFS4ERR_ACCESS.
 * Components are compared whole, so a name with a slash or `..` matches no
 * export.
 */
export function pathRefusal(w: Pick<CompoundWalk, 'ops' | 'names'> & Partial<Pick<CompoundWalk, 'nameLens'>>, exportPaths: readonly string[]): { index: number; status: number; path: string } | null {
  const granted = exportPaths.map(components);
  const visible = (p: readonly string[]): boolean => granted.some((e) => above(p, e) || above(e, p));
  let cur: string[] | null = null;
  let saved: string[] | null = null;
  for (let i = 0; i < w.ops.length; i++) {
    const op = w.ops[i];
    const name = w.names[i] ?? null;
    const len = w.nameLens?.[i] ?? (name === null ? null : Buffer.byteLength(name));
    if ((op === 15 || op === 18 || op === 6) && len !== null) {
      if (len === 0) {
        return { index: i, status: NFS4ERR_INVAL, path: '(empty name)' };
      }
      if (len > NFS4_NAME_MAX) {
        return { index: i, status: NFS4ERR_NAMETOOLONG, path: `(name of ${len} bytes)` };
      }
    }
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
      case 19: // OPENATTR: the named-attribute directory, below no export path
      case 15: // LOOKUP
      case 18: // OPEN by name: the file it opens or creates becomes current
      case 6: // CREATE: the new object becomes current
        if (cur !== null && (name !== null || op === 19)) {
          cur = [...cur, op === 19 ? '\u0000attrs' : (name as string)];
          if (!visible(cur)) {
            return { index: i, status: NFS4ERR_ACCESS, path: `/${cur.join('/')}` };
          }
        }
        break;
      default:
        break;
    }
  }
  return null;
}

/** The first path a compound reaches outside the granted exports (pathRefusal's ACCESS case), or null. */
export function leavesExports(w: Pick<CompoundWalk, 'ops' | 'names'>, exportPaths: readonly string[]): string | null {
  const r = pathRefusal(w, exportPaths);
  return r === null || r.status !== NFS4ERR_ACCESS ? null : r.path;
}

/**
 * The verdict for one call whose head is `rec` (the record from its first
 * byte, at least up to the start of the arguments plus what is read there).
 * `whole`: the record as far as it has arrived, and whether that is all of
 * it; without it `rec` is taken as the whole record. An NFSv4 COMPOUND on
 * a grant with a policy gets `more` until the walk can decide.
 */
export function judgeCall(call: RpcCall, rec: Buffer, policy: NfsPolicy, whole?: { view: Buffer | Pieces; complete: boolean }): CallVerdict {
  // The proxy's export list is a live lookup of the guest's current grant:
  // read it once, and only for the calls the mount checks look at.
  const granted = (call.prog === PROG_NFS && call.vers === 4 && call.proc === 1) || call.prog === PROG_MOUNT ? policy.exports : null;
  const id = policy.identity;
  const offset = id?.idOffset ?? null;
  const cred = credentialPatches(call, policy);
  if (!Array.isArray(cred)) {
    return cred;
  }
  const patches = cred;
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
  if (call.prog === PROG_NFS && call.vers === 4 && call.proc === 1) {
    const checked = policy.readOnly || granted !== null || offset !== null;
    const w = walkCompound(whole?.view ?? rec, call.argsAt);
    if (w instanceof Error) {
      // Without a policy the compound is the server's to reject.
      return checked ? { action: 'refuse', reason: 'malformed', detail: w.message, error: w } : { action: 'forward', patches };
    }
    if (!checked) {
      // No policy: the walk (of the head) only finds a GETATTR of the limits.
      return { action: 'forward', patches, ...(w.asksLimits ? { limits: 'getattr4' as const } : {}) };
    }
    if (w.minorVersion > NFS4_MINOR_MAX) {
      // A minor version no RFC defines: its operations cannot be judged, and a
      // server answers it without running any (RFC 8881 section 16.2.3:
      // NFS4ERR_MINOR_VERS_MISMATCH, no results), so the gateway does the same.
      return { action: 'answer', reply: acceptedReply(call.xid, compoundReply(w.tag, NFS4ERR_MINOR_VERS_MISMATCH, [])), reason: 'minor-version', detail: `NFSv4.${w.minorVersion} is not a minor version the gateway can inspect` };
    }
    let first = compoundRefusal(w, policy.readOnly, granted, offset !== null);
    if (w.stop?.why === 'short' && (first === null || first.index > w.stop.index)) {
      if (whole !== undefined && !whole.complete) {
        return { action: 'more' };
      }
      const i = w.stop.index;
      first = { index: i, op: w.ops[i] ?? OP_ILLEGAL, status: NFS4ERR_BADXDR, reason: 'badxdr', detail: `NFSv4.${w.minorVersion} operation ${i} runs past the end of its record` };
    }
    if (first !== null) {
      return refuseAt(call.xid, w, first, patches);
    }
    return { action: 'forward', patches, ...(w.asksLimits ? { limits: 'getattr4' as const } : {}) };
  }
  if (call.prog === PROG_NFS && call.vers === 3 && call.proc === NFSPROC3_FSINFO) {
    return { action: 'forward', patches, limits: 'fsinfo3' };
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

/**
 * Identity (AUTH_SYS): the same-length patches for root squash and the id
 * map, or the gateway's AUTH_ERROR for an id outside the allowed ranges.
 */
function credentialPatches(call: RpcCall, policy: NfsPolicy): { at: number; value: number }[] | CallVerdict {
  const patches: { at: number; value: number }[] = [];
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
  return patches;
}

/** The first operation of a walked compound that a check refuses, or null (the walk may have stopped early). */
function compoundRefusal(w: CompoundWalk, readOnly: boolean, granted: readonly string[] | null, mapped: boolean): OpRefusal | null {
  const v = `NFSv4.${w.minorVersion}`;
  const found: OpRefusal[] = [];
  if (mapped && w.ownerAt !== null) {
    // Mapping an owner string changes its length, and the gateway rewrites
    // calls only in place: a chown over NFSv4 is refused, not passed raw.
    found.push({ index: w.ownerAt, op: w.ops[w.ownerAt] ?? OP_ILLEGAL, status: NFS4ERR_PERM, reason: 'owner-set', detail: `${v} sets owner or owner_group on an id-mapped grant` });
  }
  if (granted !== null) {
    const p = pathRefusal(w, granted);
    if (p !== null) {
      const access = p.status === NFS4ERR_ACCESS;
      found.push({ index: p.index, op: w.ops[p.index] ?? OP_ILLEGAL, status: p.status, reason: access ? 'mount-denied' : 'bad-name', detail: access ? `${v} LOOKUP of ${p.path} is outside the granted exports` : `${v} ${NFS4_OPS.get(w.ops[p.index] ?? 0) ?? '?'} with ${p.path}` });
    }
  }
  if (readOnly && w.mutating !== null) {
    found.push({ index: w.mutating.index, op: w.ops[w.mutating.index] ?? OP_ILLEGAL, status: NFS4ERR_ROFS, reason: 'rofs', detail: `${v} ${w.mutating.name} on a read-only grant` });
  }
  if (w.stop !== null && w.stop.why !== 'short') {
    const i = w.stop.index;
    const illegal = w.stop.why === 'illegal';
    found.push({ index: i, op: illegal ? OP_ILLEGAL : (w.ops[i] ?? OP_ILLEGAL), status: illegal ? NFS4ERR_OP_ILLEGAL : NFS4ERR_BADXDR, reason: illegal ? 'op-illegal' : 'badxdr', detail: illegal ? `${v} operation ${i} has code ${w.ops[i] ?? '?'}, which no minor version defines` : `${v} ${NFS4_OPS.get(w.ops[i] ?? 0) ?? '?'} (operation ${i}) has arguments that are not valid XDR` });
  }
  return found.reduce<OpRefusal | null>((a, b) => (a === null || b.index < a.index ? b : a), null);
}

/** The verdict for a compound refused at `r.index`: answered whole at 0, cut there otherwise. */
function refuseAt(xid: number, w: CompoundWalk, r: OpRefusal, patches: { at: number; value: number }[]): CallVerdict {
  const reply = acceptedReply(xid, compoundReply(w.tag, r.status, [{ op: r.op, status: r.status }]));
  const at = w.opAt[r.index];
  if (r.index === 0 || at === undefined) {
    return { action: 'answer', reply, reason: r.reason, detail: r.detail };
  }
  return { action: 'answer', reply, reason: r.reason, detail: r.detail, cut: { k: r.index, op: r.op, status: r.status, countAt: w.countAt, at, patches } };
}

/**
 * The verdict for a COMPOUND whose record grew past what the gateway holds
 * (`view` is what it holds): a check already failed in it refuses it there;
 * otherwise it is too big, as a server whose limit it passed says: v4.1+
 * NFS4ERR_REQ_TOO_BIG on the operation after SEQUENCE (the slot advances),
 * v4.0 NFS4ERR_RESOURCE.
 */
export function judgeTooBig(call: RpcCall, rec: Buffer, policy: NfsPolicy, view: Buffer | Pieces): CallVerdict {
  const v = judgeCall(call, rec, policy, { view, complete: false });
  if (v.action !== 'more') {
    return v;
  }
  const w = walkCompound(view, call.argsAt);
  if (w instanceof Error) {
    return { action: 'refuse', reason: 'malformed', detail: w.message, error: w };
  }
  const status = w.minorVersion >= 1 ? NFS4ERR_REQ_TOO_BIG : NFS4ERR_RESOURCE;
  const k = w.minorVersion >= 1 && w.ops[0] === OP_SEQUENCE && w.firstOpEnd !== null && w.count > 1 && w.ops.length > 1 ? 1 : 0;
  const detail = `NFSv4.${w.minorVersion} compound larger than the gateway holds to inspect it`;
  const op = w.ops[k] ?? OP_ILLEGAL;
  const cred = credentialPatches(call, policy);
  return refuseAt(call.xid, w, { index: k, op: NFS4_OPS.has(op) ? op : OP_ILLEGAL, status, reason: 'too-big', detail }, Array.isArray(cred) ? cred : []);
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
