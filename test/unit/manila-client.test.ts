/**
 * The Manila client against a fake HTTP server on 127.0.0.1: only what lies
 * around the client is faked (Keystone and Manila answers, dropped
 * connections, slow answers); the client's own HTTP, retry, paging and
 * token code runs for real.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import t from 'tap';
import { ManilaClient, PAGE_SIZE, v2Base } from '../../src/control/manila/client';
import { HttpTransport } from '../../src/control/manila/http';
import { catalogEndpoint, KeystoneTokens } from '../../src/control/manila/keystone';
import { Secret } from '../../src/config/secret';
import { ManilaError } from '../../src/errors';
import type { ManilaSettings } from '../../src/model/config';
import { createLogger } from '../../src/observability/logger';

const PROJECT = 'aaaabbbbccccddddeeeeffff00001111';
const PASSWORD = 'pw-never-shown-42';

type Handler = (req: http.IncomingMessage, body: string, res: http.ServerResponse) => void;

interface Fake {
  url: string;
  calls: { method: string; path: string; headers: http.IncomingHttpHeaders; body: string }[];
  handler: Handler;
  close(): Promise<void>;
}

async function fake(t: { teardown(fn: () => unknown): void }, handler: Handler): Promise<Fake> {
  const f: Partial<Fake> & { calls: Fake['calls'] } = { calls: [], handler };
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      f.calls.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body });
      (f as Fake).handler(req, body, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  f.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  f.close = () => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  });
  t.teardown(() => (f as Fake).close());
  return f as Fake;
}

function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'application/json', 'X-Compute-Request-Id': 'req-test-1', ...headers });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
}

const VERSIONS = { versions: [{ id: 'v2.0', status: 'CURRENT', version: '2.73', min_version: '2.0' }] };

function settings(url: string, over: Partial<ManilaSettings> = {}): ManilaSettings {
  return {
    cloud: null,
    authUrl: null,
    auth: { type: 'noauth', user: 'admin', project: PROJECT },
    endpoint: `${url}/v2`,
    interface: 'public',
    region: null,
    caFile: null,
    timeoutMs: 2000,
    intervalMs: 10_000,
    minIntervalMs: 1000,
    notifications: null,
    notificationsExchange: 'openstack',
    ...over,
  };
}

const noSleep = { sleep: () => Promise.resolve(), random: () => 0.5 };

/** A Manila that answers versions and the given routes (path without query). */
function manila(routes: Record<string, (q: URLSearchParams) => [number, unknown]>): Handler {
  return (req, _body, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    if (u.pathname === '/v2/') {
      json(res, 200, VERSIONS);
      return;
    }
    const rest = u.pathname.replace(`/v2/${PROJECT}/`, '');
    const r = routes[rest];
    if (r === undefined) {
      json(res, 404, { itemNotFound: { code: 404, message: 'The resource could not be found.' } });
      return;
    }
    const [status, body] = r(u.searchParams);
    json(res, status, body);
  };
}

t.test('ManilaClient.version() negotiates the highest microversion both sides know', async (t) => {
  const f = await fake(t, manila({}));
  const c = new ManilaClient(settings(f.url), { httpOptions: noSleep });
  t.teardown(() => c.close());
  t.same(await c.version(), { microversion: '2.73', serverMax: '2.73', base: `${f.url}/v2` });
  t.same(await c.features(), { networkStatus: true, encryption: false, microversion: '2.73' });
  f.handler = (_req, _b, res) => json(res, 200, { versions: [{ id: 'v2.0', status: 'CURRENT', version: '2.95', min_version: '2.0' }] });
  const c2 = new ManilaClient(settings(f.url), { httpOptions: noSleep });
  t.teardown(() => c2.close());
  t.equal((await c2.version()).microversion, '2.90', 'capped at the newest version this client knows');
  t.equal((await c2.features()).encryption, true);
  f.handler = (_req, _b, res) => json(res, 200, { versions: [{ id: 'v2.0', status: 'CURRENT', version: '2.49', min_version: '2.0' }] });
  const c3 = new ManilaClient(settings(f.url), { httpOptions: noSleep });
  t.teardown(() => c3.close());
  await t.rejects(c3.version(), { code: 'SGW_ERR_MANILA_VERSION', message: /2\.49.*needs 2\.51/ });
});

