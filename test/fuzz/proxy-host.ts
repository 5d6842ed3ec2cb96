/**
 * The process under test for the loopback socket-path fuzzer (forked by
 * socket.ts with an IPC channel): the proxy's real Session machinery
 * (src/dataplane/proxy/session.ts) with its real transforms, between front
 * listeners on 127.0.0.1 and the stub backends. One front per policy:
 * every NFS policy of NFS_POLICIES (RpcStream) and every SMB policy of
 * SMB_POLICIES (SmbStream). Closed sessions are counted as the proxy
 * plane counts them (refusals by proto and reason, errors by code).
 *
 * IPC: sends { ready, fronts } once listening; answers 'stats' with the
 * counters, open sessions and memory (after a GC when run with
 * --expose-gc). It installs no handler for uncaught exceptions: a crash
 * ends the process, which is what the fuzzer watches for.
 */
import * as net from 'node:net';
import { Session } from '../../src/dataplane/proxy/session';
import { Counters } from '../../src/observability/counters';
import { createLogger } from '../../src/observability/logger';
import { RpcStream } from '../../src/protocols/rpc-stream';
import { SmbStream } from '../../src/protocols/smb-stream';
import type { StreamTransform } from '../../src/protocols/relay';
import { rpcStub, smbStub } from './stubs';
import { NFS_POLICIES, SMB_POLICIES } from './targets';

/** One front listener: its port, protocol and policy index. */
export interface Front {
  port: number;
  proto: 'nfs' | 'smb';
  policy: number;
}

export interface HostStats {
  counters: Record<string, number>;
  sessions: number;
  rss: number;
  heapUsed: number;
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
}

async function main(): Promise<void> {
  const seed = Number(process.argv[2] ?? 1);
  const counters = new Counters();
  const log = createLogger('silent');
  const sessions = new Set<Session>();
  const nfsPort = await listen(rpcStub(seed));
  const smbPort = await listen(smbStub(seed ^ 0x5b));
  const fronts: Front[] = [];
  const front = async (proto: 'nfs' | 'smb', policy: number, make: () => StreamTransform): Promise<void> => {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (g) => {
      const s = new Session(
        g,
        { backend: '127.0.0.1', port: proto === 'nfs' ? nfsPort : smbPort, sourceIp: '127.0.0.1', connectTimeoutMs: 2000, idleTimeoutMs: 30_000, keepAliveMs: 10_000, userTimeoutMs: 20_000, transform: make() },
        log,
        counters,
        (ended, reason) => {
          sessions.delete(ended);
          counters.inc('sharegw_proxy_closed_total', { reason });
          const r = ended.refusal;
          if (r !== null) {
            counters.inc('sharegw_protocol_refusals_total', { proto: r.proto, reason: r.reason });
            if (r.code !== undefined) {
              counters.inc('sharegw_protocol_errors_total', { proto: r.proto, code: r.code });
            }
          }
        },
      );
      sessions.add(s);
      s.onAnswered = (a) => counters.inc('sharegw_protocol_answers_total', { proto }, a.length);
      s.start();
    });
    fronts.push({ port: await listen(server), proto, policy });
  };
  for (let k = 0; k < NFS_POLICIES.length; k++) {
    const p = NFS_POLICIES[k];
    if (p !== undefined) {
      await front('nfs', k, () => new RpcStream(p));
    }
  }
  for (let k = 0; k < SMB_POLICIES.length; k++) {
    const p = SMB_POLICIES[k];
    if (p !== undefined) {
      await front('smb', k, () => new SmbStream(p));
    }
  }
  process.on('message', (m: unknown) => {
    if (m === 'stats') {
      (globalThis as { gc?: () => void }).gc?.();
      const mem = process.memoryUsage();
      const stats: HostStats = { counters: counters.snapshot(), sessions: sessions.size, rss: mem.rss, heapUsed: mem.heapUsed };
      process.send?.({ stats });
    }
  });
  process.on('disconnect', () => {
    // The fuzzer is gone: end with it.
    process.exitCode = 0;
    for (const s of sessions) {
      s.close('shutdown');
    }
    setImmediate(() => process.kill(process.pid, 'SIGTERM'));
  });
  process.send?.({ ready: true, fronts });
}

void main();
