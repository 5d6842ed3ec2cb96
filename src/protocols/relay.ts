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

/** One direction of a session: the bytes the guest sends, or those the backend sends. */
export type Direction = 'fromGuest' | 'fromBackend';

export interface StreamTransform {
  readonly proto: 'smb' | 'nfs';
  fromGuest(chunk: Buffer): Relay;
  fromBackend(chunk: Buffer): Relay;
  /**
   * How many of the next bytes of `dir` may go to the other side unseen
   * and unchanged (the rest of a payload whose header was checked), so the
   * session may move them kernel to kernel; 0 when the next byte must be
   * seen. Optional: a transform without it sees every byte.
   */
  passThrough?(dir: Direction): number;
  /**
   * `n` (at most passThrough(dir)) bytes of `dir` went by unseen. Returns
   * what became due to write because of it (the gateway's own replies
   * held for a record boundary).
   */
  passed?(dir: Direction, n: number): Relay;
}
