import t from 'tap';
import { heldSecrets, holdSecret, Secret } from '../../src/config/secret';
import { escapeControl, excerpt, EXCERPT_MAX, redact, redactDeep, redactSecrets, redactShapes, REDACTED, secretForms } from '../../src/util/redact';

const TOKEN = 'gAAAAABnZ3kT0ken-Value_42xyzXYZ0123456789abcdefABCDEF';
const PASSWORD = 'p@ss wörd/"42"';
const SECRETS = [TOKEN, PASSWORD];

/** The excerpt holds none of the secrets in any of their forms. */
function clean(t: { notOk(obj: unknown, msg: string): unknown }, text: string, what: string): void {
  for (const s of SECRETS) {
    for (const f of secretForms(s)) {
      t.notOk(text.includes(f), `${what}: no ${JSON.stringify(f)}`);
    }
  }
}

t.test('secretForms() gives raw, JSON, ASCII-JSON, URL and form encodings', async (t) => {
  const f = secretForms(PASSWORD);
  for (const want of [PASSWORD, 'p@ss wörd/\\"42\\"', 'p@ss w\\u00f6rd/\\"42\\"', 'p@ss w\\u00f6rd\\/\\"42\\"', encodeURIComponent(PASSWORD), encodeURIComponent(PASSWORD).replace(/%20/g, '+'), 'p%40ss%20w%c3%b6rd%2f%2242%22']) {
    t.ok(f.includes(want), want);
  }
});

t.test('redactSecrets() removes every form of a held secret', async (t) => {
  const body = `raw ${PASSWORD} json ${JSON.stringify({ p: PASSWORD })} py ${JSON.stringify(PASSWORD).replace('ö', '\\u00f6')} url ?p=${encodeURIComponent(PASSWORD)} form p=${encodeURIComponent(PASSWORD).replace(/%20/g, '+')} tok ${TOKEN}`;
  const out = redactSecrets(body, SECRETS);
  clean(t, out, 'redactSecrets');
  t.ok(out.includes('raw [redacted] json'));
});

t.test('redactSecrets() ignores secrets too short to match safely', async (t) => {
  t.equal(redactSecrets('abc abc', ['abc']), 'abc abc');
});

t.test('redactShapes() removes the value of secret-named keys in every notation', async (t) => {
  const cases: [string, string][] = [
    ['{"password": "hunter22", "user": "bob"}', `{"password": ${REDACTED}, "user": "bob"}`],
    ["{'password': 'hunter22', 'user': 'bob'}", `{'password': ${REDACTED}, 'user': 'bob'}`],
    ['"{\\"secret\\": \\"s3cr3t-x\\"}"', `"{\\"secret\\": ${REDACTED}}"`],
    ['X-Auth-Token: abcdef123 next', `X-Auth-Token: ${REDACTED} next`],
    ['x-subject-token=abcdef123&a=1', `x-subject-token=${REDACTED}&a=1`],
    ['?token=zz9zz9&limit=5', `?token=${REDACTED}&limit=5`],
    ['{"password_hash": "hunter22"}', `{"password_hash": ${REDACTED}}`],
    ['{"application_credential_secret":"appsecret1"}', `{"application_credential_secret":${REDACTED}}`],
    ['{"token": {"id": "tok-v2-value", "expires": "x"}}', `{"token": {"id": "${REDACTED}", "expires": "x"}}`],
    ['Authorization: Bearer abc.def.ghi', `Authorization: ${REDACTED}`],
    ['header Bearer abc.def-ghi', `header Bearer ${REDACTED}`],
    ['got Basic dXNlcjpwYXNz', `got Basic ${REDACTED}`],
    ['amqp://openstack:rabbitpw@10.0.0.1:5672/', `amqp://openstack:${REDACTED}@10.0.0.1:5672/`],
    ['see https://tok123@example.org/x', `see https://${REDACTED}@example.org/x`],
    [`fernet ${TOKEN} end`, `fernet ${REDACTED} end`],
    ['jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_part end', `jwt ${REDACTED} end`],
  ];
  for (const [input, want] of cases) {
    t.equal(redactShapes(input), want, input);
  }
});

t.test('redactShapes() keeps ordinary text', async (t) => {
  const plain = 'Share network 7c1e4d0e-7a1b-4c1d-9f2e-0123456789ab not found (HTTP 404); password auth needs a project';
  t.equal(redactShapes(plain), plain);
  t.equal(redactShapes('http://manila:8786/v2/shares'), 'http://manila:8786/v2/shares', 'a URL without user information');
  t.equal(redactShapes('POST http://k/v3/auth/tokens: HTTP 500'), 'POST http://k/v3/auth/tokens: HTTP 500', 'a plural is not a key');
});

t.test('redactShapes({ blobs }) removes long hex and mixed base64 runs only', async (t) => {
  const hex = 'a'.repeat(16) + '0123456789abcdef';
  t.equal(redactShapes(`id ${hex} x`, { blobs: true }), `id ${REDACTED} x`);
  t.equal(redactShapes(`id ${hex} x`), `id ${hex} x`, 'not without blobs');
  const b64 = 'MIIB9wYJKoZIhvcNAQcCoIIB6DCCAeQCAQExDTALBglghkgBZQMEAgEw';
  t.equal(redactShapes(`pki ${b64}`, { blobs: true }), `pki ${REDACTED}`);
  const path = '/v2/shares/detail/with/a/rather/long/path/name/here';
  t.equal(redactShapes(path, { blobs: true }), path, 'a lowercase path is not a blob');
});

