import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { adminCall, adminRequest } from '../../src/admin/client';
import { ADMIN_COMMANDS, ADMIN_ERRORS, encodeRequest, MAX_GUEST_REF, MAX_LINE, parseRequest } from '../../src/admin/protocol';
import type { AdminCommand, AdminRequest } from '../../src/admin/protocol';
import { AdminServer } from '../../src/admin/server';
import { AdminProtocolError, SgwError } from '../../src/errors';
import { Counters } from '../../src/observability/counters';
import { createLogger } from '../../src/observability/logger';
import { rejection, thrown } from '../helpers/errors';



function errorShape(err: unknown): { isAdminError: boolean; isSgwError: boolean; name: string; code: string; message: string } {
  const e = err as AdminProtocolError;
  return { isAdminError: err instanceof AdminProtocolError, isSgwError: err instanceof SgwError, name: e.name, code: e.code, message: e.message };
}

const UNKNOWN = 'unknown command; expected one of ping, status, reload, flows, explain';

t.test('protocol constants', async (t) => {
  t.strictSame([...ADMIN_COMMANDS], ['ping', 'status', 'reload', 'flows', 'explain']);
  t.equal(MAX_LINE, 65536);
  t.equal(MAX_GUEST_REF, 255);
  t.strictSame(ADMIN_ERRORS, {
    badJson: 'SGW_ERR_ADMIN_BAD_JSON',
    badRequest: 'SGW_ERR_ADMIN_BAD_REQUEST',
    unknownCommand: 'SGW_ERR_ADMIN_UNKNOWN_COMMAND',
    unknownArgument: 'SGW_ERR_ADMIN_UNKNOWN_ARGUMENT',
    missingArgument: 'SGW_ERR_ADMIN_MISSING_ARGUMENT',
    badArgument: 'SGW_ERR_ADMIN_BAD_ARGUMENT',
    unknownGuest: 'SGW_ERR_ADMIN_UNKNOWN_GUEST',
  }, 'codes are API');
});

t.test('parseRequest() accepts the known commands', async (t) => {
  t.strictSame(parseRequest('{"cmd":"ping"}'), { cmd: 'ping' });
  t.strictSame(parseRequest('{"cmd":"status"}'), { cmd: 'status' });
  t.strictSame(parseRequest('{"cmd":"reload"}'), { cmd: 'reload' });
  t.strictSame(parseRequest(' {"cmd":"ping","extra":[1,2]} \r'), { cmd: 'ping' }, 'whitespace and a CR around the object, extra keys dropped');
});

t.test('parseRequest() rejects with typed, stable codes', async (t) => {
  const cases: [string, string, string][] = [
    ['', 'SGW_ERR_ADMIN_BAD_JSON', 'request is not valid JSON'],
    ['ping', 'SGW_ERR_ADMIN_BAD_JSON', 'request is not valid JSON'],
    ['{"cmd":"ping"', 'SGW_ERR_ADMIN_BAD_JSON', 'request is not valid JSON'],
    ["{'cmd':'ping'}", 'SGW_ERR_ADMIN_BAD_JSON', 'request is not valid JSON'],
    ['{"cmd":"ping"}{"cmd":"ping"}', 'SGW_ERR_ADMIN_BAD_JSON', 'request is not valid JSON'],
    ['null', 'SGW_ERR_ADMIN_BAD_REQUEST', 'request must be a JSON object'],
    ['[]', 'SGW_ERR_ADMIN_BAD_REQUEST', 'request must be a JSON object'],
    ['[{"cmd":"ping"}]', 'SGW_ERR_ADMIN_BAD_REQUEST', 'request must be a JSON object'],
    ['"ping"', 'SGW_ERR_ADMIN_BAD_REQUEST', 'request must be a JSON object'],
    ['42', 'SGW_ERR_ADMIN_BAD_REQUEST', 'request must be a JSON object'],
    ['true', 'SGW_ERR_ADMIN_BAD_REQUEST', 'request must be a JSON object'],
    ['{}', 'SGW_ERR_ADMIN_UNKNOWN_COMMAND', UNKNOWN],
    ['{"cmd":"shutdown"}', 'SGW_ERR_ADMIN_UNKNOWN_COMMAND', UNKNOWN],
    ['{"cmd":"PING"}', 'SGW_ERR_ADMIN_UNKNOWN_COMMAND', UNKNOWN],
    ['{"cmd":""}', 'SGW_ERR_ADMIN_UNKNOWN_COMMAND', UNKNOWN],
    ['{"cmd":1}', 'SGW_ERR_ADMIN_UNKNOWN_COMMAND', UNKNOWN],
    ['{"cmd":["ping"]}', 'SGW_ERR_ADMIN_UNKNOWN_COMMAND', UNKNOWN],
    ['{"cmd":null}', 'SGW_ERR_ADMIN_UNKNOWN_COMMAND', UNKNOWN],
    ['{"command":"ping"}', 'SGW_ERR_ADMIN_UNKNOWN_COMMAND', UNKNOWN],
  ];
  for (const [line, code, message] of cases) {
    t.strictSame(errorShape(thrown(() => parseRequest(line))), { isAdminError: true, isSgwError: true, name: 'AdminProtocolError', code, message }, JSON.stringify(line));
  }
});

