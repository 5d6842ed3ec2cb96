import * as http from 'node:http';
import t from 'tap';
import { Counters } from '../../src/observability/counters';
import { createLogger } from '../../src/observability/logger';
import { MetricsServer } from '../../src/observability/metrics';
import type { Health, MetricsSnapshot } from '../../src/observability/metrics';

const log = createLogger('silent', { write: () => undefined });

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type'] ?? '') }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('MetricsServer exports counters with their labels, snapshot gauges, and health', async (t) => {
  const counters = new Counters();
  counters.inc('sharegw_proxy_bytes_total', { dir: 'up', domain: 'acme' }, 5);
  counters.inc('sharegw_proxy_bytes_total', { dir: 'down', domain: 'acme' }, 7);
  counters.inc('sharegw_rule_drift_repairs_total');
  counters.inc('sharegw_revocations_total', { reason: 'grant-removed' }, 2);
  let health: Health = { ready: false, reason: 'no successful sync yet' };
  const snap: MetricsSnapshot = {
    generation: 3,
    domains: 2,
    guests: 2,
    activeFlows: [{ domain: 'acme', plane: 'proxy', flows: 4 }],
    denied: [{ domain: 'beta', guest: 'beta/g2', reason: 'antispoof', packets: 9 }],
    lastSyncSuccess: 1_700_000_000,
    lastSyncOk: true,
    proxyBufferedBytes: 4096,
  };
  const m = new MetricsServer('127.0.0.1:0', { counters, snapshot: async () => snap, health: () => health }, log);
  await m.listen();
  t.teardown(() => m.close());
  const port = m.port();
  t.ok(port > 0);

  const r = await get(port, '/metrics');
  t.equal(r.status, 200);
  t.match(r.type, /text\/plain/);
  for (const line of [
    'sharegw_proxy_bytes_total{dir="up",domain="acme"} 5',
    'sharegw_proxy_bytes_total{dir="down",domain="acme"} 7',
    'sharegw_rule_drift_repairs_total 1',
    'sharegw_revocations_total{reason="grant-removed"} 2',
    'sharegw_flows_active{domain="acme",plane="proxy"} 4',
    'sharegw_denied_packets{domain="beta",guest="beta/g2",reason="antispoof"} 9',
    'sharegw_info{what="generation"} 3',
    'sharegw_last_sync_ok 1',
    'sharegw_last_sync_success_timestamp_seconds 1700000000',
    'sharegw_proxy_buffered_bytes 4096',
  ]) {
    t.ok(r.body.split('\n').includes(line), line);
  }
  t.match(r.body, /# TYPE sharegw_sync_duration_seconds histogram/);
  t.match(r.body, /# HELP sharegw_revocations_total Revoked grants by reason/);

  counters.inc('sharegw_revocations_total', { reason: 'grant-removed' });
  t.ok((await get(port, '/metrics')).body.includes('sharegw_revocations_total{reason="grant-removed"} 3'), 'values follow the counters');

  const h1 = await get(port, '/healthz');
  t.equal(h1.status, 503);
  t.same(JSON.parse(h1.body), { status: 'unavailable', reason: 'no successful sync yet' });
  health = { ready: true, reason: 'generation 3' };
  const h2 = await get(port, '/healthz');
  t.equal(h2.status, 200);
  t.same(JSON.parse(h2.body), { status: 'ok', reason: 'generation 3' });

  t.equal((await get(port, '/nope')).status, 404);
  t.equal((await get(port, '/metrics', 'POST')).status, 405);
  t.equal((await get(port, '/metrics?x=1', 'HEAD')).status, 200);
});

t.test('a failing snapshot gives a 500 and is counted, the server lives on', async (t) => {
  const counters = new Counters();
  const m = new MetricsServer('127.0.0.1:0', { counters, snapshot: () => Promise.reject(new Error('boom')), health: () => ({ ready: true, reason: '' }) }, log);
  await m.listen();
  t.teardown(() => m.close());
  t.equal((await get(m.port(), '/metrics')).status, 500);
  t.equal(counters.get('sharegw_metrics_errors_total'), 1);
  t.equal((await get(m.port(), '/healthz')).status, 200);
});

t.test('listen() on a taken port rejects (the daemon logs it and runs without metrics)', async (t) => {
  const a = new MetricsServer('127.0.0.1:0', { counters: new Counters(), snapshot: async () => { throw new Error('x'); }, health: () => ({ ready: true, reason: '' }) }, log);
  await a.listen();
  t.teardown(() => a.close());
  const b = new MetricsServer(`127.0.0.1:${a.port()}`, { counters: new Counters(), snapshot: async () => { throw new Error('x'); }, health: () => ({ ready: true, reason: '' }) }, log);
  await t.rejects(b.listen(), { code: 'EADDRINUSE' });
});
