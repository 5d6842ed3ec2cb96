/**
 * `sharegw flows` and `sharegw explain` as scripts see them: the compiled
 * CLI run as a child process against a real AdminServer (answering with
 * the real command functions over the lab configuration) and, for
 * `explain --offline`, against configuration files. Output and exit codes.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { explainCommand, flowsCommand } from '../../src/admin/commands';
import type { FlowsResult } from '../../src/admin/commands';
import type { AdminRequest } from '../../src/admin/protocol';
import { AdminServer } from '../../src/admin/server';
import { parseConntrackList } from '../../src/dataplane/kernel/conntrack';
import type { KernelFlow } from '../../src/dataplane/kernel/conntrack';
import { KernelApplyError, SgwError } from '../../src/errors';
import { Counters } from '../../src/observability/counters';
import { createLogger } from '../../src/observability/logger';
import { compileDesired } from '../../src/policy/policy';
import { formatAge, formatBytes, formatFlows, formatNative, table } from '../../src/cli/views';
import { configFrom, labYaml } from '../helpers/configs';

const CLI = path.resolve(__dirname, '../../src/cli/sharegw.js');
const y = labYaml('kernel');
const config = configFrom(y.daemon, y.domains);
const desired = compileDesired(config);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgw-cli-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const cfgFile = path.join(dir, 'sharegwd.yaml');
fs.mkdirSync(path.join(dir, 'domains.d'));
fs.writeFileSync(cfgFile, y.daemon);
for (const [name, text] of Object.entries(y.domains)) {
  fs.writeFileSync(path.join(dir, 'domains.d', name), text);
}
const badDir = path.join(dir, 'bad');
fs.mkdirSync(path.join(badDir, 'domains.d'), { recursive: true });
fs.writeFileSync(path.join(badDir, 'sharegwd.yaml'), y.daemon);
fs.writeFileSync(path.join(badDir, 'domains.d', 'acme.yaml'), (y.domains['acme.yaml'] ?? '').replace('sourceIp: 198.18.0.11', 'sourceIp: 198.18.0'));

const KERNEL = parseConntrackList(
  'tcp 6 431999 ESTABLISHED src=169.254.1.2 dst=198.18.0.100 sport=812 dport=2049 packets=10 bytes=1500 src=198.18.0.100 dst=198.18.0.11 sport=2049 dport=812 packets=20 bytes=1572864 [ASSURED] mark=0 use=1\n' +
    'tcp 6 431990 ESTABLISHED src=169.254.2.2 dst=198.18.0.101 sport=700 dport=2049 src=198.18.0.101 dst=198.18.0.12 sport=2049 dport=700 [ASSURED] mark=0 use=1',
);

/** How the fake daemon behaves. */
const daemon = { kernelFails: false, old: false, explainThrows: false };

async function handle(_cmd: string, req: AdminRequest): Promise<unknown> {
  if (daemon.old) {
    return { node: 'hv-test' }; // An older daemon answers anything with status.
  }
  if (req.cmd === 'flows') {
    const lister = async (keep: (f: KernelFlow) => boolean): Promise<KernelFlow[]> => {
      if (daemon.kernelFails) {
        throw new KernelApplyError('SGW_ERR_CONNTRACK_FAILED', 'conntrack -L exited 1: Operation failed: Permission denied', { exitCode: 1, stderr: '' });
      }
      return KERNEL.filter(keep);
    };
    const proxyFlows = [{ guest: 'acme/g1', backend: '198.18.0.100', port: 445, guestPort: 50123, up: 300, down: 5000, ageMs: 3_725_000 }];
    return flowsCommand(req, { desired, proxyFlows, kernelFlows: lister });
  }
  if (req.cmd === 'explain') {
    if (daemon.explainThrows) {
      throw new SgwError('SGW_ERR_INTERNAL', 'boom');
    }
    return explainCommand(req, config, desired);
  }
  return 'pong';
}

const socketPath = path.join(dir, 'admin.sock');
const missingSocket = path.join(dir, 'missing.sock');

interface Run {
  code: number;
  out: string;
  err: string;
}

function run(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1;
      resolve({ code, out: stdout, err: stderr });
    });
  });
}

t.before(async () => {
  const server = new AdminServer(socketPath, handle, createLogger('silent', { write: () => undefined }), new Counters());
  await server.listen();
  t.teardown(() => server.close());
});

