/**
 * Real sockets on 127.0.0.1 around one proxy Session, for the unit tests of
 * the relay: a backend server, a front listener whose connections become
 * Sessions to it, and a guest connection. Both servers (and every session)
 * close at the test's teardown.
 */
import * as net from 'node:net';
import { Session } from '../../src/dataplane/proxy/session';
import type { CloseReason, RelayOptions } from '../../src/dataplane/proxy/session';
import { Counters } from '../../src/observability/counters';
import { createLogger } from '../../src/observability/logger';

export function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
}

export interface SessionRig {
  guest: net.Socket;
  counters: Counters;
}

/** Callbacks on the rig's sessions: each one made, and each close with its reason. */
export interface RigHooks {
  onSession?: (s: Session) => void;
  onClosed?: (s: Session, reason: CloseReason) => void;
}

export interface FrontRig {
  /** The front listener's port on 127.0.0.1: each connection to it becomes a Session. */
  frontPort: number;
  counters: Counters;
  /** Connects a guest (allowHalfOpen, errors ignored), from `from` if given; resolves at connect or close. */
  guest(from?: { address?: string; port?: number }): Promise<net.Socket>;
}

/**
 * Starts `backend` and a front listener; each front connection becomes a
 * Session with `opts` (backend address, timeouts and source filled in),
 * handed to `onSession`, with its close reported to `onClosed`.
 */
export async function frontRig(
  t: { teardown(fn: () => unknown): void },
  backend: net.Server,
  opts: Partial<RelayOptions> = {},
  hooks: RigHooks = {},
): Promise<FrontRig> {
  const counters = new Counters();
  const backendPort = await listen(backend);
  const front = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (g) => {
    const s = new Session(
      g,
      { backend: '127.0.0.1', port: backendPort, sourceIp: '127.0.0.1', connectTimeoutMs: 2000, idleTimeoutMs: 0, keepAliveMs: 10_000, userTimeoutMs: 20_000, ...opts },
      createLogger('silent'),
      counters,
      (ended, reason) => hooks.onClosed?.(ended, reason),
    );
    s.start();
    hooks.onSession?.(s);
    t.teardown(() => s.close('shutdown'));
  });
  const frontPort = await listen(front);
  t.teardown(() => {
    front.close();
    backend.close();
  });
  const guest = async (from: { address?: string; port?: number } = {}): Promise<net.Socket> => {
    const g = net.connect({ port: frontPort, host: '127.0.0.1', allowHalfOpen: true, ...(from.address !== undefined ? { localAddress: from.address } : {}), ...(from.port !== undefined ? { localPort: from.port } : {}) });
    g.on('error', () => undefined);
    // A session refused at once may reset the guest before its 'connect'.
    await new Promise((r) => {
      g.once('connect', r);
      g.once('close', r);
    });
    t.teardown(() => g.destroy());
    return g;
  };
  return { frontPort, counters, guest };
}

/** frontRig with one connected guest. */
export async function sessionRig(
  t: { teardown(fn: () => unknown): void },
  backend: net.Server,
  opts: Partial<RelayOptions> = {},
  hooks: RigHooks = {},
): Promise<SessionRig> {
  const rig = await frontRig(t, backend, opts, hooks);
  return { guest: await rig.guest(), counters: rig.counters };
}
