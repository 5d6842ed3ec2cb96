/**
 * The naive Node pipe: the baseline a user-space proxy must beat. One
 * listener per target, `socket.pipe()` both ways with Nagle off (without it,
 * NFS's small replies wait for delayed ACKs and reads crawl at a tenth of the
 * speed: that would flatter everyone else), nothing more: no half-close care,
 * no privileged ports, no limits.
 *   node naive-pipe.js LISTEN_IP:PORT=TARGET_IP:PORT@SOURCE_IP ...
 */
import * as net from 'node:net';

for (const spec of process.argv.slice(2)) {
  const m = /^([\d.]+):(\d+)=([\d.]+):(\d+)@([\d.]+)$/.exec(spec);
  if (m === null) {
    process.stderr.write(`naive-pipe: bad spec ${spec}\n`);
    process.exitCode = 2;
    break;
  }
  const [, lhost, lport, thost, tport, src] = m as unknown as [string, string, string, string, string, string];
  net
    .createServer({ noDelay: true }, (c) => {
      const b = net.connect({ host: thost, port: Number(tport), localAddress: src, noDelay: true });
      c.pipe(b);
      b.pipe(c);
      c.on('error', () => b.destroy());
      b.on('error', () => c.destroy());
    })
    .listen({ host: lhost, port: Number(lport), backlog: 4096 }, () => process.stdout.write(`listening ${lhost}:${lport}\n`));
}
