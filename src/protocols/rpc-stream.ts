/**
 * The NFS policy over byte streams. Calls from the guest are walked record by
 * record. Each call's head (up to RPC_HEAD_MAX bytes of its first fragment)
 * is held back until the policy decides, and then it is:
 *
 * - forwarded, with same-length patches applied (root squash), followed
 *   by the rest of the record as slices of the incoming chunks (no copy);
 * - answered by the gateway: the whole record is dropped, and the reply is
 *   put into the guest-bound stream at the next reply-record boundary, so
 *   it never lands in the middle of a backend reply;
 * - refused: malformed bytes close the connection.
 *
 * Replies from the backend are only framed (to know their boundaries),
 * unless the domain has an id offset map: then each reply record is held
 * whole (up to RPC_MAX_REPLY), its attributes are mapped back to guest ids
 * (nfs-ids.ts), and it is sent on as one fragment. Pure.
 */
import { ProtocolError } from '../errors';
import { mapCompound4, mapReply3 } from './nfs-ids';
import type { IdMap } from './nfs-ids';
import { judgeCall } from './nfs-policy';
import type { NfsPolicy, SequenceOnly } from './nfs-policy';
import { BUFFER_OVERHEAD } from './relay';
import type { Direction, Refusal, Relay, StreamTransform } from './relay';
import { OP_SEQUENCE } from './nfs4';
import { decodeCall, decodeReply, LAST_FRAGMENT, PROG_NFS, RPC_HEAD_MAX, RPC_MAX_FRAGMENT } from './rpc';

/** The largest reply record held whole for id mapping (a 1 MiB READ or READDIRPLUS and its headers fit). */
export const RPC_MAX_REPLY = 8 * 1024 * 1024;
/** Calls awaiting a reply whose procedure the stream remembers for mapping; more is a misbehaving guest. */
const MAX_OUTSTANDING = 16384;


/** Walks one direction's record marking: prefix, then payload bytes, fragment by fragment. */
class Marks {
  private prefix = Buffer.alloc(4);
  private prefixHave = 0;
  /** Payload bytes left in the current fragment; -1 while reading a prefix. */
  remaining = -1;
  fragLen = 0;
  last = true;
  /** The fragment being read starts a record. */
  first = true;

  constructor(private readonly maxFragment: number) {}

  /** Between records: no partial prefix, no payload pending, the last fragment done. */
  get atRecordBoundary(): boolean {
    return this.remaining === -1 && this.prefixHave === 0 && this.last;
  }

  /** Consumes prefix bytes from chunk[off..]; returns how many, or an error. */
  takePrefix(chunk: Buffer, off: number): number | ProtocolError {
    const take = Math.min(4 - this.prefixHave, chunk.length - off);
    chunk.copy(this.prefix, this.prefixHave, off, off + take);
    this.prefixHave += take;
    if (this.prefixHave === 4) {
      const w = this.prefix.readUInt32BE(0);
      this.first = this.last;
      this.last = (w & LAST_FRAGMENT) !== 0;
      this.fragLen = (w & ~LAST_FRAGMENT) >>> 0;
      if (this.fragLen > this.maxFragment) {
        return new ProtocolError('SGW_ERR_PROTO_TOO_LARGE', `RPC fragment of ${this.fragLen} bytes exceeds the limit of ${this.maxFragment}`);
      }
      this.remaining = this.fragLen;
      this.prefixHave = 0;
    }
    return take;
  }

  prefixBytes(): Buffer {
    return Buffer.from(this.prefix);
  }
}

export class RpcStream implements StreamTransform {
  private readonly up = new Marks(RPC_MAX_FRAGMENT);
  private readonly down = new Marks(RPC_MAX_FRAGMENT);
  /** Held bytes of the current call (prefix and head) while undecided. */
  private held: Buffer[] = [];
  private heldLen = 0;
  private deciding = false;
  /** Drop the rest of the current record (the gateway answered it). */
  private dropping = false;
  private readonly inject: Buffer[] = [];
  private failed: Refusal | null = null;
  readonly proto = 'nfs';
  /** Set with an id offset map: replies are held and mapped back. */
  private readonly idMap: IdMap | null;
  /** xid -> NFS version and procedure of forwarded calls (with a map only). */
  private readonly outstanding = new Map<number, { vers: number; proc: number }>();
  /** Payload of the reply record being held, fragment by fragment. */
  private reply: Buffer[] = [];
  private replyLen = 0;
  /** The reply record being read is held (decided at its first byte). */
  private holding = false;
  /** xid -> the gateway's answer to put into the reply of a SEQUENCE sent on alone (v4.1+). */
  private readonly rewrites = new Map<number, SequenceOnly>();

