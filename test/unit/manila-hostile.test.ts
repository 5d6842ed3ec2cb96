/**
 * Issue 14, finding 3: a hostile Keystone/Manila on 127.0.0.1 that echoes
 * the token and the password back, in error bodies (JSON, escaped JSON,
 * URL-encoded, HTML) and in headers. The real client, source, logger,
 * admin server and `sharegw status` CLI run; only the API is fake. Neither
 * secret may appear in an error, a log line, or status (text and JSON).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import { AdminServer } from '../../src/admin/server';
import { ManilaClient } from '../../src/control/manila/client';
import { ManilaSource } from '../../src/control/manila/source';
import { Secret } from '../../src/config/secret';
import { describeError, ManilaError } from '../../src/errors';
import type { ManilaSettings } from '../../src/model/config';
import { Counters } from '../../src/observability/counters';
import { createLogger } from '../../src/observability/logger';
import { secretForms } from '../../src/util/redact';

const PROJECT = 'aaaabbbbccccddddeeeeffff00001111';
// Characters that JSON, URLs and forms each encode differently.
const PASSWORD = 'Pw/"hostile" wörd+1&';
const TOKEN = 'gAAAAABhostileToken-0123456789_abcdefghijklmnopqrstuvwxyzABCDEFG';
const CLI = path.join(__dirname, '../../src/cli/sharegw.js');

/** Every form of both secrets that must never show. */
const FORBIDDEN = [...secretForms(PASSWORD), ...secretForms(TOKEN), 'hostileToken', 'hostile" w'];

function leaks(text: string): string[] {
  return FORBIDDEN.filter((f) => text.includes(f));
}

type Mode = 'json' | 'escaped' | 'urlencoded' | 'html' | 'headers';

/** Echoes what it got, the way a broken or hostile proxy or API would. */
function echoBody(mode: Mode, req: http.IncomingMessage, body: string): string {
  const tok = String(req.headers['x-auth-token'] ?? '');
  switch (mode) {
    case 'json':
      return JSON.stringify({ error: { message: `bad token ${tok}`, request: body === '' ? null : (JSON.parse(body) as unknown), token: tok } });
    case 'escaped':
      return JSON.stringify({ badRequest: { message: JSON.stringify({ headers: req.headers, body }) } }).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
    case 'urlencoded':
      return `error=denied&token=${encodeURIComponent(tok)}&echo=${encodeURIComponent(body)}`;
    case 'html':
      return `<html><body><h1>500</h1><pre>\r\n${req.method} ${req.url}\r\nX-Auth-Token: ${tok}\r\n\r\n${body}\u001b[2J</pre></body></html>`;
    case 'headers':
      return '';
  }
}

async function hostile(t: { teardown(fn: () => unknown): void }, mode: Mode): Promise<string> {
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const echoHeaders = { 'X-Openstack-Request-Id': `req-${String(req.headers['x-auth-token'] ?? PASSWORD)}`, 'X-Echo-Token': String(req.headers['x-auth-token'] ?? '') };
      if (url.pathname === '/v3/auth/tokens') {
        res.writeHead(201, { 'Content-Type': 'application/json', 'X-Subject-Token': TOKEN });
        res.end(
          JSON.stringify({
            token: { expires_at: new Date(Date.now() + 3600_000).toISOString(), project: { id: PROJECT }, catalog: [{ type: 'sharev2', endpoints: [{ interface: 'public', url: `${base}/v2/${PROJECT}` }] }] },
          }),
        );
        return;
      }
      if (url.pathname === '/v2/') {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ versions: [{ id: 'v2.0', status: 'CURRENT', version: '2.73', min_version: '2.0' }] }));
        return;
      }
      // Every Manila resource: a 500 that echoes the request.
      res.writeHead(mode === 'headers' ? 403 : 500, { 'Content-Type': mode === 'html' ? 'text/html' : 'application/json', ...echoHeaders });
      res.end(echoBody(mode, req, body));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function settings(url: string): ManilaSettings {
  return {
    cloud: null,
    authUrl: `${url}/v3`,
    auth: { type: 'password', username: 'gw', password: new Secret(PASSWORD), project: { id: PROJECT }, userDomain: 'Default' },
    endpoint: null,
    interface: 'public',
    region: null,
    caFile: null,
    timeoutMs: 2000,
    intervalMs: 60_000,
    minIntervalMs: 1000,
    notifications: new Secret(`amqp://openstack:${encodeURIComponent(PASSWORD)}@127.0.0.1:1/`),
    notificationsExchange: 'openstack',
  };
}

