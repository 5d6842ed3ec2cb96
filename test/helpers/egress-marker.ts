/**
 * A marker backend and its client for the egress tests (issue 6).
 *
 *   serve ADDR PORT NAME     on each connection: one line "NAME PEER_IP:PEER_PORT",
 *                            then echo every byte back until the client ends.
 *   fetch HOST PORT LPORT BYTES SEED
 *                            connect from local port LPORT (0: any), read the
 *                            marker line, send BYTES bytes (seeded), read them
 *                            back; print one JSON line with the marker, the
 *                            byte counts and whether the echo is byte-exact.
 */
import * as crypto from 'node:crypto';
import * as net from 'node:net';

const [mode, a1, a2, a3, a4, a5] = process.argv.slice(2);

if (mode === 'serve') {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    s.write(`${a3 ?? '?'} ${s.remoteAddress ?? '?'}:${s.remotePort ?? 0}\n`);
    s.pipe(s);
  });
  server.listen(Number(a2), a1, () => process.stdout.write('listening\n'));
} else if (mode === 'fetch') {
  const bytes = Number(a4);
  const seed = a5 ?? 'seed';
  const lport = Number(a3);
  const sent = crypto.createHash('sha256');
  const got = crypto.createHash('sha256');
  let marker: string | null = null;
  let head = Buffer.alloc(0);
  let received = 0;
  const s = net.connect({ host: a1 ?? '', port: Number(a2), ...(lport > 0 ? { localPort: lport } : {}), allowHalfOpen: true });
  const done = (error?: string): void => {
    const ok = error === undefined && marker !== null && received === bytes && sent.copy().digest('hex') === got.copy().digest('hex');
    process.stdout.write(`${JSON.stringify({ marker, received, bytes, ok, error: error ?? null })}\n`);
    process.exitCode = ok ? 0 : 1;
    s.destroy();
  };
  s.on('error', (e) => done(e.message));
  s.on('connect', () => {
    // Pseudo-random, seeded: each domain's stream differs.
    let left = bytes;
    let n = 0;
    const pump = (): void => {
      while (left > 0) {
        const chunk = crypto.createHash('sha512').update(`${seed}:${n++}`).digest();
        const block = Buffer.concat(Array.from({ length: 1024 }, () => chunk)).subarray(0, Math.min(left, 65536));
        block.writeUInt32BE(n, 0);
        left -= block.length;
        sent.update(block);
        if (!s.write(block)) {
          s.once('drain', pump);
          return;
        }
      }
      s.end();
    };
    pump();
  });
  s.on('data', (d: Buffer) => {
    if (marker === null) {
      head = Buffer.concat([head, d]);
      const nl = head.indexOf(10);
      if (nl === -1) {
        return;
      }
      marker = head.subarray(0, nl).toString('utf8');
      d = head.subarray(nl + 1);
    }
    received += d.length;
    got.update(d);
  });
  s.on('end', () => done());
  setTimeout(() => done('timeout'), 120_000).unref();
} else {
  process.stderr.write('usage: egress-marker serve ADDR PORT NAME | fetch HOST PORT LPORT BYTES SEED\n');
  process.exitCode = 2;
}