t.test('views: bytes, ages and tables', async (t) => {
  t.strictSame(
    [null, 0, 1023, 1024, 1536, 1048576, 1073741824 * 3.25, 1024 ** 5 * 2048].map(formatBytes),
    ['-', '0 B', '1023 B', '1.0 KiB', '1.5 KiB', '1.0 MiB', '3.3 GiB', '2048.0 PiB'],
  );
  t.strictSame(
    [undefined, 0, 59, 60, 187, 3599, 3600, 3725, 86399, 86400, 273600].map(formatAge),
    ['-', '0s', '59s', '1m00s', '3m07s', '59m59s', '1h00m', '1h02m', '23h59m', '1d00h', '3d04h'],
  );
  t.strictSame(table(['A', 'LONG HEADER', 'C'], [['xxxx', 'y', ''], ['z', 'w', 'v']]), ['A     LONG HEADER  C', 'xxxx  y', 'z     w            v']);
});

t.test('views: the native line of status names each shim\'s implementation, and why fallbacks', async (t) => {
  t.equal(formatNative({ loaded: true, reason: null, shims: { originalDst: 'native', spliceRelay: 'native' } }), 'native: originalDst=native spliceRelay=native');
  t.equal(formatNative({ loaded: false, reason: 'SGW_NATIVE=off', shims: { sdNotify: 'fallback' } }), 'native: sdNotify=fallback (SGW_NATIVE=off)');
});

t.test('views: the flows table', async (t) => {
  const r: FlowsResult = await flowsCommand({ cmd: 'flows' }, { desired, proxyFlows: [], kernelFlows: async (keep) => KERNEL.filter(keep) });
  t.equal(
    formatFlows(r),
    [
      'GUEST    PLANE   BACKEND            SERVICE  GUEST PORT  STATE        UP       DOWN     AGE',
      'acme/g1  kernel  198.18.0.100:2049  nfs      812         ESTABLISHED  1.5 KiB  1.5 MiB  -',
      'beta/g2  kernel  198.18.0.101:2049  nfs      700         ESTABLISHED  -        -        -',
      '2 flows',
      'kernel byte counts need conntrack accounting (sysctl net.netfilter.nf_conntrack_acct=1)',
    ].join('\n'),
  );
  const revoked = await flowsCommand({ cmd: 'flows', guest: 'g1' }, { desired: { ...desired, guests: desired.guests.map((g) => ({ ...g, grants: [] })) }, proxyFlows: [], kernelFlows: async (keep) => KERNEL.filter(keep) });
  t.equal(formatFlows(revoked).split('\n')[1], 'acme/g1  kernel  198.18.0.100:2049  NOT GRANTED  812         ESTABLISHED  1.5 KiB  1.5 MiB  -');
  t.equal(formatFlows({ rows: [], kernel: null }), 'GUEST  PLANE  BACKEND  SERVICE  GUEST PORT  STATE  UP  DOWN  AGE\n0 flows');
});

t.test('sharegw flows: table, --json, filters, exit 0', async (t) => {
  const all = await run('flows', '--socket', socketPath);
  t.equal(all.code, 0, all.err);
  t.strictSame(all.out.trimEnd().split('\n').slice(0, 5), [
    'GUEST    PLANE   BACKEND            SERVICE  GUEST PORT  STATE        UP       DOWN     AGE',
    'acme/g1  kernel  198.18.0.100:2049  nfs      812         ESTABLISHED  1.5 KiB  1.5 MiB  -',
    'acme/g1  proxy   198.18.0.100:445   smb      50123       ESTABLISHED  300 B    4.9 KiB  1h02m',
    'beta/g2  kernel  198.18.0.101:2049  nfs      700         ESTABLISHED  -        -        -',
    '3 flows',
  ]);
  const json = await run('flows', '--socket', socketPath, '--json', '--guest', 'sgwt-g2');
  t.equal(json.code, 0);
  const parsed = JSON.parse(json.out) as FlowsResult;
  t.strictSame(parsed.kernel, { ok: true });
  t.strictSame(
    parsed.rows.map((r) => [r.guest, r.plane, r.backend, r.port, r.guestPort, r.bytesUp]),
    [['beta/g2', 'kernel', '198.18.0.101', 2049, 700, null]],
  );
  const byBackend = await run('flows', '--socket', socketPath, '--json', '--backend', '198.18.0.100');
  t.strictSame((JSON.parse(byBackend.out) as FlowsResult).rows.map((r) => r.guestPort), [812, 50123]);
});

