import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { checkConfig } from '../../src/cli/check';
import { loadConfig } from '../../src/config/load';
import { validateConfig } from '../../src/config/validate';
import type { ValidationResult } from '../../src/config/validate';
import { parseYaml, pointerOf } from '../../src/config/yaml-source';
import { ConfigError, formatProblem, SgwError } from '../../src/errors';
import type { ConfigProblem } from '../../src/errors';
import { configFrom, labYaml } from '../helpers/configs';

// Compiled to dist/test/unit: the repository root is three levels up.
const REPO = path.resolve(__dirname, '../../..');
const CLI = path.join(REPO, 'dist/src/cli/sharegwd.js');

const ETC = '/etc/sharegw';
const DAEMON_FILE = `${ETC}/sharegwd.yaml`;
const DOMAINS_DIR = `${ETC}/domains.d`;
const DAEMON = 'node: hv1\n';

/** The daemon file exactly as documented (the config contract). */
const README_DAEMON = `node: hv1
dataplane: kernel            # kernel | proxy
domainsDir: domains.d        # relative to this file
stateDir: /var/lib/sharegw
adminSocket: /run/sharegw/admin.sock
metrics: 127.0.0.1:9610
`;

function validate(daemon: string, domains: Record<string, string> = {}): ValidationResult {
  return validateConfig(
    { file: DAEMON_FILE, text: daemon },
    Object.entries(domains).map(([name, text]) => ({ file: `${DOMAINS_DIR}/${name}`, text })),
    DOMAINS_DIR,
  );
}

/** `file:line:col pointer code` with the file's base name: compact, exact, message-free. */
function brief(p: ConfigProblem): string {
  const pos = p.line === undefined ? '' : `:${p.line}:${p.col ?? '?'}`;
  return `${path.basename(p.file)}${pos} ${p.pointer} ${p.code}`;
}

function briefs(ps: readonly ConfigProblem[]): string[] {
  return ps.map(brief);
}

/** 1-based `line:col` of the nth occurrence of `needle` in `text`, computed independently of the code under test. */
function at(text: string, needle: string, nth = 0): string {
  let i = -1;
  for (let k = 0; k <= nth; k++) {
    i = text.indexOf(needle, i + 1);
    if (i === -1) {
      throw new Error(`"${needle}" (#${nth}) not in text`);
    }
  }
  const before = text.slice(0, i);
  return `${before.split('\n').length}:${i - before.lastIndexOf('\n')}`;
}

interface DomainOpts {
  name?: string;
  sourceIp?: string;
  instance?: string;
  iface?: string;
  guestIp?: string;
  gatewayIp?: string;
  share?: string;
}

/**
 * A valid one-guest one-share domain. Lines: 1 name, 3 sourceIp,
 * 5 instance, 6 tunnel, 9 share id.
 */
function domainYaml(o: DomainOpts = {}): string {
  const name = o.name ?? 'acme';
  return `name: ${name}
project: p-${name}
sourceIp: ${o.sourceIp ?? '198.18.0.11'}
guests:
  - instance: ${o.instance ?? `${name}-vm1`}
    tunnel: { interface: ${o.iface ?? `t-${name}`}, guestIp: ${o.guestIp ?? '169.254.1.2'}, gatewayIp: ${o.gatewayIp ?? '169.254.1.1'} }
    addresses: [198.19.0.5]
shares:
  - id: ${o.share ?? `${name}-share`}
    proto: NFS
    exportLocations: ["198.18.0.100:/export/${name}"]
    accessRules: [{ accessType: ip, accessTo: 198.19.0.0/24, accessLevel: rw }]
`;
}

/** A domain with one share whose body is `share` (indented under `  - id: s1`). */
function shareDomain(share: string): string {
  return `name: acme\nproject: p\nsourceIp: 198.18.0.11\nshares:\n  - id: s1\n${share}`;
}

/** A domain with one guest whose tunnel line and addresses are given. */
function guestDomain(tunnel: string, addresses = '[198.19.0.5]'): string {
  return `name: acme\nproject: p\nsourceIp: 198.18.0.11\nguests:\n  - instance: i1\n    tunnel: ${tunnel}\n    addresses: ${addresses}\n`;
}

function tmpdir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgw-config-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function write(dir: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
}

function configErrorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) {
      return e;
    }
    throw e;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}

// ---------------------------------------------------------------------------
// The documented example and the repository's shipped configuration

t.test('the documented daemon file and the shipped acme domain validate cleanly', async (t) => {
  const acme = fs.readFileSync(path.join(REPO, 'config/domains.d/acme.yaml'), 'utf8');
  const r = validate(README_DAEMON, { 'acme.yaml': acme });
  t.same(r.problems, [], 'no problems');
  t.same(r.warnings, [], 'no warnings');
  const cfg = r.config;
  if (cfg === null) {
    t.fail('config is null');
    return;
  }
  t.same(cfg.daemon, {
    file: DAEMON_FILE,
    node: 'hv1',
    dataplane: 'kernel',
    domainsDir: DOMAINS_DIR,
    stateDir: '/var/lib/sharegw',
    adminSocket: '/run/sharegw/admin.sock',
    metrics: '127.0.0.1:9610',
    manila: null,
    syncIntervalMs: 10_000,
    logLevel: 'info',
    keepRulesOnExit: true,
    egress: { tables: { from: 20000, to: 20999 }, rulePriority: 20000 },
    proxy: {
      portRange: { from: 40000, to: 44999 },
      connectTimeoutMs: 5_000,
      idleTimeoutMs: 3_600_000,
      keepAliveMs: 30_000,
      userTimeoutMs: 20_000,
      drainTimeoutMs: 10_000,
      maxConnectionsPerGuest: 256,
      connectionBudget: 4 * 1024 * 1024,
      memoryBudget: 512 * 1024 * 1024,
    },
    limits: { maxConnectionsPerBackend: 896, maxConnectionsPerDomainPerBackend: 256 },
  });
  t.equal(cfg.domains.length, 1);
  const d = cfg.domains[0];
  t.equal(d?.file, `${DOMAINS_DIR}/acme.yaml`);
  t.equal(d?.name, 'acme');
  t.equal(d?.project, '9f2c1d6e5b4a43c7a8e1f0d2c3b4a596');
  t.equal(d?.shareNetwork, 'd53e89f0-f29a-446c-a42e-783e877086cb');
  t.equal(d?.sourceIp.text, '198.18.0.11');
  t.equal(d?.sourceIp.family, 4);
  t.same(d?.guests.map((g) => [g.instance, g.tunnel.iface, g.tunnel.guestIp.text, g.tunnel.gatewayIp.text, g.addresses.map((a) => a.text)]), [
    ['5b1c0e51-8f4e-4d43-9c3e-1a7f0c2d9e11', 'sgwt-g1', '169.254.1.2', '169.254.1.1', ['198.19.0.5']],
  ]);
  const s = d?.shares[0];
  t.equal(s?.id, '7e0f6a42-3c1b-4e59-8d7a-2b6c9e4f1a03');
  t.equal(s?.proto, 'NFS');
  t.equal(s?.nfsv3, false, 'nfsv3 defaults to false');
  t.equal(s?.mountdPort, 20048, 'mountdPort defaults to 20048');
  t.same(s?.exportLocations.map((e) => [e.raw, e.host.text, e.path]), [['198.18.0.100:/export/acme', '198.18.0.100', '/export/acme']]);
  t.same(s?.accessRules.map((a) => [a.type, a.to, a.level, a.cidr?.network, a.cidr?.prefix, a.cidr?.hostBitsSet]), [
    ['ip', '198.19.0.0/24', 'rw', '198.19.0.0', 24, false],
  ]);
});

t.test('loadConfig() reads the shipped config/ directory of the repository', async (t) => {
  const cfg = loadConfig(path.join(REPO, 'config/sharegwd.yaml'));
  t.equal(cfg.daemon.file, path.join(REPO, 'config/sharegwd.yaml'));
  t.equal(cfg.daemon.node, 'hv1');
  t.equal(cfg.daemon.dataplane, 'kernel');
  t.equal(cfg.daemon.domainsDir, path.join(REPO, 'config/domains.d'), 'domainsDir resolved against the daemon file');
  t.equal(cfg.daemon.metrics, '127.0.0.1:9610');
  t.same(cfg.domains.map((d) => [path.basename(d.file), d.name, d.guests.length, d.shares.length]), [['acme.yaml', 'acme', 1, 1]]);
  t.same(cfg.warnings, []);
});

t.test('the test helpers\' lab configuration validates in both planes', async (t) => {
  for (const plane of ['kernel', 'proxy'] as const) {
    const y = labYaml(plane);
    const cfg = configFrom(y.daemon, y.domains);
    t.equal(cfg.daemon.dataplane, plane);
    t.same(cfg.domains.map((d) => d.name), ['acme', 'beta'], `${plane}: both domains, in file order`);
  }
});

