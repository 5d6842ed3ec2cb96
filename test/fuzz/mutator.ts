/**
 * Seeded mutations of wire bytes, AFL-style: bit flips, interesting bytes
 * and words (0, 1, 0x7fffffff, 0x80000000, 0xffffffff, and the lengths
 * near each codec's limits), arithmetic on words, inserts, deletions,
 * duplications, and splicing with other corpus records. Stream builders
 * put mutated records back on the wire with record marking or direct-TCP
 * headers, themselves mutated (last-fragment bit, lengths near limits,
 * empty and split fragments), and cut the result into random chunks as a
 * socket would deliver it. Everything draws from one Rng: deterministic.
 */
import { LAST_FRAGMENT, RPC_HEAD_MAX, RPC_MAX_FRAGMENT } from '../../src/protocols/rpc';
import { SMB_HEAD_MAX, SMB_MAX_FRAME } from '../../src/protocols/smb2';
import type { Rng } from './rng';

/** 32-bit values that break decoders most often. */
export const INTERESTING_U32: readonly number[] = [
  0, 1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 32, 63, 64, 65, 127, 128, 255, 256, 400, 401, 1023, 1024, 1025, 4095, 4096, 65535, 65536,
  RPC_HEAD_MAX - 1, RPC_HEAD_MAX, RPC_HEAD_MAX + 1, RPC_MAX_FRAGMENT - 1, RPC_MAX_FRAGMENT, RPC_MAX_FRAGMENT + 1,
  SMB_HEAD_MAX - 1, SMB_HEAD_MAX, SMB_HEAD_MAX + 1, SMB_MAX_FRAME, 0x1000000,
  0x7ffffffe, 0x7fffffff, 0x80000000, 0x80000001, 0xfffffffe, 0xffffffff,
];
const INTERESTING_U8: readonly number[] = [0, 1, 0x7f, 0x80, 0xfe, 0xff, 0x10, 0x20, 0x40];
const INTERESTING_U16: readonly number[] = [0, 1, 2, 8, 9, 36, 64, 65, 0x7fff, 0x8000, 0xffff, 0x02ff, 0x0202, 0x0210, 0x0300, 0x0302, 0x0311, 0x0012, 0x0013];

/** Caps a mutated record so that no input needs more than this. */
export const MAX_MUTANT = 64 * 1024;

type Op = (b: Buffer, rng: Rng, corpus: readonly Buffer[]) => Buffer;

const at = (b: Buffer, rng: Rng, width: number): number => (b.length <= width ? 0 : rng.chance(0.5) ? rng.int(b.length - width + 1) & ~3 : rng.int(b.length - width + 1));

const ops: Op[] = [
  // Bit flip.
  (b, rng) => {
    if (b.length > 0) {
      const i = rng.int(b.length);
      b[i] = (b[i] ?? 0) ^ (1 << rng.int(8));
    }
    return b;
  },
  // Random byte.
  (b, rng) => {
    if (b.length > 0) {
      b[rng.int(b.length)] = rng.int(256);
    }
    return b;
  },
  // Interesting byte.
  (b, rng) => {
    if (b.length > 0) {
      b[rng.int(b.length)] = rng.pick(INTERESTING_U8);
    }
    return b;
  },
  // Interesting big-endian u32 (XDR), usually at a word boundary.
  (b, rng) => {
    if (b.length >= 4) {
      b.writeUInt32BE(rng.pick(INTERESTING_U32), at(b, rng, 4));
    }
    return b;
  },
  // Interesting little-endian u16/u32 (SMB2).
  (b, rng) => {
    if (b.length >= 4) {
      if (rng.chance(0.5)) {
        b.writeUInt16LE(rng.pick(INTERESTING_U16), at(b, rng, 2));
      } else {
        b.writeUInt32LE(rng.pick(INTERESTING_U32), at(b, rng, 4));
      }
    }
    return b;
  },
  // Small arithmetic on a big-endian word (counts, lengths off by a few).
  (b, rng) => {
    if (b.length >= 4) {
      const i = at(b, rng, 4);
      b.writeUInt32BE((b.readUInt32BE(i) + rng.range(-8, 8)) >>> 0, i);
    }
    return b;
  },
  // Insert random bytes, or a word.
  (b, rng) => {
    const ins = rng.chance(0.5) ? rng.bytes(rng.size(64)) : u32be(rng.pick(INTERESTING_U32));
    const i = rng.int(b.length + 1);
    return Buffer.concat([b.subarray(0, i), ins, b.subarray(i)]);
  },
  // Insert a run of one byte.
  (b, rng) => {
    const i = rng.int(b.length + 1);
    return Buffer.concat([b.subarray(0, i), Buffer.alloc(rng.size(256), rng.pick(INTERESTING_U8)), b.subarray(i)]);
  },
  // Delete a range.
  (b, rng) => {
    if (b.length === 0) {
      return b;
    }
    const i = rng.int(b.length);
    const n = Math.min(b.length - i, 1 + rng.size(64));
    return Buffer.concat([b.subarray(0, i), b.subarray(i + n)]);
  },
  // Duplicate a range (repeated operations, arguments, compound members).
  (b, rng) => {
    if (b.length === 0) {
      return b;
    }
    const i = rng.int(b.length);
    const n = Math.min(b.length - i, 1 + rng.size(256));
    const times = 1 + rng.size(16);
    const rep = Buffer.concat(Array.from({ length: times }, () => b.subarray(i, i + n)));
    return Buffer.concat([b.subarray(0, i + n), rep, b.subarray(i + n)]);
  },
  // Truncate.
  (b, rng) => b.subarray(0, rng.int(b.length + 1)),
  // Splice: the head of this record, the tail of another.
  (b, rng, corpus) => {
    if (corpus.length === 0) {
      return b;
    }
    const o = rng.pick(corpus);
    return Buffer.concat([b.subarray(0, rng.int(b.length + 1)), o.subarray(rng.int(o.length + 1))]);
  },
  // Overwrite a range with bytes of another record at the same offset (keeps headers, swaps bodies).
  (b, rng, corpus) => {
    if (corpus.length === 0 || b.length === 0) {
      return b;
    }
    const o = rng.pick(corpus);
    const i = rng.int(b.length);
    const n = Math.min(b.length - i, o.length - Math.min(i, o.length), 1 + rng.size(512));
    if (n > 0) {
      o.copy(b, i, i, i + n);
    }
    return b;
  },
];

