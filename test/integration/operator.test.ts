/**
 * The operator's view with the real daemon: /metrics and /healthz on the
 * daemon's metrics address (inside the gateway namespace), and the access
 * log with one record per proxied flow open and close.
 */
import * as path from 'node:path';
import t from 'tap';
import { LabDaemon, NS, ROOT, gatewayGet, holdConnection, probe, run, until } from '../helpers/lab';

const ACME = '198.18.0.100';

const get = (urlPath: string): Promise<{ status: number; body: string }> => gatewayGet(9610, urlPath);

for (const plane of ['kernel', 'proxy'] as const) {
  t.test(`${plane} plane: /metrics and /healthz`, async (t) => {
    const d = new LabDaemon({ plane, extra: 'metrics: 127.0.0.1:9610\nproxy: { drainTimeout: 2s }\n' });
    t.teardown(() => d.dispose());
    await d.start();
    const h = await get('/healthz');
    t.equal(h.status, 200, h.body);
    t.match(JSON.parse(h.body), { status: 'ok' });
    // Something to count: a denial and a spoof from guest 2, a flow from guest 1.
    t.equal((await probe(NS.g2, ACME, 2049)).result, 'refused');
    t.equal((await probe(NS.g2, ACME, 2049, { local: '198.19.1.5', timeoutMs: 1000 })).result, 'timeout');
    const cat = await run('nfs-cat', [`nfs://${ACME}/export/acme/hello.txt?version=4`], { ns: NS.g1 });
    t.equal(cat.code, 0);
    // Packet counters are read by the sync loop (every second here): the
    // scrape shows them once a sync has run after the probes.
    let m = await get('/metrics');
    const value = (re: RegExp): number => Number(re.exec(m.body)?.[1] ?? 'NaN');
    const denied = /^sharegw_denied_packets\{domain="beta",guest="beta\/g2",reason="deny"\} (\d+)$/m;
    await until('the denial counted', async () => {
      m = await get('/metrics');
      return value(denied) >= 1;
    }).catch(() => undefined);
    t.equal(m.status, 200);
    t.ok(value(denied) >= 1, 'denials by guest and reason');
    t.ok(value(/^sharegw_denied_packets\{domain="beta",guest="beta\/g2",reason="antispoof"\} (\d+)$/m) >= 1, 'spoofed packets by guest');
    t.ok(value(/^sharegw_rule_applies_total\{result="ok"\} (\d+)$/m) >= 1, 'rule applies');
    t.ok(value(/^sharegw_sync_duration_seconds_count (\d+)$/m) >= 1, 'sync latency histogram');
    t.equal(value(/^sharegw_info\{what="guests"\} (\d+)$/m), 2);
    t.equal(value(/^sharegw_last_sync_ok (\d+)$/m), 1);
    if (plane === 'proxy') {
      t.ok(value(/^sharegw_proxy_bytes_total\{dir="down",domain="acme"\} (\d+)$/m) > 0, 'proxied bytes by domain');
    }
  });
}

