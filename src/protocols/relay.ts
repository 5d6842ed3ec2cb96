/**
 * What a protocol-aware session asks of the bytes it relays: each chunk from
 * one side goes through the transform, which says what to write to each
 * side (the chunk itself, slices of it, held bytes with patches, or the
 * gateway's own replies), or that the session must close.
 */
export interface Refusal {
  proto: 'smb' | 'nfs';
  /** Stable: smb1, dialect, unencrypted, share, malformed. */
  reason: string;
  /** Set when malformed bytes caused it. */
  code?: string;
  detail: string;
}

export interface Relay {
  toBackend: Buffer[];
  toGuest: Buffer[];
  refusal?: Refusal;
  /** Calls the gateway answered itself in this step (rofs, uid-range, mount-denied). */
  answered?: { reason: string; detail: string }[];
}

export interface StreamTransform {
  readonly proto: 'smb' | 'nfs';
  fromGuest(chunk: Buffer): Relay;
  fromBackend(chunk: Buffer): Relay;
}
