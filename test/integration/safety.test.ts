/**
 * Guard rails with the real daemon in the lab: a domain file naming a host
 * interface (the gateway's storage uplink) as a guest tunnel is refused and
 * leaves that interface alone; settings that need a restart are refused on
 * reload; READY=1 is not sent while the rules cannot be applied.
 */
import * as fs from 'node:fs';
import t from 'tap';
import { LabDaemon, NS, notifyReceiver, probe, rmTemp, run, sgwRules, sleep, tempDir, until } from '../helpers/lab';

const ACME = '198.18.0.100';
const typo = `name: delta
project: 4d4d4d4d4d4d44d4a4d4d4d4d4d4d4d4
sourceIp: 198.18.0.14
guests:
  - instance: g5
    tunnel: { interface: vb, guestIp: 169.254.5.2, gatewayIp: 169.254.5.1 }
    addresses: [198.19.5.5]
shares: []
`;

t.test('a guest "tunnel" that is really the host uplink is refused and left alone', async (t) => {
  const d = new LabDaemon({ plane: 'kernel', domains: { 'delta.yaml': typo } });
  t.teardown(() => d.dispose());
  await d.start();
  const addr = await run('ip', ['-4', '-br', 'addr', 'show', 'dev', 'vb'], { ns: NS.gw });
  t.match(addr.stdout, /198\.18\.0\.1\/24/, 'uplink keeps its addresses');
  t.notMatch(addr.stdout, /169\.254\.5\.1/, 'no gateway address put on it');
  t.notOk((await sgwRules()).some((l) => l.includes('-i vb')), 'no rule matches the uplink');
  const st = await d.status();
  const g5 = (st.domains as { name: string; guests: { tunnelState: string }[] }[]).find((x) => x.name === 'delta')?.guests[0];
  t.match(g5?.tunnelState ?? '', /vb carries host addresses .*not adopted/);
  t.match(d.log(), /SGW_ERR_TUNNEL_REFUSED/);
  t.equal((await probe(NS.g1, ACME, 2049)).result, 'connected', 'the real guests are served');
  t.equal((await probe(NS.g2, ACME, 2049)).result, 'refused', 'and isolated');
});

t.test('reload refuses settings that need a restart and keeps running', async (t) => {
  const d = new LabDaemon({ plane: 'kernel' });
  t.teardown(() => d.dispose());
  await d.start();
  const before = await d.status();
  fs.writeFileSync(d.configFile, fs.readFileSync(d.configFile, 'utf8').replace('node: hv-test', 'node: hv-renamed'));
  const rel = await d.sighup();
  t.equal(rel.ok, false);
  t.match((rel.problems ?? []).join('\n'), /node cannot change on reload; restart the daemon/);
  const after = await d.status();
  t.equal(after.node, 'hv-test');
  t.equal(after.generation, before.generation);
  t.equal((await probe(NS.g1, ACME, 2049)).result, 'connected');
});

t.test('READY=1 is not sent while the first sync keeps failing', async (t) => {
  const dir = tempDir('notready');
  const rx = await notifyReceiver(dir);
  const lines = rx.lines;
  const d = new LabDaemon({ plane: 'kernel', env: { NOTIFY_SOCKET: rx.socket, SGW_IPTABLES_RESTORE: '/bin/false' } });
  t.teardown(async () => {
    rx.stop();
    await d.dispose();
    rmTemp(dir);
  });
  await d.start(false);
  await until('STATUS line', () => lines.some((l) => l.includes('STATUS=first sync failed')), 5000).catch(() => undefined);
  t.ok(lines.some((l) => l.includes('STATUS=first sync failed')), 'status says why');
  await sleep(1500);
  t.notOk(lines.some((l) => l.includes('READY=1')), `no READY=1 (got: ${lines.join(' | ')})`);
});