/** `sharegw status` against a socket; resolves with its stdout. */
function sharegw(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (code) => resolve({ code, out }));
  });
}

for (const mode of ['json', 'escaped', 'urlencoded', 'html', 'headers'] as const) {
  t.test(`a Manila that echoes the token and password (${mode}) leaks neither into errors, logs or status`, async (t) => {
    const url = await hostile(t, mode);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgw-hostile-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const logs: string[] = [];
    const log = createLogger('debug', new Writable({ write: (c: Buffer, _e, cb) => (logs.push(c.toString()), cb()) }));

    // The client alone: the error it throws.
    const client = new ManilaClient(settings(url), { httpOptions: { attempts: 1 } });
    t.teardown(() => client.close());
    const err = await client.shareNetwork('sn-1').then(
      () => null,
      (e: unknown) => e,
    );
    t.ok(err instanceof ManilaError, 'a ManilaError');
    const e = err as ManilaError;
    t.equal(e.code, mode === 'headers' ? 'SGW_ERR_MANILA_AUTH' : 'SGW_ERR_MANILA_HTTP');
    t.strictSame(leaks(`${e.message} ${String(e.requestId)} ${JSON.stringify(describeError(e))}`), [], 'the error holds no secret');
    t.ok(e.message.length < 600, `the message is short (${e.message.length})`);

    // The source: its log lines and its status, as the daemon would serve them.
    const source = new ManilaSource({
      settings: settings(url),
      node: 'hv1',
      stateDir: dir,
      log,
      counters: new Counters(),
      onChange: () => undefined,
      client: new ManilaClient(settings(url), { httpOptions: { attempts: 1 } }),
    });
    t.teardown(() => source.stop());
    await source.start([{ name: 'acme', project: PROJECT, shareNetwork: 'sn-1' }]);
    const st = source.status();
    t.ok(st.lastError !== null || st.domains[0]?.error !== null, 'the sync failed');
    t.strictSame(leaks(JSON.stringify(st)), [], 'the source status holds no secret');
    // A line that quotes the password directly, as careless code would.
    log.error({ detail: `echo ${PASSWORD}`, url: settings(url).notifications?.reveal() }, `token was ${TOKEN}`);
    const text = logs.join('');
    t.match(text, /Manila sync of domain failed/, 'the failure was logged');
    t.strictSame(leaks(text), [], 'no log line holds a secret');

    // The real admin server and `sharegw status`, text and JSON.
    const sock = path.join(dir, 'admin.sock');
    const admin = new AdminServer(
      sock,
      () =>
        Promise.resolve({
          node: 'hv1',
          dataplane: 'kernel',
          generation: 1,
          lastSync: { ok: false, at: 'now', error: { message: `careless ${TOKEN} ${PASSWORD}` } },
          domains: [],
          kernel: null,
          proxy: null,
          manila: st,
        }),
      log,
      new Counters(),
    );
    await admin.listen();
    t.teardown(() => admin.close());
    const human = await sharegw(['status', '--socket', sock]);
    t.equal(human.code, 0, human.out);
    t.match(human.out, /manila: catalog \(.*\), last good sync never, FAILING since/);
    t.strictSame(leaks(human.out), [], 'status text holds no secret');
    const json = await sharegw(['status', '--json', '--socket', sock]);
    t.equal(json.code, 0);
    t.ok((JSON.parse(json.out) as { manila: unknown }).manila !== null);
    t.strictSame(leaks(json.out), [], 'status JSON holds no secret');
  });
}

t.test('a Keystone that echoes the password in its error body leaks it nowhere', async (t) => {
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      res.writeHead(500, { 'Content-Type': 'application/json', 'X-Openstack-Request-Id': `req-${PASSWORD}` });
      res.end(JSON.stringify({ error: { code: 500, message: `could not parse ${body}`, title: 'Internal Server Error' } }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = new ManilaClient({ ...settings(url), notifications: null }, { httpOptions: { attempts: 1, sleep: () => Promise.resolve() } });
  t.teardown(() => client.close());
  const err = (await client.version().then(
    () => null,
    (e: unknown) => e,
  )) as ManilaError;
  t.equal(err.code, 'SGW_ERR_MANILA_HTTP');
  t.match(err.message, /^POST http:\/\/127\.0\.0\.1:\d+\/v3\/auth\/tokens: HTTP 500: /);
  t.match(err.message, /could not parse/, 'the excerpt stays useful');
  t.strictSame(leaks(`${err.message} ${String(err.requestId)}`), []);
});