t.test('parseRequest() accepts flows and explain with their arguments', async (t) => {
  const ok: [string, AdminRequest, string][] = [
    ['{"cmd":"flows"}', { cmd: 'flows' }, 'flows without filters'],
    ['{"cmd":"flows","guest":"acme/g1"}', { cmd: 'flows', guest: 'acme/g1' }, 'a key'],
    ['{"cmd":"flows","guest":"sgwt-g1","backend":"198.18.0.100"}', { cmd: 'flows', guest: 'sgwt-g1', backend: '198.18.0.100' }, 'both filters'],
    ['{"cmd":"flows","backend":"2001:DB8:0::100"}', { cmd: 'flows', backend: '2001:db8::100' }, 'the backend in canonical form'],
    ['{"cmd":"explain","guest":"g1","to":"198.18.0.100:2049"}', { cmd: 'explain', guest: 'g1', to: { addr: '198.18.0.100', port: 2049 } }, 'explain'],
    ['{"to":"[2001:DB8::100]:445","guest":"acme/g1","cmd":"explain"}', { cmd: 'explain', guest: 'acme/g1', to: { addr: '2001:db8::100', port: 445 } }, 'IPv6 in brackets, any key order'],
    ['{"cmd":"explain","guest":"g1","to":"198.18.0.100:65535"}', { cmd: 'explain', guest: 'g1', to: { addr: '198.18.0.100', port: 65535 } }, 'the highest port'],
    [`{"cmd":"explain","guest":"${'x'.repeat(255)}","to":"198.18.0.100:1"}`, { cmd: 'explain', guest: 'x'.repeat(255), to: { addr: '198.18.0.100', port: 1 } }, 'the longest guest reference'],
  ];
  for (const [line, want, name] of ok) {
    t.strictSame(parseRequest(line), want, name);
  }
});

