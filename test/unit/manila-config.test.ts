import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { inspect } from 'node:util';
import t from 'tap';
import { cloudsSearchPath } from '../../src/config/clouds';
import { loadConfig } from '../../src/config/load';
import { Secret } from '../../src/config/secret';
import { validateConfig } from '../../src/config/validate';
import type { ValidationResult } from '../../src/config/validate';
import { ConfigError } from '../../src/errors';

const FILE = '/etc/sharegw/sharegwd.yaml';

function validate(manila: string, clouds: string | null = null): ValidationResult {
  return validateConfig({ file: FILE, text: `node: hv1\nmanila:\n${manila}` }, [], '/etc/sharegw/domains.d', clouds === null ? null : { file: '/etc/openstack/clouds.yaml', text: clouds });
}

t.test('validateConfig() reads the manila block exactly as the issue writes it', async (t) => {
  const r = validate(`  authUrl: https://keystone.example:5000/v3
  auth: { type: password, username: sharegw, password: "s3cr3t-pw", project: service, domain: Default }
  endpoint: http://127.0.0.1:18786/v2
  interval: 10s
  notifications: amqp://guest:guest@127.0.0.1:5672/
`);
  t.same(r.problems, []);
  const m = r.config?.daemon.manila;
  t.equal(m?.authUrl, 'https://keystone.example:5000/v3');
  t.equal(m?.intervalMs, 10_000);
  t.equal(m?.interface, 'public');
  t.equal(m?.auth.type, 'password');
  if (m?.auth.type === 'password') {
    t.equal(m.auth.password.reveal(), 's3cr3t-pw');
    t.same(m.auth.project, { name: 'service', domain: 'Default' });
  }
  t.equal(m?.notifications?.reveal(), 'amqp://guest:guest@127.0.0.1:5672/');
  const text = `${JSON.stringify(r.config)} ${inspect(r.config, { depth: 10 })}`;
  t.notMatch(text, /s3cr3t-pw/, 'the password is never in JSON or inspect output');
  t.notMatch(text, /guest:guest/, 'nor the AMQP URL with its password');
});

t.test('validateConfig() accepts application credentials and noauth', async (t) => {
  const a = validate(`  authUrl: https://k/v3\n  auth: { type: applicationCredential, id: abc, secret: xyz }\n`);
  t.same(a.problems, []);
  t.equal(a.config?.daemon.manila?.auth.type, 'applicationCredential');
  const n = validate(`  auth: { type: noauth, project: 9f2c1d6e5b4a43c7a8e1f0d2c3b4a596 }\n  endpoint: http://127.0.0.1:18786/v2\n`);
  t.same(n.problems, []);
  t.same(n.config?.daemon.manila?.auth, { type: 'noauth', user: 'admin', project: '9f2c1d6e5b4a43c7a8e1f0d2c3b4a596' });
  t.equal(n.config?.daemon.manila?.authUrl, null);
});

t.test('validateConfig() reports manila problems by key, never quoting secrets', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['  auth: { type: password, username: u, password: "pw-XYZ", project: p }\n', '/manila', /authUrl/],
    ['  auth: { type: noauth, project: 9f2c }\n', '/manila', /endpoint/],
    ['  auth: { type: noauth, project: admin }\n  endpoint: http://x/v2\n', '/manila/auth/project', /hex/],
    ['  authUrl: "ftp://pw-XYZ@k/v3"\n  auth: { type: applicationCredential, id: a, secret: pw-XYZ }\n', '/manila/authUrl', /http or https/],
    ['  authUrl: https://k/v3\n  auth: { type: applicationCredential, id: a, secret: s }\n  notifications: "not a url pw-XYZ"\n', '/manila/notifications', /not a URL/],
    ['  authUrl: https://k/v3\n  auth: { type: password, username: u, password: pw-XYZ, project: p, projectId: q }\n', '/manila/auth', /exactly one/],
    ['  authUrl: https://k/v3\n  auth: { type: applicationCredential, id: a, secret: s }\n  interval: 5s\n  minInterval: 10s\n', '/manila/minInterval', /interval/],
    ['  endpoint: http://x/v2\n', '/manila', /auth/],
    ['  auth: { type: noauth, project: 9f2c }\n  endpoint: "http://u:pw-XYZ@x/v2"\n', '/manila/endpoint', /user or password/],
    ['  auth: { type: kerberos }\n', '/manila/auth/type', /./],
  ];
  for (const [yaml, pointer, msg] of cases) {
    const r = validate(yaml);
    t.equal(r.config, null, yaml);
    const p = r.problems.find((x) => x.pointer === pointer);
    t.ok(p, `${pointer} reported for ${yaml}`);
    t.match(p?.message ?? '', msg);
    t.notMatch(JSON.stringify(r.problems), /pw-XYZ/, 'no secret in problems');
  }
});