t.test('the configuration layer emits exactly the codes these tests cover', async (t) => {
  // A new code added to src/config or src/errors must come with a test here.
  const files = ['src/errors/index.ts', ...fs.readdirSync(path.join(REPO, 'src/config'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => `src/config/${f}`)];
  const found = new Set<string>();
  for (const f of files) {
    for (const m of fs.readFileSync(path.join(REPO, f), 'utf8').matchAll(/SGW_(?:ERR|WARN)_CONFIG_[A-Z_]+/g)) {
      found.add(m[0]);
    }
  }
  t.same([...found].sort(), [
    'SGW_ERR_CONFIG_BAD_ADDRESS',
    'SGW_ERR_CONFIG_BAD_CIDR',
    'SGW_ERR_CONFIG_BAD_DURATION',
    'SGW_ERR_CONFIG_BAD_EXPORT',
    // BAD_ID: safe-text.test.ts.
    'SGW_ERR_CONFIG_BAD_ID',
    'SGW_ERR_CONFIG_BAD_INTERFACE',
    'SGW_ERR_CONFIG_BAD_IP',
    'SGW_ERR_CONFIG_BAD_PORT_RANGE',
    'SGW_ERR_CONFIG_BAD_SIZE',
    // BAD_TABLE, BAD_TABLE_RANGE, NO_TABLE, SHARED_BACKEND: egress-config.test.ts.
    'SGW_ERR_CONFIG_BAD_TABLE',
    'SGW_ERR_CONFIG_BAD_TABLE_RANGE',
    // BAD_URL and CLOUD: manila-config.test.ts.
    'SGW_ERR_CONFIG_BAD_URL',
    'SGW_ERR_CONFIG_CLOUD',
    'SGW_ERR_CONFIG_DUPLICATE',
    'SGW_ERR_CONFIG_INVALID',
    'SGW_ERR_CONFIG_IO',
    'SGW_ERR_CONFIG_NO_TABLE',
    'SGW_ERR_CONFIG_SCHEMA',
    'SGW_ERR_CONFIG_SHARED_BACKEND',
    'SGW_ERR_CONFIG_UNKNOWN_KEY',
    'SGW_ERR_CONFIG_UNSUPPORTED',
    'SGW_ERR_CONFIG_YAML',
    'SGW_WARN_CONFIG_RO_BACKEND_ONLY',
    'SGW_WARN_CONFIG_RULE_IGNORED',
  ]);
});

// ---------------------------------------------------------------------------
// yaml-source.ts

t.test('pointerOf() renders JSON pointers with RFC 6901 escapes', async (t) => {
  t.equal(pointerOf([]), '');
  t.equal(pointerOf(['guests', 0, 'tunnel', 'guestIp']), '/guests/0/tunnel/guestIp');
  t.equal(pointerOf(['a/b', 'c~d', '~/']), '/a~1b/c~0d/~0~1');
});

t.test('parseYaml() locates the deepest existing node of a key path', async (t) => {
  const text = 'a:\n  b: [1, 2]\n  "c/d": x\n';
  const src = parseYaml('/x.yaml', text);
  t.same(src.problems, []);
  t.same(src.value, { a: { b: [1, 2], 'c/d': 'x' } });
  const loc = (p: Pick<ConfigProblem, 'line' | 'col' | 'pointer'>): string => `${p.line}:${p.col} ${p.pointer}`;
  t.equal(loc(src.problem(['a', 'b', 1], 'C', 'm')), '2:10 /a/b/1', 'a sequence item');
  t.equal(loc(src.problem(['a', 'b'], 'C', 'm')), '2:6 /a/b', 'a value');
  t.equal(loc(src.problem(['a', 'b'], 'C', 'm', true)), '2:3 /a/b', 'a key (atKey)');
  t.equal(loc(src.problem(['a', 'missing'], 'C', 'm')), '2:3 /a/missing', 'a missing key falls back to its parent map');
  t.equal(loc(src.problem(['a', 'b', 7], 'C', 'm')), '2:6 /a/b/7', 'a missing index falls back to its sequence');
  t.equal(loc(src.problem(['a', 'b', 1, 'deeper'], 'C', 'm')), '2:10 /a/b/1/deeper', 'a path through a scalar stops at it');
  t.equal(loc(src.problem(['a', 'c/d'], 'C', 'm', true)), '3:3 /a/c~1d', 'a key containing a slash');
  t.equal(loc(src.problem([], 'C', 'm')), '1:1 ', 'the document');
  t.same(src.problem(['a'], 'SGW_X', 'msg'), { file: '/x.yaml', line: 2, col: 3, pointer: '/a', code: 'SGW_X', message: 'msg' });
});

t.test('parseYaml() on an empty or comment-only file: no value, problems have no position', async (t) => {
  for (const text of ['', '# only a comment\n', '\n\n']) {
    const src = parseYaml('/e.yaml', text);
    t.same(src.problems, [], `${JSON.stringify(text)}: no syntax problem`);
    t.equal(src.value, null, `${JSON.stringify(text)}: value is null`);
    t.same(src.problem(['x'], 'C', 'm'), { file: '/e.yaml', pointer: '/x', code: 'C', message: 'm' }, 'no line or col');
  }
});

t.test('YAML syntax errors are SGW_ERR_CONFIG_YAML at the right line and column, and nothing else is checked', async (t) => {
  const cases: [string, string, string][] = [
    ['duplicate key', 'name: a\nproject: p\nname: b\n', '3:1'],
    ['tab indentation', 'name: a\n\tproject: p\n', '2:1'],
    ['unresolved tag', 'name: a\nproject: !secret p\n', '2:10'],
    ['two documents', 'name: a\n---\nname: b\n', '2:1'],
    ['unclosed flow sequence', 'name: a\nguests: [\n', '3:1'],
  ];
  for (const [what, text, pos] of cases) {
    const r = validate(DAEMON, { 'a.yaml': text });
    t.ok(r.problems.length >= 1, `${what}: reported`);
    t.same(
      r.problems.map((p) => [brief(p), p.message.includes('\n')]),
      r.problems.map(() => [`a.yaml:${pos}  SGW_ERR_CONFIG_YAML`, false]),
      `${what}: only YAML problems, at ${pos}, one line each`,
    );
    t.equal(r.config, null, `${what}: no config`);
  }
  const daemon = validate('node: a\nnode: b\n');
  t.same(briefs(daemon.problems), ['sharegwd.yaml:2:1  SGW_ERR_CONFIG_YAML'], 'in the daemon file too');
  t.match(formatProblem(daemon.problems[0] as ConfigProblem), /^\/etc\/sharegw\/sharegwd\.yaml:2:1: \(document\): .*unique.* \[SGW_ERR_CONFIG_YAML\]$/);
});

t.test('a YAML error does not echo the file\'s content into the problem', async (t) => {
  // There is no secret field in the configuration; still, a syntax error
  // should name the place, not copy the line (prettyErrors is off).
  const r = validate(DAEMON, { 'a.yaml': 'name: a\nproject: p-zebra-7731\nproject: p-zebra-7731\n' });
  t.same(briefs(r.problems), ['a.yaml:3:1  SGW_ERR_CONFIG_YAML']);
  t.notMatch(formatProblem(r.problems[0] as ConfigProblem), 'zebra');
});

// ---------------------------------------------------------------------------
// errors.ts

t.test('formatProblem() renders file:line:col: pointer: message [code]', async (t) => {
  const base = { file: '/etc/sharegw/domains.d/a.yaml', pointer: '/guests/0/tunnel/guestIp', code: 'SGW_ERR_CONFIG_BAD_IP', message: '"x" is not an IP address' };
  t.equal(formatProblem({ ...base, line: 6, col: 39 }), '/etc/sharegw/domains.d/a.yaml:6:39: /guests/0/tunnel/guestIp: "x" is not an IP address [SGW_ERR_CONFIG_BAD_IP]');
  t.equal(formatProblem({ ...base, line: 6 }), '/etc/sharegw/domains.d/a.yaml:6:1: /guests/0/tunnel/guestIp: "x" is not an IP address [SGW_ERR_CONFIG_BAD_IP]', 'col defaults to 1');
  t.equal(formatProblem(base), '/etc/sharegw/domains.d/a.yaml: /guests/0/tunnel/guestIp: "x" is not an IP address [SGW_ERR_CONFIG_BAD_IP]', 'no position');
  t.equal(formatProblem({ ...base, pointer: '', line: 1, col: 1 }), '/etc/sharegw/domains.d/a.yaml:1:1: (document): "x" is not an IP address [SGW_ERR_CONFIG_BAD_IP]', 'empty pointer is the document');
});

t.test('ConfigError carries every problem; code and message come from the first', async (t) => {
  const p1: ConfigProblem = { file: '/a.yaml', line: 2, col: 3, pointer: '/x', code: 'SGW_ERR_CONFIG_SCHEMA', message: 'bad' };
  const p2: ConfigProblem = { file: '/b.yaml', pointer: '', code: 'SGW_ERR_CONFIG_IO', message: 'gone' };
  const p3: ConfigProblem = { ...p1, line: 9 };
  const e = new ConfigError([p1, p2, p3]);
  t.ok(e instanceof SgwError);
  t.ok(e instanceof Error);
  t.equal(e.name, 'ConfigError');
  t.equal(e.code, 'SGW_ERR_CONFIG_SCHEMA');
  t.equal(e.message, '/a.yaml:2:3: /x: bad [SGW_ERR_CONFIG_SCHEMA] (and 2 more)');
  t.same(e.problems, [p1, p2, p3]);
  const one = new ConfigError([p2]);
  t.equal(one.code, 'SGW_ERR_CONFIG_IO');
  t.equal(one.message, '/b.yaml: (document): gone [SGW_ERR_CONFIG_IO]', 'no "(and N more)" for one problem');
  const none = new ConfigError([]);
  t.equal(none.code, 'SGW_ERR_CONFIG_INVALID');
  t.equal(none.message, 'invalid configuration');
});

// ---------------------------------------------------------------------------
// Every problem at once, sorted; unknown keys do not stop validation

t.test('unknown keys are reported at the key, and the rest of the file is still validated', async (t) => {
  const text = `name: acme
project: p
sourceIp: 198.18.0.11
guests:
  - instance: i1
    tunnel: { interface: t1, guestIp: 169.254.1.2, gatewayIp: 169.254.1.1, mtu: 1400 }
    addresses: [198.19.0.5, 198.19.0.300]
shares:
  - id: s1
    proto: NFS
    exportLocations: ["198.18.0.100:/export/acme"]
    accessRules:
      - { accessType: ip, accessTo: 198.19.0.0/33, accessLevel: rw, note: x }
    size: 10
colour: blue
"a/b": 1
`;
  const r = validate(DAEMON, { 'a.yaml': text });
  t.same(briefs(r.problems), [
    `a.yaml:${at(text, 'mtu')} /guests/0/tunnel/mtu SGW_ERR_CONFIG_UNKNOWN_KEY`,
    `a.yaml:${at(text, '198.19.0.300')} /guests/0/addresses/1 SGW_ERR_CONFIG_BAD_IP`,
    `a.yaml:${at(text, '198.19.0.0/33')} /shares/0/accessRules/0/accessTo SGW_ERR_CONFIG_BAD_CIDR`,
    `a.yaml:${at(text, 'note')} /shares/0/accessRules/0/note SGW_ERR_CONFIG_UNKNOWN_KEY`,
    `a.yaml:${at(text, 'size')} /shares/0/size SGW_ERR_CONFIG_UNKNOWN_KEY`,
    'a.yaml:15:1 /colour SGW_ERR_CONFIG_UNKNOWN_KEY',
    'a.yaml:16:1 /a~1b SGW_ERR_CONFIG_UNKNOWN_KEY',
  ]);
  t.equal(at(text, 'mtu'), '6:76', 'sanity check of the position helper');
  t.match(r.problems.map((p) => p.message), ['unknown key "mtu"', /198\.19\.0\.300/, /198\.19\.0\.0\/33/, 'unknown key "note"', 'unknown key "size"', 'unknown key "colour"', 'unknown key "a/b"']);
  t.equal(r.config, null);
});

t.test('unknown keys in the daemon file do not hide its other problems', async (t) => {
  const text = 'node: hv1\nmetrics: everywhere\ncolour: red\nproxy:\n  portRange: 10-20\n  speed: fast\n';
  const r = validate(text);
  t.same(briefs(r.problems), [
    'sharegwd.yaml:2:10 /metrics SGW_ERR_CONFIG_BAD_ADDRESS',
    'sharegwd.yaml:3:1 /colour SGW_ERR_CONFIG_UNKNOWN_KEY',
    'sharegwd.yaml:5:14 /proxy/portRange SGW_ERR_CONFIG_BAD_PORT_RANGE',
    'sharegwd.yaml:6:3 /proxy/speed SGW_ERR_CONFIG_UNKNOWN_KEY',
  ]);
  t.equal(r.config, null);
});

t.test('problems from every file are reported together, sorted by file, line and column', async (t) => {
  // Emission order differs from position order: the top-level schema pass
  // reports the trailing unknown key before the guests are checked, and the
  // daemon file is checked before any domain file.
  const a = guestDomain('{ interface: t1, guestIp: 169.254.1.2, gatewayIp: 169.254.1.1 }', '[bogus]') + 'zzz: 1\n';
  const b = domainYaml({ name: 'beta', sourceIp: '198.18.0.12', guestIp: '169.254.2.300' });
  const r = validate('node: hv1\nsyncInterval: soon\n', { 'b.yaml': b, 'a.yaml': a });
  t.same(briefs(r.problems), [
    'a.yaml:7:17 /guests/0/addresses/0 SGW_ERR_CONFIG_BAD_IP',
    'a.yaml:8:1 /zzz SGW_ERR_CONFIG_UNKNOWN_KEY',
    `b.yaml:${at(b, '169.254.2.300')} /guests/0/tunnel/guestIp SGW_ERR_CONFIG_BAD_IP`,
    'sharegwd.yaml:2:15 /syncInterval SGW_ERR_CONFIG_BAD_DURATION',
  ]);
  t.equal(r.config, null, 'no config while any problem remains');
});

// ---------------------------------------------------------------------------
// Schema problems

t.test('schema problems: missing, wrongly typed and out-of-range values', async (t) => {
  const empty = validate(DAEMON, { 'a.yaml': '' });
  t.same(briefs(empty.problems), ['a.yaml /name SGW_ERR_CONFIG_SCHEMA', 'a.yaml /project SGW_ERR_CONFIG_SCHEMA', 'a.yaml /sourceIp SGW_ERR_CONFIG_SCHEMA'], 'an empty domain file lacks the required keys');

  t.same(briefs(validate(DAEMON, { 'a.yaml': '- a\n- b\n' }).problems), ['a.yaml:1:1  SGW_ERR_CONFIG_SCHEMA'], 'a list is not a domain');
  t.same(briefs(validate(DAEMON, { 'a.yaml': 'acme\n' }).problems), ['a.yaml:1:1  SGW_ERR_CONFIG_SCHEMA'], 'a scalar is not a domain');

  const top = 'name: Acme!\nproject: ""\nsourceIp: 198.18.0.11\nguests: {}\n';
  t.same(briefs(validate(DAEMON, { 'a.yaml': top }).problems), [
    'a.yaml:1:7 /name SGW_ERR_CONFIG_SCHEMA',
    'a.yaml:2:10 /project SGW_ERR_CONFIG_SCHEMA',
    'a.yaml:4:9 /guests SGW_ERR_CONFIG_SCHEMA',
  ]);

  const guest = guestDomain('{ interface: t1, guestIp: 169.254.1.2 }', '[]');
  t.same(briefs(validate(DAEMON, { 'a.yaml': guest }).problems), [
    'a.yaml:6:13 /guests/0/tunnel/gatewayIp SGW_ERR_CONFIG_SCHEMA',
    'a.yaml:7:16 /guests/0/addresses SGW_ERR_CONFIG_SCHEMA',
  ], 'missing key located at its parent; empty list at the list');

  const share = shareDomain('    proto: nfs\n    exportLocations: []\n    mountdPort: 70000\n    nfsv3: "yes"\n');
  t.same(briefs(validate(DAEMON, { 'a.yaml': share }).problems), [
    'a.yaml:6:12 /shares/0/proto SGW_ERR_CONFIG_SCHEMA',
    'a.yaml:7:22 /shares/0/exportLocations SGW_ERR_CONFIG_SCHEMA',
    'a.yaml:8:17 /shares/0/mountdPort SGW_ERR_CONFIG_SCHEMA',
    'a.yaml:9:12 /shares/0/nfsv3 SGW_ERR_CONFIG_SCHEMA',
  ]);

  const rule = shareDomain('    proto: NFS\n    exportLocations: ["198.18.0.100:/x"]\n    accessRules: [{ accessType: ipv4, accessTo: "", accessLevel: rwx }]\n');
  t.same(briefs(validate(DAEMON, { 'a.yaml': rule }).problems), [
    `a.yaml:${at(rule, 'ipv4')} /shares/0/accessRules/0/accessType SGW_ERR_CONFIG_SCHEMA`,
    `a.yaml:${at(rule, '""')} /shares/0/accessRules/0/accessTo SGW_ERR_CONFIG_SCHEMA`,
    `a.yaml:${at(rule, 'rwx')} /shares/0/accessRules/0/accessLevel SGW_ERR_CONFIG_SCHEMA`,
  ]);
});

t.test('one broken guest or share does not hide the problems of the others', async (t) => {
  const text = `name: acme
project: p
sourceIp: 198.18.0.11
guests:
  - instance: i1
    tunnel: 7
    addresses: [198.19.0.5]
  - instance: i2
    tunnel: { interface: t2, guestIp: 169.254.2.2, gatewayIp: 169.254.2.x }
    addresses: [198.19.0.6]
shares:
  - id: s1
  - id: s2
    proto: CIFS
    exportLocations: ["198.18.0.100:/nope"]
`;
  t.same(briefs(validate(DAEMON, { 'a.yaml': text }).problems), [
    'a.yaml:6:13 /guests/0/tunnel SGW_ERR_CONFIG_SCHEMA',
    `a.yaml:${at(text, '169.254.2.x')} /guests/1/tunnel/gatewayIp SGW_ERR_CONFIG_BAD_IP`,
    'a.yaml:12:5 /shares/0/proto SGW_ERR_CONFIG_SCHEMA',
    'a.yaml:12:5 /shares/0/exportLocations SGW_ERR_CONFIG_SCHEMA',
    `a.yaml:${at(text, '"198.18.0.100:/nope"')} /shares/1/exportLocations/0 SGW_ERR_CONFIG_BAD_EXPORT`,
  ]);
});

t.test('nfsv3 and mountdPort are for NFS shares only', async (t) => {
  const cifs = (extra: string): string => shareDomain(`    proto: CIFS\n    exportLocations: ["//198.18.0.100/s1"]\n${extra}`);
  t.same(briefs(validate(DAEMON, { 'a.yaml': cifs('    nfsv3: true\n') }).problems), ['a.yaml:8:5 /shares/0/nfsv3 SGW_ERR_CONFIG_SCHEMA']);
  t.same(briefs(validate(DAEMON, { 'a.yaml': cifs('    mountdPort: 20048\n') }).problems), ['a.yaml:8:5 /shares/0/mountdPort SGW_ERR_CONFIG_SCHEMA']);
  const nfs = validate(DAEMON, { 'a.yaml': shareDomain('    proto: NFS\n    exportLocations: ["198.18.0.100:/x"]\n    nfsv3: true\n    mountdPort: 635\n') });
  t.same(nfs.problems, []);
  t.same(nfs.config?.domains[0]?.shares.map((s) => [s.nfsv3, s.mountdPort]), [[true, 635]]);
});

// ---------------------------------------------------------------------------
// Addresses, prefixes, export locations, interfaces

t.test('BAD_IP: addresses that are not IP addresses', async (t) => {
  const cases: [string, keyof DomainOpts, string][] = [
    ['sourceIp', 'sourceIp', '/sourceIp'],
    ['guestIp', 'guestIp', '/guests/0/tunnel/guestIp'],
    ['gatewayIp', 'gatewayIp', '/guests/0/tunnel/gatewayIp'],
  ];
  for (const bad of ['198.18.0', '198.18.0.256', '010.18.0.1', '198.18.0.1/32', 'gw.example', '1.2.3.4%eth0']) {
    for (const [what, opt, pointer] of cases) {
      const opts: DomainOpts = {};
      opts[opt] = `"${bad}"`;
      const text = domainYaml(opts);
      const r = validate(DAEMON, { 'a.yaml': text });
      t.same(briefs(r.problems), [`a.yaml:${at(text, `"${bad}"`)} ${pointer} SGW_ERR_CONFIG_BAD_IP`], `${what} "${bad}"`);
      t.equal(r.problems[0]?.message, `"${bad}" is not an IP address`);
    }
  }
  const text = guestDomain('{ interface: t1, guestIp: 169.254.1.2, gatewayIp: 169.254.1.1 }', '[198.19.0.5, "::ffff:1.2.3.4.5"]');
  t.same(briefs(validate(DAEMON, { 'a.yaml': text }).problems), [`a.yaml:${at(text, '"::ffff')} /guests/0/addresses/1 SGW_ERR_CONFIG_BAD_IP`], 'a tenant address');
});

t.test('BAD_CIDR: malformed prefixes and prefixes with host bits set', async (t) => {
  const rule = (to: string, level = 'rw'): string =>
    shareDomain(`    proto: NFS\n    exportLocations: ["198.18.0.100:/x"]\n    accessRules:\n      - { accessType: ip, accessTo: "${to}", accessLevel: ${level} }\n`);
  for (const bad of ['198.19.0.0/33', '198.19.0.0/', '198.19.0.0/-1', '198.19.0.0/24/8', '198.19.0/24', 'tenant-net', '2001:db8::/129']) {
    const text = rule(bad);
    const r = validate(DAEMON, { 'a.yaml': text });
    t.same(briefs(r.problems), [`a.yaml:${at(text, `"${bad}"`)} /shares/0/accessRules/0/accessTo SGW_ERR_CONFIG_BAD_CIDR`], `"${bad}"`);
    t.equal(r.problems[0]?.message, `"${bad}" is not an IP address or CIDR prefix`);
  }
  const hostBits: [string, string][] = [
    ['198.19.0.5/24', '198.19.0.0/24'],
    ['10.1.2.3/8', '10.0.0.0/8'],
    ['0.0.0.1/0', '0.0.0.0/0'],
    ['2001:db8:1::5/64', '2001:db8:1::/64'],
  ];
  for (const [bad, meant] of hostBits) {
    const text = rule(bad);
    const r = validate(DAEMON, { 'a.yaml': text });
    t.same(briefs(r.problems), [`a.yaml:9:37 /shares/0/accessRules/0/accessTo SGW_ERR_CONFIG_BAD_CIDR`], `"${bad}" has host bits set`);
    t.equal(r.problems[0]?.message, `"${bad}" has host bits set; did you mean ${meant}?`);
  }
  for (const ok of ['198.19.0.0/24', '198.19.0.5', '198.19.0.5/32', '0.0.0.0/0', '2001:db8:1::/64', '2001:db8:1::5']) {
    const r = validate(DAEMON, { 'a.yaml': rule(ok) });
    t.same(r.problems, [], `"${ok}" is accepted`);
  }
});

t.test('BAD_EXPORT: export locations that do not fit the protocol', async (t) => {
  const share = (proto: string, loc: string): string => shareDomain(`    proto: ${proto}\n    exportLocations: ['${loc}']\n`);
  const bad: [string, string, RegExp][] = [
    ['NFS', '198.18.0.100', /expected HOST:\/path/],
    ['NFS', '198.18.0.100:export', /expected HOST:\/path/],
    ['NFS', 'nfs.example:/export', /host "nfs\.example" is not an IP address \(names are not resolved\)/],
    ['NFS', '2001:db8::9:/export', /expected HOST:\/path/],
    ['NFS', '//198.18.0.100/s1', /expected HOST:\/path/],
    ['CIFS', '198.18.0.100:/export', /expected \\\\HOST\\share or \/\/HOST\/share/],
    ['CIFS', '//198.18.0.100', /expected/],
    ['CIFS', '//198.18.0.100/a/b', /expected/],
    ['CIFS', '\\\\smb.example\\s1', /host "smb\.example" is not an IP address/],
  ];
  for (const [proto, loc, why] of bad) {
    const r = validate(DAEMON, { 'a.yaml': share(proto, loc) });
    t.same(briefs(r.problems), ['a.yaml:7:23 /shares/0/exportLocations/0 SGW_ERR_CONFIG_BAD_EXPORT'], `${proto} ${loc}`);
    t.match(r.problems[0]?.message, why);
    t.ok(r.problems[0]?.message.startsWith(`"${loc}" is not a ${proto} export location: `), 'message quotes the location');
  }
  const good: [string, string, string, string][] = [
    ['NFS', '198.18.0.100:/export/a', '198.18.0.100', '/export/a'],
    ['NFS', '198.18.0.100:/', '198.18.0.100', '/'],
    ['CIFS', '\\\\198.18.0.100\\s1', '198.18.0.100', 's1'],
    ['CIFS', '//198.18.0.100/s1', '198.18.0.100', 's1'],
    ['CIFS', '//198.18.0.100/s1/', '198.18.0.100', 's1'],
  ];
  for (const [proto, loc, host, p] of good) {
    const r = validate(DAEMON, { 'a.yaml': share(proto, loc) });
    t.same(r.problems, [], `${proto} ${loc} is accepted`);
    t.same(r.config?.domains[0]?.shares[0]?.exportLocations, [{ raw: loc, host: { family: 4, text: host, value: r.config?.domains[0]?.shares[0]?.exportLocations[0]?.host.value }, path: p }]);
  }
});

t.test('IPv6: tenant addresses and access rules are accepted, sourceIp, tunnels and backends are UNSUPPORTED', async (t) => {
  const ok = `name: acme
project: p
sourceIp: 198.18.0.11
guests:
  - instance: i1
    tunnel: { interface: t1, guestIp: 169.254.1.2, gatewayIp: 169.254.1.1 }
    addresses: [198.19.0.5, "2001:db8:1::5"]
shares:
  - id: s1
    proto: NFS
    exportLocations: ["198.18.0.100:/x"]
    accessRules: [{ accessType: ip, accessTo: "2001:db8:1::/64", accessLevel: rw }]
`;
  const r = validate(DAEMON, { 'a.yaml': ok });
  t.same(r.problems, []);
  t.same(r.warnings, []);
  t.same(r.config?.domains[0]?.guests[0]?.addresses.map((a) => [a.family, a.text]), [[4, '198.19.0.5'], [6, '2001:db8:1::5']]);
  t.same(r.config?.domains[0]?.shares[0]?.accessRules.map((a) => [a.cidr?.family, a.cidr?.network, a.cidr?.prefix]), [[6, '2001:db8:1::', 64]]);

  const bad = `name: acme
project: p
sourceIp: "2001:db8::11"
guests:
  - instance: i1
    tunnel: { interface: t1, guestIp: "fe80::2", gatewayIp: "fe80::1" }
    addresses: ["2001:db8:1::5"]
shares:
  - id: s1
    proto: NFS
    exportLocations: ["[2001:db8::100]:/x", "198.18.0.100:/x"]
  - id: s2
    proto: CIFS
    exportLocations: ["//[2001:db8::100]/s2", '\\\\[2001:db8::100]\\s2']
`;
  const rb = validate(DAEMON, { 'a.yaml': bad });
  t.same(briefs(rb.problems), [
    'a.yaml:3:11 /sourceIp SGW_ERR_CONFIG_UNSUPPORTED',
    `a.yaml:${at(bad, '"fe80::2"')} /guests/0/tunnel/guestIp SGW_ERR_CONFIG_UNSUPPORTED`,
    `a.yaml:${at(bad, '"fe80::1"')} /guests/0/tunnel/gatewayIp SGW_ERR_CONFIG_UNSUPPORTED`,
    `a.yaml:${at(bad, '"[2001')} /shares/0/exportLocations/0 SGW_ERR_CONFIG_UNSUPPORTED`,
    `a.yaml:${at(bad, '"//[2001')} /shares/1/exportLocations/0 SGW_ERR_CONFIG_UNSUPPORTED`,
    `a.yaml:${at(bad, "'\\\\")} /shares/1/exportLocations/1 SGW_ERR_CONFIG_UNSUPPORTED`,
  ]);
  t.equal(rb.problems[0]?.message, '"2001:db8::11": only IPv4 is supported here for now');
  t.equal(rb.problems[3]?.message, '"[2001:db8::100]:/x": IPv6 backends are not supported by the data planes yet');
  t.equal(rb.config, null);
});

t.test('BAD_INTERFACE: tunnel interface names the kernel would refuse', async (t) => {
  for (const bad of ['sgwt-0123456789a', 'sgw t1', 'sgw/t1', 'sgw:t1', '""']) {
    const text = guestDomain(`{ interface: ${bad.includes(' ') || bad.includes(':') ? `"${bad}"` : bad}, guestIp: 169.254.1.2, gatewayIp: 169.254.1.1 }`);
    const r = validate(DAEMON, { 'a.yaml': text });
    const code = bad === '""' ? 'SGW_ERR_CONFIG_SCHEMA' : 'SGW_ERR_CONFIG_BAD_INTERFACE';
    t.same(briefs(r.problems), [`a.yaml:6:26 /guests/0/tunnel/interface ${code}`], `interface ${bad}`);
  }
  for (const ok of ['sgwt-0123456789', 'a', 'tap_1.2-x']) {
    t.same(validate(DAEMON, { 'a.yaml': guestDomain(`{ interface: ${ok}, guestIp: 169.254.1.2, gatewayIp: 169.254.1.1 }`) }).problems, [], `interface ${ok} (${ok.length} chars)`);
  }
});

// ---------------------------------------------------------------------------
// Uniqueness inside one domain file

t.test('DUPLICATE inside one file: gateway = guest IP, instance, share id, interface, guest IP', async (t) => {
  const same = guestDomain('{ interface: t1, guestIp: 169.254.1.2, gatewayIp: 169.254.1.2 }');
  const r1 = validate(DAEMON, { 'a.yaml': same });
  t.same(briefs(r1.problems), [`a.yaml:${at(same, '169.254.1.2', 1)} /guests/0/tunnel/gatewayIp SGW_ERR_CONFIG_DUPLICATE`]);
  t.equal(r1.problems[0]?.message, 'gatewayIp must differ from guestIp');

  const twoGuests = (g1: string, g2: string): string =>
    `name: acme\nproject: p\nsourceIp: 198.18.0.11\nguests:\n  - instance: ${g1}\n    addresses: [198.19.0.5]\n  - instance: ${g2}\n    addresses: [198.19.0.6]\n`;
  const inst = twoGuests(
    'i1\n    tunnel: { interface: t1, guestIp: 169.254.1.2, gatewayIp: 169.254.1.1 }',
    'i1\n    tunnel: { interface: t2, guestIp: 169.254.2.2, gatewayIp: 169.254.2.1 }',
  );
  const r2 = validate(DAEMON, { 'a.yaml': inst });
  t.same(briefs(r2.problems), ['a.yaml:8:15 /guests/1/instance SGW_ERR_CONFIG_DUPLICATE'], 'a repeated instance is reported once');
  t.equal(r2.problems[0]?.message, 'instance "i1" is already used at index 0');

  const iface = twoGuests(
    'i1\n    tunnel: { interface: t1, guestIp: 169.254.1.2, gatewayIp: 169.254.1.1 }',
    'i2\n    tunnel: { interface: t1, guestIp: 169.254.1.2, gatewayIp: 169.254.2.1 }',
  );
  const r3 = validate(DAEMON, { 'a.yaml': iface });
  t.same(briefs(r3.problems), ['a.yaml:9:26 /guests/1/tunnel/interface SGW_ERR_CONFIG_DUPLICATE', 'a.yaml:9:39 /guests/1/tunnel/guestIp SGW_ERR_CONFIG_DUPLICATE']);
  t.same(r3.problems.map((p) => p.message), [
    'tunnel interface "t1" is already claimed by domain "acme" (a.yaml:6)',
    'guest IP "169.254.1.2" is already claimed by domain "acme" (a.yaml:6)',
  ]);

  const shares = 'name: acme\nproject: p\nsourceIp: 198.18.0.11\nshares:\n  - id: s1\n    proto: NFS\n    exportLocations: ["198.18.0.100:/x"]\n  - id: s1\n    proto: NFS\n    exportLocations: ["198.18.0.100:/y"]\n';
  const r4 = validate(DAEMON, { 'a.yaml': shares });
  t.same(briefs(r4.problems), ['a.yaml:8:9 /shares/1/id SGW_ERR_CONFIG_DUPLICATE'], 'a repeated share id is reported once');
  t.equal(r4.problems[0]?.message, 'share id "s1" is already used at index 0');

  // A guest that fails its schema still takes part in the instance check.
  const broken = twoGuests('i1\n    tunnel: 3', 'i1\n    tunnel: { interface: t2, guestIp: 169.254.2.2, gatewayIp: 169.254.2.1 }');
  t.same(briefs(validate(DAEMON, { 'a.yaml': broken }).problems), ['a.yaml:6:13 /guests/0/tunnel SGW_ERR_CONFIG_SCHEMA', 'a.yaml:8:15 /guests/1/instance SGW_ERR_CONFIG_DUPLICATE']);
});

// ---------------------------------------------------------------------------
// Host-wide uniqueness across domain files

t.test('cross-domain conflicts are reported on the later file and name the earlier one', async (t) => {
  const a = domainYaml({ name: 'acme' });
  // [what, b.yaml options, text at the reported position, pointer, message]
  const cases: [string, DomainOpts, string, string, string][] = [
    ['domain name', { name: 'acme', sourceIp: '198.18.0.12', instance: 'b1', iface: 'tb', guestIp: '169.254.2.2', share: 'sb' }, 'acme', '/name', 'domain name "acme" is already claimed by domain "acme" (a.yaml:1)'],
    ['source IP', { name: 'beta', sourceIp: '198.18.0.11', guestIp: '169.254.2.2' }, '198.18.0.11', '/sourceIp', 'source IP "198.18.0.11" is already claimed by domain "acme" (a.yaml:3)'],
    ['guest IP', { name: 'beta', sourceIp: '198.18.0.12', guestIp: '169.254.1.2' }, '169.254.1.2', '/guests/0/tunnel/guestIp', 'guest IP "169.254.1.2" is already claimed by domain "acme" (a.yaml:6)'],
    ['tunnel interface', { name: 'beta', sourceIp: '198.18.0.12', guestIp: '169.254.2.2', iface: 't-acme' }, 't-acme', '/guests/0/tunnel/interface', 'tunnel interface "t-acme" is already claimed by domain "acme" (a.yaml:6)'],
    ['instance', { name: 'beta', sourceIp: '198.18.0.12', guestIp: '169.254.2.2', instance: 'acme-vm1' }, 'acme-vm1', '/guests/0/instance', 'instance "acme-vm1" is already claimed by domain "acme" (a.yaml:5)'],
    ['share id', { name: 'beta', sourceIp: '198.18.0.12', guestIp: '169.254.2.2', share: 'acme-share' }, 'acme-share', '/shares/0/id', 'share id "acme-share" is already claimed by domain "acme" (a.yaml:9)'],
    ['guest IP = other domain\'s source IP', { name: 'beta', sourceIp: '198.18.0.12', guestIp: '198.18.0.11', gatewayIp: '198.18.0.1' }, '198.18.0.11', '/guests/0/tunnel/guestIp', 'guest IP "198.18.0.11" is already claimed by domain "acme" (a.yaml:3)'],
    ['source IP = other domain\'s guest IP', { name: 'beta', sourceIp: '169.254.1.2', guestIp: '169.254.2.2' }, '169.254.1.2', '/sourceIp', 'source IP "169.254.1.2" is already claimed by domain "acme" (a.yaml:6)'],
  ];
  for (const [what, opts, needle, pointer, message] of cases) {
    const b = domainYaml(opts);
    const r = validate(DAEMON, { 'a.yaml': a, 'b.yaml': b });
    t.same(r.problems.map((p) => [p.file, `${p.line}:${p.col} ${p.pointer}`, p.code, p.message]), [[`${DOMAINS_DIR}/b.yaml`, `${at(b, needle)} ${pointer}`, 'SGW_ERR_CONFIG_DUPLICATE', message]], what);
    t.match(formatProblem(r.problems[0] as ConfigProblem), /^\/etc\/sharegw\/domains\.d\/b\.yaml:\d+:\d+: .*\(a\.yaml:\d+\) \[SGW_ERR_CONFIG_DUPLICATE\]$/, `${what}: the text names both files`);
    t.equal(r.config, null);
  }
  const ok = validate(DAEMON, { 'a.yaml': a, 'b.yaml': domainYaml({ name: 'beta', sourceIp: '198.18.0.12', guestIp: '169.254.2.2', gatewayIp: '169.254.1.1' }) });
  t.same(ok.problems, [], 'gateway IPs may repeat across point-to-point tunnels');
  t.same(ok.config?.domains.map((d) => d.name), ['acme', 'beta']);
});

t.test('every cross-domain conflict of one file is reported at once', async (t) => {
  const b = domainYaml({ name: 'acme' });
  const r = validate(DAEMON, { 'a.yaml': domainYaml({ name: 'acme' }), 'b.yaml': b, 'c.yaml': domainYaml({ name: 'gamma', sourceIp: '198.18.0.13', guestIp: '169.254.3.2' }) });
  t.same(briefs(r.problems), [
    'b.yaml:1:7 /name SGW_ERR_CONFIG_DUPLICATE',
    'b.yaml:3:11 /sourceIp SGW_ERR_CONFIG_DUPLICATE',
    'b.yaml:5:15 /guests/0/instance SGW_ERR_CONFIG_DUPLICATE',
    'b.yaml:6:26 /guests/0/tunnel/interface SGW_ERR_CONFIG_DUPLICATE',
    `b.yaml:${at(b, '169.254.1.2')} /guests/0/tunnel/guestIp SGW_ERR_CONFIG_DUPLICATE`,
    'b.yaml:9:9 /shares/0/id SGW_ERR_CONFIG_DUPLICATE',
  ]);
  t.ok(r.problems.every((p) => p.message.endsWith(`already claimed by domain "acme" (a.yaml:${p.line})`)), 'each names a.yaml at the same line');
});

t.test('a domain file with its own problems still takes part in the cross-domain checks', async (t) => {
  const a = domainYaml({ name: 'acme' }) + 'colour: red\n';
  const r = validate(DAEMON, { 'a.yaml': a, 'b.yaml': domainYaml({ name: 'beta', guestIp: '169.254.2.2' }) });
  t.same(briefs(r.problems), ['a.yaml:13:1 /colour SGW_ERR_CONFIG_UNKNOWN_KEY', 'b.yaml:3:11 /sourceIp SGW_ERR_CONFIG_DUPLICATE']);
  t.equal(r.config, null);
});

t.test('a cross-domain conflict points at the right entry when a file repeats an instance', async (t) => {
  const a = `name: acme
project: p
sourceIp: 198.18.0.11
guests:
  - instance: i1
    tunnel: { interface: t1, guestIp: 169.254.1.2, gatewayIp: 169.254.1.1 }
    addresses: [198.19.0.5]
  - instance: i1
    tunnel: { interface: t2, guestIp: 169.254.2.2, gatewayIp: 169.254.2.1 }
    addresses: [198.19.0.6]
`;
  const r = validate(DAEMON, { 'a.yaml': a, 'b.yaml': domainYaml({ name: 'beta', sourceIp: '198.18.0.12', guestIp: '169.254.9.2', iface: 't1' }) });
  t.same(briefs(r.problems), ['a.yaml:8:15 /guests/1/instance SGW_ERR_CONFIG_DUPLICATE', 'b.yaml:6:26 /guests/0/tunnel/interface SGW_ERR_CONFIG_DUPLICATE']);
  t.equal(r.problems[1]?.message, 'tunnel interface "t1" is already claimed by domain "acme" (a.yaml:6)', 't1 is on line 6, not on the repeated entry\'s line 9');
});

// ---------------------------------------------------------------------------
// Warnings

t.test('warnings: non-ip rules are ignored by the gateway; ro ip rules on CIFS shares are enforced by the backend only', async (t) => {
  const text = shareDomain(`    proto: NFS
    exportLocations: ["198.18.0.100:/x"]
    accessRules:
      - { accessType: user, accessTo: alice, accessLevel: rw }
      - { accessType: cert, accessTo: client.example, accessLevel: rw }
      - { accessType: cephx, accessTo: manila-client, accessLevel: ro }
      - { accessType: ip, accessTo: 198.19.0.0/24, accessLevel: ro }
      - { accessType: ip, accessTo: 198.19.1.0/24, accessLevel: rw }
`);
  const r = validate(DAEMON, { 'a.yaml': text });
  t.same(r.problems, [], 'warnings are not problems');
  const expected = [
    'a.yaml:9:23 /shares/0/accessRules/0/accessType SGW_WARN_CONFIG_RULE_IGNORED',
    'a.yaml:10:23 /shares/0/accessRules/1/accessType SGW_WARN_CONFIG_RULE_IGNORED',
    'a.yaml:11:23 /shares/0/accessRules/2/accessType SGW_WARN_CONFIG_RULE_IGNORED',
  ];
  t.same(briefs(r.warnings), expected, 'cephx ro gives only RULE_IGNORED; an NFS ro ip rule (enforced by the proxy) and a rw one give nothing');
  t.same(briefs(r.config?.warnings ?? []), expected, 'the config carries the same warnings');
  const cifs = shareDomain(`    proto: CIFS
    exportLocations: ['//198.18.0.100/s']
    accessRules:
      - { accessType: ip, accessTo: 198.19.0.0/24, accessLevel: ro }
`);
  t.same(briefs(validate(DAEMON, { 'a.yaml': cifs }).warnings), [`a.yaml:${at(cifs, 'ro }')} /shares/0/accessRules/0/accessLevel SGW_WARN_CONFIG_RO_BACKEND_ONLY`], 'a CIFS ro rule: the backend enforces it');
  t.equal(r.warnings[0]?.message, 'accessType "user" is enforced by the backend, not the gateway; it grants no network access');
  t.equal(r.warnings[2]?.message, 'accessType "cephx" is enforced by the backend, not the gateway; it grants no network access');
  t.match(validate(DAEMON, { 'a.yaml': cifs }).warnings[0]?.message, /^read-only on a CIFS share is enforced by the backend/);
  t.same(r.config?.domains[0]?.shares[0]?.accessRules.map((a) => [a.type, a.to, a.level, a.cidr === null]), [
    ['user', 'alice', 'rw', true],
    ['cert', 'client.example', 'rw', true],
    ['cephx', 'manila-client', 'ro', true],
    ['ip', '198.19.0.0/24', 'ro', false],
    ['ip', '198.19.1.0/24', 'rw', false],
  ]);
});

t.test('warnings are collected even when the configuration has problems', async (t) => {
  const text = shareDomain('    proto: NFS\n    exportLocations: ["198.18.0.100:/x"]\n    accessRules: [{ accessType: user, accessTo: bob, accessLevel: rw }, { accessType: ip, accessTo: 1.2.3.4/40, accessLevel: rw }]\n');
  const r = validate(DAEMON, { 'a.yaml': text });
  t.same(briefs(r.problems), [`a.yaml:${at(text, '1.2.3.4/40')} /shares/0/accessRules/1/accessTo SGW_ERR_CONFIG_BAD_CIDR`]);
  t.same(briefs(r.warnings), [`a.yaml:${at(text, 'user')} /shares/0/accessRules/0/accessType SGW_WARN_CONFIG_RULE_IGNORED`]);
  t.equal(r.config, null);
});

// ---------------------------------------------------------------------------
// The daemon file

t.test('daemon file: every setting is parsed, relative paths resolve against the file', async (t) => {
  const text = `node: hv7
dataplane: proxy
domainsDir: tenants
stateDir: state
adminSocket: ../run/admin.sock
metrics: "[::1]:9610"
syncInterval: 250ms
log: { level: debug }
kernel: { keepRulesOnExit: false }
proxy:
  portRange: 1024-65535
  connectTimeout: 1.5s
  idleTimeout: 0
  keepAlive: 1
  userTimeout: 2500ms
  drainTimeout: 2m
  maxConnectionsPerGuest: 9
  connectionBudget: 1MiB
  memoryBudget: 65536KiB
limits: { maxConnectionsPerBackend: 1000, maxConnectionsPerDomainPerBackend: 40 }
`;
  const r = validateConfig({ file: '/srv/gw/etc/sharegwd.yaml', text }, [], '/srv/gw/etc/tenants');
  t.same(r.problems, []);
  t.same(r.config?.daemon, {
    file: '/srv/gw/etc/sharegwd.yaml',
    node: 'hv7',
    dataplane: 'proxy',
    domainsDir: '/srv/gw/etc/tenants',
    stateDir: '/srv/gw/etc/state',
    adminSocket: '/srv/gw/run/admin.sock',
    metrics: '[::1]:9610',
    syncIntervalMs: 250,
    logLevel: 'debug',
    keepRulesOnExit: false,
    egress: { tables: { from: 20000, to: 20999 }, rulePriority: 20000 },
    proxy: {
      portRange: { from: 1024, to: 65535 },
      connectTimeoutMs: 1500,
      idleTimeoutMs: 0,
      keepAliveMs: 1000,
      userTimeoutMs: 2500,
      drainTimeoutMs: 120_000,
      maxConnectionsPerGuest: 9,
      connectionBudget: 1024 * 1024,
      memoryBudget: 65536 * 1024,
    },
    limits: { maxConnectionsPerBackend: 1000, maxConnectionsPerDomainPerBackend: 40 },
    manila: null,
  });
  t.same(r.config?.domains, [], 'no domain files: no domains');
});

t.test('daemon file: metrics may be disabled; domainsDir is taken from the caller', async (t) => {
  for (const m of ['false', 'null', '~']) {
    const r = validate(`node: n\nmetrics: ${m}\n`);
    t.same(r.problems, [], `metrics: ${m}`);
    t.equal(r.config?.daemon.metrics, null);
  }
  t.equal(validate('node: n\n').config?.daemon.metrics, null, 'metrics is off unless set');
  const r = validateConfig({ file: '/a/sharegwd.yaml', text: 'node: n\ndomainsDir: elsewhere\n' }, [], '/b/loaded-from');
  t.equal(r.config?.daemon.domainsDir, '/b/loaded-from');
});

t.test('daemon file: schema problems', async (t) => {
  const cases: [string, string][] = [
    ['', 'sharegwd.yaml /node SGW_ERR_CONFIG_SCHEMA'],
    ['node: ""\n', 'sharegwd.yaml:1:7 /node SGW_ERR_CONFIG_SCHEMA'],
    ['node: 5\n', 'sharegwd.yaml:1:7 /node SGW_ERR_CONFIG_SCHEMA'],
    ['node: n\ndataplane: ebpf\n', 'sharegwd.yaml:2:12 /dataplane SGW_ERR_CONFIG_SCHEMA'],
    ['node: n\nlog: { level: loud }\n', 'sharegwd.yaml:2:15 /log/level SGW_ERR_CONFIG_SCHEMA'],
    ['node: n\nkernel: { keepRulesOnExit: "yes" }\n', 'sharegwd.yaml:2:28 /kernel/keepRulesOnExit SGW_ERR_CONFIG_SCHEMA'],
    ['node: n\nmetrics: true\n', 'sharegwd.yaml:2:10 /metrics SGW_ERR_CONFIG_SCHEMA'],
    ['node: n\nmetrics: ""\n', 'sharegwd.yaml:2:10 /metrics SGW_ERR_CONFIG_SCHEMA'],
    ['node: n\nproxy: { maxConnectionsPerGuest: 0 }\n', 'sharegwd.yaml:2:34 /proxy/maxConnectionsPerGuest SGW_ERR_CONFIG_SCHEMA'],
    ['node: n\nproxy: { maxConnectionsPerGuest: 65536 }\n', 'sharegwd.yaml:2:34 /proxy/maxConnectionsPerGuest SGW_ERR_CONFIG_SCHEMA'],
    ['node: n\nproxy: { maxConnectionsPerGuest: 1.5 }\n', 'sharegwd.yaml:2:34 /proxy/maxConnectionsPerGuest SGW_ERR_CONFIG_SCHEMA'],
    ['node: n\nsyncInterval: [1]\n', 'sharegwd.yaml:2:15 /syncInterval SGW_ERR_CONFIG_SCHEMA'],
    ['[node]\n', 'sharegwd.yaml:1:1  SGW_ERR_CONFIG_SCHEMA'],
  ];
  for (const [text, expected] of cases) {
    const r = validate(text);
    t.same(briefs(r.problems), [expected], JSON.stringify(text));
    t.equal(r.config, null);
  }
});

t.test('BAD_SIZE: proxy budgets are sizes within bounds, the global one no smaller than one connection\'s', async (t) => {
  const cases: [string, string, string, string][] = [
    ['proxy: { connectionBudget: lots }', '/proxy/connectionBudget', '1:28', '"lots" is not a size like 512KiB, 4MiB, 1GiB within 65536-1073741824 bytes'],
    ['proxy: { connectionBudget: 4MB }', '/proxy/connectionBudget', '1:28', '"4MB" is not a size like 512KiB, 4MiB, 1GiB within 65536-1073741824 bytes'],
    ['proxy: { connectionBudget: 1000 }', '/proxy/connectionBudget', '1:28', '"1000" is not a size like 512KiB, 4MiB, 1GiB within 65536-1073741824 bytes'],
    ['proxy: { memoryBudget: 0 }', '/proxy/memoryBudget', '1:24', '"0" is not a size like 512KiB, 4MiB, 1GiB within 1048576-68719476736 bytes'],
    ['proxy: { connectionBudget: 8MiB, memoryBudget: 4MiB }', '/proxy/memoryBudget', '1:48', 'must not be smaller than proxy.connectionBudget (8388608 bytes)'],
  ];
  for (const [line, pointer, pos, message] of cases) {
    const r = validate(`${line}\nnode: n\n`);
    t.same(r.problems.map((p) => [brief(p), p.message]), [[`sharegwd.yaml:${pos} ${pointer} SGW_ERR_CONFIG_BAD_SIZE`, message]], line);
  }
  const ok = validate('node: n\nproxy: { connectionBudget: 64KiB, memoryBudget: 1048576 }\n');
  t.same(ok.problems, []);
  t.same([ok.config?.daemon.proxy.connectionBudget, ok.config?.daemon.proxy.memoryBudget], [65536, 1048576], 'the minimums themselves are accepted');
  const half = validate('node: n\nproxy: { connectionBudget: 1.5MiB }\n');
  t.equal(half.config?.daemon.proxy.connectionBudget, 1572864, 'fractions of a unit');
});

t.test('BAD_DURATION: each duration, with its minimum', async (t) => {
  const cases: [string, string, string, string][] = [
    ['syncInterval: 1d', '/syncInterval', '1:15', '"1d" is not a duration like 500ms, 10s, 5m, 1h (at least 100 ms)'],
    ['syncInterval: 99ms', '/syncInterval', '1:15', '"99ms" is not a duration like 500ms, 10s, 5m, 1h (at least 100 ms)'],
    ['proxy: { connectTimeout: 0s }', '/proxy/connectTimeout', '1:26', '"0s" is not a duration like 500ms, 10s, 5m, 1h (at least 1 ms)'],
    ['proxy: { keepAlive: 999ms }', '/proxy/keepAlive', '1:21', '"999ms" is not a duration like 500ms, 10s, 5m, 1h (at least 1000 ms)'],
    ['proxy: { idleTimeout: -1 }', '/proxy/idleTimeout', '1:23', '"-1" is not a duration like 500ms, 10s, 5m, 1h'],
    ['proxy: { userTimeout: soon }', '/proxy/userTimeout', '1:23', '"soon" is not a duration like 500ms, 10s, 5m, 1h'],
    ['proxy: { drainTimeout: later }', '/proxy/drainTimeout', '1:24', '"later" is not a duration like 500ms, 10s, 5m, 1h'],
  ];
  for (const [line, pointer, pos, message] of cases) {
    const r = validate(`${line}\nnode: n\n`);
    t.same(r.problems.map((p) => [brief(p), p.message]), [[`sharegwd.yaml:${pos} ${pointer} SGW_ERR_CONFIG_BAD_DURATION`, message]], line);
  }
  const minimums = validate('node: n\nsyncInterval: 100ms\nproxy: { connectTimeout: 1ms, keepAlive: 1s, idleTimeout: 0s, drainTimeout: 0 }\n');
  t.same(minimums.problems, [], 'the minimums themselves are accepted');
  t.same(
    minimums.config && [minimums.config.daemon.syncIntervalMs, minimums.config.daemon.proxy.connectTimeoutMs, minimums.config.daemon.proxy.keepAliveMs, minimums.config.daemon.proxy.idleTimeoutMs, minimums.config.daemon.proxy.drainTimeoutMs],
    [100, 1, 1000, 0, 0],
  );
});

t.test('BAD_PORT_RANGE: the proxy port range', async (t) => {
  for (const bad of ['1023-2000', '2000-1999', '40000-65536', '40000', '40000-', '-40000', '40000 - 44999', '40000:44999', 'a-b', '123456-123457']) {
    const r = validate(`node: n\nproxy: { portRange: "${bad}" }\n`);
    t.same(r.problems.map((p) => [brief(p), p.message]), [['sharegwd.yaml:2:21 /proxy/portRange SGW_ERR_CONFIG_BAD_PORT_RANGE', `"${bad}" is not a range FROM-TO within 1024-65535`]], bad);
  }
  for (const [ok, from, to] of [['1024-1024', 1024, 1024], ['40000-44999', 40000, 44999], ['60000-65535', 60000, 65535]] as const) {
    const r = validate(`node: n\nproxy: { portRange: "${ok}" }\n`);
    t.same(r.config?.daemon.proxy.portRange, { from, to }, ok);
  }
});

t.test('BAD_ADDRESS: metrics must be HOST:PORT', async (t) => {
  for (const bad of ['9610', '127.0.0.1', 'metrics.example:9610', '::1:9610', '127.0.0.1:', ':9610', '127.0.0.1:96100x', 'http://127.0.0.1:9610']) {
    const r = validate(`node: n\nmetrics: "${bad}"\n`);
    t.same(r.problems.map((p) => [brief(p), p.message]), [['sharegwd.yaml:2:10 /metrics SGW_ERR_CONFIG_BAD_ADDRESS', `"${bad}" is not HOST:PORT (an IP address or localhost, port 1-65535)`]], bad);
  }
  for (const ok of ['127.0.0.1:9610', '0.0.0.0:9610', 'localhost:9610', '[::1]:9610', '[::]:80']) {
    const r = validate(`node: n\nmetrics: "${ok}"\n`);
    t.same(r.problems, [], ok);
    t.equal(r.config?.daemon.metrics, ok);
  }
});

// ---------------------------------------------------------------------------
// load.ts against a real directory

t.test('loadConfig() reads a daemon file and its domains directory', async (t) => {
  const dir = tmpdir(t);
  write(dir, {
    'sharegwd.yaml': 'node: hv1\ndomainsDir: tenants\nstateDir: state\n',
    'tenants/b.yml': domainYaml({ name: 'beta', sourceIp: '198.18.0.12', guestIp: '169.254.2.2' }),
    'tenants/a.yaml': domainYaml({ name: 'acme' }),
    'tenants/README.md': 'name: [not yaml at all\n',
    'tenants/notes.txt': '{{{',
    'tenants/c.json': '{"name": 1}',
    'tenants/d.yaml.bak': 'garbage: [',
    'tenants/.hidden.yaml': 'garbage: [',
    'tenants/UPPER.YAML': 'garbage: [',
  });
  const cfg = loadConfig(path.join(dir, 'sharegwd.yaml'));
  t.equal(cfg.daemon.file, path.join(dir, 'sharegwd.yaml'));
  t.equal(cfg.daemon.domainsDir, path.join(dir, 'tenants'));
  t.equal(cfg.daemon.stateDir, path.join(dir, 'state'));
  t.same(cfg.domains.map((d) => [d.file, d.name]), [[path.join(dir, 'tenants/a.yaml'), 'acme'], [path.join(dir, 'tenants/b.yml'), 'beta']], '.yaml and .yml, sorted by name; other files ignored');
});

t.test('loadConfig() resolves a relative path and an absolute domainsDir', async (t) => {
  const dir = tmpdir(t);
  const doms = path.join(dir, 'elsewhere', 'doms');
  write(dir, { 'etc/sharegwd.yaml': `node: hv1\ndomainsDir: ${doms}\n`, 'elsewhere/doms/a.yaml': domainYaml() });
  const rel = path.relative(process.cwd(), path.join(dir, 'etc/sharegwd.yaml'));
  const cfg = loadConfig(rel);
  t.equal(cfg.daemon.file, path.join(dir, 'etc/sharegwd.yaml'), 'the daemon file path is made absolute');
  t.equal(cfg.daemon.domainsDir, doms);
  t.same(cfg.domains.map((d) => d.file), [path.join(doms, 'a.yaml')]);
});

t.test('loadConfig() accepts an empty domains directory', async (t) => {
  const dir = tmpdir(t);
  write(dir, { 'sharegwd.yaml': 'node: hv1\n', 'domains.d/README': 'put domain files here\n' });
  const cfg = loadConfig(path.join(dir, 'sharegwd.yaml'));
  t.same(cfg.domains, []);
  t.same(cfg.warnings, []);
  t.equal(cfg.daemon.domainsDir, path.join(dir, 'domains.d'), 'domainsDir defaults to domains.d');
});

t.test('loadConfig() throws a ConfigError with every problem of every file, located in the real files', async (t) => {
  const dir = tmpdir(t);
  const b = domainYaml({ name: 'beta', guestIp: '169.254.2.2' });
  write(dir, {
    'sharegwd.yaml': 'node: hv1\nsyncInterval: soon\n',
    'domains.d/a.yaml': domainYaml({ name: 'acme' }),
    'domains.d/b.yaml': b,
    'domains.d/c.yaml': 'name: c\nname: c\n',
  });
  const e = configErrorOf(() => loadConfig(path.join(dir, 'sharegwd.yaml')));
  t.same(e.problems.map((p) => [path.relative(dir, p.file), p.line, p.col, p.pointer, p.code]), [
    ['domains.d/b.yaml', 3, 11, '/sourceIp', 'SGW_ERR_CONFIG_DUPLICATE'],
    ['domains.d/c.yaml', 2, 1, '', 'SGW_ERR_CONFIG_YAML'],
    ['sharegwd.yaml', 2, 15, '/syncInterval', 'SGW_ERR_CONFIG_BAD_DURATION'],
  ]);
  t.equal(e.code, 'SGW_ERR_CONFIG_DUPLICATE');
  t.equal(e.message, `${path.join(dir, 'domains.d/b.yaml')}:3:11: /sourceIp: source IP "198.18.0.11" is already claimed by domain "acme" (a.yaml:3) [SGW_ERR_CONFIG_DUPLICATE] (and 2 more)`);
});

t.test('loadConfig() reports unreadable files and directories as SGW_ERR_CONFIG_IO', async (t) => {
  const dir = tmpdir(t);
  const missing = configErrorOf(() => loadConfig(path.join(dir, 'nope.yaml')));
  t.same(missing.problems.map((p) => [p.file, p.line, p.pointer, p.code]), [[path.join(dir, 'nope.yaml'), undefined, '', 'SGW_ERR_CONFIG_IO']], 'a missing daemon file');
  t.match(missing.problems[0]?.message, /^cannot read file: ENOENT/);

  write(dir, { 'sharegwd.yaml': 'node: hv1\ndomainsDir: absent\n' });
  const noDir = configErrorOf(() => loadConfig(path.join(dir, 'sharegwd.yaml')));
  t.same(noDir.problems.map((p) => [p.file, p.code]), [[path.join(dir, 'absent'), 'SGW_ERR_CONFIG_IO']], 'a missing domains directory');
  t.match(noDir.problems[0]?.message, /^cannot read domains directory: ENOENT/);
  t.match(formatProblem(noDir.problems[0] as ConfigProblem), `${path.join(dir, 'absent')}: (document): cannot read domains directory`);

  const other = path.join(dir, 'other');
  write(other, { 'sharegwd.yaml': 'node: hv1\n', 'domains.d/a.yaml': domainYaml(), 'domains.d/b.yaml/x': '' });
  const isDir = configErrorOf(() => loadConfig(path.join(other, 'sharegwd.yaml')));
  t.same(isDir.problems.map((p) => [p.file, p.code]), [[path.join(other, 'domains.d/b.yaml'), 'SGW_ERR_CONFIG_IO']], 'a directory named like a domain file');
  t.match(isDir.problems[0]?.message, /^cannot read file: EISDIR/);
});

// ---------------------------------------------------------------------------
// check.ts and the sharegwd CLI

t.test('checkConfig() prints a summary and warnings, or every problem, and returns the exit code', async (t) => {
  const dir = tmpdir(t);
  const badDomain = domainYaml({ guestIp: '169.254.1.256' });
  const goodDomain = domainYaml().replace('accessLevel: rw }]', 'accessLevel: rw }, { accessType: user, accessTo: bob, accessLevel: rw }]');
  write(dir, {
    'good/sharegwd.yaml': 'node: hv1\n',
    'good/domains.d/a.yaml': goodDomain,
    'bad/sharegwd.yaml': 'node: hv1\ndataplane: warp\n',
    'bad/domains.d/a.yaml': badDomain,
  });
  const out: string[] = [];
  const err: string[] = [];
  const good = path.join(dir, 'good/sharegwd.yaml');
  t.equal(checkConfig(good, (l) => out.push(l), (l) => err.push(l)), 0);
  t.same(out, [`${good}: configuration OK: 1 domains, 1 guests, 1 grants (dataplane kernel)`]);
  t.same(err, [`warning: ${path.join(dir, 'good/domains.d/a.yaml')}:${at(goodDomain, 'user')}: /shares/0/accessRules/1/accessType: accessType "user" is enforced by the backend, not the gateway; it grants no network access [SGW_WARN_CONFIG_RULE_IGNORED]`]);

  out.length = 0;
  err.length = 0;
  const bad = path.join(dir, 'bad/sharegwd.yaml');
  t.equal(checkConfig(bad, (l) => out.push(l), (l) => err.push(l)), 1);
  t.same(out, []);
  t.same(err, [
    `${path.join(dir, 'bad/domains.d/a.yaml')}:${at(badDomain, '169.254.1.256')}: /guests/0/tunnel/guestIp: "169.254.1.256" is not an IP address [SGW_ERR_CONFIG_BAD_IP]`,
    `${bad}:2:12: /dataplane: Invalid option: expected one of "kernel"|"proxy" [SGW_ERR_CONFIG_SCHEMA]`,
    '2 problems found',
  ]);
});

t.test('sharegwd --check-config exits 0 on a good configuration and 1 with file:line:col and codes on a bad one', async (t) => {
  const run = (file: string): { status: number | null; stdout: string; stderr: string } => {
    const r = spawnSync(process.execPath, [CLI, '--check-config', '--config', file], { encoding: 'utf8', timeout: 30_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const dir = tmpdir(t);
  write(dir, {
    'good/sharegwd.yaml': README_DAEMON,
    'good/domains.d/acme.yaml': fs.readFileSync(path.join(REPO, 'config/domains.d/acme.yaml'), 'utf8'),
    'bad/sharegwd.yaml': README_DAEMON,
    'bad/domains.d/a.yaml': domainYaml({ name: 'acme' }),
    'bad/domains.d/b.yaml': domainYaml({ name: 'beta', sourceIp: '198.18.0.12', guestIp: '169.254.2.2', iface: 't-acme' }) + 'colour: red\n',
  });

  const good = run(path.join(dir, 'good/sharegwd.yaml'));
  t.equal(good.status, 0, 'good config exits 0');
  t.equal(good.stdout, `${path.join(dir, 'good/sharegwd.yaml')}: configuration OK: 1 domains, 1 guests, 1 grants (dataplane kernel)\n`);
  t.equal(good.stderr, '');

  const shipped = run(path.join(REPO, 'config/sharegwd.yaml'));
  t.equal(shipped.status, 0, 'the shipped config exits 0');
  t.match(shipped.stdout, 'configuration OK: 1 domains, 1 guests, 1 grants (dataplane kernel)');

  const badFile = path.join(dir, 'bad/domains.d/b.yaml');
  const bad = run(path.join(dir, 'bad/sharegwd.yaml'));
  t.equal(bad.status, 1, 'bad config exits 1');
  t.equal(bad.stdout, '');
  t.equal(
    bad.stderr,
    [
      `${badFile}:6:26: /guests/0/tunnel/interface: tunnel interface "t-acme" is already claimed by domain "acme" (a.yaml:6) [SGW_ERR_CONFIG_DUPLICATE]`,
      `${badFile}:13:1: /colour: unknown key "colour" [SGW_ERR_CONFIG_UNKNOWN_KEY]`,
      '2 problems found',
      '',
    ].join('\n'),
  );

  const missing = run(path.join(dir, 'missing.yaml'));
  t.equal(missing.status, 1, 'a missing daemon file exits 1');
  t.match(missing.stderr, `${path.join(dir, 'missing.yaml')}: (document): cannot read file: ENOENT`);
  t.match(missing.stderr, '[SGW_ERR_CONFIG_IO]');
});

t.test('daemon file: metrics needs a real IP (or localhost) and a port 1-65535', async (t) => {
  for (const m of ['999.1.1.1:9610', '127.0.0.1:0', '127.0.0.1:99999', '[zz::1]:9610', 'example.com:9610']) {
    const r = validate(`node: n\nmetrics: "${m}"\n`);
    t.same(r.problems.map((p) => p.code), ['SGW_ERR_CONFIG_BAD_ADDRESS'], m);
  }
  for (const m of ['127.0.0.1:9610', 'localhost:1', '[::1]:65535', '0.0.0.0:9610']) {
    t.same(validate(`node: n\nmetrics: "${m}"\n`).problems, [], m);
  }
});

t.test('domain file: a bad top-level field does not hide problems in guests and shares', async (t) => {
  const text = `name: acme
sourceIp: 198.18.0.11
guests:
  - instance: g1
    tunnel: { interface: sgwt-g1, guestIp: 169.254.1.2, gatewayIp: 169.254.1.300 }
    addresses: [198.19.0.5]
shares:
  - id: s1
    proto: NFS
    exportLocations: ["198.18.0.100:/export/acme"]
    accessRules: [{ accessType: ip, accessTo: 198.19.0.0/33, accessLevel: rw }]
`;
  const r = validate(DAEMON, { 'acme.yaml': text });
  t.equal(r.config, null);
  t.same(
    r.problems.map((p) => `${p.pointer} ${p.code}`),
    ['/project SGW_ERR_CONFIG_SCHEMA', '/guests/0/tunnel/gatewayIp SGW_ERR_CONFIG_BAD_IP', '/shares/0/accessRules/0/accessTo SGW_ERR_CONFIG_BAD_CIDR'],
    'missing project, bad gateway IP and bad CIDR all reported',
  );
  t.equal(r.problems[0]?.message, 'required key "project" is missing');
});

t.test('SMB policy: a domain floor, share encryption, and their mistakes', async (t) => {
  const ok = validate(DAEMON, {
    'acme.yaml': `name: acme\nproject: p\nsourceIp: 198.18.0.11\nsmb: { minDialect: "3.1.1" }\nshares:\n  - id: s1\n    proto: CIFS\n    encryption: required\n    exportLocations: ['//198.18.0.100/s']\n`,
  });
  t.same(briefs(ok.problems), []);
  t.equal(ok.config?.domains[0]?.smb.minDialect, 0x0311);
  t.equal(ok.config?.domains[0]?.shares[0]?.encryptionRequired, true);
  const dflt = validate(DAEMON, { 'acme.yaml': domainYaml() });
  t.equal(dflt.config?.domains[0]?.smb.minDialect, 0x0300, 'default floor 3.0');
  t.equal(dflt.config?.domains[0]?.shares[0]?.encryptionRequired, false);
  const bad = validate(DAEMON, { 'acme.yaml': `name: acme\nproject: p\nsourceIp: 198.18.0.11\nsmb: { minDialect: "1.0" }\n` });
  t.match(briefs(bad.problems).join('\n'), /\/smb\/minDialect/);
  const nfs = validate(DAEMON, { 'acme.yaml': shareDomain('    proto: NFS\n    encryption: required\n    exportLocations: ["198.18.0.100:/e"]\n') });
  t.match(briefs(nfs.problems).join('\n'), /\/shares\/0\/encryption SGW_ERR_CONFIG_SCHEMA/);
  t.match(nfs.problems.map((p) => p.message).join('\n'), /only CIFS shares take encryption/);
});

t.test('SMB policy needs no warning on the kernel plane: its grants are steered through the proxy', async (t) => {
  const y = `name: acme\nproject: p\nsourceIp: 198.18.0.11\nsmb: { minDialect: "3.1.1" }\nshares:\n  - id: s1\n    proto: CIFS\n    encryption: required\n    exportLocations: ['//198.18.0.100/s']\n`;
  const k = validate('node: hv1\ndataplane: kernel\n', { 'acme.yaml': y });
  t.same(k.warnings, []);
  t.equal(k.config?.domains[0]?.smb.explicit, true);
});

t.test('NFS identity policy: defaults, ranges, and their mistakes', async (t) => {
  const base = 'name: acme\nproject: p\nsourceIp: 198.18.0.11\n';
  t.equal(validate(DAEMON, { 'acme.yaml': base }).config?.domains[0]?.nfs, null, 'no nfs block: no identity policy');
  const d = validate(DAEMON, { 'acme.yaml': `${base}nfs: { uids: ["1000-59999", 65534], gids: ["100"] }\n` });
  t.same(d.problems, []);
  t.same(d.config?.domains[0]?.nfs, { rootSquash: true, anonUid: 65534, anonGid: 65534, uids: [{ from: 1000, to: 59999 }, { from: 65534, to: 65534 }], gids: [{ from: 100, to: 100 }], idOffset: null }, 'root squash on by default once the block is there');
  const off = validate(DAEMON, { 'acme.yaml': `${base}nfs: { rootSquash: false, anonUid: 99 }\n` });
  t.match(off.config?.domains[0]?.nfs, { rootSquash: false, anonUid: 99, uids: null });
  const bad = validate(DAEMON, { 'acme.yaml': `${base}nfs: { uids: ["5-1", "x"] }\n` });
  t.same(briefs(bad.problems), ['acme.yaml:4:15 /nfs/uids/0 SGW_ERR_CONFIG_SCHEMA', 'acme.yaml:4:22 /nfs/uids/1 SGW_ERR_CONFIG_SCHEMA']);
});

t.test('NFS id offset map: windows of 65536 guest ids that must not overlap between domains', async (t) => {
  const dom = (name: string, ip: string, nfs: string): string => `name: ${name}\nproject: p\nsourceIp: ${ip}\nnfs: ${nfs}\n`;
  const ok = validate(DAEMON, { 'acme.yaml': dom('acme', '198.18.0.11', '{ idOffset: 131072 }'), 'beta.yaml': dom('beta', '198.18.0.12', '{ idOffset: 196608 }') });
  t.same(ok.problems, []);
  t.match(ok.config?.domains.map((d) => d.nfs?.idOffset), [131072, 196608]);
  const overlap = validate(DAEMON, { 'acme.yaml': dom('acme', '198.18.0.11', '{ idOffset: 131072 }'), 'beta.yaml': dom('beta', '198.18.0.12', '{ idOffset: 150000 }') });
  t.same(briefs(overlap.problems), ['beta.yaml:4:18 /nfs/idOffset SGW_ERR_CONFIG_DUPLICATE']);
  t.match(overlap.problems[0]?.message, /overlaps domain "acme" \(acme\.yaml, idOffset 131072\): backend ids 150000-196607/);
  const low = validate(DAEMON, { 'acme.yaml': dom('acme', '198.18.0.11', '{ idOffset: 1000 }') });
  t.same(briefs(low.problems), ['acme.yaml:4:18 /nfs/idOffset SGW_ERR_CONFIG_SCHEMA'], "the backend's own ids (below 65536) are no domain's window");
  const wide = validate(DAEMON, { 'acme.yaml': dom('acme', '198.18.0.11', '{ idOffset: 131072, uids: ["1000-70000"], anonGid: 70000 }') });
  t.same(briefs(wide.problems), ['acme.yaml:4:33 /nfs/uids/0 SGW_ERR_CONFIG_SCHEMA', 'acme.yaml:4:57 /nfs/anonGid SGW_ERR_CONFIG_SCHEMA'], 'ranges and anonymous ids are guest ids inside the window');
});
