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
 * Replies from the backend are only framed (to know their boundaries). Pure.
 */
import { ProtocolError } from '../errors';
import { judgeCall } from './nfs-policy';
import type { NfsPolicy } from './nfs-policy';
import type { Direction, Refusal, Relay, StreamTransform } from './relay';
import { decodeCall, LAST_FRAGMENT, RPC_HEAD_MAX, RPC_MAX_FRAGMENT } from './rpc';


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

  constructor(private readonly policy: NfsPolicy) {}

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
   * current fragment (replies are only framed).
   */
  passThrough(dir: Direction): number {
    if (this.failed !== null) {
      return 0;
    }
    if (dir === 'fromGuest') {
      return !this.deciding && !this.dropping && this.up.remaining > 0 ? this.up.remaining : 0;
    }
    return this.down.remaining > 0 ? this.down.remaining : 0;
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

  /** Bytes from the backend: forwarded as they are, with the gateway's own replies put in between records. */
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
      if (m.atRecordBoundary && this.inject.length > 0) {
        if (off > from) {
          out.toGuest.push(chunk.subarray(from, off));
          from = off;
        }
        out.toGuest.push(...this.inject.splice(0));
      }
      if (m.remaining === -1) {
        const took = m.takePrefix(chunk, off);
        if (took instanceof ProtocolError) {
          return this.fail(out, took);
        }
        off += took;
      } else {
        const take = Math.min(m.remaining, chunk.length - off);
        off += take;
        m.remaining -= take;
      }
      if (m.remaining === 0) {
        m.remaining = -1;
      }
    }
    if (off > from) {
      out.toGuest.push(chunk.subarray(from, off));
    }
    if (m.atRecordBoundary && this.inject.length > 0) {
      out.toGuest.push(...this.inject.splice(0));
    }
    return out;
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
    for (const p of v.patches) {
      held.writeUInt32BE(p.value >>> 0, 4 + p.at);
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