function u32be(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
}

/** A mutated copy of `input`: 1 to 8 stacked mutations (fewer more often), capped at MAX_MUTANT bytes. */
export function mutate(input: Buffer, rng: Rng, corpus: readonly Buffer[] = []): Buffer {
  let b: Buffer = Buffer.from(input);
  const n = 1 + rng.size(7);
  for (let i = 0; i < n; i++) {
    b = rng.pick(ops)(b, rng, corpus);
    if (b.length > MAX_MUTANT) {
      b = b.subarray(0, MAX_MUTANT);
    }
  }
  return b;
}

/** Records drawn from `corpus`, each mutated with probability `p`, some duplicated, some random bytes. */
export function recordSequence(rng: Rng, corpus: readonly Buffer[], count: number, p = 0.5): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    if (rng.chance(0.03)) {
      out.push(rng.bytes(rng.size(2048)));
      continue;
    }
    const r = rng.pick(corpus);
    out.push(rng.chance(p) ? mutate(r, rng, corpus) : r);
  }
  return out;
}

/**
 * ONC RPC record marking (RFC 5531 section 11) around `records`: usually
 * one last fragment each, sometimes split into several fragments (empty
 * ones too), and sometimes a corrupted mark (the last-fragment bit
 * cleared or set, a length near a limit, a mark dropped).
 */
export function rpcStream(rng: Rng, records: readonly Buffer[], corruptMarks = 0.1): Buffer {
  const parts: Buffer[] = [];
  for (const rec of records) {
    const frags: Buffer[] = [];
    if (rng.chance(0.2) && rec.length > 1) {
      let off = 0;
      while (off < rec.length) {
        const n = rng.chance(0.1) ? 0 : Math.min(rec.length - off, 1 + rng.int(rec.length - off));
        frags.push(rec.subarray(off, off + n));
        off += n;
      }
    } else {
      frags.push(rec);
    }
    frags.forEach((f, i) => {
      let mark = (f.length | (i === frags.length - 1 ? LAST_FRAGMENT : 0)) >>> 0;
      if (rng.chance(corruptMarks)) {
        const how = rng.int(4);
        mark = how === 0 ? (mark ^ LAST_FRAGMENT) >>> 0 : how === 1 ? rng.pick(INTERESTING_U32) : how === 2 ? ((mark & LAST_FRAGMENT) | ((f.length + rng.range(-4, 4)) & 0x7fffffff)) >>> 0 : rng.u32();
      }
      if (!rng.chance(corruptMarks / 10)) {
        parts.push(u32be(mark));
      }
      parts.push(f);
    });
  }
  return Buffer.concat(parts);
}

/**
 * SMB2 direct TCP (MS-SMB2 2.2.1): a zero byte and a 24-bit length before
 * each message, sometimes corrupted (a non-zero first byte, a length near
 * the frame limit or off by a few).
 */
export function smbStream(rng: Rng, messages: readonly Buffer[], corruptHeaders = 0.1): Buffer {
  const parts: Buffer[] = [];
  for (const m of messages) {
    const h = Buffer.alloc(4);
    h.writeUInt32BE(Math.min(m.length, SMB_MAX_FRAME), 0);
    if (rng.chance(corruptHeaders)) {
      const how = rng.int(3);
      if (how === 0) {
        h[0] = rng.pick(INTERESTING_U8);
      } else if (how === 1) {
        h.writeUIntBE(rng.pick([0, 1, 3, 4, 63, 64, 65, SMB_HEAD_MAX, SMB_HEAD_MAX + 1, SMB_MAX_FRAME]), 1, 3);
      } else {
        h.writeUIntBE(Math.max(0, Math.min(SMB_MAX_FRAME, m.length + rng.range(-8, 8))), 1, 3);
      }
    }
    parts.push(h, m);
  }
  return Buffer.concat(parts);
}

/**
 * Cuts `b` as a socket might deliver it: whole, byte by byte (short inputs),
 * at a few random offsets, or in many small pieces.
 */
export function chunk(rng: Rng, b: Buffer): Buffer[] {
  const mode = rng.int(4);
  if (mode === 0 || b.length === 0) {
    return [b];
  }
  if (mode === 1 && b.length <= 512) {
    return Array.from({ length: b.length }, (_, i) => b.subarray(i, i + 1));
  }
  const out: Buffer[] = [];
  let off = 0;
  const small = mode === 3;
  while (off < b.length) {
    const n = Math.min(b.length - off, small ? 1 + rng.int(16) : 1 + rng.int(Math.max(1, b.length >> 1)));
    out.push(b.subarray(off, off + n));
    off += n;
  }
  return out;
}
