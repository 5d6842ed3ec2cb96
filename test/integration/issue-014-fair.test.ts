/**
 * Issue 14, finding 5 ("terminal injection and unfair sharing"), in the
 * real lab:
 * - Fairness: both domains mount from one backend address (198.18.0.100,
 *   one nfs-ganesha). With limits.maxConnectionsPerDomainPerBackend: 3,
 *   acme's guest opens more raw TCP connections to 2049 than its cap: the
 *   extra ones are reset, counted (sharegw_connection_cap_refusals_total)
 *   and shown in status, while beta's guest still connects and reads
 *   through libnfs, in the kernel plane (connlimit) and in the proxy.
 *   Before the fix the only cap was per guest (256): all of them connected.
 * - Safe output: an instance id with control characters in a domain file is
 *   refused (SGW_ERR_CONFIG_BAD_ID) by --check-config and by a reload; a
 *   share id with an ANSI escape restored from Manila's last-known-good
 *   state never reaches `sharegw status`/`explain` text raw.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { LabDaemon, NS, ROOT, metricValue, run, until } from '../helpers/lab';
import { labYaml } from '../helpers/configs';

const BACKEND = '198.18.0.100';
const CAP = 3;
const EXTRA = 2;
const CLI = path.join(ROOT, 'dist/src/cli/sharegw.js');
const SHAREGWD = path.join(ROOT, 'dist/src/cli/sharegwd.js');

/**
 * Opens `n` TCP connections one after the other from a guest namespace and
 * holds them; reports each one's fate 1.5 s after the last was opened:
 * `open`, `refused` (reset at the SYN: kernel plane) or `reset` (accepted,
 * then reset: the proxy). Held until release().
 */
function openMany(ns: string, n: number): Promise<{ states: string[]; release: () => void }> {
  const script = `
    const net = require('node:net');
    const [host, port, n] = process.argv.slice(1);
    const states = [];
    const socks = [];
    (async () => {
      for (let i = 0; i < Number(n); i++) {
        await new Promise((done) => {
          const s = net.connect({ host, port: Number(port) });
          socks.push(s);
          states[i] = 'pending';
          s.on('connect', () => { states[i] = 'open'; setTimeout(done, 200); });
          s.on('error', (e) => { states[i] = states[i] === 'open' ? 'reset' : (e.code === 'ECONNREFUSED' || e.code === 'ECONNRESET' ? 'refused' : e.code); done(); });
          s.on('close', () => { if (states[i] === 'open') { states[i] = 'reset'; } });
        });
      }
      setTimeout(() => { process.stdout.write(JSON.stringify(states) + '\\n'); }, 1500);
      setTimeout(() => process.exit(0), 60000);
    })();`;
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script, BACKEND, '2049', String(n)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    const release = (): void => void child.kill('SIGKILL');
    const timer = setTimeout(() => {
      release();
      reject(new Error(`openMany: no report: ${buf}`));
    }, 30_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl !== -1) {
        clearTimeout(timer);
        resolve({ states: JSON.parse(buf.slice(0, nl)) as string[], release });
      }
    });
  });
}

/** beta with its share on acme's backend address (one ganesha serves both). */
function betaOnSharedBackend(): string {
  return (labYaml('kernel').domains['beta.yaml'] ?? '').replace('198.18.0.101:/export/beta', `${BACKEND}:/export/beta`);
}

for (const plane of ['kernel', 'proxy'] as const) {
  t.test(`${plane}: acme beyond its per-domain cap on a backend is refused; beta still mounts from the same backend`, async (t) => {
    const port = plane === 'kernel' ? 9616 : 9617;
    const d = new LabDaemon({
      plane,
      domains: { 'beta.yaml': betaOnSharedBackend() },
      extra: `metrics: 127.0.0.1:${port}\nproxy: { drainTimeout: 2s }\nlimits: { maxConnectionsPerDomainPerBackend: ${CAP} }\n`,
    });
    t.teardown(() => d.dispose());
    await d.start();
    const acme = await openMany(NS.g1, CAP + EXTRA);
    t.teardown(acme.release);
    // The kernel resets the SYN; the proxy's listener has accepted by the
    // time it refuses, so the guest sees a reset right after (or with) the
    // handshake.
    const refusedAs = plane === 'kernel' ? ['refused'] : ['reset', 'refused'];
    t.same(acme.states.slice(0, CAP), Array(CAP).fill('open'), `acme: ${CAP} open`);
    t.ok(acme.states.slice(CAP).every((x) => refusedAs.includes(x)), `acme: the rest refused: ${acme.states.join(',')}`);
    t.equal(acme.states.length, CAP + EXTRA);

    const ls = await run('nfs-ls', [`nfs://${BACKEND}/export/beta?version=4`], { ns: NS.g2, timeoutMs: 20_000 });
    t.equal(ls.code, 0, `beta's guest mounts and lists from the same backend: ${ls.stderr}`);
    t.match(ls.stdout, /hello\.txt/);

    const refused = await metricValue(port, 'sharegw_connection_cap_refusals_total', `plane="${plane}",scope="domain"`);
    t.equal(refused, EXTRA, 'each refusal counted once, by scope and plane');
    const s = await d.status();
    const row = s.caps?.backends?.find((b: { backend: string; plane: string }) => b.backend === `${BACKEND}:2049` && b.plane === plane);
    t.equal(s.caps?.maxConnectionsPerDomainPerBackend, CAP, 'status: the cap');
    t.equal(s.caps?.maxConnectionsPerBackend, 896, 'status: the default per-backend cap');
    const acmeRow = row?.domains?.find((x: { domain: string }) => x.domain === 'acme');
    t.equal(acmeRow?.inUse, CAP, 'status: acme uses its cap');
    t.equal(acmeRow?.refused, EXTRA, 'status: acme was refused that often');
    const human = await run(process.execPath, [CLI, 'status', '--socket', d.socket]);
    t.match(human.stdout, new RegExp(`${BACKEND.replace(/\./g, '\\.')}:2049 ${plane}: \\d+/896 .*acme ${CAP}/${CAP} refused ${EXTRA}`), 'status text shows use and refusals');
    t.match(d.log(), /"reason":"domain-backend-cap"|connections refused by the domain cap/, 'the refusal is logged');

    // A reload re-applies every rule (forced restore): the cap chains did
    // not change, so they are left alone and still count acme's three.
    t.equal((await d.sighup()).ok, true, 'reloaded');
    const after = await openMany(NS.g1, 1);
    after.release();
    t.ok(refusedAs.includes(after.states[0] ?? ''), `after the re-apply acme is still at its cap: ${after.states.join(',')}`);

    acme.release();
    // Closed connections free their places (connlimit skips closed entries).
    await until('acme connects again', async () => (await openMany(NS.g1, 1).then((r) => (r.release(), r.states[0]))) === 'open', 15_000);
    t.pass('acme connects again once its connections closed');
  });
}

