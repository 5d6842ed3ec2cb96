/**
 * The NFS policy over byte streams. Calls from the guest are walked record by
 * record. Each call's head (up to RPC_HEAD_MAX bytes of its first fragment)
 * is held back until the policy decides. An NFSv4 COMPOUND on a grant with
 * a policy that the head does not decide (operations past it, in later
 * fragments) is held whole, fragments and all, up to COMPOUND_HOLD_MAX,
 * and decided at its end: nothing of a call reaches the backend before
 * everything the policy must see was seen. Then the call is:
 *
 * - forwarded, with same-length patches applied (root squash): decided at
 *   the head, the held head then the rest of the record as slices of the
 *   incoming chunks (no copy); decided whole, the held pieces (views of the
 *   chunks they came in, not copies) as one fragment;
 * - answered by the gateway: the whole record is dropped, and the reply is
 *   put into the guest-bound stream at the next reply-record boundary, so
 *   it never lands in the middle of a backend reply;
 * - cut at operation k (nfs-policy.ts): operations 0..k-1 go on as one
 *   fragment, the rest is dropped, and the server's reply gets {op k,
 *   status} appended;
 * - refused: malformed bytes close the connection.
 *
 * A COMPOUND past COMPOUND_HOLD_MAX is answered as a server answers one
 * too big (judgeTooBig); any record past RPC_MAX_RECORD, in either
 * direction, closes the connection.
 *
 * Replies from the backend are framed (to know their boundaries). A reply
 * the stream must change is held whole (up to RPC_MAX_REPLY), rewritten
 * and sent on as one fragment: every reply when the domain has an id
 * offset map (ids mapped back, nfs-ids.ts); otherwise only replies whose
 * xid names a call that asked for transfer limits (clamped, nfs-limits.ts)
 * or that was cut. Pure.
 */
import { ProtocolError } from '../errors';
import { mapCompound4, mapReply3 } from './nfs-ids';
import type { IdMap } from './nfs-ids';
import { clampCompound4, clampFsinfo3 } from './nfs-limits';
import { judgeCall, judgeTooBig } from './nfs-policy';
import type { CallVerdict, CompoundCut, LimitsReply, NfsPolicy } from './nfs-policy';
import { BUFFER_OVERHEAD } from './relay';
import type { Direction, Refusal, Relay, StreamTransform } from './relay';
import { decodeCall, decodeReply, LAST_FRAGMENT, Pieces, PROG_NFS, RPC_HEAD_MAX, RPC_MAX_FRAGMENT, RPC_MAX_RECORD } from './rpc';
import type { RpcCall } from './rpc';

/** The largest reply record held whole for id mapping (a 1 MiB READ or READDIRPLUS and its headers fit). */
export const RPC_MAX_REPLY = 8 * 1024 * 1024;
/** Calls awaiting a reply the stream must rewrite; more is a misbehaving guest. */
const MAX_OUTSTANDING = 16384;
/**
 * The largest COMPOUND held whole to be inspected: a 1 MiB WRITE (the
 * largest the gateway lets a client negotiate, nfs-limits.ts) and the
 * operations around it.
 */
export const COMPOUND_HOLD_MAX = 1024 * 1024 + 64 * 1024;
/** Held pieces shorter than this are copied together, so that small chunks neither pin big buffers nor pile up as many objects. */
const HOLD_COPY_BELOW = 16 * 1024;
const HOLD_TAIL = 64 * 1024;

/** What the stream does with the bytes of the call record being read. */
type CallMode = 'head' | 'hold' | 'forward' | 'drop';
/** What it does with the reply record being read: pass, peek at its xid, or hold it whole. */
type ReplyMode = 'idle' | 'pass' | 'peek' | 'hold';

