/**
 * The SMB policy over byte streams. From the guest, an SmbWalker holds each
 * command's head (never more than SMB_HEAD_MAX bytes) until the inspector
 * has decided on it, so nothing the policy must see reaches the backend
 * before it is checked: every command of every compound, at any split.
 * From the backend, a Framer feeds message heads to the inspector and the
 * bytes flow on. Pure.
 *
 * A TREE_CONNECT to a share not granted fails that one request, not the
 * connection: the share name's bytes are overwritten in place with '*'
 * (a character no share name may contain, MS-SRVS 2.2.4), and the backend
 * itself answers STATUS_BAD_NETWORK_NAME, or STATUS_ACCESS_DENIED when the
 * request was signed (its signature no longer matches, MS-SMB2 3.3.5.2.4).
 * The gateway does not answer by itself because it cannot: a client
 * discards an unsigned response on a signed session (MS-SMB2 3.2.5.1.3),
 * and a request the backend never sees leaves a hole in its MessageId
 * window (MS-SMB2 3.3.5.2.3) that ends the connection later. The backend's
 * answer carries the right MessageId, credits and signature.
 */
import { ProtocolError } from '../errors';
import { Framer } from './framer';
import { SmbInspector } from './smb-policy';
import type { SmbPolicy, SmbRefusal, Verdict } from './smb-policy';
import { BUFFER_OVERHEAD } from './relay';
import type { Refusal, Relay, StreamTransform } from './relay';
import { decodeHeader, SMB2_HEADER, SMB_HEAD_MAX, smbFramerSpec } from './smb2';

/** Why the SMB policy refused, from one direction's check. */
export interface SmbRefusalOf {
  reason: SmbRefusal;
  code?: string;
  detail: string;
}

/** Most commands one frame may chain (MS-SMB2 sets no limit; clients send a few). */
export const SMB_MAX_COMPOUND = 256;

/** What one push from the guest produced. */
export interface WalkResult {
  /** Bytes for the backend, in order (held heads once decided, patched if refused). */
  out: Buffer[];
  /** Requests refused one by one (the backend answers them). */
  answered: { reason: string; detail: string }[];
  /** A refusal of the connection: nothing more may be forwarded. */
  fatal: SmbRefusalOf | null;
}

const enum Step {
  /** Reading the 4-byte direct-TCP header. */
  Prefix,
  /** Collecting a command's head (held). */
  Head,
  /** Passing the rest of a command, or of an opaque frame. */
  Pass,
}

/**
 * Walks the guest's frames command by command.
 * State: the step; the prefix bytes; the current frame's bytes left; the
 * current command's head buffer (held, copied out of the chunks), how much
 * of it is filled, how much the inspector wants, and the bytes left of the
 * command; the index of the command in its compound; held prefix bytes of
 * the frame whose first head is not decided; and a fatal refusal, after
 * which push() returns it again and forwards nothing.
 */
export class SmbWalker {
  private step = Step.Prefix;
  private readonly prefix = Buffer.alloc(4);
  private prefixHave = 0;
  /** Bytes of the current frame not yet walked. */
  private frameLeft = 0;
  /** Bytes of the current command not yet walked (head included). */
  private cmdLeft = 0;
  private head: Buffer = Buffer.alloc(0);
  private headHave = 0;
  /** Bytes of head the decision needs; grows once the header is decoded. */
  private headWant = 0;
  private index = 0;
  /** The frame's prefix, held with its first command's head. */
  private heldPrefix: Buffer | null = null;
  private fatal: SmbRefusalOf | null = null;
  /** Frames and commands seen; refused-and-answered requests. */
  frames = 0;
  commands = 0;

  constructor(
    private readonly inspector: SmbInspector,
    private readonly maxFrame: number,
  ) {}

  /** True between frames, with nothing held. */
  get idle(): boolean {
    return this.step === Step.Prefix && this.prefixHave === 0;
  }

  /** Bytes held while a command's head waits for its decision (at most SMB_HEAD_MAX and a prefix). */
  get heldBytes(): number {
    if (this.step !== Step.Head) {
      return 0;
    }
    return this.head.length + BUFFER_OVERHEAD + (this.heldPrefix === null ? 0 : this.heldPrefix.length + BUFFER_OVERHEAD);
  }

