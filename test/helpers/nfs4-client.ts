/**
 * A raw NFSv4.0/4.1 client for the hostile-guest tests (issue 14): it
 * builds COMPOUNDs byte by byte (test/integration/issue-014-nfs.test.ts
 * needs ones no real client sends: split over fragments, padded past the
 * gateway's old look-ahead, with odd names), sends them over one TCP
 * connection and decodes the replies far enough to report each result's
 * operation and status. Run as a script inside a guest namespace:
 *
 *   node nfs4-client.js HOST SCENARIO [ARGS...]   -> one JSON line on stdout
 *
 * Nothing here is the gateway's code: the encoders are written from RFC
 * 7530/8881 independently of src/protocols, so the test does not check the
 * gateway against itself.
 */
import * as net from 'node:net';

const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
};
const u64 = (v: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(v), 0);
  return b;
};
const opaque = (data: Buffer | string): Buffer => {
  const d = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return Buffer.concat([u32(d.length), d, Buffer.alloc((4 - (d.length % 4)) % 4)]);
};

/** One operation: its code and encoded arguments. */
export interface Op {
  op: number;
  args: Buffer;
}
export const PUTROOTFH: Op = { op: 24, args: Buffer.alloc(0) };
export const GETFH: Op = { op: 10, args: Buffer.alloc(0) };
export const lookup = (name: string | Buffer): Op => ({ op: 15, args: opaque(name) });
export const putfh = (fh: Buffer): Op => ({ op: 22, args: opaque(fh) });
const ANON_STATEID = Buffer.alloc(16);
export const read = (offset: number, count: number): Op => ({ op: 25, args: Buffer.concat([ANON_STATEID, u64(offset), u32(count)]) });
export const write = (offset: number, data: Buffer): Op => ({ op: 38, args: Buffer.concat([ANON_STATEID, u64(offset), u32(2 /* FILE_SYNC4 */), opaque(data)]) });
/** GETATTR of word-0 attributes given by bit number. */
export const getattr = (...bits: number[]): Op => ({ op: 9, args: Buffer.concat([u32(1), u32(bits.reduce((w, b) => (w | (1 << b)) >>> 0, 0))]) });
/** A GETATTR of `type` with a bitmap padded to `words` words (a legal, longer encoding). */
const paddedGetattr = (words: number): Op => ({ op: 9, args: Buffer.concat([u32(words), u32(1 << 1), Buffer.alloc(4 * (words - 1))]) });
export const setclientid = (id: string): Op => ({ op: 35, args: Buffer.concat([Buffer.alloc(8, 7), opaque(id), u32(0x40000000), opaque('tcp'), opaque('198.19.0.5.3.255'), u32(1)]) });
export const sequence = (sessionId: Buffer, seqid: number): Op => ({ op: 53, args: Buffer.concat([sessionId, u32(seqid), u32(0), u32(0), u32(0)]) });

/** An ONC RPC call (AUTH_SYS as root, as libnfs sends) around NFSv4 COMPOUND arguments. */
export function compoundCall(xid: number, minor: number, ops: Op[], tag = ''): Buffer {
  const cred = Buffer.concat([u32(0), opaque('sgw-test'), u32(0), u32(0), u32(0)]);
  const head = Buffer.concat([u32(xid), u32(0), u32(2), u32(100003), u32(4), u32(1), u32(1), opaque(cred), u32(0), u32(0)]);
  return Buffer.concat([head, opaque(tag), u32(minor), u32(ops.length), ...ops.flatMap((o) => [u32(o.op), o.args])]);
}

/** Record marking: `body` cut into fragments at the given offsets, the last one marked. */
export function fragments(body: Buffer, cuts: number[] = []): Buffer {
  const at = [0, ...cuts, body.length];
  const parts: Buffer[] = [];
  for (let i = 0; i + 1 < at.length; i++) {
    const piece = body.subarray(at[i], at[i + 1]);
    const last = i + 2 === at.length;
    parts.push(u32(((last ? 0x80000000 : 0) | piece.length) >>> 0), piece);
  }
  return Buffer.concat(parts);
}

/** One result of a COMPOUND reply. */
export interface Result {
  op: number;
  status: number;
  /** The rest of the result after its status, up to the next result (only for the last one, whatever follows). */
  body: Buffer;
}
export interface Reply {
  xid: number;
  status: number;
  results: Result[];
}

/**
 * Decodes an accepted COMPOUND reply: results whose layout this client
 * knows are sliced exactly; the first it does not know takes the rest.
 */
