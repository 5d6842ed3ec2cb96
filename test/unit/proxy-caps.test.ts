/**
 * ProxyPlane's connection accounting (issue 14, limits): real sockets on
 * loopback addresses stand in for tunnels and the backend; the plane is
 * the real one.
 */
import * as net from 'node:net';
import { Writable } from 'node:stream';
import t from 'tap';
import { ProxyPlane } from '../../src/dataplane/proxy/plane';
import type { DesiredState, GuestState } from '../../src/model/desired';
import { Counters } from '../../src/observability/counters';
import { createLogger } from '../../src/observability/logger';

const SETTINGS = { portRange: { from: 47100, to: 47199 }, connectTimeoutMs: 2000, idleTimeoutMs: 0, keepAliveMs: 30_000, userTimeoutMs: 0, drainTimeoutMs: 0, maxConnectionsPerGuest: 64, connectionBudget: 4 * 1024 * 1024, memoryBudget: 512 * 1024 * 1024 };

function guest(domain: string, instance: string, n: number, backendPort: number): GuestState {
  return {
    key: `${domain}/${instance}`,
    domain,
    instance,
    iface: `t${n}`,
    guestIp: `127.0.${n}.2`,
    gatewayIp: `127.0.${n}.1`,
    sourceIp: '127.0.0.1',
    grants: [{ backend: '127.0.0.1', port: backendPort, service: 'nfs', proto: 'NFS', level: 'rw', shares: [{ id: `${domain}-s`, level: 'rw' }] }],
  };
}

/** Connects from `from` and reports whether the connection survives a moment. */
function attempt(from: string, to: string, port: number, keep: net.Socket[]): Promise<'open' | 'reset'> {
  return new Promise((resolve) => {
    const s = net.connect({ host: to, port, localAddress: from });
    keep.push(s);
    let settled = false;
    const done = (v: 'open' | 'reset'): void => {
      if (!settled) {
        settled = true;
        resolve(v);
      }
    };
    s.on('error', () => done('reset'));
    s.on('close', () => done('reset'));
    s.on('connect', () => setTimeout(() => done('open'), 150));
  });
}

t.test('ProxyPlane refuses sessions beyond the per-domain and per-backend caps, counts them and frees places on close', async (t) => {
  const held: net.Socket[] = [];
  const backend = net.createServer((s) => {
    held.push(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', () => r()));
  const bport = (backend.address() as net.AddressInfo).port;
  const lines: string[] = [];
  const log = createLogger('info', new Writable({ write: (c: Buffer, _e, cb) => (lines.push(String(c)), cb()) }) as never);
  const counters = new Counters();
  const plane = new ProxyPlane(SETTINGS, log, counters);
  const guests = [guest('acme', 'g1', 11, bport), guest('acme', 'g2', 12, bport), guest('beta', 'g3', 13, bport)];
  const desired: DesiredState = { dataplane: 'proxy', guests, limits: { perBackend: 5, perDomainPerBackend: 3 } };
  const ports = await plane.open(desired);
  const keep: net.Socket[] = [];
  t.teardown(async () => {
    for (const s of [...keep, ...held]) {
      s.destroy();
    }
    await plane.close(0);
    backend.close();
  });
  const lp = (g: GuestState): number => ports.get(`${g.key}|127.0.0.1:${bport}`) ?? 0;
  const from = (g: GuestState): Promise<'open' | 'reset'> => attempt(g.guestIp, g.gatewayIp, lp(g), keep);
  const [g1, g2, g3] = guests as [GuestState, GuestState, GuestState];

  t.same([await from(g1), await from(g2), await from(g1)], ['open', 'open', 'open'], 'acme: three across two guests');
  t.equal(await from(g2), 'reset', 'acme: the fourth is refused (domain cap)');
  t.equal(await from(g1), 'reset');
  t.same([await from(g3), await from(g3)], ['open', 'open'], 'beta connects to the same backend');
  t.equal(await from(g3), 'reset', 'beta: the sixth on the backend is refused (backend cap)');
  t.equal(counters.get('sharegw_connection_cap_refusals_total', { scope: 'domain', plane: 'proxy' }), 2);
  t.equal(counters.get('sharegw_connection_cap_refusals_total', { scope: 'backend', plane: 'proxy' }), 1);
  t.equal(counters.get('sharegw_proxy_denied_total', { reason: 'domain-backend-cap' }), 2);
  t.same(plane.capUse(), [{ backend: `127.0.0.1:${bport}`, inUse: 5, domains: [{ domain: 'acme', inUse: 3 }, { domain: 'beta', inUse: 2 }] }]);
  t.same(
    plane.capRefusals().sort((a, b) => (a.scope < b.scope ? -1 : 1)),
    [
      { scope: 'backend', domain: '-', backend: `127.0.0.1:${bport}`, refused: 1 },
      { scope: 'domain', domain: 'acme', backend: `127.0.0.1:${bport}`, refused: 2 },
    ],
  );
  const denied = lines.filter((l) => l.includes('proxy connection denied'));
  t.equal(denied.filter((l) => l.includes('"reason":"domain-backend-cap"')).length, 1, 'two refusals, one log line (rate-limited)');

  // The first acme connection ends: its place is free again.
  keep[0]?.destroy();
  await new Promise((r) => setTimeout(r, 200));
  t.equal(plane.capUse()[0]?.domains.find((d) => d.domain === 'acme')?.inUse, 2);
  t.equal(await from(g2), 'open', 'acme connects again');
});