/** What a reply needs, by xid of its call. */
interface ReplyWork {
  /** The call's NFS version and procedure (id map). */
  map?: { vers: number; proc: number };
  limits?: LimitsReply;
  /** The call was cut at operation k: append {op, status} to the reply. */
  cut?: { k: number; op: number; status: number };
}


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
  private mode: CallMode = 'forward';
  /** Held bytes of the current call's head (its first prefix, then head pieces) while undecided. */
  private held: Buffer[] = [];
  private heldLen = 0;
  /** Payload bytes of the current call record so far (RPC_MAX_RECORD). */
  private callLen = 0;
  /** The held call's header, while its record is held whole. */
  private call: RpcCall | null = null;
  /** The held record's payload: the head (a copy), then views and coalesced copies. */
  private hold: Buffer[] = [];
  private holdLen = 0;
  private tail: Buffer | null = null;
  private tailUsed = 0;
  private readonly inject: Buffer[] = [];
  private failed: Refusal | null = null;
  readonly proto = 'nfs';
  /** Set with an id offset map: replies are held and mapped back. */
  private readonly idMap: IdMap | null;
  /** xid -> what its reply needs (id map, limits, a cut's result). */
  private readonly pending = new Map<number, ReplyWork>();
  private rmode: ReplyMode = 'idle';
  /** Payload bytes of the current reply record so far (RPC_MAX_RECORD). */
  private replyTotal = 0;
  /** Payload of the reply record being held, fragment by fragment. */
  private reply: Buffer[] = [];
  private replyLen = 0;
  /** While peeking: the record's first prefix and the xid bytes seen. */
  private peekPrefix: Buffer | null = null;
  private readonly peekBuf = Buffer.alloc(4);
  private peekHave = 0;

  constructor(private readonly policy: NfsPolicy) {
    const id = policy.identity;
    this.idMap = id?.idOffset == null ? null : { offset: id.idOffset, anonUid: id.anonUid, anonGid: id.anonGid };
  }

  /**
   * What the stream holds in memory for the connection budget: the gateway's
   * answers waiting for a reply boundary, an undecided call (head or whole
   * record) and a reply record held whole.
   */
  buffered(): number {
    let n = this.heldBytes() + this.reply.length * BUFFER_OVERHEAD;
    for (const b of this.inject) {
      n += b.length + BUFFER_OVERHEAD;
    }
    return n;
  }

  /** Bytes the stream holds right now: an undecided call (head or whole record) and a reply being rewritten. */
  heldBytes(): number {
    return this.heldLen + this.holdLen + this.replyLen;
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
          this.callLen = 0;
        }
        if (this.callLen + m.fragLen > RPC_MAX_RECORD) {
          return this.fail(out, new ProtocolError('SGW_ERR_PROTO_TOO_LARGE', `RPC call record of more than ${RPC_MAX_RECORD} bytes`));
        }
        this.callLen += m.fragLen;
        if (m.first) {
          this.mode = 'head';
          this.held = [m.prefixBytes()];
          this.heldLen = 4;
        } else if (this.mode === 'forward') {
          out.toBackend.push(m.prefixBytes());
        } else if (this.mode === 'hold' && this.holdLen + m.fragLen > COMPOUND_HOLD_MAX) {
          // Its prefix is dropped either way: a held record is re-framed.
          const r = this.tooBig(out);
          if (r !== null) {
            return r;
          }
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
      let piece = chunk.subarray(off, off + take);
      off += take;
      m.remaining -= take;
      if (this.mode === 'head') {
        const want = Math.min(m.fragLen, RPC_HEAD_MAX) + 4;
        const need = want - this.heldLen;
        this.held.push(piece.subarray(0, need));
        this.heldLen += Math.min(need, piece.length);
        piece = piece.subarray(Math.min(need, piece.length));
        if (this.heldLen === want) {
          const r = this.decide(out);
          if (r !== null) {
            return r;
          }
        }
      }
      if (piece.length > 0) {
        if (this.mode === 'forward') {
          out.toBackend.push(piece);
        } else if (this.mode === 'hold') {
          this.addHold(piece);
        }
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
   * forwarded (not answered, not held). Replies: the rest of the current
   * fragment of a reply passed as it is; held replies must be seen whole.
   */
  passThrough(dir: Direction): number {
    if (this.failed !== null) {
      return 0;
    }
    if (dir === 'fromGuest') {
      return this.mode === 'forward' && this.up.remaining > 0 ? this.up.remaining : 0;
    }
    return this.rmode === 'pass' && this.down.remaining > 0 ? this.down.remaining : 0;
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
      if (m.last) {
        this.rmode = 'idle';
      }
      if (m.atRecordBoundary && this.inject.length > 0) {
        out.toGuest.push(...this.inject.splice(0));
      }
    }
    return out;
  }

  /**
   * Bytes from the backend: forwarded as they are, with the gateway's own
   * replies put in between records. A record the stream must change is
   * held whole, rewritten and sent as one fragment: with an id map every
   * one; otherwise, while calls await a rewritten reply, the stream peeks
   * at each record's xid and holds only theirs.
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
      if (m.atRecordBoundary && this.rmode === 'idle') {
        if (off > from) {
          out.toGuest.push(chunk.subarray(from, off));
        }
        from = off;
        if (this.inject.length > 0) {
          out.toGuest.push(...this.inject.splice(0));
        }
        this.rmode = this.idMap !== null ? 'hold' : this.pending.size > 0 ? 'peek' : 'pass';
        this.replyTotal = 0;
        this.peekHave = 0;
      }
      if (m.remaining === -1) {
        const took = m.takePrefix(chunk, off);
        if (took instanceof ProtocolError) {
          return this.fail(out, took);
        }
        off += took;
        if (this.rmode !== 'pass') {
          from = off; // a held record is re-framed: its prefixes are not sent
        }
        if (m.remaining === -1) {
          continue;
        }
        if (this.replyTotal + m.fragLen > RPC_MAX_RECORD) {
          return this.fail(out, new ProtocolError('SGW_ERR_PROTO_TOO_LARGE', `RPC reply record of more than ${RPC_MAX_RECORD} bytes`));
        }
        this.replyTotal += m.fragLen;
        if (this.rmode === 'peek') {
          this.peekPrefix = m.prefixBytes();
          if (m.fragLen === 0) {
            this.endPeek(out);
          }
        }
        if (this.rmode === 'hold' && this.replyLen + m.fragLen > RPC_MAX_REPLY) {
          return this.fail(out, new ProtocolError('SGW_ERR_PROTO_TOO_LARGE', `RPC reply of more than ${RPC_MAX_REPLY} bytes cannot be held for rewriting`));
        }
      } else if (this.rmode === 'peek') {
        const n = Math.min(4 - this.peekHave, m.remaining, chunk.length - off);
        chunk.copy(this.peekBuf, this.peekHave, off, off + n);
        this.peekHave += n;
        off += n;
        from = off;
        m.remaining -= n;
        if (this.peekHave === 4 || m.remaining === 0) {
          this.endPeek(out);
        }
      } else {
        const take = Math.min(m.remaining, chunk.length - off);
        if (this.rmode === 'hold') {
          this.reply.push(chunk.subarray(off, off + take));
          this.replyLen += take;
        }
        off += take;
        m.remaining -= take;
        if (this.rmode === 'hold') {
          from = off;
        }
      }
      if (m.remaining === 0) {
        m.remaining = -1;
        if (m.last) {
          if (this.rmode === 'hold') {
            const rec = Buffer.concat(this.reply, this.replyLen);
            this.reply = [];
            this.replyLen = 0;
            const done = this.rewriteReply(rec);
            if (done instanceof ProtocolError) {
              return this.fail(out, done);
            }
            out.toGuest.push(frameOf(done.length), done);
          }
          this.rmode = 'idle';
        }
      }
    }
    // Held and peeked bytes moved `from` along: what is left was passed.
    if (off > from) {
      out.toGuest.push(chunk.subarray(from, off));
    }
    if (m.atRecordBoundary && this.rmode === 'idle' && this.inject.length > 0) {
      out.toGuest.push(...this.inject.splice(0));
    }
    return out;
  }

  /** The xid of a reply being peeked at is known (or its first fragment ended): hold it, or send on what was taken. */
  private endPeek(out: Relay): void {
    const xid = this.peekHave === 4 ? this.peekBuf.readUInt32BE(0) : null;
    const seen = Buffer.from(this.peekBuf.subarray(0, this.peekHave));
    if (xid !== null && this.pending.has(xid)) {
      this.rmode = 'hold';
      this.reply = [seen];
      this.replyLen = seen.length;
      return;
    }
    this.rmode = 'pass';
    out.toGuest.push(this.peekPrefix ?? Buffer.alloc(0), seen);
  }

  /** One whole held reply: limits clamped, ids mapped back, a cut compound's result appended. */
  private rewriteReply(rec: Buffer): Buffer | ProtocolError {
    const r = decodeReply(rec);
    if (r instanceof ProtocolError) {
      return r;
    }
    const work = this.pending.get(r.xid);
    if (work === undefined) {
      return rec; // not a call this stream rewrites the reply of (portmap, MOUNT, NULL)
    }
    this.pending.delete(r.xid);
    if (!r.accepted || r.acceptStat !== 0) {
      return rec;
    }
    if (work.limits !== undefined) {
      // In place; a reply the clamp cannot read passes as it is (the
      // backend's own bytes, and only the client's sizes are at stake).
      const res = rec.subarray(r.resultAt);
      void (work.limits === 'fsinfo3' ? clampFsinfo3(res) : clampCompound4(res));
    }
    let out = rec;
    if (work.map !== undefined && this.idMap !== null) {
      const mapped = mapReplyIds(rec, r.resultAt, work.map, this.idMap);
      if (mapped instanceof ProtocolError) {
        return mapped;
      }
      out = mapped;
    }
    return work.cut === undefined ? out : appendResult(out, r.resultAt, work.cut);
  }

  /** End of a fragment's payload. A record-starting fragment shorter than the head is decided here; a held record at its end. */
  private finishFragment(out: Relay): Relay | null {
    const m = this.up;
    if (this.mode === 'head') {
      const r = this.decide(out);
      if (r !== null) {
        return r;
      }
    }
    m.remaining = -1;
    if (m.last && this.mode === 'hold') {
      return this.decideHeld(out);
    }
    return null;
  }

  /** The head of a call is in: decide, or (a COMPOUND the head does not decide) hold the record. */
  private decide(out: Relay): Relay | null {
    const held = Buffer.concat(this.held, this.heldLen);
    this.held = [];
    this.heldLen = 0;
    const call = decodeCall(held.subarray(4));
    if (call instanceof ProtocolError) {
      return this.fail(out, call);
    }
    const m = this.up;
    const head = held.subarray(4);
    // The head is all of the record when its first fragment is its last and no longer than the head.
    const v = judgeCall(call, head, this.policy, { view: head, complete: m.last && head.length === m.fragLen });
    if (v.action === 'more') {
      this.mode = 'hold';
      this.call = call;
      this.hold = [head];
      this.holdLen = head.length;
      this.tail = null;
      // The rest of this (first) fragment is coming: it must fit too.
      if (m.fragLen > COMPOUND_HOLD_MAX) {
        return this.tooBig(out);
      }
      return null;
    }
    if (v.action === 'forward') {
      // The fast path: the held head, then the rest as slices as it comes.
      const r = this.register(out, call, v, null);
      if (r !== null) {
        return r;
      }
      applyPatches(head, v.patches);
      this.mode = 'forward';
      out.toBackend.push(held);
      return null;
    }
    return this.apply(out, call, v, [head]);
  }

  /** A held record is complete: decide it whole. */
  private decideHeld(out: Relay): Relay | null {
    const call = this.call as RpcCall;
    const pieces = this.releaseHold();
    const v = judgeCall(call, pieces[0] as Buffer, this.policy, { view: new Pieces(pieces), complete: true });
    return this.apply(out, call, v, pieces);
  }

  /** A held record outgrew COMPOUND_HOLD_MAX: answer it as too big, and drop the rest of it. */
  private tooBig(out: Relay): Relay | null {
    const call = this.call as RpcCall;
    const pieces = this.releaseHold();
    const v = judgeTooBig(call, pieces[0] as Buffer, this.policy, new Pieces(pieces));
    const r = this.apply(out, call, v, pieces);
    if (this.mode === 'forward') {
      // judgeTooBig never forwards; if it did, the rest could not follow.
      return this.fail(out, new ProtocolError('SGW_ERR_PROTO_TOO_LARGE', 'COMPOUND past the hold limit'));
    }
    this.mode = 'drop';
    return r;
  }

  /**
   * Carries out a verdict on a call whose payload so far is `pieces` (the
   * first a copy the stream may patch). A forward here sends the whole
   * record as one fragment: it was held whole.
   */
  private apply(out: Relay, call: RpcCall, v: CallVerdict, pieces: Buffer[]): Relay | null {
    switch (v.action) {
      case 'refuse':
        return this.fail(out, v.error);
      case 'more':
        return this.fail(out, new ProtocolError('SGW_ERR_PROTO_MALFORMED', 'COMPOUND undecided at the end of its record'));
      case 'forward': {
        const r = this.register(out, call, v, null);
        if (r !== null) {
          return r;
        }
        const len = pieces.reduce((n, p) => n + p.length, 0);
        applyPatches(pieces[0] as Buffer, v.patches);
        this.mode = 'forward';
        out.toBackend.push(frameOf(len), ...pieces);
        return null;
      }
      case 'answer': {
        this.mode = 'drop';
        (out.answered ??= []).push({ reason: v.reason, detail: v.detail });
        if (v.cut === undefined) {
          if (this.down.atRecordBoundary && this.rmode === 'idle') {
            out.toGuest.push(v.reply);
          } else {
            this.inject.push(v.reply);
          }
          return null;
        }
        // Operations 0..k-1 go to the server; its reply gets op k's result.
        const r = this.register(out, call, null, v.cut);
        if (r !== null) {
          return r;
        }
        out.toBackend.push(...cutRecord(pieces, v.cut));
        return null;
      }
    }
  }

  /** Remembers what the reply to a call sent on needs (limits, id map, a cut). */
  private register(out: Relay, call: RpcCall, v: { limits?: LimitsReply } | null, cut: CompoundCut | null): Relay | null {
    const work: ReplyWork = {};
    if (v?.limits !== undefined) {
      work.limits = v.limits;
    }
    if (cut !== null) {
      work.cut = { k: cut.k, op: cut.op, status: cut.status };
    }
    if (this.idMap !== null && call.prog === PROG_NFS && (call.vers === 3 || (call.vers === 4 && call.proc === 1))) {
      work.map = { vers: call.vers, proc: call.proc };
    }
    if (work.limits === undefined && work.cut === undefined && work.map === undefined) {
      return null;
    }
    if (this.pending.size >= MAX_OUTSTANDING) {
      return this.fail(out, new ProtocolError('SGW_ERR_PROTO_TOO_LARGE', `more than ${MAX_OUTSTANDING} NFS calls without a reply`));
    }
    this.pending.set(call.xid, work);
    return null;
  }

  /** Keeps a piece of a held record: big ones as views, small ones copied together. */
  private addHold(piece: Buffer): void {
    this.holdLen += piece.length;
    if (piece.length >= HOLD_COPY_BELOW) {
      this.hold.push(piece);
      this.tail = null;
      return;
    }
    if (this.tail === null || this.tailUsed + piece.length > this.tail.length) {
      this.tail = Buffer.allocUnsafe(HOLD_TAIL);
      this.tailUsed = 0;
      this.hold.push(this.tail.subarray(0, 0));
    }
    piece.copy(this.tail, this.tailUsed);
    const start = this.tailUsed - (this.hold[this.hold.length - 1] as Buffer).length;
    this.tailUsed += piece.length;
    this.hold[this.hold.length - 1] = this.tail.subarray(start, this.tailUsed);
  }

  private releaseHold(): Buffer[] {
    const pieces = this.hold;
    this.hold = [];
    this.holdLen = 0;
    this.tail = null;
    this.call = null;
    return pieces;
  }

  private fail(out: Relay, err: ProtocolError): Relay {
    this.failed = { proto: 'nfs', reason: 'malformed', code: err.code, detail: err.message };
    out.refusal = this.failed;
    return out;
  }
}