  push(chunk: Buffer): WalkResult {
    const res: WalkResult = { out: [], answered: [], fatal: this.fatal };
    if (this.fatal !== null) {
      return res;
    }
    let off = 0;
    while (off < chunk.length && res.fatal === null) {
      if (this.step === Step.Prefix) {
        const take = Math.min(4 - this.prefixHave, chunk.length - off);
        chunk.copy(this.prefix, this.prefixHave, off, off + take);
        this.prefixHave += take;
        off += take;
        if (this.prefixHave === 4) {
          this.startFrame(res);
        }
        continue;
      }
      if (this.step === Step.Pass) {
        const take = Math.min(this.cmdLeft, chunk.length - off);
        // A view, not a copy: forwarded in this same step.
        res.out.push(chunk.subarray(off, off + take));
        off += take;
        this.cmdLeft -= take;
        this.frameLeft -= take;
        if (this.cmdLeft === 0) {
          this.nextCommand();
        }
        continue;
      }
      const take = Math.min(this.headWant - this.headHave, chunk.length - off);
      // Copied: the head outlives the chunk while the decision waits.
      chunk.copy(this.head, this.headHave, off, off + take);
      this.headHave += take;
      off += take;
      if (this.headHave === this.headWant) {
        this.decide(res);
      }
    }
    return res;
  }

  private startFrame(res: WalkResult): void {
    this.prefixHave = 0;
    if (this.prefix[0] !== 0) {
      this.fail(res, { reason: 'malformed', code: 'SGW_ERR_PROTO_FRAMING', detail: `direct-TCP header byte 0 is 0x${(this.prefix[0] ?? 0).toString(16)}, not 0` });
      return;
    }
    const len = this.prefix.readUIntBE(1, 3);
    if (len > this.maxFrame) {
      this.fail(res, { reason: 'malformed', code: 'SGW_ERR_PROTO_TOO_LARGE', detail: `frame of ${len} bytes exceeds the limit of ${this.maxFrame}` });
      return;
    }
    if (len < 4) {
      this.fail(res, { reason: 'malformed', code: 'SGW_ERR_PROTO_MALFORMED', detail: `frame of ${len} bytes has no protocol id` });
      return;
    }
    this.frames++;
    this.frameLeft = len;
    this.heldPrefix = Buffer.from(this.prefix);
    this.index = 0;
    // First the protocol id alone: SMB1 and TRANSFORM headers are not
    // SMB2 headers, and an SMB2 frame needs its 64 bytes next.
    this.startCommand(4, this.frameLeft);
  }

  private startCommand(want: number, cmdLen: number): void {
    this.step = Step.Head;
    this.cmdLeft = cmdLen;
    this.headWant = Math.min(want, cmdLen);
    this.head = Buffer.alloc(Math.min(SMB_HEAD_MAX, cmdLen));
    this.headHave = 0;
  }

  /** The head reached what was wanted: ask for more, or decide. */
  private decide(res: WalkResult): void {
    const head = this.head.subarray(0, this.headHave);
    if (this.index === 0 && this.headHave === 4 && this.headWant === 4) {
      const f = this.inspector.upFrame(head);
      if (f !== 'smb2') {
        this.conclude(res, f, true);
        return;
      }
      this.headWant = Math.min(SMB2_HEADER, this.cmdLeft);
      if (this.headWant > this.headHave) {
        return;
      }
    }
    if (this.headHave < SMB2_HEADER) {
      this.fail(res, { reason: 'malformed', code: 'SGW_ERR_PROTO_MALFORMED', detail: `SMB2 command of ${this.cmdLeft} bytes is shorter than its header` });
      return;
    }
    const h = decodeHeader(head);
    if (!('command' in h)) {
      this.fail(res, { reason: 'malformed', code: h.code, detail: h.message });
      return;
    }
    if (this.headHave === SMB2_HEADER && this.headWant === SMB2_HEADER) {
      // The header is in: where the command ends, and what the policy needs.
      const next = h.nextCommand;
      if (next !== 0 && (next < SMB2_HEADER || next % 8 !== 0 || next + SMB2_HEADER > this.frameLeft)) {
        this.fail(res, { reason: 'malformed', code: 'SGW_ERR_PROTO_MALFORMED', detail: `NextCommand ${next} is not a valid offset in a frame with ${this.frameLeft} bytes left` });
        return;
      }
      if (next !== 0 && this.index + 1 >= SMB_MAX_COMPOUND) {
        this.fail(res, { reason: 'malformed', code: 'SGW_ERR_PROTO_MALFORMED', detail: `compound of more than ${SMB_MAX_COMPOUND} commands` });
        return;
      }
      this.cmdLeft = next === 0 ? this.frameLeft : next;
      this.headWant = Math.min(this.inspector.wants(h), this.cmdLeft);
      if (this.headWant > this.headHave) {
        if (this.head.length < this.headWant) {
          const grown = Buffer.alloc(this.headWant);
          this.head.copy(grown, 0, 0, this.headHave);
          this.head = grown;
        }
        return;
      }
    }
    const compounded = this.index > 0 || h.nextCommand !== 0;
    this.conclude(res, this.inspector.upCommand(head, compounded), false);
  }

