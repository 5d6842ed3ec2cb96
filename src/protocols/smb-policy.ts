/**
 * The gateway's SMB policy for one connection, as a pure state machine over
 * the messages each way (the proxy feeds it the heads of every command of
 * every frame, compounded or not):
 *
 * - SMB1 is refused outright (its first byte of a message is 0xFF 'SMB');
 * - the NEGOTIATE request must offer, and the backend's response must
 *   select, a dialect at or above the domain's floor (default 3.0);
 * - with `encryptionRequired`, once a session is set up every message from
 *   the guest must be an SMB3 TRANSFORM (encrypted) message; only further
 *   SESSION_SETUPs (which SMB never encrypts) may stay plain;
 * - a TREE_CONNECT the gateway can read (not encrypted) may name only a
 *   granted share, or IPC$ (which clients use for DFS referrals and share
 *   enumeration, and which carries no file data). A refused one is not a
 *   reason to close the connection (its other sessions and trees are
 *   legitimate): the verdict says which bytes name the share, and the
 *   stream makes the backend refuse that one request (smb-stream.ts).
 *
 * Encrypted messages are opaque: a TREE_CONNECT inside one is not seen.
 * What applies then is the backend's own access control (the domain's
 * source IP, Manila's access rules); see docs/conformance.md and
 * docs/configuration.md (SMB policy).
 */
import type { ProtocolError } from '../errors';
import { Command, compoundOffsets, DIALECTS, decodeHeader, dialectName, kindOf, negotiateRequestDialects, negotiateResponseDialect, SMB2_HEADER, SMB_HEAD_MAX, STATUS_SUCCESS, treeConnectPath } from './smb2';
import type { Smb2Header, SmbKind } from './smb2';

export interface SmbPolicy {
  /** Lowest acceptable dialect revision (e.g. 0x0300 for 3.0). */
  minDialect: number;
  encryptionRequired: boolean;
  /** Share names (lower-case) the guest may tree-connect to; null: no check. */
  shares: ReadonlySet<string> | null;
}

export const DEFAULT_MIN_DIALECT = DIALECTS['3.0'] as number;

/** Why a connection was refused; stable values (metrics labels, access log). */
export type SmbRefusal = 'smb1' | 'dialect' | 'unencrypted' | 'share' | 'malformed' | 'uninspectable';

/**
 * A refusal with `neuter` refuses one request, not the connection: the
 * bytes at [offset, offset + length) of that command name the share.
 */
export type Verdict = { ok: true } | { ok: false; reason: SmbRefusal; detail: string; error?: ProtocolError; neuter?: { offset: number; length: number } };

const OK: Verdict = { ok: true };

export class SmbInspector {
  private negotiated = false;
  private sessionUp = false;

  constructor(private readonly policy: SmbPolicy) {}

  /** Nothing more to learn from the backend's side. */
  get downDone(): boolean {
    // The first session's setup matters to both checks on the guest's side
    // that depend on it (encryption, compressed messages).
    return this.negotiated && this.sessionUp;
  }

  /** Nothing more to check on the guest's side either. */
  get upDone(): boolean {
    return this.negotiated && !this.policy.encryptionRequired && this.policy.shares === null;
  }

  /**
   * The first bytes of a frame from the guest (at least 4): SMB1 and
   * out-of-order encrypted or compressed frames are refused here; 'smb2'
   * means the frame is a chain of SMB2 commands, each for upCommand().
   */
  upFrame(head: Buffer): Verdict | 'smb2' {
    const kind: SmbKind | ProtocolError = kindOf(head);
    if (typeof kind !== 'string') {
      return refuse('malformed', kind.message, kind);
    }
    if (kind === 'smb1') {
      return refuse('smb1', 'SMB1 is not allowed');
    }
    if (kind === 'transform') {
      return this.negotiated ? OK : refuse('malformed', 'encrypted message before NEGOTIATE');
    }
    if (kind === 'compressed') {
      // Compression is negotiated; before a session it has no business here,
      // and with encryption required plain (even compressed) data is refused.
      // A compressed message can carry a TREE_CONNECT the gateway would have
      // to decompress to check: with a share check it fails closed instead.
      if (!this.sessionUp) {
        return refuse('malformed', 'compressed message before session setup');
      }
      if (this.policy.encryptionRequired) {
        return refuse('unencrypted', 'compressed message');
      }
      return this.policy.shares === null ? OK : refuse('uninspectable', 'compressed message: its commands cannot be checked');
    }
    return 'smb2';
  }