export function decodeCompound(rec: Buffer): Reply {
  const xid = rec.readUInt32BE(0);
  if (rec.readUInt32BE(8) !== 0) {
    throw new Error(`RPC reply denied (${rec.readUInt32BE(12)})`);
  }
  const verfLen = rec.readUInt32BE(16);
  let at = 20 + verfLen + ((4 - (verfLen % 4)) % 4);
  const acceptStat = rec.readUInt32BE(at);
  if (acceptStat !== 0) {
    throw new Error(`RPC accept_stat ${acceptStat}`);
  }
  at += 4;
  const status = rec.readUInt32BE(at);
  const tagLen = rec.readUInt32BE(at + 4);
  at += 8 + tagLen + ((4 - (tagLen % 4)) % 4);
  const n = rec.readUInt32BE(at);
  at += 4;
  const results: Result[] = [];
  for (let i = 0; i < n && at + 8 <= rec.length; i++) {
    const op = rec.readUInt32BE(at);
    const st = rec.readUInt32BE(at + 4);
    at += 8;
    let len = rec.length - at;
    if (st !== 0) {
      len = 0;
    } else if ([15, 22, 24, 32, 31].includes(op)) {
      len = 0;
    } else if (op === 10 || op === 35) {
      len = op === 10 ? 4 + rec.readUInt32BE(at) + ((4 - (rec.readUInt32BE(at) % 4)) % 4) : 16;
    } else if (op === 53) {
      len = 36;
    } else if (op === 38) {
      len = 16;
    } else if (op === 9) {
      const words = rec.readUInt32BE(at);
      const vals = rec.readUInt32BE(at + 4 + 4 * words);
      len = 8 + 4 * words + vals + ((4 - (vals % 4)) % 4);
    }
    results.push({ op, status: st, body: rec.subarray(at, at + len) });
    at += len;
  }
  return { xid, status, results };
}

/** One TCP connection: send bytes, wait for the reply to an xid. */
export class Conn {
  private buf = Buffer.alloc(0);
  private readonly replies = new Map<number, Buffer>();
  private waiting: (() => void) | null = null;
  closed: string | null = null;
  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      for (;;) {
        // Replies may come in several fragments: gather each whole record.
        let off = 0;
        const parts: Buffer[] = [];
        let done = false;
        while (off + 4 <= this.buf.length) {
          const w = this.buf.readUInt32BE(off);
          const len = w & 0x7fffffff;
          if (off + 4 + len > this.buf.length) {
            break;
          }
          parts.push(this.buf.subarray(off + 4, off + 4 + len));
          off += 4 + len;
          if ((w & 0x80000000) !== 0) {
            done = true;
            break;
          }
        }
        if (!done) {
          break;
        }
        const rec = Buffer.concat(parts);
        this.buf = this.buf.subarray(off);
        this.replies.set(rec.readUInt32BE(0), rec);
      }
      this.waiting?.();
    });
    const end = (why: string): void => {
      this.closed ??= why;
      this.waiting?.();
    };
    sock.on('error', (e: NodeJS.ErrnoException) => end(e.code ?? 'error'));
    sock.on('close', () => end('closed'));
  }

  static open(host: string, port = 2049): Promise<Conn> {
    return new Promise((resolve, reject) => {
      // NFS clients use a privileged source port; some exports insist.
      const tryPort = (p: number): void => {
        const s = net.connect({ host, port, localPort: p });
        s.once('connect', () => resolve(new Conn(s)));
        s.once('error', (e: NodeJS.ErrnoException) => (e.code === 'EADDRINUSE' && p > 600 ? tryPort(p - 1) : reject(e)));
      };
      tryPort(1000 - (process.pid % 300));
    });
  }

  /** Writes `bytes`; resolves once they are taken (or the connection is gone: reply() then says so). */
  send(bytes: Buffer): Promise<void> {
    return new Promise((r) => {
      if (this.closed !== null || this.sock.write(bytes)) {
        r();
        return;
      }
      this.sock.once('drain', () => r());
      this.sock.once('close', () => r());
    });
  }

  async reply(xid: number, ms = 15_000): Promise<Buffer> {
    const end = Date.now() + ms;
    while (!this.replies.has(xid)) {
      if (this.closed !== null) {
        throw new Error(`connection ${this.closed} before the reply to ${xid}`);
      }
      if (Date.now() > end) {
        throw new Error(`no reply to ${xid}`);
      }
      await new Promise<void>((r) => {
        const timer = setTimeout(r, 200);
        this.waiting = () => {
          clearTimeout(timer);
          r();
        };
      });
    }
    const rec = this.replies.get(xid) as Buffer;
    this.replies.delete(xid);
    return rec;
  }

  async compound(xid: number, minor: number, ops: Op[], cuts: number[] = [], tag = ''): Promise<Reply> {
    await this.send(fragments(compoundCall(xid, minor, ops, tag), cuts));
    return decodeCompound(await this.reply(xid));
  }

  close(): void {
    this.sock.destroy();
  }
}