t.test('parseRequest() rejects bad flows and explain arguments with stable codes', async (t) => {
  const BAD_TO = 'to must be ADDR:PORT (IPv6 as [ADDR]:PORT, port 1-65535)';
  const cases: [string, string, string][] = [
    ['{"cmd":"flows","guset":"g1"}', 'SGW_ERR_ADMIN_UNKNOWN_ARGUMENT', 'flows takes no argument "guset"; expected guest, backend'],
    ['{"cmd":"flows","to":"1.2.3.4:5"}', 'SGW_ERR_ADMIN_UNKNOWN_ARGUMENT', 'flows takes no argument "to"; expected guest, backend'],
    ['{"cmd":"explain","guest":"g1","to":"198.18.0.100:2049","json":true}', 'SGW_ERR_ADMIN_UNKNOWN_ARGUMENT', 'explain takes no argument "json"; expected guest, to'],
    ['{"cmd":"explain","guest":"g1","to":"198.18.0.100:2049","__proto__":1}', 'SGW_ERR_ADMIN_UNKNOWN_ARGUMENT', 'explain takes no argument "__proto__"; expected guest, to'],
    [`{"cmd":"flows","${'k'.repeat(500)}":1}`, 'SGW_ERR_ADMIN_UNKNOWN_ARGUMENT', `flows takes no argument "${'k'.repeat(64)}"; expected guest, backend`],
    ['{"cmd":"explain"}', 'SGW_ERR_ADMIN_MISSING_ARGUMENT', 'explain needs "guest"'],
    ['{"cmd":"explain","guest":"g1"}', 'SGW_ERR_ADMIN_MISSING_ARGUMENT', 'explain needs "to"'],
    ['{"cmd":"explain","to":"198.18.0.100:2049"}', 'SGW_ERR_ADMIN_MISSING_ARGUMENT', 'explain needs "guest"'],
    ['{"cmd":"flows","guest":null}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', 'guest must be a string'],
    ['{"cmd":"flows","guest":7}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', 'guest must be a string'],
    ['{"cmd":"flows","guest":["g1"]}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', 'guest must be a string'],
    ['{"cmd":"flows","guest":""}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', 'guest must be 1-255 characters'],
    [`{"cmd":"flows","guest":"${'x'.repeat(256)}"}`, 'SGW_ERR_ADMIN_BAD_ARGUMENT', 'guest must be 1-255 characters'],
    ['{"cmd":"flows","guest":"g 1"}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', 'guest must not contain whitespace or control characters'],
    ['{"cmd":"flows","guest":"g1\\n"}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', 'guest must not contain whitespace or control characters'],
    ['{"cmd":"flows","guest":"g\\u00001"}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', 'guest must not contain whitespace or control characters'],
    ['{"cmd":"flows","guest":"g\\u007f"}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', 'guest must not contain whitespace or control characters'],
    ['{"cmd":"flows","backend":"198.18.0.100:2049"}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', 'backend must be an IP address'],
    ['{"cmd":"flows","backend":"nas.example"}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', 'backend must be an IP address'],
    ['{"cmd":"flows","backend":"198.18.0.0/24"}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', 'backend must be an IP address'],
    ['{"cmd":"flows","backend":198}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', 'backend must be an IP address'],
    ['{"cmd":"flows","backend":""}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', 'backend must be an IP address'],
    ['{"cmd":"explain","guest":"g1","to":"198.18.0.100"}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', BAD_TO],
    ['{"cmd":"explain","guest":"g1","to":"198.18.0.100:"}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', BAD_TO],
    ['{"cmd":"explain","guest":"g1","to":"198.18.0.100:0"}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', BAD_TO],
    ['{"cmd":"explain","guest":"g1","to":"198.18.0.100:65536"}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', BAD_TO],
    ['{"cmd":"explain","guest":"g1","to":"198.18.0.100:02049"}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', BAD_TO],
    ['{"cmd":"explain","guest":"g1","to":"198.18.0.100:+2049"}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', BAD_TO],
    ['{"cmd":"explain","guest":"g1","to":"198.18.0.100:2049 "}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', BAD_TO],
    ['{"cmd":"explain","guest":"g1","to":"nas:2049"}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', BAD_TO],
    ['{"cmd":"explain","guest":"g1","to":"2001:db8::100:2049"}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', BAD_TO],
    ['{"cmd":"explain","guest":"g1","to":"[198.18.0.100]:2049"}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', BAD_TO],
    ['{"cmd":"explain","guest":"g1","to":{"addr":"198.18.0.100","port":2049}}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', BAD_TO],
    ['{"cmd":"explain","guest":"","to":"198.18.0.100:2049"}', 'SGW_ERR_ADMIN_BAD_ARGUMENT', 'guest must be 1-255 characters'],
  ];
  for (const [line, code, message] of cases) {
    t.strictSame(errorShape(thrown(() => parseRequest(line))), { isAdminError: true, isSgwError: true, name: 'AdminProtocolError', code, message }, line.slice(0, 120));
  }
});

t.test('encodeRequest() is read back by parseRequest()', async (t) => {
  const reqs: AdminRequest[] = [
    { cmd: 'ping' },
    { cmd: 'status' },
    { cmd: 'reload' },
    { cmd: 'flows' },
    { cmd: 'flows', guest: 'acme/g1', backend: '198.18.0.100' },
    { cmd: 'explain', guest: 'sgwt-g1', to: { addr: '198.18.0.100', port: 2049 } },
    { cmd: 'explain', guest: 'g1', to: { addr: '2001:db8::100', port: 445 } },
  ];
  for (const r of reqs) {
    t.strictSame(parseRequest(encodeRequest(r)), r, JSON.stringify(r));
  }
  t.equal(encodeRequest({ cmd: 'explain', guest: 'g1', to: { addr: '2001:db8::100', port: 445 } }), '{"cmd":"explain","guest":"g1","to":"[2001:db8::100]:445"}', 'the wire form of to is ADDR:PORT');
  t.equal(encodeRequest({ cmd: 'status' }), '{"cmd":"status"}');
});