t.test('escapeControl() escapes C0, DEL, C1 and bidi/format characters', async (t) => {
  t.equal(escapeControl('a\u001b[31mred\u0007\u007f\u009b\u202eevil\u200b'), 'a\\x1b[31mred\\x07\\x7f\\x9b\\u{202e}evil\\u{200b}');
  t.equal(escapeControl('plain ümlaut'), 'plain ümlaut');
});

t.test('excerpt() of a JSON body redacts after decoding, whatever the escaping', async (t) => {
  const body = JSON.stringify({ error: { message: `bad request for ${PASSWORD}`, echo: { auth: { identity: { password: { user: { name: 'bob', password: PASSWORD } } } } }, token: TOKEN } }).replace('ö', '\\u00f6');
  const out = excerpt(body, SECRETS);
  clean(t, out, 'json');
  t.ok(out.length <= EXCERPT_MAX);
  t.match(out, /bad request for \[redacted\]/);
  t.match(out, /"name":"bob"/, 'the rest stays readable');
});

t.test('excerpt() of a text body is cut to the limit, whitespace collapsed, controls escaped', async (t) => {
  const out = excerpt(`line one\r\n\tline\u001b[2J two ${'x '.repeat(400)}`, []);
  t.ok(out.length <= EXCERPT_MAX, `${out.length} chars`);
  t.ok(out.startsWith('line one line\\x1b[2J two x x'), out);
  t.ok(out.endsWith('...'));
  t.equal(excerpt('  \n ', []), '');
});

t.test('excerpt() never leaves the start of a secret at a cut', async (t) => {
  for (let pad = 150; pad < 205; pad++) {
    const body = `${'y'.repeat(pad)} ${PASSWORD} ${TOKEN}`;
    const out = excerpt(body, SECRETS);
    t.notOk(/p@s|p%40|gAAA/.test(out), `pad ${pad}: ${out.slice(-20)}`);
    t.ok(out.length <= EXCERPT_MAX);
  }
});

t.test('excerpt() looks at a bounded window of a huge body', async (t) => {
  const body = `${'z'.repeat(5_000_000)} ${PASSWORD}`;
  const out = excerpt(body, SECRETS);
  t.ok(out.length <= EXCERPT_MAX);
  clean(t, out, 'huge');
});

t.test('excerpt() of a body that echoes the request headers and URL', async (t) => {
  const body = `<html><pre>POST /v3/auth/tokens\nX-Auth-Token: ${TOKEN}\nAuthorization: Basic Ym9iOnB3\nReferer: http://bob:${encodeURIComponent(PASSWORD)}@keystone/\n</pre></html>`;
  const out = excerpt(body, SECRETS);
  clean(t, out, 'html');
  t.notOk(out.includes('Ym9iOnB3'));
});

t.test('redact() combines exact secrets, shapes and escaping', async (t) => {
  t.equal(redact(`GET http://h/v2/${TOKEN}/x\u001b]0;t\u0007`, SECRETS), 'GET http://h/v2/[redacted]/x\\x1b]0;t\\x07');
});

t.test('redactDeep() copies and cleans strings, secret-named keys and errors', async (t) => {
  const input = { node: 'n1', lastError: { code: 'C', message: `echo ${TOKEN}` }, list: [`pw ${PASSWORD}`], password: 'x', tokensIssued: 3, err: new Error(`boom ${PASSWORD}`) };
  const out = redactDeep(input, SECRETS) as Record<string, unknown>;
  clean(t, JSON.stringify(out), 'deep');
  t.same(out['lastError'], { code: 'C', message: `echo ${REDACTED}` });
  t.equal(out['password'], REDACTED);
  t.equal(out['tokensIssued'], 3);
  t.same(out['err'], { type: 'Error', message: `boom ${REDACTED}` });
  t.equal(input.lastError.message, `echo ${TOKEN}`, 'the input is not changed');
});

t.test('holdSecret() holds a URL password on its own, decoded too, and forgets the oldest tokens first', async (t) => {
  new Secret(`amqp://mq:${encodeURIComponent('r@bbit pw')}@10.0.0.1/`);
  t.ok(heldSecrets().includes('r@bbit pw'), 'decoded URL password');
  t.ok(heldSecrets().includes('r%40bbit%20pw'), 'as written in the URL');
  for (let i = 0; i < 20; i++) {
    holdSecret(`tok-${i}-xxxxxxxx`);
  }
  t.notOk(heldSecrets().includes('tok-0-xxxxxxxx'), 'old tokens are forgotten');
  t.ok(heldSecrets().includes('tok-19-xxxxxxxx'));
  t.ok(heldSecrets().includes('r@bbit pw'), 'config secrets are kept apart from tokens');
});

t.test('redactSecrets() matches a short secret only as a whole word', async (t) => {
  t.equal(redactSecrets('guests of guest-1: pw=guest, "guest"', ['guest']), `guests of ${REDACTED}-1: pw=${REDACTED}, "${REDACTED}"`);
  t.equal(redactSecrets('sgwt-guest1 guestbook', ['guest']), 'sgwt-guest1 guestbook');
  t.equal(redactSecrets(`x${TOKEN}y`, [TOKEN]), `x${REDACTED}y`, 'a long secret matches anywhere');
});

t.test('redactDeep() keeps keys (the code names them) and cleans values', async (t) => {
  t.same(redactDeep({ guests: ['guest'], byGuest: { 'acme/guest': 1 } }, ['guest']), { guests: [REDACTED], byGuest: { 'acme/guest': 1 } });
});
