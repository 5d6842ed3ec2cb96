/**
 * An incremental walker over length-prefixed frames (SMB2's direct-TCP
 * header, ONC RPC record marking): it reports where each frame starts and
 * hands over its first bytes (the head, for policy), while the bytes
 * themselves flow on untouched. Zero-copy for payloads: only heads are
 * copied, and only up to `headMax` bytes each. Limits are checked on the
 * length prefix, before anything is buffered.
 *
 * Pure: no I/O, no timers; errors are returned, never thrown.
 */
import { ProtocolError } from '../errors';

export interface FramerSpec {
  /** Bytes of the length prefix (4 for both SMB2 and RPC). */
  prefixBytes: number;
  /** Payload length from the prefix, or an error (bad marker, reserved bits). */
  lengthOf(prefix: Buffer): number | ProtocolError;
  /** Largest payload accepted. */
  maxFrame: number;
  /** How many leading payload bytes the consumer wants to see. */
  headMax: number;
}

/** One frame's start: its prefix, its first bytes and its whole payload length. */
export interface FrameHead {
  prefix: Buffer;
  head: Buffer;
  length: number;
}

export class Framer {
  private prefix: Buffer;
  private prefixHave = 0;
  /** Payload bytes of the current frame still to pass; -1 while reading a prefix. */
  private remaining = -1;
  private length = 0;
  private head: Buffer | null = null;
  private headHave = 0;
  private failed: ProtocolError | null = null;
  /** Frames whose head has been seen. */
  frames = 0;

  constructor(private readonly spec: FramerSpec) {
    this.prefix = Buffer.alloc(spec.prefixBytes);
  }

  /** True between frames (no partial prefix or payload pending). */
  get atBoundary(): boolean {
    return this.remaining === -1 && this.prefixHave === 0;
  }

  /**
   * Walks `chunk`, calling `onHead` once per frame as soon as its head is
   * complete (the whole payload, if shorter than headMax). Returns the first
   * error; after an error the framer stays failed.
   */
  push(chunk: Buffer, onHead: (f: FrameHead) => ProtocolError | null): ProtocolError | null {
    if (this.failed !== null) {
      return this.failed;
    }
    let off = 0;
    while (off < chunk.length) {
      if (this.remaining === -1) {
        const take = Math.min(this.spec.prefixBytes - this.prefixHave, chunk.length - off);
        chunk.copy(this.prefix, this.prefixHave, off, off + take);
        this.prefixHave += take;
        off += take;
        if (this.prefixHave < this.spec.prefixBytes) {
          break;
        }
        const len = this.spec.lengthOf(this.prefix);
        if (len instanceof ProtocolError) {
          return this.fail(len);
        }
        if (len > this.spec.maxFrame) {
          return this.fail(new ProtocolError('SGW_ERR_PROTO_TOO_LARGE', `frame of ${len} bytes exceeds the limit of ${this.spec.maxFrame}`));
        }
        this.length = len;
        this.remaining = len;
        this.prefixHave = 0;
        const want = Math.min(len, this.spec.headMax);
        this.head = Buffer.alloc(want);
        this.headHave = 0;
        if (want === 0) {
          const err = this.emit(onHead);
          if (err !== null) {
            return err;
          }
        }
        continue;
      }
      const take = Math.min(this.remaining, chunk.length - off);
      const head = this.head;
      if (head !== null && this.headHave < head.length) {
        const n = Math.min(head.length - this.headHave, take);
        chunk.copy(head, this.headHave, off, off + n);
        this.headHave += n;
        if (this.headHave === head.length) {
          const err = this.emit(onHead);
          if (err !== null) {
            return err;
          }
        }
      }
      off += take;
      this.remaining -= take;
      if (this.remaining === 0) {
        this.remaining = -1;
      }
    }
    return null;
  }

  private emit(onHead: (f: FrameHead) => ProtocolError | null): ProtocolError | null {
    const head = this.head ?? Buffer.alloc(0);
    this.head = null;
    this.frames++;
    const err = onHead({ prefix: Buffer.from(this.prefix), head, length: this.length });
    return err === null ? null : this.fail(err);
  }

  private fail(err: ProtocolError): ProtocolError {
    this.failed = err;
    return err;
  }
}