/** A raw connection: sends `chunks` (with a pause between), collects response lines until closed or `want` lines. */
function raw(socketPath: string, chunks: string[], want: number): Promise<{ lines: unknown[]; closedByServer: boolean }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    let buf = '';
    let done = false;
    const lines: unknown[] = [];
    const finish = (closedByServer: boolean): void => {
      if (!done) {
        done = true;
        clearTimeout(timer);
        sock.destroy();
        resolve({ lines, closedByServer });
      }
    };
    const timer = setTimeout(() => {
      done = true;
      sock.destroy();
      reject(new Error(`timeout; got ${JSON.stringify(lines)} and ${JSON.stringify(buf.slice(0, 100))}`));
    }, 5000);
    sock.setEncoding('utf8');
    // The server may reset a connection it refuses while we still write.
    sock.on('error', () => finish(true));
    sock.on('close', () => finish(true));
    sock.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) !== -1) {
        lines.push(JSON.parse(buf.slice(0, nl)));
        buf = buf.slice(nl + 1);
      }
      if (lines.length >= want) {
        finish(false);
      }
    });
    sock.on('connect', () => {
      const send = (i: number): void => {
        const c = chunks[i];
        if (c === undefined || done) {
          return;
        }
        sock.write(c, () => setTimeout(() => send(i + 1), 20));
      };
      send(0);
    });
  });
}

type Tap = tap.Test;

interface Fixture {
  dir: string;
  socketPath: string;
  server: AdminServer;
  counters: Counters;
  calls: AdminCommand[];
  requests: AdminRequest[];
}

async function start(t: Tap): Promise<Fixture> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgw-admin-'));
  // A nested directory that does not exist yet: listen() creates it.
  const socketPath = path.join(dir, 'run', 'admin.sock');
  const counters = new Counters();
  const calls: AdminCommand[] = [];
  const requests: AdminRequest[] = [];
  const handler = async (cmd: AdminCommand, req: AdminRequest): Promise<unknown> => {
    calls.push(cmd);
    requests.push(req);
    if (cmd === 'ping') {
      return 'pong';
    }
    if (req.cmd === 'flows') {
      return { rows: [], filter: req };
    }
    if (req.cmd === 'explain') {
      return { allowed: req.to.port === 2049, guest: req.guest, to: req.to };
    }
    if (cmd === 'status') {
      return { node: 'hv-test', guests: 2 };
    }
    if (calls.filter((c) => c === 'reload').length > 1) {
      throw new SgwError('SGW_ERR_CONFIG_INVALID', 'acme.yaml:3:1: /sourceIp: bad');
    }
    return { reloaded: true };
  };
  const server = new AdminServer(socketPath, handler, createLogger('silent', { write: () => undefined }), counters);
  await server.listen();
  t.teardown(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { dir, socketPath, server, counters, calls, requests };
}

t.test('server: socket file is a unix socket with mode 0600', async (t) => {
  const f = await start(t);
  const st = fs.statSync(f.socketPath);
  t.equal(st.isSocket(), true);
  t.equal(st.mode & 0o777, 0o600);
});

t.test('server: ping, status and reload round trips through the client', async (t) => {
  const f = await start(t);
  t.strictSame(await adminRequest(f.socketPath, 'ping'), { ok: true, result: 'pong' });
  t.strictSame(await adminRequest(f.socketPath, 'status'), { ok: true, result: { node: 'hv-test', guests: 2 } });
  t.strictSame(await adminRequest(f.socketPath, 'reload'), { ok: true, result: { reloaded: true } });
  t.strictSame(await adminRequest(f.socketPath, 'reload'), {
    ok: false,
    error: { code: 'SGW_ERR_CONFIG_INVALID', message: 'acme.yaml:3:1: /sourceIp: bad' },
  }, 'a handler error becomes an error response with its code');
  t.strictSame(f.calls, ['ping', 'status', 'reload', 'reload']);
  t.strictSame(f.counters.snapshot(), { 'sharegw_admin_errors_total{code="SGW_ERR_CONFIG_INVALID"}': 1 });
});