/** EXCHANGE_ID then CREATE_SESSION (RFC 8881 sections 18.35, 18.36): the session id for SEQUENCE. */
export async function session41(c: Conn, owner: string): Promise<Buffer> {
  const ex: Op = { op: 42, args: Buffer.concat([Buffer.alloc(8, 3), opaque(owner), u32(0), u32(0), u32(0)]) };
  const r1 = await c.compound(0x41000001, 1, [ex]);
  const body = r1.results[0]?.body;
  if (r1.status !== 0 || body === undefined) {
    throw new Error(`EXCHANGE_ID: ${r1.status}`);
  }
  const clientId = body.subarray(0, 8);
  const seq = body.readUInt32BE(8);
  const attrs = Buffer.concat([u32(0), u32(1049600 + 65536), u32(1049600 + 65536), u32(8192), u32(16), u32(4), u32(0)]);
  const cs: Op = { op: 43, args: Buffer.concat([clientId, u32(seq), u32(0), attrs, attrs, u32(0x40000000), u32(1), u32(0)]) };
  const r2 = await c.compound(0x41000002, 1, [cs]);
  const sid = r2.results[0]?.body;
  if (r2.status !== 0 || sid === undefined) {
    throw new Error(`CREATE_SESSION: ${r2.status}`);
  }
  const rc: Op = { op: 58, args: u32(0) };
  await c.compound(0x41000003, 1, [sequence(sid.subarray(0, 16), 1), rc]);
  return Buffer.from(sid.subarray(0, 16));
}

const summary = (r: Reply): { status: number; ops: number[]; statuses: number[] } => ({ status: r.status, ops: r.results.map((x) => x.op), statuses: r.results.map((x) => x.status) });
/** The data of a READ result (eof, opaque data), if the compound got that far. */
const readData = (r: Reply): string | null => {
  const res = r.results.find((x) => x.op === 25 && x.status === 0);
  if (res === undefined) {
    return null;
  }
  const len = res.body.readUInt32BE(4);
  return res.body.subarray(8, 8 + len).toString('utf8');
};

const OTHER = [lookup('export'), lookup('acme-private'), lookup('hello.txt'), read(0, 4096)];

