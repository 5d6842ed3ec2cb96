/**
 * The gateway's SMB policy for one connection, as a pure state machine over
 * the frames each way (the proxy feeds it heads from a Framer):
 *
 * - SMB1 is refused outright (its first byte of a message is 0xFF 'SMB');
 * - the NEGOTIATE request must offer, and the backend's response must
 *   select, a dialect at or above the domain's floor (default 3.0);
 * - with `encryptionRequired`, once a session is set up every message from
 *   the guest must be an SMB3 TRANSFORM (encrypted) message; only further
 *   SESSION_SETUPs (which SMB never encrypts) may stay plain;
 * - a TREE_CONNECT the gateway can read (not encrypted) may name only a
 *   granted share, or IPC$ (which clients use for DFS referrals and share
 *   enumeration, and which carries no file data).
 *
 * SMB 3.1.1 signs session setup and tree connect, and encryption hides
 * everything after session setup: the gateway observes, it never rewrites.
 */
import type { ProtocolError } from '../errors';
import { Command, compoundOffsets, DIALECTS, decodeHeader, dialectName, kindOf, negotiateRequestDialects, negotiateResponseDialect, STATUS_SUCCESS, treeConnectShare } from './smb2';

export interface SmbPolicy {
  /** Lowest acceptable dialect revision (e.g. 0x0300 for 3.0). */
  minDialect: number;
  encryptionRequired: boolean;
  /** Share names (lower-case) the guest may tree-connect to; null: no check. */
  shares: ReadonlySet<string> | null;
}

export const DEFAULT_MIN_DIALECT = DIALECTS['3.0'] as number;

/** Why a connection was refused; stable values (metrics labels, access log). */
export type SmbRefusal = 'smb1' | 'dialect' | 'unencrypted' | 'share' | 'malformed';

export type Verdict = { ok: true } | { ok: false; reason: SmbRefusal; detail: string; error?: ProtocolError };

const OK: Verdict = { ok: true };

export class SmbInspector {
  private negotiated = false;
  private sessionUp = false;

  constructor(private readonly policy: SmbPolicy) {}

  /** Nothing more to learn from the backend's side. */
  get downDone(): boolean {
    return this.negotiated && (this.sessionUp || !this.policy.encryptionRequired);
  }

  /** Nothing more to check on the guest's side either. */
  get upDone(): boolean {
    return this.negotiated && !this.policy.encryptionRequired && this.policy.shares === null;
  }

  /** A message from the guest. */
  up(head: Buffer): Verdict {
    const kind = kindOf(head);
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
      return this.sessionUp && !this.policy.encryptionRequired ? OK : refuse(this.sessionUp ? 'unencrypted' : 'malformed', 'compressed message');
    }
    const chain = compoundOffsets(head);
    if (!('offsets' in chain)) {
      return refuse('malformed', chain.message, chain);
    }
    if (chain.truncated && this.policy.shares !== null) {
      // A TREE_CONNECT could hide past what the gateway sees.
      return refuse('malformed', `compound chain runs past the first ${head.length} bytes`);
    }
    for (const off of chain.offsets) {
      const v = this.upOne(head.subarray(off), chain.offsets.length > 1);
      if (!v.ok) {
        return v;
      }
    }
    return OK;
  }

  private upOne(head: Buffer, compounded: boolean): Verdict {
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
      const share = treeConnectShare(head);
      if (share instanceof Error) {
        return refuse('malformed', share.message, share);
      }
      if (share !== 'ipc$' && !this.policy.shares.has(share)) {
        return refuse('share', `tree connect to a share not granted: ${share}`);
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