t.test('ManilaClient sends noauth tokens and the microversion on every call', async (t) => {
  const f = await fake(t, manila({ 'share-networks/sn1': () => [200, { share_network: { id: 'sn1', project_id: PROJECT, status: 'active', share_network_subnets: [] } }] }));
  const c = new ManilaClient(settings(f.url), { httpOptions: noSleep });
  t.teardown(() => c.close());
  const sn = await c.shareNetwork('sn1');
  t.equal(sn?.status, 'active');
  const call = f.calls.at(-1);
  t.equal(call?.headers['x-auth-token'], `admin:${PROJECT}`);
  t.equal(call?.headers['x-openstack-manila-api-version'], '2.73');
  t.equal(await c.shareNetwork('missing'), null, '404 on a share network is null, not an error');
});

t.test('ManilaClient.shares() pages with limit and offset, and asks other projects with all_tenants', async (t) => {
  const total = PAGE_SIZE * 2 + 7;
  const all = Array.from({ length: total }, (_, i) => ({ id: `s${String(i).padStart(4, '0')}`, status: 'available', share_proto: 'NFS', project_id: 'other', share_network_id: 'sn1' }));
  const f = await fake(
    t,
    manila({
      'shares/detail': (q) => {
        const off = Number(q.get('offset'));
        const lim = Number(q.get('limit'));
        return [200, { shares: all.slice(off, off + lim) }];
      },
    }),
  );
  const c = new ManilaClient(settings(f.url), { httpOptions: noSleep });
  t.teardown(() => c.close());
  const got = await c.shares('sn1', 'other');
  t.equal(got.length, total);
  const pages = f.calls.filter((x) => x.path.includes('shares/detail'));
  t.equal(pages.length, 3);
  const q = new URL(pages[1]?.path ?? '', 'http://x').searchParams;
  t.equal(q.get('offset'), String(PAGE_SIZE));
  t.equal(q.get('share_network_id'), 'sn1');
  t.equal(q.get('all_tenants'), '1');
  t.equal(q.get('project_id'), 'other');
  await c.shares('sn1', PROJECT);
  t.equal(new URL(f.calls.at(-1)?.path ?? '', 'http://x').searchParams.get('all_tenants'), null, 'own project: no all_tenants');
});

t.test('HttpTransport retries GETs on 503 and dropped connections, with growing jittered backoff', async (t) => {
  let n = 0;
  const f = await fake(t, (req, _b, res) => {
    n++;
    if (n === 1) {
      req.socket.destroy();
      return;
    }
    if (n === 2) {
      json(res, 503, { error: 'busy' });
      return;
    }
    json(res, 200, { ok: true });
  });
  const sleeps: number[] = [];
  const h = new HttpTransport({ timeoutMs: 1000, attempts: 3, backoffMs: 100, sleep: (ms) => (sleeps.push(ms), Promise.resolve()), random: () => 0.5 });
  t.teardown(() => h.close());
  const r = await h.request({ method: 'GET', url: `${f.url}/x` });
  t.equal(r.status, 200);
  t.same(sleeps, [50, 100], 'full jitter of 100, then 200 ms');
  t.equal(h.stats.retries, 2);
  n = 0;
  const post = await h.request({ method: 'POST', url: `${f.url}/x`, body: {} }).catch((e: unknown) => e);
  t.match(post, { code: 'SGW_ERR_MANILA_UNREACHABLE' }, 'a POST is not repeated');
  t.equal(n, 1);
});

t.test('HttpTransport gives up after its attempts with SGW_ERR_MANILA_UNREACHABLE (refused, timeout)', async (t) => {
  const f = await fake(t, () => {
    // never answers
  });
  const h = new HttpTransport({ timeoutMs: 150, attempts: 2, ...noSleep });
  t.teardown(() => h.close());
  await t.rejects(h.request({ method: 'GET', url: `${f.url}/slow` }), { code: 'SGW_ERR_MANILA_UNREACHABLE', message: /within 150 ms/ });
  await f.close();
  await t.rejects(h.request({ method: 'GET', url: `${f.url}/gone` }), { code: 'SGW_ERR_MANILA_UNREACHABLE', message: /ECONNREFUSED/ });
});

