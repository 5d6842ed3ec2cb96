/**
 * A forward XDR reader (RFC 4506) over one buffer for the reply walkers that
 * rewrite in place (nfs-ids.ts, nfs-limits.ts). Every read is bounds-checked
 * and throws XdrShort, which each entry point catches and turns into its own
 * result: the walkers stay flat instead of checking every read. Pure.
 */

/** A read past the end of the buffer, or a length over its bound. */
export class XdrShort extends Error {}

/** Bytes of padding after an opaque of `len` bytes. */
export const xdrPad = (len: number): number => (4 - (len % 4)) % 4;

export class XdrReader {
  constructor(
    readonly b: Buffer,
    public at: number,
  ) {}

  need(n: number): void {
    if (this.at + n > this.b.length) {
      throw new XdrShort();
    }
  }

  u32(): number {
    this.need(4);
    const v = this.b.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }

  skip(n: number): void {
    this.need(n);
    this.at += n;
  }

  /** opaque<max>/string<max>: returns the body's start and length, and moves past the padding. */
  opaque(max = 0xffffffff): { start: number; len: number } {
    const len = this.u32();
    if (len > max) {
      throw new XdrShort();
    }
    const start = this.at;
    this.skip(len + xdrPad(len));
    return { start, len };
  }

  bool(): boolean {
    return this.u32() !== 0;
  }

  /** bitmap4 (RFC 7530 section 3.3.7): its words, at most `maxWords`. */
  bitmap(maxWords = 64): number[] {
    const n = this.u32();
    if (n > maxWords) {
      throw new XdrShort();
    }
    const words: number[] = [];
    for (let i = 0; i < n; i++) {
      words.push(this.u32());
    }
    return words;
  }
}
