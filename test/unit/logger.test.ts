import t from 'tap';
import { createLogger, REDACT_PATHS } from '../../src/observability/logger';
import { holdSecret } from '../../src/config/secret';

/** A logger writing into memory; `lines()` parses what it wrote. */
function memoryLogger(level = 'info'): { log: ReturnType<typeof createLogger>; text: () => string; lines: () => Record<string, unknown>[] } {
  const out: string[] = [];
  const log = createLogger(level, { write: (s: string) => void out.push(s) });
  return {
    log,
    text: () => out.join(''),
    lines: () => out.join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** A line without its timestamp, which changes on every run. */
function stable(line: Record<string, unknown> | undefined): Record<string, unknown> {
  const rest = { ...line };
  delete rest['time'];
  return rest;
}

const SECRETS = { password: 'hunter2', secret: 's3cr3t', token: 'gAAAAtok', authorization: 'Bearer abc.def' };
const R = '[redacted]';
const REDACTED = { password: R, secret: R, token: R, authorization: R };

t.test('one JSON line per call with level, ISO time, svc and msg', async (t) => {
  const m = memoryLogger();
  m.log.info({ guest: 'acme/g1', port: 2049 }, 'hello');
  const [line] = m.lines();
  t.match(String(line?.['time']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  t.strictSame(stable(line), { level: 30, svc: 'sharegwd', guest: 'acme/g1', port: 2049, msg: 'hello' });
  t.equal(m.text().split('\n').length, 2, 'newline-terminated');
});

t.test('the level threshold applies', async (t) => {
  const m = memoryLogger('warn');
  m.log.info('dropped');
  m.log.debug({ password: 'x' }, 'dropped too');
  m.log.warn('kept');
  m.log.error('kept too');
  t.strictSame(m.lines().map((l) => [l['level'], l['msg']]), [
    [40, 'kept'],
    [50, 'kept too'],
  ]);
});

t.test('secrets are redacted at the top level and one and two levels deep', async (t) => {
  const m = memoryLogger();
  m.log.info({ ...SECRETS, user: 'alice' }, 'top');
  m.log.info({ creds: { ...SECRETS, user: 'alice' } }, 'one');
  m.log.info({ req: { headers: { ...SECRETS, host: 'api' } } }, 'two');
  const lines = m.lines().map(stable);
  t.strictSame(lines, [
    { level: 30, svc: 'sharegwd', ...REDACTED, user: 'alice', msg: 'top' },
    { level: 30, svc: 'sharegwd', creds: { ...REDACTED, user: 'alice' }, msg: 'one' },
    { level: 30, svc: 'sharegwd', req: { headers: { ...REDACTED, host: 'api' } }, msg: 'two' },
  ]);
  for (const v of Object.values(SECRETS)) {
    t.equal(m.text().includes(v), false, `${v} never reaches the output`);
  }
});

t.test('the x-auth-token header is redacted', async (t) => {
  const m = memoryLogger();
  m.log.info({ headers: { 'x-auth-token': 'tok-1', accept: 'json' } }, 'top');
  m.log.info({ keystone: { headers: { 'x-auth-token': 'tok-2', accept: 'json' } } }, 'nested');
  t.strictSame(m.lines().map(stable), [
    { level: 30, svc: 'sharegwd', headers: { 'x-auth-token': R, accept: 'json' }, msg: 'top' },
    { level: 30, svc: 'sharegwd', keystone: { headers: { 'x-auth-token': R, accept: 'json' } }, msg: 'nested' },
  ]);
  t.equal(/tok-[12]/.test(m.text()), false);
});

t.test('child loggers redact too', async (t) => {
  const m = memoryLogger();
  m.log.child({ domain: 'acme' }).warn({ backend: { token: 'child-tok' } }, 'child');
  t.strictSame(stable(m.lines()[0]), { level: 40, svc: 'sharegwd', domain: 'acme', backend: { token: R }, msg: 'child' });
});

t.test('redaction does not change the logged object', async (t) => {
  const m = memoryLogger();
  const obj = { creds: { password: 'hunter2', user: 'alice' } };
  m.log.info(obj, 'x');
  t.strictSame(obj, { creds: { password: 'hunter2', user: 'alice' } });
});

t.test('every redacted key is covered at every documented depth', async (t) => {
  for (const k of ['password', 'secret', 'token', 'authorization']) {
    t.strictSame(REDACT_PATHS.filter((p) => p === k || p === `*.${k}` || p === `*.*.${k}`), [k, `*.${k}`, `*.*.${k}`], k);
  }
});

t.test('the safety net strips held secrets and secret shapes from messages and values', async (t) => {
  const held = `held-${process.pid}-Secret`;
  holdSecret(held);
  const m = memoryLogger();
  const obj = { detail: `echo ${held} and ${encodeURIComponent(held)}`, url: 'amqp://u:rabbitpw@mq:5672/', nested: { list: [`Bearer abc.def.ghi ${held}`] } };
  m.log.error(obj, `Manila said: X-Auth-Token: tok-${held}`);
  const text = m.text();
  t.notOk(text.includes(held), 'no held secret');
  t.notOk(text.includes('rabbitpw'), 'no URL password');
  t.notOk(text.includes('abc.def.ghi'), 'no bearer token');
  t.match(stable(m.lines()[0]), { detail: 'echo [redacted] and [redacted]', url: 'amqp://u:[redacted]@mq:5672/', msg: 'Manila said: X-Auth-Token: [redacted]' });
  t.equal(obj.detail, `echo ${held} and ${encodeURIComponent(held)}`, 'the logged object is not changed');
});