t.test('sharegw flows: exit 1 for an unknown guest or a failed kernel listing, 2 usage, 3 unreachable', async (t) => {
  const unknown = await run('flows', '--socket', socketPath, '--guest', 'nobody');
  t.strictSame([unknown.code, unknown.out, unknown.err], [1, '', 'sharegw: SGW_ERR_ADMIN_UNKNOWN_GUEST: guest "nobody" names no configured guest\n']);
  daemon.kernelFails = true;
  t.teardown(() => {
    daemon.kernelFails = false;
  });
  const failed = await run('flows', '--socket', socketPath);
  t.equal(failed.code, 1);
  t.match(failed.out, /^acme\/g1 {2}proxy .*\n1 flow\n$/m, 'the proxy rows are still shown');
  t.equal(failed.err, 'sharegw: kernel flows could not be listed: SGW_ERR_CONNTRACK_FAILED: conntrack -L exited 1: Operation failed: Permission denied\n');
  daemon.kernelFails = false;
  const usage: Promise<readonly [string, Run]>[] = [];
  for (const args of [
    ['--backend', 'nas.example'],
    ['--guest', 'a b'],
    ['--to', '198.18.0.100:2049'],
    ['--offline'],
    ['--backend'],
  ]) {
    usage.push(run('flows', '--socket', socketPath, ...args).then((r) => [args.join(' '), r] as const));
  }
  for (const [name, r] of await Promise.all(usage)) {
    t.strictSame([r.code, r.out], [2, ''], name);
  }
  const down = await run('flows', '--socket', missingSocket);
  t.strictSame([down.code, down.err], [3, `sharegw: cannot reach sharegwd at ${missingSocket}: ENOENT\n`]);
});

t.test('sharegw flows and explain: an older daemon is not misread', async (t) => {
  daemon.old = true;
  t.teardown(() => {
    daemon.old = false;
  });
  const f = await run('flows', '--socket', socketPath);
  t.strictSame([f.code, f.err], [1, 'sharegw: the daemon does not answer flows (older version?)\n']);
  const e = await run('explain', '--socket', socketPath, '--guest', 'g1', '--to', '198.18.0.100:2049');
  t.strictSame([e.code, e.err], [3, 'sharegw: the daemon does not answer explain (older version?)\n']);
});

t.test('sharegw explain: exit 0 allowed, 1 denied, through the daemon', async (t) => {
  const ok = await run('explain', '--socket', socketPath, '--guest', 'sgwt-g1', '--to', '198.18.0.100:2049');
  t.equal(ok.code, 0, ok.err);
  t.equal(ok.out.split('\n')[0], 'allowed: acme/g1 may reach 198.18.0.100:2049 (nfs, rw) through share acme-nfs rule #0 (198.19.0.0/24 rw matches 198.19.0.5)');
  const denied = await run('explain', '--socket', socketPath, '--guest', 'g2', '--to', '198.18.0.100:2049');
  t.equal(denied.code, 1);
  t.strictSame(denied.out.trimEnd().split('\n'), [
    'denied: no share of domain beta has an export location on 198.18.0.100',
    'guest beta/g2: domain beta, instance g2, tunnel sgwt-g2 (guest IP 169.254.2.2), tenant addresses 198.19.1.5; backends see 198.18.0.12',
    "domain acme has 2 shares on 198.18.0.100 (acme-nfs, acme-smb); a guest reaches only its own domain's shares",
    'beta/g2 has grants on 198.18.0.101 (2049)',
  ]);
  const json = await run('explain', '--socket', socketPath, '--guest', 'acme/g1', '--to', '198.18.0.100:22', '--json');
  t.equal(json.code, 1);
  const e = JSON.parse(json.out) as { allowed: boolean; reason: string; allowedPorts: { port: number }[] };
  t.strictSame([e.allowed, e.reason, e.allowedPorts.map((p) => p.port)], [false, 'port-not-allowed', [111, 445, 2049, 20048]]);
  const unknown = await run('explain', '--socket', socketPath, '--guest', 'nobody', '--to', '198.18.0.100:2049');
  t.strictSame([unknown.code, unknown.out], [1, 'denied: unknown guest "nobody": no domain/instance key, instance id or tunnel interface matches\n'], 'an unknown guest is a denial');
});