t.test('server: flows and explain carry their arguments to the handler', async (t) => {
  const f = await start(t);
  t.strictSame(await adminCall(f.socketPath, { cmd: 'flows', guest: 'sgwt-g1' }), { ok: true, result: { rows: [], filter: { cmd: 'flows', guest: 'sgwt-g1' } } });
  t.strictSame(await adminCall(f.socketPath, { cmd: 'flows' }), { ok: true, result: { rows: [], filter: { cmd: 'flows' } } });
  t.strictSame(await adminCall(f.socketPath, { cmd: 'explain', guest: 'g1', to: { addr: '198.18.0.100', port: 2049 } }), {
    ok: true,
    result: { allowed: true, guest: 'g1', to: { addr: '198.18.0.100', port: 2049 } },
  });
  t.strictSame(await adminCall(f.socketPath, { cmd: 'ping' }), { ok: true, result: 'pong' }, 'adminCall works for the old commands too');
  t.strictSame(f.calls, ['flows', 'flows', 'explain', 'ping']);
  t.strictSame(f.requests, [
    { cmd: 'flows', guest: 'sgwt-g1' },
    { cmd: 'flows' },
    { cmd: 'explain', guest: 'g1', to: { addr: '198.18.0.100', port: 2049 } },
    { cmd: 'ping' },
  ], 'the handler gets the validated request');
});

t.test('server: bad arguments get an error response and never reach the handler', async (t) => {
  const f = await start(t);
  t.strictSame(await adminRequest(f.socketPath, 'explain'), {
    ok: false,
    error: { code: 'SGW_ERR_ADMIN_MISSING_ARGUMENT', message: 'explain needs "guest"' },
  }, 'adminRequest() sends no arguments');
  const r = await raw(f.socketPath, ['{"cmd":"explain","guest":"g1","to":"198.18.0.100:0"}\n', '{"cmd":"flows","backend":"nas"}\n', '{"cmd":"flows","x":1}\n', '{"cmd":"flows","guest":"g1"}\n'], 4);
  t.strictSame(r.lines, [
    { ok: false, error: { code: 'SGW_ERR_ADMIN_BAD_ARGUMENT', message: 'to must be ADDR:PORT (IPv6 as [ADDR]:PORT, port 1-65535)' } },
    { ok: false, error: { code: 'SGW_ERR_ADMIN_BAD_ARGUMENT', message: 'backend must be an IP address' } },
    { ok: false, error: { code: 'SGW_ERR_ADMIN_UNKNOWN_ARGUMENT', message: 'flows takes no argument "x"; expected guest, backend' } },
    { ok: true, result: { rows: [], filter: { cmd: 'flows', guest: 'g1' } } },
  ]);
  t.strictSame(f.calls, ['flows'], 'only the valid request reached the handler');
  t.strictSame(f.counters.snapshot(), {
    'sharegw_admin_errors_total{code="SGW_ERR_ADMIN_BAD_ARGUMENT"}': 2,
    'sharegw_admin_errors_total{code="SGW_ERR_ADMIN_MISSING_ARGUMENT"}': 1,
    'sharegw_admin_errors_total{code="SGW_ERR_ADMIN_UNKNOWN_ARGUMENT"}': 1,
  });
});

t.test('server: line framing', async (t) => {
  const f = await start(t);
  const two = await raw(f.socketPath, ['{"cmd":"ping"}\n{"cmd":"status"}\n'], 2);
  t.strictSame(
    two.lines.map((l) => JSON.stringify(l)).sort(),
    ['{"ok":true,"result":"pong"}', '{"ok":true,"result":{"node":"hv-test","guests":2}}'],
    'two requests in one write get two responses',
  );
  const split = await raw(f.socketPath, ['{"cmd":', '"ping"}', '\n'], 1);
  t.strictSame(split.lines, [{ ok: true, result: 'pong' }], 'a request split over three writes is one request');
  const crlf = await raw(f.socketPath, ['{"cmd":"ping"}\r\n'], 1);
  t.strictSame(crlf.lines, [{ ok: true, result: 'pong' }], 'CRLF line ends work');
  t.strictSame(f.calls, ['ping', 'status', 'ping', 'ping']);
});