  constructor(private readonly policy: NfsPolicy) {
    const id = policy.identity;
    this.idMap = id?.idOffset == null ? null : { offset: id.idOffset, anonUid: id.anonUid, anonGid: id.anonGid };
  }

  /** The gateway's answers waiting for a reply boundary, and the reply record held whole. */
  buffered(): number {
    let n = this.replyLen + this.reply.length * BUFFER_OVERHEAD;
    for (const b of this.inject) {
      n += b.length + BUFFER_OVERHEAD;
    }
    return n;
  }

  /** Bytes from the guest. */
  fromGuest(chunk: Buffer): Relay {
    const out: Relay = { toBackend: [], toGuest: [] };
    if (this.failed !== null) {
      out.refusal = this.failed;
      return out;
    }
    const m = this.up;
    let off = 0;
    while (off < chunk.length) {
      if (m.remaining === -1) {
        const took = m.takePrefix(chunk, off);
        if (took instanceof ProtocolError) {
          return this.fail(out, took);
        }
        off += took;
        if (m.remaining === -1) {
          // A partial prefix waits inside Marks; nothing is forwarded until it is whole.
          continue;
        }
        if (m.first) {
          this.dropping = false;
          this.deciding = true;
          this.held = [m.prefixBytes()];
          this.heldLen = 4;
        } else if (!this.dropping) {
          out.toBackend.push(m.prefixBytes());
        }
        if (m.remaining === 0) {
          const r = this.finishFragment(out);
          if (r !== null) {
            return r;
          }
        }
        continue;
      }
      const take = Math.min(m.remaining, chunk.length - off);
      const piece = chunk.subarray(off, off + take);
      off += take;
      m.remaining -= take;
      if (this.deciding) {
        const want = Math.min(m.fragLen, RPC_HEAD_MAX) + 4;
        const need = want - this.heldLen;
        if (piece.length <= need) {
          this.held.push(piece);
          this.heldLen += piece.length;
        } else {
          this.held.push(piece.subarray(0, need));
          this.heldLen += need;
          const err = this.decide(out);
          if (err !== null) {
            return err;
          }
          if (!this.dropping) {
            out.toBackend.push(piece.subarray(need));
          }
        }
        if (this.deciding && this.heldLen === want) {
          const err = this.decide(out);
          if (err !== null) {
            return err;
          }
        }
      } else if (!this.dropping) {
        out.toBackend.push(piece);
      }
      if (m.remaining === 0) {
        const r = this.finishFragment(out);
        if (r !== null) {
          return r;
        }
      }
    }
    return out;
  }

  /**
   * Calls: the rest of the current fragment of a call that was decided and
   * forwarded (not answered, not being decided). Replies: the rest of the
   * current fragment, unless the record is being held (id map, a
   * SEQUENCE-only reply): those must be seen whole.
   */
  passThrough(dir: Direction): number {
    if (this.failed !== null) {
      return 0;
    }
    if (dir === 'fromGuest') {
      return !this.deciding && !this.dropping && this.up.remaining > 0 ? this.up.remaining : 0;
    }
    return !this.holding && this.down.remaining > 0 ? this.down.remaining : 0;
  }

  /** Counts `n` unseen bytes as payload; at a reply boundary, the held replies are due. */
  passed(dir: Direction, n: number): Relay {
    const out: Relay = { toBackend: [], toGuest: [] };
    const m = dir === 'fromGuest' ? this.up : this.down;
    const allowed = this.passThrough(dir);
    if (n <= 0 || n > allowed) {
      return this.fail(out, new ProtocolError('SGW_ERR_PROTO_FRAMING', `${n} bytes passed unseen, ${allowed} were allowed`));
    }
    m.remaining -= n;
    if (m.remaining === 0) {
      if (dir === 'fromGuest') {
        return this.finishFragment(out) ?? out;
      }
      m.remaining = -1;
      if (m.atRecordBoundary && this.inject.length > 0) {
        out.toGuest.push(...this.inject.splice(0));
      }
    }
    return out;
  }

