import { createHash } from 'node:crypto';

/**
 * Chain naming. Every chain we own starts with PREFIX so that cleanup can
 * find all of them and nothing else. Per-guest chain names hash the guest
 * key (kube-proxy servicePortChainName): iptables limits chain names to 28
 * characters, and a hash keeps names stable across restarts and reloads.
 */

/** Prefix of every chain sharegw owns. */
export const PREFIX = 'SGW-';

/** Comment on every jump from a built-in chain into ours. */
export const JUMP_COMMENT = 'sharegw';

/** Our entry chains and the built-in chain each is hooked into. */
export const ENTRY_CHAINS = [
  { table: 'raw', builtin: 'PREROUTING', chain: 'SGW-PREROUTING' },
  { table: 'nat', builtin: 'PREROUTING', chain: 'SGW-PREROUTING' },
  { table: 'nat', builtin: 'POSTROUTING', chain: 'SGW-POSTROUTING' },
  { table: 'filter', builtin: 'INPUT', chain: 'SGW-INPUT' },
  { table: 'filter', builtin: 'FORWARD', chain: 'SGW-FORWARD' },
] as const;

/**
 * Entry chain for conntrack zones of locally generated packets (ADR 0011):
 * hooked in only while some domain has its own egress, so hosts without
 * egress keep exactly the layout of ADR 0002.
 */
export const EGRESS_ENTRY = { table: 'raw', builtin: 'OUTPUT', chain: 'SGW-OUTPUT' } as const;

/** The per-backend connection caps of all domains together (filter). */
export const CAP_BACKEND_CHAIN = 'SGW-CAPB';

/** Comment of the first rule of a cap chain: `sharegw caps <hash of the chain's rules>`. */
export const CAP_MARKER = 'sharegw caps';

export type Table = 'raw' | 'nat' | 'filter';

/** Tables we write, in restore order. */
export const TABLES: readonly Table[] = ['raw', 'nat', 'filter'];

const B32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** RFC 4648 base32 (lowercase, unpadded) of the first bytes of sha256(key). */
export function hashKey(key: string, chars = 16): string {
  const h = createHash('sha256').update(key).digest();
  let out = '';
  let bits = 0;
  let acc = 0;
  for (const byte of h) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < chars) {
      out += B32[(acc >>> (bits - 5)) & 31];
      bits -= 5;
    }
    if (out.length >= chars) {
      break;
    }
  }
  return out.toUpperCase();
}

/** `SGW-<KIND>-<hash>`; always at most 28 characters. */
export function chainName(kind: 'FWD' | 'IN' | 'CAPD', key: string): string {
  return `${PREFIX}${kind}-${hashKey(key)}`;
}

/** Quotes an iptables comment; keeps only characters safe in restore input. */
export function comment(text: string): string {
  const clean = text.replace(/[^A-Za-z0-9 ._:/=,+@-]/g, '_').slice(0, 250);
  return `-m comment --comment "${clean}"`;
}