t.test('proxy plane: the access log has one open and one close record per flow', async (t) => {
  const d = new LabDaemon({ plane: 'proxy' });
  t.teardown(() => d.dispose());
  await d.start();
  const cat = await run('nfs-cat', [`nfs://${ACME}/export/acme/hello.txt?version=4`], { ns: NS.g1 });
  t.equal(cat.code, 0);
  // Give the close a moment to be logged.
  await new Promise((r) => setTimeout(r, 300));
  const records = d
    .log()
    .split('\n')
    .filter((l) => l.includes('"log":"access"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const opens = records.filter((r) => r['event'] === 'open' && r['port'] === 2049);
  const closes = records.filter((r) => r['event'] === 'close' && r['port'] === 2049);
  t.ok(opens.length >= 1, 'open records');
  t.equal(closes.length, opens.length, 'a close for every open');
  t.match(closes[0], { plane: 'proxy', domain: 'acme', guest: 'acme/g1', backend: ACME, service: 'nfs', shares: ['acme-nfs'] });
  t.ok((closes[0]?.['bytesDown'] as number) > 0 && (closes[0]?.['bytesUp'] as number) > 0, 'bytes each way');
  t.ok(typeof closes[0]?.['durationMs'] === 'number' && typeof closes[0]?.['reason'] === 'string', 'duration and close reason');
  t.notMatch(d.log(), /labpass123/, 'no secrets');
});

for (const plane of ['kernel', 'proxy'] as const) {
  t.test(`${plane} plane: sharegw flows and explain against the running daemon`, async (t) => {
    const d = new LabDaemon({ plane });
    t.teardown(() => d.dispose());
    await d.start();
    const held = await holdConnection(NS.g1, ACME, 2049);
    t.teardown(held.release);
    t.equal(held.result.result, 'connected');
    const CLI = path.join(ROOT, 'dist/src/cli/sharegw.js');
    const f = await run(process.execPath, [CLI, 'flows', '--json', '--guest', 'acme/g1', '--socket', d.socket]);
    t.equal(f.code, 0, f.stderr);
    const rows = (JSON.parse(f.stdout) as { rows: { guest: string; plane: string; backend: string; port: number; granted: boolean }[] }).rows;
    t.ok(rows.some((r) => r.guest === 'acme/g1' && r.plane === plane && r.backend === ACME && r.port === 2049 && r.granted), `the held flow is listed (${JSON.stringify(rows)})`);
    const human = await run(process.execPath, [CLI, 'flows', '--socket', d.socket]);
    t.match(human.stdout, new RegExp(`acme/g1\\s+${plane}\\s+198\\.18\\.0\\.100:2049`));

    const ok = await run(process.execPath, [CLI, 'explain', '--guest', 'acme/g1', '--to', `${ACME}:445`, '--socket', d.socket]);
    t.equal(ok.code, 0, 'allowed: exit 0');
    t.match(ok.stdout, /allowed: .*share acme-smb/);
    const no = await run(process.execPath, [CLI, 'explain', '--guest', 'beta/g2', '--to', `${ACME}:2049`, '--socket', d.socket]);
    t.equal(no.code, 1, 'denied: exit 1');
    t.match(no.stdout, /denied: no share of domain beta has an export location on 198\.18\.0\.100/);
    // The daemon's answer and the data plane agree.
    t.equal((await probe(NS.g2, ACME, 2049)).result, 'refused');
    t.equal((await probe(NS.g1, ACME, 445)).result, 'connected');
  });
}

t.test('kernel plane: the access log has open and close records from conntrack events', async (t) => {
  const d = new LabDaemon({ plane: 'kernel' });
  t.teardown(() => d.dispose());
  await d.start();
  // Let the event stream start before the flow.
  await new Promise((r) => setTimeout(r, 300));
  const cat = await run('nfs-cat', [`nfs://${ACME}/export/acme/hello.txt?version=4`], { ns: NS.g1 });
  t.equal(cat.code, 0);
  let records: Record<string, unknown>[] = [];
  for (let i = 0; i < 100; i++) {
    records = d
      .log()
      .split('\n')
      .filter((l) => l.includes('"log":"access"') && l.includes('"plane":"kernel"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    if (records.some((r) => r['event'] === 'close' && r['port'] === 2049)) {
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const open = records.find((r) => r['event'] === 'open' && r['port'] === 2049);
  const close = records.find((r) => r['event'] === 'close' && r['port'] === 2049);
  t.match(open, { plane: 'kernel', domain: 'acme', guest: 'acme/g1', backend: ACME, service: 'nfs', shares: ['acme-nfs'], natSource: '198.18.0.11' });
  t.match(close, { plane: 'kernel', guest: 'acme/g1', guestPort: open?.['guestPort'] });
  t.ok((close?.['bytesDown'] as number) > 0 && (close?.['bytesUp'] as number) > 0, `bytes each way (${String(close?.['bytesUp'])}/${String(close?.['bytesDown'])})`);
  t.equal(records.filter((r) => r['guest'] === 'beta/g2').length, 0, 'no records for flows that did not happen');
});
