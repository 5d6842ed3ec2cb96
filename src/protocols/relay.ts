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

/**
 * What one Buffer costs beyond its bytes (its object, the pool slice or
 * backing store, the heap's slack), added per buffer by
 * StreamTransform.buffered(): the gateway's own answers are small and
 * many, so their number weighs more than their length in a memory budget.
 * Measured on Node 20: 200,000 queued 40-byte NFS answers took 459 bytes
 * of RSS each (251 of them on the V8 heap).
 */
export const BUFFER_OVERHEAD = 420;

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
  /**
   * Bytes the transform holds now: the gateway's answers queued for a
   * reply boundary and records or heads held for a decision or rewrite,
   * each buffer counted with BUFFER_OVERHEAD. The session budgets memory
   * with it. Optional: a transform without it holds nothing unbounded.
   */
  buffered?(): number;
}