t.test('sharegw explain: 2 usage, 3 no decision', async (t) => {
  const usage: Promise<readonly [string, Run]>[] = [];
  for (const args of [
    ['--guest', 'g1'],
    ['--to', '198.18.0.100:2049'],
    ['--guest', 'g1', '--to', '198.18.0.100'],
    ['--guest', 'g1', '--to', '198.18.0.100:0'],
    ['--guest', '', '--to', '198.18.0.100:2049'],
    ['--guest', 'g1', '--to', '198.18.0.100:2049', '--backend', '198.18.0.100'],
    ['--guest', 'g1', '--to', '198.18.0.100:2049', 'extra'],
  ]) {
    usage.push(run('explain', '--socket', socketPath, ...args).then((r) => [args.join(' '), r] as const));
  }
  for (const [name, r] of await Promise.all(usage)) {
    t.strictSame([r.code, r.out], [2, ''], name);
  }
  const down = await run('explain', '--socket', missingSocket, '--guest', 'g1', '--to', '198.18.0.100:2049');
  t.strictSame([down.code, down.out, down.err], [3, '', `sharegw: cannot reach sharegwd at ${missingSocket}: ENOENT\n`]);
  daemon.explainThrows = true;
  t.teardown(() => {
    daemon.explainThrows = false;
  });
  const broken = await run('explain', '--socket', socketPath, '--guest', 'g1', '--to', '198.18.0.100:2049');
  t.strictSame([broken.code, broken.err], [3, 'sharegw: SGW_ERR_INTERNAL: boom\n'], 'a daemon error is no denial');
});

t.test('sharegw explain --offline decides from the configuration without a daemon', async (t) => {
  const ok = await run('explain', '--offline', '--config', cfgFile, '--socket', missingSocket, '--guest', 'g1', '--to', '198.18.0.100:445');
  t.equal(ok.code, 0, ok.err);
  t.equal(ok.out.split('\n')[0], 'allowed: acme/g1 may reach 198.18.0.100:445 (smb, rw) through share acme-smb rule #0 (198.19.0.5 rw matches 198.19.0.5)');
  const denied = await run('explain', '--offline', '--config', cfgFile, '--guest', 'g1', '--to', '198.18.0.102:2049', '--json');
  t.equal(denied.code, 1);
  const e = JSON.parse(denied.out) as { reason: string; shares: { id: string; rules: { accessTo: string; result: string }[] }[] };
  t.strictSame([e.reason, e.shares], ['no-access-rule', [{ id: 'acme-private', name: null, proto: 'NFS', exportLocations: ['198.18.0.102:/export/acme-private'], ports: [{ port: 2049, service: 'nfs' }], servesPort: true, level: null, grants: false, rules: [{ index: 0, type: 'ip', accessTo: '198.19.0.99', level: 'rw', matches: [], result: 'no-match' }] }]]);
  const missing = await run('explain', '--offline', '--config', path.join(dir, 'nope.yaml'), '--guest', 'g1', '--to', '198.18.0.100:445');
  t.equal(missing.code, 3);
  t.match(missing.err, /sharegw: cannot decide from .*nope\.yaml: /);
  const invalid = await run('explain', '--offline', '--config', path.join(badDir, 'sharegwd.yaml'), '--guest', 'g1', '--to', '198.18.0.100:445');
  t.equal(invalid.code, 3);
  t.match(invalid.err, /acme\.yaml:\d+:\d+: \/sourceIp: .*\[SGW_ERR_CONFIG_BAD_IP\]/, 'each config problem is printed');
  t.equal(invalid.out, '');
});

t.test('sharegw: the new options are refused by other commands; usage documents exit codes', async (t) => {
  const cmds = ['status', 'reload', 'validate'];
  const runs = await Promise.all(cmds.map((cmd) => run(cmd, '--socket', socketPath, '--guest', 'g1')));
  runs.forEach((r, i) => t.strictSame([r.code, r.err], [2, `sharegw: --guest is not an option of ${cmds[i] ?? ''}\n`], cmds[i] ?? ''));
  const help = await run('--help');
  t.equal(help.code, 0);
  t.match(help.out, /explain: 0 allowed, 1 denied, 3 no decision/);
  t.match(help.out, /flows {7}live flows/);
});