/** A record mark for one last fragment of `len` bytes. */
function frameOf(len: number): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE((LAST_FRAGMENT | len) >>> 0, 0);
  return head;
}

/**
 * The first `cut.at` bytes of a call record held as `pieces`, its
 * operation count set to k and its credential patched, as one fragment.
 * The first piece is the stream's own copy and is patched in place when
 * it holds every patched word; otherwise the part sent is copied.
 */
function cutRecord(pieces: Buffer[], cut: CompoundCut): Buffer[] {
  const patches = [...cut.patches, { at: cut.countAt, value: cut.k }];
  const parts: Buffer[] = [];
  let left = cut.at;
  for (const p of pieces) {
    if (left <= 0) {
      break;
    }
    parts.push(p.length <= left ? p : p.subarray(0, left));
    left -= p.length;
  }
  const first = parts[0] ?? Buffer.alloc(0);
  if (patches.every((x) => x.at + 4 <= first.length)) {
    applyPatches(first, patches);
    return [frameOf(cut.at), ...parts];
  }
  const whole = Buffer.concat(parts, cut.at);
  applyPatches(whole, patches);
  return [frameOf(cut.at), whole];
}

/**
 * The server's reply to a compound cut at operation k, with {op k,
 * status} appended as the result a server would have given: only when
 * every one of the k operations succeeded (status OK, k results);
 * otherwise the compound stopped earlier and the reply stands.
 */
