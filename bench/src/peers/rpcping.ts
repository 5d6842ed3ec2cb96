/**
 * Serial ONC RPC NULL calls (RFC 5531) on one TCP connection to an NFS server
 * (program 100003), AUTH_SYS uid/gid 0 so a protocol-aware proxy has a
 * credential to decode. Prints {"calls":N,"per_s":R,"p50_us":..,"p99_us":..}.
 *   node rpcping.js HOST PORT [COUNT=20000] [VERS=4]
 */
import * as net from 'node:net';

const [host = '127.0.0.1', port = '2049', countS = '20000', versS = '4'] = process.argv.slice(2);
const N = Number(countS);

function call(xid: number): Buffer {
  const name = Buffer.from('bench\0\0\0'); // machinename "bench", padded to 8
  const cred = Buffer.alloc(4 + 4 + 8 + 12);
  cred.writeUInt32BE(0, 0); // stamp
  cred.writeUInt32BE(5, 4);
  name.copy(cred, 8);
  // uid 0, gid 0, no aux gids (already zero)
  const h = Buffer.alloc(4 + 32 + cred.length + 8);
  let p = 4;
  for (const v of [xid, 0, 2, 100003, Number(versS), 0, 1, cred.length]) {
    h.writeUInt32BE(v >>> 0, p);
    p += 4;
  }
  cred.copy(h, p);
  // verifier AUTH_NONE: 8 zero bytes already there
  h.writeUInt32BE((0x80000000 | (h.length - 4)) >>> 0, 0);
  return h;
}

const lat = new Float64Array(N);
const s = net.connect({ host, port: Number(port), noDelay: true }, () => {
  let done = 0;
  let buf: Buffer = Buffer.alloc(0);
  let sentAt = process.hrtime.bigint();
  const start = sentAt;
  const send = (): void => {
    sentAt = process.hrtime.bigint();
    s.write(call(done + 1));
  };
  s.on('data', (d: Buffer) => {
    buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
    while (buf.length >= 4) {
      const len = (buf.readUInt32BE(0) & 0x7fffffff) >>> 0;
      if (buf.length < 4 + len) {
        break;
      }
      // reply_stat at 12, accept_stat after a verifier of (flavor, length 0)
      if (buf.readUInt32BE(12) !== 0 || buf.readUInt32BE(24) !== 0) {
        process.stderr.write(`rpcping: call ${done + 1} rejected or failed\n`);
        process.exitCode = 1;
        s.destroy();
        return;
      }
      lat[done++] = Number(process.hrtime.bigint() - sentAt) / 1e3;
      buf = buf.subarray(4 + len);
      if (done === N) {
        const secs = Number(process.hrtime.bigint() - start) / 1e9;
        lat.sort();
        process.stdout.write(`${JSON.stringify({ calls: N, per_s: N / secs, p50_us: lat[N >> 1], p99_us: lat[Math.floor(N * 0.99)] })}\n`);
        s.end();
        return;
      }
      send();
    }
  });
  send();
});
s.on('error', (e) => {
  process.stderr.write(`rpcping: ${e.message}\n`);
  process.exitCode = 1;
});