t.test('config: an instance id with control characters is refused with SGW_ERR_CONFIG_BAD_ID (check-config and reload)', async (t) => {
  const d = new LabDaemon({ plane: 'kernel' });
  t.teardown(() => d.dispose());
  const bad = (labYaml('kernel').domains['acme.yaml'] ?? '').replace('instance: g1', 'instance: "g1\\e[2J\\e]0;owned\\a"');
  const good = labYaml('kernel').domains['acme.yaml'] ?? '';
  d.writeDomain('acme.yaml', bad);
  const check = await run(process.execPath, [SHAREGWD, '--check-config', '--config', d.configFile]);
  t.equal(check.code, 1, `--check-config refuses it: ${check.stdout}${check.stderr}`);
  t.match(check.stderr, /\/guests\/0\/instance: .*\[SGW_ERR_CONFIG_BAD_ID\]/);
  t.notOk(/[\x1b\x07]/.test(check.stdout + check.stderr), 'and prints it escaped');
  d.writeDomain('acme.yaml', good);
  await d.start();
  d.writeDomain('acme.yaml', bad);
  const r = await d.sighup();
  t.equal(r.ok, false, 'the reload is rejected');
  t.match((r.problems ?? []).join('\n'), /SGW_ERR_CONFIG_BAD_ID/);
  const s = await d.status();
  t.ok(s.domains.some((x: { guests: { instance: string }[] }) => x.guests.some((g) => g.instance === 'g1')), 'the daemon runs on with the previous configuration');
});

t.test('manila: a share id with an ANSI escape from the last-known-good state never reaches status or explain text raw', async (t) => {
  const evil = 'evil\x1b[2J\x1b]0;owned\x07';
  const d = new LabDaemon({
    plane: 'kernel',
    domains: { 'acme.yaml': `${labYaml('kernel').domains['acme.yaml'] ?? ''}shareNetwork: sn-fair\n` },
    // Nothing listens on port 9: Manila is down, the restored state is used.
    extra: 'proxy: { drainTimeout: 2s }\nmanila: { endpoint: "http://127.0.0.1:9/v2", auth: { type: noauth, project: 9f2c1d6e5b4a43c7a8e1f0d2c3b4a596 }, timeout: 1s }\n',
  });
  t.teardown(() => d.dispose());
  const stateDir = path.join(d.dir, 'state');
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(
    path.join(stateDir, 'manila.json'),
    JSON.stringify({
      version: 1,
      node: 'hv-test',
      savedAt: new Date().toISOString(),
      domains: [
        {
          domain: 'acme',
          shareNetworkId: 'sn-fair',
          network: { name: 'net', status: 'active', securityServiceUpdateSupport: null, subnets: [], securityServices: [] },
          shares: [{ id: evil, proto: 'NFS', exportLocations: [`${BACKEND}:/export/acme`], accessRules: [{ accessType: 'ip', accessTo: '198.19.0.5', accessLevel: 'rw' }] }],
          flags: { frozen: false, networkError: false, missing: false },
          skipped: [{ share: evil, what: 'share', reason: 'id has control characters', code: 'SGW_ERR_MANILA_BAD_ID' }],
          fetchedAt: new Date().toISOString(),
        },
      ],
    }),
  );
  await d.start();
  const status = await run(process.execPath, [CLI, 'status', '--socket', d.socket]);
  t.equal(status.code, 0, status.stderr);
  t.notOk(/[\x1b\x07]/.test(status.stdout), 'status text carries no ESC or BEL');
  t.match(status.stdout, /skipped evil\\x1b\[2J\\x1b\]0;owned\\x07/, 'status text shows the id escaped');
  const explain = await run(process.execPath, [CLI, 'explain', '--socket', d.socket, '--guest', 'acme/g1', '--to', `${BACKEND}:2049`]);
  t.equal(explain.code, 0, `acme/g1 may still reach its static share: ${explain.stdout}`);
  t.notOk(/[\x1b\x07]/.test(explain.stdout), 'explain text carries no ESC or BEL');
  t.notMatch(explain.stdout, /share evil/, 'the bad share grants nothing');
  const json = await run(process.execPath, [CLI, 'status', '--json', '--socket', d.socket]);
  t.notOk(/[\x1b\x07]/.test(json.stdout), 'JSON output is escaped JSON');
});
