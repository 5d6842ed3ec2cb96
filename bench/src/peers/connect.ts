/**
 * Client side of the connection workloads, run in the guest.
 *   node connect.js rate HOST PORT COUNT
 *     serial: connect, send one byte, read its echo, close; prints
 *     {"conns":N,"per_s":R,"p50_us":..,"p99_us":..}
 *   node connect.js hold HOST PORT COUNT
 *     opens COUNT connections (200 at a time), each proven end to end by an
 *     echoed byte, prints {"held":N,"ms":T}, keeps them until stdin closes.
 */
import * as net from 'node:net';

const [mode, host = '127.0.0.1', portS = '2049', countS = '1000'] = process.argv.slice(2);
const port = Number(portS);
const count = Number(countS);

function once(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, noDelay: true });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('timeout'));
    }, 10_000);
    s.once('connect', () => s.write('x'));
    s.once('data', () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

async function rate(): Promise<void> {
  const lat: number[] = [];
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const a = process.hrtime.bigint();
    const s = await once();
    lat.push(Number(process.hrtime.bigint() - a) / 1e3);
    s.destroy();
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  lat.sort((a, b) => a - b);
  process.stdout.write(`${JSON.stringify({ conns: count, per_s: count / secs, p50_us: lat[Math.floor(count / 2)], p99_us: lat[Math.floor(count * 0.99)] })}\n`);
}

async function hold(): Promise<void> {
  const held: net.Socket[] = [];
  const t0 = Date.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++;
      held.push(await once());
    }
  };
  await Promise.all(Array.from({ length: 200 }, worker));
  process.stdout.write(`${JSON.stringify({ held: held.length, ms: Date.now() - t0 })}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => {
    for (const s of held) {
      s.destroy();
    }
    process.stdout.write('released\n');
  });
}

(mode === 'hold' ? hold() : mode === 'rate' ? rate() : Promise.reject(new Error(`mode ${mode ?? ''}?`))).catch((e: unknown) => {
  process.stderr.write(`connect: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