t.test('server: garbage gets an error response and the connection stays usable', async (t) => {
  const f = await start(t);
  const r = await raw(f.socketPath, ['hello\n', '{"cmd":"halt"}\n', '[]\n', '{"cmd":"ping"}\n'], 4);
  t.strictSame(r, {
    lines: [
      { ok: false, error: { code: 'SGW_ERR_ADMIN_BAD_JSON', message: 'request is not valid JSON' } },
      { ok: false, error: { code: 'SGW_ERR_ADMIN_UNKNOWN_COMMAND', message: UNKNOWN } },
      { ok: false, error: { code: 'SGW_ERR_ADMIN_BAD_REQUEST', message: 'request must be a JSON object' } },
      { ok: true, result: 'pong' },
    ],
    closedByServer: false,
  });
  t.strictSame(f.calls, ['ping'], 'the handler saw only the valid request');
  t.strictSame(f.counters.snapshot(), {
    'sharegw_admin_errors_total{code="SGW_ERR_ADMIN_BAD_JSON"}': 1,
    'sharegw_admin_errors_total{code="SGW_ERR_ADMIN_BAD_REQUEST"}': 1,
    'sharegw_admin_errors_total{code="SGW_ERR_ADMIN_UNKNOWN_COMMAND"}': 1,
  });
});

t.test('server: a line of exactly MAX_LINE is still answered', async (t) => {
  const f = await start(t);
  const line = `{"cmd":"ping","pad":"${'x'.repeat(MAX_LINE - 23)}"}`;
  t.equal(line.length, MAX_LINE);
  const r = await raw(f.socketPath, [`${line}\n`], 1);
  t.strictSame(r, { lines: [{ ok: true, result: 'pong' }], closedByServer: false });
});

t.test('server: oversize lines close the connection, the server lives on', async (t) => {
  const f = await start(t);
  const cases: [string, string[]][] = [
    ['MAX_LINE+1 then newline in one write', [`${'a'.repeat(MAX_LINE + 1)}\n`]],
    ['oversize line completed by a small later write', ['a'.repeat(MAX_LINE), 'aaaa\n']],
    ['oversize valid JSON', [`{"cmd":"ping","pad":"${'x'.repeat(MAX_LINE)}"}\n`]],
    ['no newline at all', ['a'.repeat(2 * MAX_LINE)]],
    ['a good line, then an endless one', ['{"cmd":"ping"}\n', 'b'.repeat(MAX_LINE + 1)]],
  ];
  let n = 0;
  for (const [name, chunks] of cases) {
    const r = await raw(f.socketPath, chunks, 99);
    t.equal(r.closedByServer, true, `${name}: closed`);
    const pongs = name.startsWith('a good line') ? [{ ok: true, result: 'pong' }] : [];
    t.strictSame(r.lines, pongs, `${name}: no answer to the oversize line`);
    n++;
    t.equal(f.counters.get('sharegw_admin_errors_total', { code: 'SGW_ERR_ADMIN_TOO_LARGE' }), n, `${name}: counted`);
  }
  t.strictSame(await adminRequest(f.socketPath, 'ping'), { ok: true, result: 'pong' }, 'the server still answers');
  t.equal(f.counters.get('sharegw_admin_errors_total', { code: 'SGW_ERR_ADMIN_BAD_JSON' }), 0, 'oversize input is never parsed');
});

t.test('server: a client that hangs up mid-request does not hurt the server', async (t) => {
  const f = await start(t);
  await new Promise<void>((resolve) => {
    const s = net.connect(f.socketPath, () => {
      s.write('{"cmd":"pi');
      s.destroy();
      resolve();
    });
  });
  t.strictSame(await adminRequest(f.socketPath, 'status'), { ok: true, result: { node: 'hv-test', guests: 2 } });
});

t.test('server: listen() replaces a stale socket file; close() removes it', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgw-admin-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const socketPath = path.join(dir, 'admin.sock');
  fs.writeFileSync(socketPath, 'stale');
  const server = new AdminServer(socketPath, async () => 'pong', createLogger('silent', { write: () => undefined }), new Counters());
  await server.listen();
  t.equal(fs.statSync(socketPath).isSocket(), true);
  t.strictSame(await adminRequest(socketPath, 'ping'), { ok: true, result: 'pong' });
  await server.close();
  t.equal(fs.existsSync(socketPath), false);
  await server.close();
  t.pass('a second close() is harmless');
});