/** The scenarios the integration test runs, each printing one JSON object. */
const scenarios: Record<string, (host: string, args: string[]) => Promise<unknown>> = {
  /** (a) The other export's file, the COMPOUND split over two fragments after its first LOOKUP. */
  async split(host) {
    const c = await Conn.open(host);
    const body = compoundCall(1, 0, [PUTROOTFH, ...OTHER]);
    // Cut inside the operations: PUTROOTFH and LOOKUP "export" in the first fragment.
    const cut = body.length - OTHER.slice(1).reduce((n, o) => n + 4 + o.args.length, 0);
    await c.send(fragments(body, [cut]));
    const r = decodeCompound(await c.reply(1));
    c.close();
    return { ...summary(r), data: readData(r) };
  },
  /** (b) The same, in one fragment, after 90 GETATTRs of 24 bytes each (past the old look-ahead). */
  async padded(host) {
    const c = await Conn.open(host);
    const r = await c.compound(2, 0, [PUTROOTFH, ...Array.from({ length: 90 }, () => paddedGetattr(4)), ...OTHER]);
    c.close();
    return { ...summary(r), data: readData(r) };
  },
  /** (b) The same, after an operation the old walker could not skip (SETCLIENTID). */
  async unskippable(host) {
    const c = await Conn.open(host);
    const r = await c.compound(3, 0, [PUTROOTFH, setclientid(`sgw-unskip-${process.pid}`), ...OTHER]);
    c.close();
    return { ...summary(r), data: readData(r) };
  },
  /** (c) One fragment longer than the old look-ahead: a WRITE of 3000 bytes to our own export first. */
  async long(host, [file = 'scratch']) {
    const c = await Conn.open(host);
    const r = await c.compound(4, 0, [PUTROOTFH, lookup('export'), lookup('acme'), lookup(file), write(0, Buffer.alloc(3000, 0x61)), PUTROOTFH, ...OTHER]);
    c.close();
    return { ...summary(r), data: readData(r) };
  },
  /** A name the server rejects: "" (INVAL) or 256 bytes (NAMETOOLONG), in the pseudo-fs directory above the exports. */
  async names(host) {
    const c = await Conn.open(host);
    const empty = await c.compound(5, 0, [PUTROOTFH, lookup('export'), lookup('')]);
    const long = await c.compound(6, 0, [PUTROOTFH, lookup('export'), lookup('n'.repeat(256))]);
    const ok = await c.compound(7, 0, [PUTROOTFH, lookup('export'), lookup('acme'), lookup('hello.txt'), read(0, 100)]);
    c.close();
    return { empty: summary(empty), long: summary(long), after: { ...summary(ok), data: readData(ok) }, closed: c.closed };
  },
  /** NFSv4.1: a refused LOOKUP after SEQUENCE, PUTROOTFH and a good LOOKUP, then the slot's next use. */
  async session(host) {
    const c = await Conn.open(host);
    const sid = await session41(c, `sgw-session-${process.pid}`);
    const denied = await c.compound(10, 1, [sequence(sid, 2), PUTROOTFH, lookup('export'), lookup('acme-private'), lookup('hello.txt'), read(0, 100)]);
    const next = await c.compound(11, 1, [sequence(sid, 3), PUTROOTFH, lookup('export'), lookup('acme'), lookup('hello.txt'), read(0, 100)]);
    // An operation code no minor version defines, after SEQUENCE.
    const illegal = await c.compound(12, 1, [sequence(sid, 4), PUTROOTFH, { op: 9999, args: Buffer.alloc(0) }, lookup('export')]);
    const after = await c.compound(13, 1, [sequence(sid, 5), PUTROOTFH, lookup('export'), lookup('acme'), lookup('hello.txt'), read(0, 100)]);
    c.close();
    return { denied: { ...summary(denied), data: readData(denied) }, next: { ...summary(next), data: readData(next) }, illegal: summary(illegal), after: { ...summary(after), data: readData(after) } };
  },
  /**
   * A 5 MiB write as a client does it: ask for maxwrite, then WRITE in
   * pieces of at most that much to `file` in our own export.
   */
  async bigwrite(host, [file = 'big', mib = '5']) {
    const c = await Conn.open(host);
    const total = Number(mib) * 1024 * 1024;
    const r = await c.compound(20, 0, [PUTROOTFH, lookup('export'), lookup('acme'), lookup(file), GETFH, getattr(30, 31)]);
    const fh = r.results[4]?.body;
    const attrs = r.results[5]?.body;
    if (r.status !== 0 || fh === undefined || attrs === undefined) {
      return { error: `lookup: ${r.status}` };
    }
    const handle = fh.subarray(4, 4 + fh.readUInt32BE(0));
    // fattr4: bitmap (1 word), attr_vals length, maxread, maxwrite.
    const maxread = Number(attrs.readBigUInt64BE(12));
    const maxwrite = Number(attrs.readBigUInt64BE(20));
    const chunk = Math.min(maxwrite, total);
    let xid = 100;
    let written = 0;
    try {
      for (let off = 0; off < total; off += chunk) {
        const data = Buffer.alloc(Math.min(chunk, total - off), (off / chunk) & 0xff);
        const w = await c.compound(xid++, 0, [putfh(handle), write(off, data)]);
        if (w.status !== 0) {
          return { maxread, maxwrite, chunk, written, error: `WRITE: ${w.status}` };
        }
        written += data.length;
      }
    } catch (e) {
      return { maxread, maxwrite, chunk, written, error: (e as Error).message };
    }
    c.close();
    return { maxread, maxwrite, chunk, written };
  },
};

if (require.main === module) {
  const [host, name, ...args] = process.argv.slice(2);
  const run = scenarios[name ?? ''];
  if (host === undefined || run === undefined) {
    process.stderr.write(`usage: nfs4-client HOST ${Object.keys(scenarios).join('|')} [ARGS]\n`);
    process.exitCode = 2;
  } else {
    run(host, args).then(
      (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
      (e: Error) => {
        process.stdout.write(`${JSON.stringify({ error: e.message })}\n`);
        process.exitCode = 1;
      },
    );
  }
}