function appendResult(rec: Buffer, resultAt: number, cut: { k: number; op: number; status: number }): Buffer | ProtocolError {
  const res = rec.subarray(resultAt);
  if (res.length < 8) {
    return new ProtocolError('SGW_ERR_PROTO_MALFORMED', 'COMPOUND reply too short');
  }
  const tagLen = res.readUInt32BE(4);
  const countAt = 8 + tagLen + ((4 - (tagLen % 4)) % 4);
  if (tagLen > 1024 || res.length < countAt + 4) {
    return new ProtocolError('SGW_ERR_PROTO_MALFORMED', 'COMPOUND reply does not parse');
  }
  if (res.readUInt32BE(0) !== 0 || res.readUInt32BE(countAt) !== cut.k) {
    return rec;
  }
  const tail = Buffer.alloc(8);
  tail.writeUInt32BE(cut.op, 0);
  tail.writeUInt32BE(cut.status, 4);
  const out = Buffer.concat([rec, tail]);
  out.writeUInt32BE(cut.status, resultAt);
  out.writeUInt32BE(cut.k + 1, resultAt + countAt);
  return out;
}

/** One whole reply record with the backend's ids mapped back (a new buffer when lengths change). */
function mapReplyIds(rec: Buffer, resultAt: number, call: { vers: number; proc: number }, map: IdMap): Buffer | ProtocolError {
  if (call.vers === 3) {
    const err = mapReply3(call.proc, rec.subarray(resultAt), map);
    return err ?? rec;
  }
  const res = rec.subarray(resultAt);
  const v4 = mapCompound4(res, map);
  if (v4 instanceof ProtocolError) {
    return v4;
  }
  return v4.res === res ? rec : Buffer.concat([rec.subarray(0, resultAt), v4.res]);
}

/** Same-length rewrites of a held call's payload (offsets are into the record, after its mark). */
function applyPatches(payload: Buffer, patches: readonly { at: number; value: number }[]): void {
  for (const p of patches) {
    payload.writeUInt32BE(p.value >>> 0, p.at);
  }
}