  /**
   * How many bytes of a command (from its header's start) the policy must
   * see before it can decide, given its decoded header: the dialect list of
   * a first NEGOTIATE, the path of a TREE_CONNECT, else the header alone.
   */
  wants(h: Smb2Header): number {
    if ((!this.negotiated && h.command === Command.NEGOTIATE) || (h.command === Command.TREE_CONNECT && this.policy.shares !== null)) {
      return SMB_HEAD_MAX;
    }
    return SMB2_HEADER;
  }

  /** A whole frame from the guest, every command of its chain within `head`. */
  up(head: Buffer): Verdict {
    const f = this.upFrame(head);
    if (f !== 'smb2') {
      return f;
    }
    const chain = compoundOffsets(head);
    if (!('offsets' in chain)) {
      return refuse('malformed', chain.message, chain);
    }
    if (chain.truncated) {
      return refuse('malformed', `compound chain runs past the first ${head.length} bytes`);
    }
    for (const off of chain.offsets) {
      const v = this.upCommand(head.subarray(off), chain.offsets.length > 1);
      if (!v.ok) {
        return v;
      }
    }
    return OK;
  }

  /**
   * One command from the guest, `head` from its header's start (as many
   * bytes as wants() asked for, or the whole command if shorter).
   */
  upCommand(head: Buffer, compounded: boolean): Verdict {
    const h = decodeHeader(head);
    if (!('command' in h)) {
      return refuse('malformed', h.message, h);
    }
    if (h.response) {
      return refuse('malformed', 'response flag set on a message from the guest');
    }
    if (!this.negotiated) {
      if (compounded) {
        return refuse('malformed', 'compound before NEGOTIATE');
      }
      if (h.command !== Command.NEGOTIATE) {
        return refuse('malformed', `command ${h.command} before NEGOTIATE`);
      }
      const offered = negotiateRequestDialects(head);
      if (!Array.isArray(offered)) {
        return refuse('malformed', offered.message, offered);
      }
      const best = Math.max(...offered.filter((d) => d !== 0x02ff));
      if (!(best >= this.policy.minDialect)) {
        return refuse('dialect', `guest offers at most ${Number.isFinite(best) ? dialectName(best) : 'none'}, below ${dialectName(this.policy.minDialect)}`);
      }
      return OK;
    }
    if (this.sessionUp && this.policy.encryptionRequired && h.command !== Command.SESSION_SETUP) {
      return refuse('unencrypted', `plain command ${h.command} after session setup on an encryption-required share`);
    }
    if (h.command === Command.TREE_CONNECT && this.policy.shares !== null) {
      const p = treeConnectPath(head);
      if (p instanceof Error) {
        // A path past what the gateway reads is refused like a bad one:
        // the share it names cannot be checked (fail closed).
        return refuse('malformed', p.message, p);
      }
      if (p.share !== 'ipc$' && !this.policy.shares.has(p.share)) {
        return { ok: false, reason: 'share', detail: `tree connect to a share not granted: ${JSON.stringify(p.share.slice(0, 80))}`, neuter: { offset: p.offset, length: p.length } };
      }
    }
    return OK;
  }

  /** A message from the backend. */
  down(head: Buffer): Verdict {
    const kind = kindOf(head);
    if (typeof kind !== 'string') {
      return refuse('malformed', `backend: ${kind.message}`, kind);
    }
    if (kind === 'smb1') {
      return refuse('smb1', 'backend answered with SMB1');
    }
    if (kind !== 'smb2') {
      return OK;
    }
    const h = decodeHeader(head);
    if (!('command' in h)) {
      return refuse('malformed', `backend: ${h.message}`, h);
    }
    if (!this.negotiated && h.command === Command.NEGOTIATE && h.response) {
      if (h.status !== STATUS_SUCCESS) {
        return OK; // the backend refuses by itself
      }
      const d = negotiateResponseDialect(head);
      if (typeof d !== 'number') {
        return refuse('malformed', `backend: ${d.message}`, d);
      }
      if (d < this.policy.minDialect || d === 0x02ff) {
        return refuse('dialect', `backend selected ${dialectName(d)}, below ${dialectName(this.policy.minDialect)}`);
      }
      this.negotiated = true;
      return OK;
    }
    if (h.command === Command.SESSION_SETUP && h.response && h.status === STATUS_SUCCESS) {
      this.sessionUp = true;
    }
    return OK;
  }
}

function refuse(reason: SmbRefusal, detail: string, error?: ProtocolError): Verdict {
  return error === undefined ? { ok: false, reason, detail } : { ok: false, reason, detail, error };
}

/** Parses a dialect name from configuration ("3.0", "3.1.1"...). */
export function parseDialect(name: string): number | null {
  return DIALECTS[name] ?? null;
}
