/**
 * Runs inside a network namespace the test created (ip netns exec ... node
 * native-probe.js <mode> <json>) and prints one JSON line with what it saw.
 *
 *   original-dst {impl, listen: [{host, port, dest?}], connects: [{host, port}]}
 *     listens on each address, connects to each destination (the test's
 *     REDIRECT/DNAT rules send them to a listener) and reports what the
 *     implementation says the accepted socket's original destination was.
 *   blackhole {impl, userTimeoutMs, dropAfterMs}
 *     guest -> Session -> backend on 127.0.0.1; the guest streams, then the
 *     backend port is DROPped; reports when and how the guest's side ended.
 */
import { execFileSync } from 'node:child_process';
import * as net from 'node:net';
import { Session } from '../../src/dataplane/proxy/session';
import type { CloseReason } from '../../src/dataplane/proxy/session';
import { CapturePortOriginalDst, KeepAliveTuning, NativeOriginalDst, NativeTcpTuning, SpliceRelayShim, loadNative } from '../../src/native';
import type { Destination, OriginalDst } from '../../src/native';
import { Counters } from '../../src/observability/counters';
import { createLogger } from '../../src/observability/logger';

interface Listen {
  host: string;
  port: number;
  /** For the capture-port fallback: the destination this listener stands for. */
  dest?: Destination;
}

function listen(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => resolve((server.address() as net.AddressInfo).port));
  });
}

async function originalDst(o: { impl: 'native' | 'fallback'; listen: Listen[]; connects: { host: string; port: number }[] }): Promise<unknown> {
  const b = loadNative().binding;
  if (o.impl === 'native' && b === null) {
    throw new Error(`addon not loaded: ${String(loadNative().status.reason)}`);
  }
  const byLocal = new Map(o.listen.filter((l) => l.dest !== undefined).map((l) => [`${l.host}|${l.port}`, l.dest]));
  const shim: OriginalDst = o.impl === 'native' && b !== null ? new NativeOriginalDst(b) : new CapturePortOriginalDst((a, p) => byLocal.get(`${a}|${p}`));
  const seen: (Destination | null)[] = [];
  let waiting: ((d: Destination | null) => void) | null = null;
  const servers: net.Server[] = [];
  for (const l of o.listen) {
    const s = net.createServer((sock) => {
      seen.push(shim.lookup(sock));
      sock.end();
      waiting?.(seen.at(-1) ?? null);
    });
    servers.push(s);
    await listen(s, l.host, l.port);
  }
  const results: unknown[] = [];
  for (const c of o.connects) {
    const got = new Promise<Destination | null>((r) => (waiting = r));
    const sock = net.connect({ host: c.host, port: c.port });
    sock.on('error', () => undefined);
    const d = await Promise.race([got, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 3000))]);
    sock.destroy();
    results.push({ connect: c, original: d });
  }
  for (const s of servers) {
    s.close();
  }
  return { impl: shim.impl, results };
}

async function blackhole(o: { impl: 'native' | 'fallback'; relay: 'splice' | 'js'; userTimeoutMs: number; dropAfterMs: number; waitMs: number }): Promise<unknown> {
  const b = loadNative().binding;
  if (o.impl === 'native' && b === null) {
    throw new Error(`addon not loaded: ${String(loadNative().status.reason)}`);
  }
  const counters = new Counters();
  const open: net.Socket[] = [];
  const sessions: Session[] = [];
  const backend = net.createServer((s) => {
    open.push(s);
    s.on('data', () => undefined);
    s.on('error', () => undefined);
  });
  const backendPort = await listen(backend, '127.0.0.1', 0);
  let closedAt = 0;
  let reason: CloseReason | null = null;
  const front = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (g) => {
    const s = new Session(
      g,
      {
        backend: '127.0.0.1',
        port: backendPort,
        sourceIp: '127.0.0.1',
        connectTimeoutMs: 2000,
        idleTimeoutMs: 0,
        keepAliveMs: 60_000,
        userTimeoutMs: o.userTimeoutMs,
        tuning: o.impl === 'native' && b !== null ? new NativeTcpTuning(b) : new KeepAliveTuning(),
        splice: o.relay === 'splice' && b !== null ? new SpliceRelayShim(b) : null,
      },
      createLogger('silent'),
      counters,
      (_s, r) => {
        closedAt = Date.now();
        reason = r;
      },
    );
    sessions.push(s);
    s.start();
  });
  const frontPort = await listen(front, '127.0.0.1', 0);
  const guest = net.connect({ host: '127.0.0.1', port: frontPort });
  await new Promise((r) => guest.once('connect', r));
  let guestEnd: { at: number; how: string } | null = null;
  guest.on('error', (e: NodeJS.ErrnoException) => (guestEnd ??= { at: Date.now(), how: e.code ?? 'error' }));
  guest.on('close', () => (guestEnd ??= { at: Date.now(), how: 'close' }));
  // Stream steadily (64 KiB every 20 ms): there is always data in flight.
  const chunk = Buffer.alloc(64 * 1024, 7);
  const writer = setInterval(() => {
    if (!guest.destroyed && guest.writableLength < 8 * 1024 * 1024) {
      guest.write(chunk);
    }
  }, 20);
  await new Promise((r) => setTimeout(r, o.dropAfterMs));
  execFileSync('iptables', ['-w', '-I', 'INPUT', '-i', 'lo', '-p', 'tcp', '--dport', String(backendPort), '-j', 'DROP']);
  const droppedAt = Date.now();
  const deadline = droppedAt + o.waitMs;
  while (guestEnd === null && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  clearInterval(writer);
  const end = guestEnd as { at: number; how: string } | null;
  guest.destroy();
  for (const s of sessions) {
    s.close('shutdown');
  }
  for (const s of open) {
    s.destroy();
  }
  front.close();
  backend.close();
  return {
    impl: o.impl,
    relay: sessions[0]?.relayImpl ?? null,
    guest: end === null ? null : { afterMs: end.at - droppedAt, how: end.how },
    session: reason === null ? null : { afterMs: closedAt - droppedAt, reason },
    counters: counters.snapshot(),
  };
}

async function main(): Promise<void> {
  const [mode, json] = process.argv.slice(2);
  const o = JSON.parse(json ?? '{}') as never;
  const out = mode === 'original-dst' ? await originalDst(o) : mode === 'blackhole' ? await blackhole(o) : null;
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${String((err as Error).stack ?? err)}\n`);
  process.exitCode = 1;
});
