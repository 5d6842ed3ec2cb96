/**
 * The SMB policy over byte streams: a Framer each way feeding message heads
 * to an SmbInspector. The proxy calls up()/down() with every chunk before
 * forwarding it; a refusal means: do not forward, close the connection.
 * A message's head is complete before the message is, so a refused message
 * never reaches the other side whole. Pure.
 */
import { ProtocolError } from '../errors';
import { Framer } from './framer';
import { SmbInspector } from './smb-policy';
import type { SmbPolicy, SmbRefusal } from './smb-policy';
import { smbFramerSpec } from './smb2';

export interface Refusal {
  reason: SmbRefusal;
  /** Set when malformed bytes caused it. */
  code?: string;
  detail: string;
}

/** What a protocol-aware session asks of the bytes it relays. */
export interface StreamInspector {
  up(chunk: Buffer): Refusal | null;
  down(chunk: Buffer): Refusal | null;
  /** Inspection of that direction is over; the relay may stop calling. */
  readonly upDone: boolean;
  readonly downDone: boolean;
}

export class SmbStream implements StreamInspector {
  private readonly upFramer: Framer;
  private readonly downFramer: Framer;
  private readonly inspector: SmbInspector;

  constructor(policy: SmbPolicy, maxFrame?: number) {
    this.upFramer = new Framer(smbFramerSpec(maxFrame));
    this.downFramer = new Framer(smbFramerSpec(maxFrame));
    this.inspector = new SmbInspector(policy);
  }

  get upDone(): boolean {
    return this.inspector.upDone;
  }

  get downDone(): boolean {
    return this.inspector.downDone;
  }

  up(chunk: Buffer): Refusal | null {
    return this.walk(this.upFramer, chunk, (head) => this.inspector.up(head));
  }

  down(chunk: Buffer): Refusal | null {
    return this.walk(this.downFramer, chunk, (head) => this.inspector.down(head));
  }

  private walk(framer: Framer, chunk: Buffer, check: (head: Buffer) => ReturnType<SmbInspector['up']>): Refusal | null {
    let refusal: Refusal | null = null;
    const err = framer.push(chunk, (f) => {
      const v = check(f.head);
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