  /**
   * Bytes from the backend: forwarded as they are, with the gateway's own
   * replies put in between records. A record is instead held whole, rewritten
   * and sent as one fragment when the domain has an id map, or while a
   * SEQUENCE-only reply is awaited; the choice is made at each record's start.
   */
  fromBackend(chunk: Buffer): Relay {
    const out: Relay = { toBackend: [], toGuest: [] };
    if (this.failed !== null) {
      out.refusal = this.failed;
      return out;
    }
    const m = this.down;
    let off = 0;
    let from = 0;
    while (off < chunk.length) {
      if (m.atRecordBoundary) {
        if (off > from) {
          out.toGuest.push(chunk.subarray(from, off));
        }
        from = off;
        if (this.inject.length > 0) {
          out.toGuest.push(...this.inject.splice(0));
        }
        this.holding = this.idMap !== null || this.rewrites.size > 0;
      }
      if (m.remaining === -1) {
        const took = m.takePrefix(chunk, off);
        if (took instanceof ProtocolError) {
          return this.fail(out, took);
        }
        off += took;
        if (this.holding) {
          from = off; // a held record is re-framed: its prefixes are not sent
          if (m.remaining !== -1 && this.replyLen + m.fragLen > RPC_MAX_REPLY) {
            return this.fail(out, new ProtocolError('SGW_ERR_PROTO_TOO_LARGE', `RPC reply of more than ${RPC_MAX_REPLY} bytes cannot be held for rewriting`));
          }
        }
      } else {
        const take = Math.min(m.remaining, chunk.length - off);
        if (this.holding) {
          this.reply.push(chunk.subarray(off, off + take));
          this.replyLen += take;
        }
        off += take;
        m.remaining -= take;
        if (this.holding) {
          from = off;
        }
      }
      if (m.remaining === 0) {
        m.remaining = -1;
        if (this.holding && m.last) {
          const rec = Buffer.concat(this.reply, this.replyLen);
          this.reply = [];
          this.replyLen = 0;
          const done = this.rewriteReply(rec);
          if (done instanceof ProtocolError) {
            return this.fail(out, done);
          }
          const head = Buffer.alloc(4);
          head.writeUInt32BE((LAST_FRAGMENT | done.length) >>> 0, 0);
          out.toGuest.push(head, done);
        }
      }
    }
    if (off > from && !this.holding) {
      out.toGuest.push(chunk.subarray(from, off));
    }
    if (m.atRecordBoundary && this.inject.length > 0) {
      out.toGuest.push(...this.inject.splice(0));
    }
    return out;
  }

  /** One whole held reply: a SEQUENCE-only reply given the gateway's answer, or ids mapped back. */
  private rewriteReply(rec: Buffer): Buffer | ProtocolError {
    const r = decodeReply(rec);
    if (r instanceof ProtocolError) {
      return r;
    }
    const rw = this.rewrites.get(r.xid);
    if (rw !== undefined) {
      this.rewrites.delete(r.xid);
      return r.accepted && r.acceptStat === 0 ? sequenceAnswer(rec, r.resultAt, rw) : rec;
    }
    return this.idMap === null ? rec : this.mapReply(rec, r, this.idMap);
  }

  /** One whole reply record with the backend's ids mapped back (a new buffer when lengths change). */
  private mapReply(rec: Buffer, r: { xid: number; accepted: boolean; acceptStat: number | null; resultAt: number }, map: IdMap): Buffer | ProtocolError {
    const call = this.outstanding.get(r.xid);
    if (call === undefined) {
      return rec; // not a call this stream forwarded to NFS (portmap, MOUNT, NULL)
    }
    this.outstanding.delete(r.xid);
    if (!r.accepted || r.acceptStat !== 0) {
      return rec;
    }
    if (call.vers === 3) {
      const err = mapReply3(call.proc, rec.subarray(r.resultAt), map);
      return err ?? rec;
    }
    const res = rec.subarray(r.resultAt);
    const v4 = mapCompound4(res, map);
    if (v4 instanceof ProtocolError) {
      return v4;
    }
    return v4.res === res ? rec : Buffer.concat([rec.subarray(0, r.resultAt), v4.res]);
  }

  /** End of a fragment's payload. A record-starting fragment shorter than the head is decided here. */
  private finishFragment(out: Relay): Relay | null {
    const m = this.up;
    if (this.deciding) {
      const err = this.decide(out);
      if (err !== null) {
        return err;
      }
    }
    m.remaining = -1;
    if (m.last) {
      this.dropping = false;
    }
    return null;
  }

