/**
 * Issue 14 against the real sharegwd in the lab's gateway namespace:
 * - finding 3: a hostile Keystone/Manila (on the namespace's 127.0.0.1)
 *   echoes the password and the token in error bodies and headers; neither
 *   may reach the daemon's log (stdout) or `sharegw status` (text, --json);
 * - finding 4: a second sharegwd with the same configuration exits at once
 *   (75, SGW_ERR_DAEMON_ALREADY_RUNNING, the holder's pid) and leaves the
 *   first's chains alone; `--cleanup` refuses unless `--force`; after
 *   kill -9 of the first a new one starts.
 *   flock /tmp/sgwlab.lock npx tap --timeout=900 dist/test/integration/issue-014-api.test.js
 */
import * as path from 'node:path';
import t from 'tap';
import { background, LabDaemon, NS, probe, ROOT, run, sgwRules, until } from '../helpers/lab';

const SHAREGWD = path.join(ROOT, 'dist/src/cli/sharegwd.js');
const SHAREGW = path.join(ROOT, 'dist/src/cli/sharegw.js');
const HOSTILE = path.join(ROOT, 'dist/test/helpers/hostile-api.js');
const PROJECT = 'aaaabbbbccccddddeeeeffff00001111';
const PASSWORD = `Pw/"hostile-${process.pid}" wörd+1&`;
const TOKEN = `gAAAAABhostile${process.pid}Token-0123456789_abcdefghijklmnopqrstuvwxyzABCDEFG`;

/** The forms in which either secret could show (raw, JSON, URL-encoded). */
function leaks(text: string): string[] {
  const forms = [PASSWORD, TOKEN, JSON.stringify(PASSWORD).slice(1, -1), encodeURIComponent(PASSWORD), encodeURIComponent(PASSWORD).replace(/%20/g, '+'), `hostile-${process.pid}`, `hostile${process.pid}Token`];
  return forms.filter((f) => text.includes(f));
}

t.test('finding 3: a hostile API echoing the password and the token leaks neither into the log or status', async (t) => {
  const port = 30000 + (process.pid % 20000);
  const api = background(NS.gw, process.execPath, [HOSTILE, String(port), TOKEN, PROJECT]);
  t.teardown(() => api.kill());
  await until('hostile API listening in sgwlab-gw', async () => (await probe(NS.gw, '127.0.0.1', port, { timeoutMs: 500 })).result === 'connected', 10_000);
  const acme = `name: acme
project: ${PROJECT}
shareNetwork: sn-hostile
sourceIp: 198.18.0.11
guests:
  - instance: g1
    tunnel: { interface: sgwt-g1, guestIp: 169.254.1.2, gatewayIp: 169.254.1.1 }
    addresses: [198.19.0.5]
`;
  const manila = `manila:
  authUrl: http://127.0.0.1:${port}/v3
  auth: { type: password, username: gw, password: ${JSON.stringify(PASSWORD)}, projectId: ${PROJECT} }
  timeout: 2s
  interval: 2s
  minInterval: 200ms
  notifications: ${JSON.stringify(`amqp://openstack:${encodeURIComponent(PASSWORD)}@127.0.0.1:1/`)}
proxy: { drainTimeout: 2s }
`;
  const d = new LabDaemon({ plane: 'kernel', domains: { 'acme.yaml': acme }, extra: manila });
  t.teardown(() => d.dispose());
  await d.start(false);
  // First Keystone echoes the password (500), then Manila echoes the token.
  await until('both failures seen', () => /Manila sync failed/.test(d.log()) && /Manila sync of domain failed/.test(d.log()), 20_000);
  const st = await d.status();
  t.equal(st.manila?.lastError?.code, 'SGW_ERR_MANILA_HTTP', 'the sync fails on the 500s');
  t.match(d.log(), /"level":50.*Manila sync failed/, 'an ERROR line for the Keystone answer');
  t.match(d.log(), /password \[redacted\] rejected/, 'the excerpt stays readable around the redaction');
  t.strictSame(leaks(d.log()), [], 'no secret in the daemon log');
  const text = await run(process.execPath, [SHAREGW, 'status', '--socket', d.socket]);
  t.equal(text.code, 0, text.stderr);
  t.match(text.stdout, /FAILING since .*SGW_ERR_MANILA_HTTP/);
  t.strictSame(leaks(text.stdout + text.stderr), [], 'no secret in `sharegw status`');
  const json = await run(process.execPath, [SHAREGW, 'status', '--json', '--socket', d.socket]);
  t.equal(json.code, 0, json.stderr);
  t.ok((JSON.parse(json.stdout) as { manila: { domains: unknown[] } }).manila.domains.length === 1);
  t.strictSame(leaks(json.stdout + json.stderr), [], 'no secret in `sharegw status --json`');
});

t.test('finding 4: one sharegwd per host; --cleanup refuses while it runs unless --force; kill -9 frees the lock', async (t) => {
  const d1 = new LabDaemon({ plane: 'kernel' });
  t.teardown(() => d1.dispose());
  await d1.start();
  const before = await sgwRules();
  t.ok(before.length > 0, 'the first daemon programmed its chains');

  const second = await run('ip', ['netns', 'exec', NS.gw, process.execPath, SHAREGWD, '--config', d1.configFile], { timeoutMs: 15_000 });
  t.equal(second.code, 75, `the second exits 75 at once (${second.ms} ms): ${second.stderr}`);
  t.match(second.stderr, new RegExp(`SGW_ERR_DAEMON_ALREADY_RUNNING: another sharegwd already runs in this network namespace \\(pid ${d1.pid ?? -1}: `));
  t.strictSame(await sgwRules(), before, "the first's chains are untouched");
  t.equal((await d1.status()).lastSync?.ok, true, 'the first keeps running');

  const refused = await run('ip', ['netns', 'exec', NS.gw, process.execPath, SHAREGWD, '--cleanup', '--config', d1.configFile]);
  t.equal(refused.code, 75, refused.stderr);
  t.match(refused.stderr, /refusing to clean up: SGW_ERR_DAEMON_ALREADY_RUNNING: .*--force cleans up anyway/);
  t.strictSame(await sgwRules(), before, 'a refused cleanup removes nothing');

  const forced = await run('ip', ['netns', 'exec', NS.gw, process.execPath, SHAREGWD, '--cleanup', '--force', '--config', d1.configFile]);
  t.equal(forced.code, 0, forced.stderr);
  t.match(forced.stdout, /removed all sharegw chains and jumps/);

  const first = d1.pid ?? -1;
  process.kill(first, 'SIGKILL');
  await d1.exited();
  // The same configuration again: nothing stale to remove by hand.
  await d1.start();
  t.not(d1.pid, first);
  t.equal((await d1.status()).pid, d1.pid, 'a new daemon starts after kill -9 of the first');
  t.ok((await sgwRules()).length > 0, 'and programs its chains');
});