  /** Applies a verdict on the held head, then passes the rest of its command or frame. */
  private conclude(res: WalkResult, v: Verdict, wholeFrame: boolean): void {
    if (!v.ok && v.neuter === undefined) {
      this.fail(res, v.error === undefined ? { reason: v.reason, detail: v.detail } : { reason: v.reason, code: v.error.code, detail: v.detail });
      return;
    }
    const head = this.head.subarray(0, this.headHave);
    if (!v.ok && v.neuter !== undefined) {
      // '*' in UTF-16LE over the share name: the backend finds no such share.
      for (let i = v.neuter.offset; i + 1 < v.neuter.offset + v.neuter.length; i += 2) {
        head.writeUInt16LE(0x2a, i);
      }
      res.answered.push({ reason: v.reason, detail: v.detail });
    }
    if (this.heldPrefix !== null) {
      res.out.push(this.heldPrefix);
      this.heldPrefix = null;
    }
    res.out.push(head);
    this.commands++;
    if (wholeFrame) {
      this.cmdLeft = this.frameLeft;
    }
    this.cmdLeft -= this.headHave;
    this.frameLeft -= this.headHave;
    this.step = Step.Pass;
    if (this.cmdLeft === 0) {
      this.nextCommand();
    }
  }

  /** The current command is done: the next one of the compound, or the next frame. */
  private nextCommand(): void {
    if (this.frameLeft === 0) {
      this.step = Step.Prefix;
      return;
    }
    this.index++;
    this.startCommand(SMB2_HEADER, this.frameLeft);
  }

  private fail(res: WalkResult, r: SmbRefusalOf): void {
    this.fatal = r;
    res.fatal = r;
    this.heldPrefix = null;
  }
}

export class SmbStream implements StreamTransform {
  readonly proto = 'smb';
  private readonly walker: SmbWalker;
  private readonly downFramer: Framer;
  private readonly inspector: SmbInspector;
  /** The first refusal, either way: after it both directions refuse (fatal means unusable). */
  private failed: Refusal | null = null;

  constructor(policy: SmbPolicy, maxFrame?: number) {
    this.inspector = new SmbInspector(policy);
    this.walker = new SmbWalker(this.inspector, maxFrame ?? smbFramerSpec().maxFrame);
    this.downFramer = new Framer(smbFramerSpec(maxFrame));
  }

  get upDone(): boolean {
    return this.inspector.upDone && this.walker.idle;
  }

  get downDone(): boolean {
    return this.inspector.downDone;
  }

  /** SMB queues no answers of its own: only the head being decided is held. */
  buffered(): number {
    return this.walker.heldBytes;
  }

  /**
   * Checks the chunk: what the policy has decided on goes to the backend
   * (a refused tree connect neutered), what it waits for is held.
   */
  fromGuest(chunk: Buffer): Relay {
    if (this.failed !== null) {
      return { toBackend: [], toGuest: [], refusal: this.failed };
    }
    if (this.upDone) {
      return { toBackend: [chunk], toGuest: [] };
    }
    const r = this.walker.push(chunk);
    const out: Relay = { toBackend: r.fatal === null ? r.out : [], toGuest: [] };
    if (r.answered.length > 0) {
      out.answered = r.answered;
    }
    if (r.fatal !== null) {
      out.refusal = this.failed = { proto: 'smb', ...r.fatal };
    }
    return out;
  }

  fromBackend(chunk: Buffer): Relay {
    if (this.failed !== null) {
      return { toBackend: [], toGuest: [], refusal: this.failed };
    }
    const r = this.downDone ? null : this.down(chunk);
    if (r === null) {
      return { toBackend: [], toGuest: [chunk] };
    }
    this.failed = { proto: 'smb', ...r };
    return { toBackend: [], toGuest: [], refusal: this.failed };
  }

  /**
   * The guest side for tests: the fatal refusal, else the first request
   * refused one by one in this chunk (reason 'share'), else null.
   */
  up(chunk: Buffer): SmbRefusalOf | null {
    const r = this.walker.push(chunk);
    if (r.fatal !== null) {
      return r.fatal;
    }
    const a = r.answered[0];
    return a === undefined ? null : { reason: a.reason as SmbRefusal, detail: a.detail };
  }

  down(chunk: Buffer): SmbRefusalOf | null {
    let refusal: SmbRefusalOf | null = null;
    const err = this.downFramer.push(chunk, (f) => {
      const v = this.inspector.down(f.head);
      if (v.ok) {
        return null;
      }
      refusal = v.error === undefined ? { reason: v.reason, detail: v.detail } : { reason: v.reason, code: v.error.code, detail: v.detail };
      return v.error ?? new ProtocolError('SGW_ERR_PROTO_UNEXPECTED', v.detail);
    });
    if (refusal !== null) {
      return refusal;
    }
    return err === null ? null : { reason: 'malformed', code: err.code, detail: err.message };
  }
}