t.test('client: typed errors', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgw-admin-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

  const missing = path.join(dir, 'missing.sock');
  t.strictSame(errorShape(await rejection(adminRequest(missing, 'ping'))), {
    isAdminError: true,
    isSgwError: true,
    name: 'AdminProtocolError',
    code: 'SGW_ERR_ADMIN_UNREACHABLE',
    message: `cannot reach sharegwd at ${missing}: ENOENT`,
  }, 'missing socket');

  const notSocket = path.join(dir, 'plain-file');
  fs.writeFileSync(notSocket, '');
  t.strictSame(errorShape(await rejection(adminRequest(notSocket, 'ping'))), {
    isAdminError: true,
    isSgwError: true,
    name: 'AdminProtocolError',
    code: 'SGW_ERR_ADMIN_UNREACHABLE',
    message: `cannot reach sharegwd at ${notSocket}: ECONNREFUSED`,
  }, 'a plain file where the socket should be');

  // Fake daemons: one never answers, one answers garbage.
  const seen: string[] = [];
  const silentPath = path.join(dir, 'silent.sock');
  const silent = net.createServer((s) => {
    s.setEncoding('utf8');
    s.on('data', (d: string) => seen.push(d));
    s.on('error', () => undefined);
  });
  const garbagePath = path.join(dir, 'garbage.sock');
  const garbage = net.createServer((s) => {
    s.on('error', () => undefined);
    s.once('data', () => s.end('not json\n'));
  });
  await new Promise<void>((resolve) => silent.listen(silentPath, resolve));
  await new Promise<void>((resolve) => garbage.listen(garbagePath, resolve));
  t.teardown(async () => {
    await new Promise<void>((resolve) => silent.close(() => resolve()));
    await new Promise<void>((resolve) => garbage.close(() => resolve()));
  });

  t.strictSame(errorShape(await rejection(adminRequest(silentPath, 'status', 100))), {
    isAdminError: true,
    isSgwError: true,
    name: 'AdminProtocolError',
    code: 'SGW_ERR_ADMIN_TIMEOUT',
    message: `no answer from ${silentPath} within 100 ms`,
  }, 'no answer');
  t.strictSame(seen, ['{"cmd":"status"}\n'], 'the client sent one framed request');

  t.strictSame(errorShape(await rejection(adminRequest(garbagePath, 'ping'))), {
    isAdminError: true,
    isSgwError: true,
    name: 'AdminProtocolError',
    code: 'SGW_ERR_ADMIN_BAD_JSON',
    message: 'daemon sent a malformed response',
  }, 'malformed response');
});

t.test('client: a daemon that closes without answering is reported at once', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgw-admin-'));
  const p = path.join(dir, 'closer.sock');
  const closer = net.createServer((s) => {
    s.on('error', () => undefined);
    s.once('data', () => s.end());
  });
  await new Promise<void>((resolve) => closer.listen(p, resolve));
  t.teardown(async () => {
    await new Promise<void>((resolve) => closer.close(() => resolve()));
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const t0 = Date.now();
  const e = errorShape(await rejection(adminRequest(p, 'status', 5000)));
  t.equal(e.code, 'SGW_ERR_ADMIN_CLOSED');
  t.ok(Date.now() - t0 < 2000, 'not left to the timeout');
});

t.test('server: close() does not wait for idle clients', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgw-admin-'));
  const p = path.join(dir, 'admin.sock');
  const server = new AdminServer(p, async () => 'pong', createLogger('silent', { write: () => undefined }), new Counters());
  await server.listen();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  t.equal((fs.statSync(p).mode & 0o777).toString(8), '600');
  const idle = net.connect(p);
  idle.on('error', () => undefined);
  await new Promise<void>((resolve) => idle.once('connect', () => resolve()));
  const ended = new Promise<void>((resolve) => idle.once('close', () => resolve()));
  await server.close();
  await ended;
  t.notOk(fs.existsSync(p), 'socket file removed');
});