const CLOUDS = `clouds:
  mycloud:
    auth:
      auth_url: https://keystone.example:5000/v3
      username: sharegw
      password: "cloud-pw-123"
      project_name: service
      user_domain_name: Users
      project_domain_name: Projects
    region_name: RegionTwo
    interface: internal
  appcred:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://keystone.example:5000/v3
      application_credential_id: ac1
      application_credential_secret: "ac-secret-456"
`;

t.test('validateConfig() takes credentials, region and interface from a clouds.yaml entry', async (t) => {
  const r = validate('  cloud: mycloud\n', CLOUDS);
  t.same(r.problems, []);
  const m = r.config?.daemon.manila;
  t.equal(m?.authUrl, 'https://keystone.example:5000/v3');
  t.equal(m?.region, 'RegionTwo');
  t.equal(m?.interface, 'internal');
  t.same(m?.cloud, { name: 'mycloud', file: '/etc/openstack/clouds.yaml' });
  if (m?.auth.type === 'password') {
    t.equal(m.auth.userDomain, 'Users');
    t.same(m.auth.project, { name: 'service', domain: 'Projects' });
  } else {
    t.fail('password auth expected');
  }
  const a = validate('  cloud: appcred\n  region: R3\n', CLOUDS);
  t.same(a.problems, []);
  t.equal(a.config?.daemon.manila?.auth.type, 'applicationCredential');
  t.equal(a.config?.daemon.manila?.region, 'R3', 'explicit keys win over the cloud entry');
  t.notMatch(JSON.stringify(a.config), /ac-secret-456/);
});

t.test('validateConfig() names a missing cloud and the ones that exist', async (t) => {
  const r = validate('  cloud: nope\n', CLOUDS);
  t.match(r.problems[0]?.message, /no cloud "nope" \(it has: mycloud, appcred\)/);
  t.notMatch(JSON.stringify(r.problems), /cloud-pw-123/);
  const none = validate('  cloud: mycloud\n');
  t.match(none.problems[0]?.message, /no clouds.yaml found/);
});

t.test('loadConfig() finds clouds.yaml through OS_CLIENT_CONFIG_FILE', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgw-clouds-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'domains.d'));
  fs.writeFileSync(path.join(dir, 'sharegwd.yaml'), 'node: hv1\nmanila:\n  cloud: mycloud\n');
  fs.writeFileSync(path.join(dir, 'my-clouds.yaml'), CLOUDS);
  const saved = process.env['OS_CLIENT_CONFIG_FILE'];
  t.teardown(() => {
    if (saved === undefined) {
      delete process.env['OS_CLIENT_CONFIG_FILE'];
    } else {
      process.env['OS_CLIENT_CONFIG_FILE'] = saved;
    }
  });
  process.env['OS_CLIENT_CONFIG_FILE'] = path.join(dir, 'my-clouds.yaml');
  const c = loadConfig(path.join(dir, 'sharegwd.yaml'));
  t.equal(c.daemon.manila?.cloud?.file, path.join(dir, 'my-clouds.yaml'));
  process.env['OS_CLIENT_CONFIG_FILE'] = path.join(dir, 'missing.yaml');
  t.throws(() => loadConfig(path.join(dir, 'sharegwd.yaml')), ConfigError);
});

t.test('cloudsSearchPath() follows the OpenStack search order', async (t) => {
  t.same(cloudsSearchPath({}, '/srv', '/home/u'), ['/srv/clouds.yaml', '/home/u/.config/openstack/clouds.yaml', '/etc/openstack/clouds.yaml']);
  t.same(cloudsSearchPath({ OS_CLIENT_CONFIG_FILE: 'c.yaml' }, '/srv', '/home/u'), ['/srv/c.yaml']);
});

t.test('Secret never turns into its value by accident', async (t) => {
  const s = new Secret('hunter2');
  t.equal(String(s), '[redacted]');
  t.equal(`${s}`, '[redacted]');
  t.equal(JSON.stringify({ s }), '{"s":"[redacted]"}');
  t.equal(inspect({ s }), "{ s: '[redacted]' }".replace("'[redacted]'", '[redacted]'));
  t.same(Object.keys(s), []);
  t.equal(s.reveal(), 'hunter2');
  t.ok(s.equals(new Secret('hunter2')));
  t.notOk(s.equals(new Secret('other')));
});
