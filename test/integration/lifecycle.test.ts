/**
 * The daemon's life with the real lab: refusing to start on bad config,
 * reload on SIGHUP (a removed access rule takes effect; an invalid new config
 * is rejected and the old one keeps running), the operator CLI against the
 * running daemon, SIGTERM with flushed logs, and `--cleanup`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { labYaml } from '../helpers/configs';
import { LabDaemon, NS, ROOT, probe, rmTemp, run, sgwRules, sleep, tempDir } from '../helpers/lab';

const ACME = '198.18.0.100';
const SHAREGWD = path.join(ROOT, 'dist/src/cli/sharegwd.js');
const SHAREGW = path.join(ROOT, 'dist/src/cli/sharegw.js');
const acmeYaml = labYaml('kernel').domains['acme.yaml'] ?? '';

t.test('refuses to start on bad config, names every problem, touches nothing', async (t) => {
  const dir = tempDir('badstart');
  t.teardown(() => rmTemp(dir));
  fs.mkdirSync(path.join(dir, 'domains.d'));
  fs.writeFileSync(path.join(dir, 'sharegwd.yaml'), `node: hv1\ndataplane: kernel\ndomainsDir: domains.d\nstateDir: ${dir}/state\nadminSocket: ${dir}/admin.sock\nsyncIntervall: 1s\n`);
  fs.writeFileSync(path.join(dir, 'domains.d', 'acme.yaml'), acmeYaml.replace('accessTo: 198.19.0.0/24', 'accessTo: 198.19.0.0/33'));
  // beta claims acme's guest tunnel IP and source IP
  fs.writeFileSync(
    path.join(dir, 'domains.d', 'beta.yaml'),
    (labYaml('kernel').domains['beta.yaml'] ?? '').replace('guestIp: 169.254.2.2', 'guestIp: 169.254.1.2').replace('sourceIp: 198.18.0.12', 'sourceIp: 198.18.0.11'),
  );
  const rulesBefore = await sgwRules();
  const r = await run('ip', ['netns', 'exec', NS.gw, process.execPath, SHAREGWD, '--config', path.join(dir, 'sharegwd.yaml')], { timeoutMs: 20_000 });
  t.equal(r.code, 1, 'exit code 1');
  t.match(r.stderr, /sharegwd\.yaml:6:1: .*SGW_ERR_CONFIG_UNKNOWN_KEY/, 'unknown key with file:line:col');
  t.match(r.stderr, /acme\.yaml:\d+:\d+: .*accessTo.*SGW_ERR_CONFIG_BAD_CIDR/, 'bad CIDR');
  t.match(r.stderr, /beta\.yaml:\d+:\d+: .*169\.254\.1\.2.*acme\.yaml.*SGW_ERR_CONFIG_DUPLICATE/, 'guest IP claimed by two domains names both files');
  t.match(r.stderr, /beta\.yaml:\d+:\d+: .*198\.18\.0\.11.*acme\.yaml.*SGW_ERR_CONFIG_DUPLICATE/, 'source IP reused names both files');
  t.match(r.stderr, /refusing to start/);
  t.same(await sgwRules(), rulesBefore, 'no rules were written');
  t.notOk(fs.existsSync(path.join(dir, 'admin.sock')), 'no admin socket');

  const check = await run(process.execPath, [SHAREGWD, '--check-config', '--config', path.join(dir, 'sharegwd.yaml')]);
  t.equal(check.code, 1, '--check-config exits 1');
  t.match(check.stdout + check.stderr, /SGW_ERR_CONFIG_BAD_CIDR/);
});

for (const plane of ['kernel', 'proxy'] as const) {
  t.test(`${plane} plane: reload`, async (t) => {
    const d = new LabDaemon({ plane });
    t.teardown(() => d.dispose());
    await d.start();

    t.test('access rule removed + SIGHUP: new connections are refused', async (t) => {
      t.equal((await probe(NS.g1, ACME, 445)).result, 'connected', 'SMB granted before');
      // acme-smb keeps its share but loses its only access rule for the guest
      d.writeDomain('acme.yaml', acmeYaml.replace('accessTo: 198.19.0.5, accessLevel: rw', 'accessTo: 198.19.0.99, accessLevel: rw'));
      const rel = await d.sighup();
      t.equal(rel.ok, true, `reload ok ${JSON.stringify(rel)}`);
      const r = await probe(NS.g1, ACME, 445);
      t.equal(r.result, 'refused', 'SMB refused after reload');
      t.ok(r.ms < 1000, `refused in ${r.ms} ms`);
      t.equal((await probe(NS.g1, ACME, 2049)).result, 'connected', 'NFS grant untouched');
    });

    t.test('invalid config on reload: rejected, old config keeps running', async (t) => {
      const before = await d.status();
      d.writeDomain('acme.yaml', `${acmeYaml}bogus: 1\n`.replace('accessTo: 198.19.0.0/24', 'accessTo: 198.19.0.0/99'));
      const rel = await d.sighup();
      t.equal(rel.ok, false, 'reload rejected');
      const problems = (rel.problems ?? []).join('\n');
      t.match(problems, /acme\.yaml:\d+:\d+: .*SGW_ERR_CONFIG_UNKNOWN_KEY/);
      t.match(problems, /acme\.yaml:\d+:\d+: .*SGW_ERR_CONFIG_BAD_CIDR/);
      const after = await d.status();
      t.equal(after.generation, before.generation, 'still on the previous generation');
      t.equal(after.pid, before.pid, 'same process');
      t.equal((await probe(NS.g1, ACME, 2049)).result, 'connected', 'old grants still in force');
      t.equal((await probe(NS.g1, ACME, 445)).result, 'refused', 'old denials still in force');

      // The operator CLI sees the same: `sharegw reload` exits 1 with the problems.
      const cli = await run(process.execPath, [SHAREGW, 'reload', '--socket', d.socket]);
      t.equal(cli.code, 1, 'sharegw reload exits 1');
      t.match(cli.stdout + cli.stderr, /SGW_ERR_CONFIG_BAD_CIDR/);
      const st = await run(process.execPath, [SHAREGW, 'status', '--socket', d.socket]);
      t.equal(st.code, 0, 'sharegw status exits 0');
      t.match(st.stdout, /acme\s+g1\s+sgwt-g1\s+adopted/);
      const js = await run(process.execPath, [SHAREGW, 'status', '--json', '--socket', d.socket]);
      t.equal((JSON.parse(js.stdout) as { dataplane: string }).dataplane, plane);
    });
  });
}

t.test('drift: another program flushing a guest chain and deleting a jump is repaired and counted', async (t) => {
  const d = new LabDaemon({ plane: 'kernel' });
  t.teardown(() => d.dispose());
  await d.start();
  const before = (await sgwRules()).sort();
  const chain = before.find((l) => l.startsWith(':SGW-FWD-'))?.slice(1).split(' ')[0] ?? '';
  t.not(chain, '', 'found a per-guest forward chain');
  const f = await run('iptables', ['-t', 'filter', '-F', chain], { ns: NS.gw });
  t.equal(f.code, 0, f.stderr);
  const j = await run('iptables', ['-t', 'raw', '-D', 'PREROUTING', '-m', 'comment', '--comment', 'sharegw', '-j', 'SGW-PREROUTING'], { ns: NS.gw });
  t.equal(j.code, 0, j.stderr);
  t.not((await sgwRules()).sort().join('\n'), before.join('\n'), 'rules really changed');
  let now: string[] = [];
  for (let i = 0; i < 50; i++) {
    await sleep(100);
    now = (await sgwRules()).sort();
    if (now.join('\n') === before.join('\n')) {
      break;
    }
  }
  t.same(now, before, 'every rule and jump is back');
  // The counter moves once the apply has finished, a moment after the rules are visible.
  let repairs = 0;
  for (let i = 0; i < 30 && repairs === 0; i++) {
    repairs = ((await d.status()).counters['sharegw_rule_drift_repairs_total'] as number | undefined) ?? 0;
    if (repairs === 0) {
      await sleep(100);
    }
  }
  t.ok(repairs >= 1, `repair counted (${repairs})`);
  t.match(d.log(), /repaired/);
  t.equal((await probe(NS.g1, ACME, 2049)).result, 'connected', 'guest still served');
  // Isolation holds again after the repair.
  t.equal((await probe(NS.g2, ACME, 2049)).result, 'refused', 'other domain refused');
  t.equal((await probe(NS.g1, ACME, 5201)).result, 'refused', 'non-share port refused');
  t.equal((await probe(NS.g1, '198.18.0.102', 2049)).result, 'refused', 'share without access rule refused');
  t.equal((await probe(NS.g1, ACME, 2049, { local: '198.19.0.5', timeoutMs: 1500 })).result, 'timeout', 'foreign source dropped');
});

t.test('fail-closed: when the rules cannot be applied, no tunnel is adopted and nothing is forwarded', async (t) => {
  // The lab's gateway forwards with FORWARD policy ACCEPT, like many hosts:
  // an addressed tunnel without our rules would be an open route.
  const d = new LabDaemon({ plane: 'kernel', env: { SGW_IPTABLES_RESTORE: '/bin/false' } });
  t.teardown(() => d.dispose());
  await d.start(false);
  const s = await d.status();
  t.equal(s.lastSync.ok, false, 'sync reported as failed');
  t.equal(s.lastSync.error.code, 'SGW_ERR_KERNEL_RESTORE_FAILED');
  const addr = await run('ip', ['-4', '-br', 'addr', 'show', 'dev', 'sgwt-g1'], { ns: NS.gw });
  t.notMatch(addr.stdout, /169\.254\.1\.1/, 'tunnel not adopted');
  t.not((await probe(NS.g1, ACME, 5201, { timeoutMs: 1500 })).result, 'connected', 'guest reaches nothing');
  t.match(d.log(), /sync failed; keeping the last applied state/);
});

t.test('proxy plane on a host that does not forward: denials are still refused at once', async (t) => {
  const fwd = (await run('sysctl', ['-n', 'net.ipv4.ip_forward'], { ns: NS.gw })).stdout.trim();
  t.teardown(() => run('sysctl', ['-qw', `net.ipv4.ip_forward=${fwd}`], { ns: NS.gw }));
  await run('sysctl', ['-qw', 'net.ipv4.ip_forward=0'], { ns: NS.gw });
  const d = new LabDaemon({ plane: 'proxy' });
  t.teardown(() => d.dispose());
  await d.start();
  t.equal((await probe(NS.g1, ACME, 2049)).result, 'connected', 'granted flow proxied');
  const r = await probe(NS.g1, ACME, 5201);
  t.equal(r.result, 'refused', 'denied flow refused');
  t.ok(r.ms < 1000, `in ${r.ms} ms`);
});

t.test('SIGTERM: exits 0 with the log flushed; rules kept by default; --cleanup removes them', async (t) => {
  const d = new LabDaemon({ plane: 'kernel', keepRules: true });
  t.teardown(() => d.dispose());
  await d.start();
  t.equal((await probe(NS.g1, ACME, 2049)).result, 'connected');
  const code = await d.stop();
  t.equal(code, 0, 'exit code 0');
  const last = d.log().trim().split('\n').pop() ?? '';
  t.match(JSON.parse(last) as object, { msg: 'sharegwd stopped', keptRules: true }, 'last log line is the stop record');
  const kept = await sgwRules();
  t.ok(kept.length > 10, `rules kept after exit (${kept.length} lines)`);
  t.equal((await probe(NS.g1, ACME, 2049)).result, 'connected', 'kernel fast path keeps forwarding without the daemon');

  const cli = await run(process.execPath, [SHAREGW, 'status', '--socket', d.socket]);
  t.equal(cli.code, 3, 'sharegw status exits 3 when the daemon is not running');

  // Without --config: the tunnels are found from the rules themselves.
  const c = await run('ip', ['netns', 'exec', NS.gw, process.execPath, SHAREGWD, '--cleanup']);
  t.equal(c.code, 0, c.stderr);
  t.match(c.stdout, /released 2 tunnel address/);
  const addr = await run('ip', ['-4', '-br', 'addr', 'show', 'dev', 'sgwt-g1'], { ns: NS.gw });
  t.notMatch(addr.stdout, /169\.254\.1\.1/, 'gateway address taken off the tunnel');
  t.same(await sgwRules(), [], 'every SGW chain and jump is gone');
  const again = await run('ip', ['netns', 'exec', NS.gw, process.execPath, SHAREGWD, '--cleanup']);
  t.match(again.stdout, /nothing to clean up/, 'cleanup is idempotent');
  t.not((await probe(NS.g1, ACME, 2049, { timeoutMs: 1500 })).result, 'connected', 'after cleanup the guest no longer reaches the storage network');
});

t.test('SIGTERM with keepRulesOnExit false removes the rules', async (t) => {
  const d = new LabDaemon({ plane: 'proxy' });
  t.teardown(() => d.dispose());
  await d.start();
  t.ok((await sgwRules()).length > 10);
  t.equal(await d.stop(), 0);
  t.same(await sgwRules(), []);
  const addr = await run('ip', ['-4', '-br', 'addr', 'show', 'dev', 'sgwt-g1'], { ns: NS.gw });
  t.notMatch(addr.stdout, /169\.254\.1\.1/, 'tunnel address released with the rules');
  t.not((await probe(NS.g1, ACME, 2049, { timeoutMs: 1500 })).result, 'connected', 'no unfiltered route left behind');
});

t.test('SIGINT in the foreground behaves like SIGTERM', async (t) => {
  const d = new LabDaemon({ plane: 'kernel' });
  t.teardown(() => d.dispose());
  await d.start();
  const pid = d.pid ?? 0;
  t.ok(pid > 0);
  process.kill(pid, 'SIGINT');
  // SIGINT alone must end it: no SIGTERM after it (one that lands while the
  // process is already exiting would kill it with the signal instead).
  const code = await d.exited();
  t.equal(code, 0);
  t.match(d.log(), /"signal":"SIGINT"/);
});