t.test('ManilaClient turns bad shapes and non-JSON into SGW_ERR_MANILA_SHAPE, HTTP errors into SGW_ERR_MANILA_HTTP', async (t) => {
  const f = await fake(
    t,
    manila({
      'share-networks/bad': () => [200, { share_network: { id: 5 } }],
      'share-networks/html': () => [200, '<html>proxy error</html>'],
      'share-networks/boom': () => [500, { computeFault: { code: 500, message: 'db down' } }],
    }),
  );
  const c = new ManilaClient(settings(f.url), { httpOptions: { ...noSleep, attempts: 1 } });
  t.teardown(() => c.close());
  await t.rejects(c.shareNetwork('bad'), { code: 'SGW_ERR_MANILA_SHAPE', message: /share_network\.id/ });
  await t.rejects(c.shareNetwork('html'), { code: 'SGW_ERR_MANILA_SHAPE', message: /not JSON/ });
  const e = await c.shareNetwork('boom').catch((x: unknown) => x);
  t.ok(e instanceof ManilaError);
  t.match(e, { code: 'SGW_ERR_MANILA_HTTP', status: 500, requestId: 'req-test-1', message: /db down/ });
});

t.test('security service passwords are stripped when parsed', async (t) => {
  const f = await fake(t, manila({ 'security-services/detail': () => [200, { security_services: [{ id: 'ss', type: 'ldap', password: 'ldap-secret-9', user: 'cn=x' }] }] }));
  const c = new ManilaClient(settings(f.url), { httpOptions: noSleep });
  t.teardown(() => c.close());
  const ss = await c.securityServices('sn', PROJECT);
  t.notMatch(JSON.stringify(ss), /ldap-secret-9/);
  t.equal(ss[0]?.user, 'cn=x');
});

function keystone(f: { tokens: number; expiresInS: number; refuse?: boolean }, manilaUrl: () => string): Handler {
  return (req, body, res) => {
    if (req.url === '/v3/auth/tokens') {
      const b = JSON.parse(body) as { auth: { identity: { password?: { user: { password: string } } } } };
      if (f.refuse === true || b.auth.identity.password?.user.password !== PASSWORD) {
        json(res, 401, { error: { code: 401, title: 'Unauthorized', message: 'The request you have made requires authentication.' } });
        return;
      }
      f.tokens++;
      json(
        res,
        201,
        {
          token: {
            expires_at: new Date(Date.now() + f.expiresInS * 1000).toISOString(),
            project: { id: PROJECT, name: 'service' },
            catalog: [
              { type: 'identity', endpoints: [] },
              {
                type: 'sharev2',
                endpoints: [
                  { interface: 'internal', region_id: 'R1', url: `${manilaUrl()}/v2/${PROJECT}` },
                  { interface: 'public', region_id: 'R1', url: 'http://203.0.113.1:1/v2' },
                ],
              },
            ],
          },
        },
        { 'X-Subject-Token': `tok-${f.tokens}` },
      );
      return;
    }
    manila({ 'share-networks/sn1': () => (req.headers['x-auth-token'] === `tok-${f.tokens}` ? [200, { share_network: { id: 'sn1', project_id: PROJECT, share_network_subnets: [] } }] : [401, { error: 'no' }]) })(req, body, res);
  };
}

t.test('Keystone: password tokens are reused, renewed before expiry, renewed on a 401, and the endpoint comes from the catalog', async (t) => {
  const ks = { tokens: 0, expiresInS: 3600 };
  let base = '';
  const f = await fake(t, keystone(ks, () => base));
  base = f.url;
  const s = settings(f.url, {
    authUrl: `${f.url}/v3`,
    endpoint: null,
    interface: 'internal',
    region: 'R1',
    auth: { type: 'password', username: 'sharegw', password: new Secret(PASSWORD), project: { name: 'service', domain: 'Default' }, userDomain: 'Default' },
  });
  const c = new ManilaClient(s, { httpOptions: noSleep });
  t.teardown(() => c.close());
  await c.shareNetwork('sn1');
  await c.shareNetwork('sn1');
  t.equal(ks.tokens, 1, 'one token for many calls');
  t.equal(f.calls.find((x) => x.path === '/v3/auth/tokens')?.body.includes('"name":"service"'), true, 'scoped to the project by name');
  // Keystone revoked it (rotation): Manila answers 401, one new token, same call succeeds.
  ks.tokens++;
  await c.shareNetwork('sn1');
  t.equal(c.tokens.issued, 2);

  // A token close to its expiry is renewed before use.
  let now = Date.now();
  const ks2 = { tokens: 0, expiresInS: 600 };
  const f2 = await fake(t, keystone(ks2, () => f2.url));
  const h = new HttpTransport({ timeoutMs: 1000, ...noSleep });
  t.teardown(() => h.close());
  const kt = new KeystoneTokens(h, `${f2.url}/v3`, { type: 'password', username: 'u', password: new Secret(PASSWORD), project: { id: PROJECT }, userDomain: 'Default' }, () => now);
  await kt.get();
  now += 500_000;
  await kt.get();
  t.equal(ks2.tokens, 1, 'still valid for 100 s > 60 s margin');
  now += 50_000;
  await kt.get();
  t.equal(ks2.tokens, 2, 'inside the margin: renewed');
});