  private decide(out: Relay): Relay | null {
    this.deciding = false;
    const held = Buffer.concat(this.held, this.heldLen);
    this.held = [];
    this.heldLen = 0;
    const call = decodeCall(held.subarray(4));
    if (call instanceof ProtocolError) {
      return this.fail(out, call);
    }
    const v = judgeCall(call, held.subarray(4), this.policy);
    if (v.action === 'refuse') {
      return this.fail(out, v.error);
    }
    if (v.action === 'answer' && v.sequenceOnly !== undefined) {
      // v4.1+: the server must still see the SEQUENCE, or the client's slot
      // and the server's fall out of step. Send it on alone (one operation,
      // one last fragment) and drop the rest of the record.
      const so = v.sequenceOnly;
      if (this.rewrites.size >= MAX_OUTSTANDING) {
        return this.fail(out, new ProtocolError('SGW_ERR_PROTO_TOO_LARGE', `more than ${MAX_OUTSTANDING} NFS calls without a reply`));
      }
      applyPatches(held, so.patches);
      const seq = held.subarray(0, 4 + so.end);
      seq.writeUInt32BE((LAST_FRAGMENT | so.end) >>> 0, 0);
      seq.writeUInt32BE(1, 4 + so.countAt);
      this.rewrites.set(call.xid, so);
      this.dropping = true;
      (out.answered ??= []).push({ reason: v.reason, detail: v.detail });
      out.toBackend.push(seq);
      return null;
    }
    if (v.action === 'answer') {
      this.dropping = true;
      (out.answered ??= []).push({ reason: v.reason, detail: v.detail });
      if (this.down.atRecordBoundary) {
        out.toGuest.push(v.reply);
      } else {
        this.inject.push(v.reply);
      }
      return null;
    }
    applyPatches(held, v.patches);
    if (this.idMap !== null && call.prog === PROG_NFS && (call.vers === 3 || (call.vers === 4 && call.proc === 1))) {
      if (this.outstanding.size >= MAX_OUTSTANDING) {
        return this.fail(out, new ProtocolError('SGW_ERR_PROTO_TOO_LARGE', `more than ${MAX_OUTSTANDING} NFS calls without a reply`));
      }
      this.outstanding.set(call.xid, { vers: call.vers, proc: call.proc });
    }
    out.toBackend.push(held);
    return null;
  }

  private fail(out: Relay, err: ProtocolError): Relay {
    this.failed = { proto: 'nfs', reason: 'malformed', code: err.code, detail: err.message };
    out.refusal = this.failed;
    return out;
  }
}

/**
 * The reply to a SEQUENCE sent on alone, rewritten into the reply to the
 * guest's whole compound: the server's SEQUENCE result (the slot advanced),
 * then the next operation failing with the gateway's status, and that status
 * for the compound. A failed SEQUENCE passes as the server sent it.
 */
function sequenceAnswer(rec: Buffer, resultAt: number, so: SequenceOnly): Buffer | ProtocolError {
  const res = rec.subarray(resultAt);
  if (res.length < 8) {
    return new ProtocolError('SGW_ERR_PROTO_MALFORMED', 'COMPOUND reply too short');
  }
  const tagLen = res.readUInt32BE(4);
  const countAt = 8 + tagLen + ((4 - (tagLen % 4)) % 4);
  // count, SEQUENCE's op and status, its 36-byte result
  if (tagLen > 1024 || res.length < countAt + 12) {
    return new ProtocolError('SGW_ERR_PROTO_MALFORMED', 'COMPOUND reply to SEQUENCE does not parse');
  }
  if (res.readUInt32BE(countAt + 4) !== OP_SEQUENCE || res.readUInt32BE(countAt + 8) !== 0) {
    return rec;
  }
  if (res.length < countAt + 12 + 36) {
    return new ProtocolError('SGW_ERR_PROTO_MALFORMED', 'SEQUENCE result past the end');
  }
  const tail = Buffer.alloc(so.nextOp === null ? 0 : 8);
  if (so.nextOp !== null) {
    tail.writeUInt32BE(so.nextOp, 0);
    tail.writeUInt32BE(so.status, 4);
  }
  const out = Buffer.concat([rec.subarray(0, resultAt + countAt + 12 + 36), tail]);
  out.writeUInt32BE(so.status, resultAt);
  out.writeUInt32BE(so.nextOp === null ? 1 : 2, resultAt + countAt);
  return out;
}

/** Same-length rewrites of a held call head (its 4-byte record mark first; offsets are into the record). */
function applyPatches(held: Buffer, patches: readonly { at: number; value: number }[]): void {
  for (const p of patches) {
    held.writeUInt32BE(p.value >>> 0, 4 + p.at);
  }
}
