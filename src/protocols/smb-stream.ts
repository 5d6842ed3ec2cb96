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
import type { Relay, StreamTransform } from './relay';
import { smbFramerSpec } from './smb2';

/** Why the SMB policy refused, from one direction's check. */
export interface SmbRefusalOf {
  reason: SmbRefusal;
  code?: string;
  detail: string;
}

export class SmbStream implements StreamTransform {
  readonly proto = 'smb';
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

  /** Checks and passes the chunk as it is (the SMB policy never rewrites). */
  fromGuest(chunk: Buffer): Relay {
    const r = this.upDone ? null : this.up(chunk);
    return r === null ? { toBackend: [chunk], toGuest: [] } : { toBackend: [], toGuest: [], refusal: { proto: 'smb', ...r } };
  }

  fromBackend(chunk: Buffer): Relay {
    const r = this.downDone ? null : this.down(chunk);
    return r === null ? { toBackend: [], toGuest: [chunk] } : { toBackend: [], toGuest: [], refusal: { proto: 'smb', ...r } };
  }

  up(chunk: Buffer): SmbRefusalOf | null {
    return this.walk(this.upFramer, chunk, (head) => this.inspector.up(head));
  }

  down(chunk: Buffer): SmbRefusalOf | null {
    return this.walk(this.downFramer, chunk, (head) => this.inspector.down(head));
  }

  private walk(framer: Framer, chunk: Buffer, check: (head: Buffer) => ReturnType<SmbInspector['up']>): SmbRefusalOf | null {
    let refusal: SmbRefusalOf | null = null;
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