t.test('Keystone: a bad password is SGW_ERR_MANILA_AUTH, and no secret reaches errors or logs', async (t) => {
  const ks = { tokens: 0, expiresInS: 3600 };
  const f = await fake(t, keystone(ks, () => f.url));
  const s = settings(f.url, {
    authUrl: `${f.url}/v3`,
    auth: { type: 'password', username: 'sharegw', password: new Secret('wrong-pw-77'), project: { name: 'service', domain: 'Default' }, userDomain: 'Default' },
  });
  const c = new ManilaClient(s, { httpOptions: noSleep });
  t.teardown(() => c.close());
  const e = await c.shareNetwork('sn1').catch((x: unknown) => x);
  t.match(e, { code: 'SGW_ERR_MANILA_AUTH', status: 401, message: /user "sharegw"/ });
  const lines: string[] = [];
  const log = createLogger('debug', new Writable({ write: (c: Buffer, _e, cb) => (lines.push(c.toString()), cb()) }));
  log.error({ err: e, settings: s, auth: s.auth, headers: { 'X-Auth-Token': 'tok-1' } }, 'sync failed');
  log.flush();
  const all = `${lines.join('')} ${JSON.stringify(e)} ${String(e)} ${(e as Error).stack ?? ''}`;
  t.notMatch(all, /wrong-pw-77/);
  t.notMatch(all, /tok-1/);
  const appCred = settings(f.url, { authUrl: `${f.url}/v3`, auth: { type: 'applicationCredential', id: 'ac', secret: new Secret('ac-secret-88') } });
  const c2 = new ManilaClient(appCred, { httpOptions: noSleep });
  t.teardown(() => c2.close());
  const e2 = await c2.shareNetwork('sn1').catch((x: unknown) => x);
  t.match(e2, { code: 'SGW_ERR_MANILA_AUTH', message: /application credential "ac"/ });
  t.notMatch(`${JSON.stringify(e2)} ${String(e2)}`, /ac-secret-88/);
});

t.test('catalogEndpoint() and v2Base() pick the sharev2 URL and strip the project', async (t) => {
  const cat = [{ type: 'sharev2', endpoints: [{ interface: 'public', region_id: 'R1', url: 'http://m:8786/v2/abc123' }] }];
  t.equal(catalogEndpoint(cat, 'public', 'R1'), 'http://m:8786/v2/abc123');
  t.throws(() => catalogEndpoint(cat, 'internal', null), { code: 'SGW_ERR_MANILA_CATALOG' });
  t.throws(() => catalogEndpoint([], 'public', null), { code: 'SGW_ERR_MANILA_CATALOG' });
  t.equal(v2Base('http://m:8786/v2/abc123'), 'http://m:8786/v2');
  t.equal(v2Base('http://m:8786/v2/'), 'http://m:8786/v2');
});

t.test('HttpTransport trusts the caFile bundle and refuses an unknown CA', async (t) => {
  const { execFileSync } = await import('node:child_process');
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const https = await import('node:https');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgw-tls-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=manila.test', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const server = https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, (_req, res) => json(res, 200, VERSIONS));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  }));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/v2/`;
  const trusted = new HttpTransport({ timeoutMs: 2000, caFile: cert, attempts: 1 });
  t.teardown(() => trusted.close());
  t.equal((await trusted.request({ method: 'GET', url })).status, 200, 'the bundle is trusted');
  const plain = new HttpTransport({ timeoutMs: 2000, attempts: 1 });
  t.teardown(() => plain.close());
  await t.rejects(plain.request({ method: 'GET', url }), { code: 'SGW_ERR_MANILA_UNREACHABLE', message: /SELF_SIGNED|CERT|certificate/i }, 'Node\'s CAs do not know it');
});
