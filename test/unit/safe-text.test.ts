import t from 'tap';
import { idProblem, MAX_ID_BYTES, safeLines, safeText } from '../../src/util/safe-text';
import { LogRateLimiter, suppressedText } from '../../src/util/log-rate';
import { validateConfig } from '../../src/config/validate';
import { mergeSynced, syncDomain } from '../../src/control/manila/sync';
import type { FetchedDomain } from '../../src/control/manila/sync';
import { formatExplanation, formatFlows } from '../../src/cli/views';
import { configFrom, labYaml } from '../helpers/configs';

t.test('safeText() escapes controls, bidi overrides, separators and lone surrogates', async (t) => {
  t.equal(safeText('acme-nfs'), 'acme-nfs', 'plain ids unchanged');
  t.equal(safeText('\\\\198.18.0.100\\acme'), '\\\\198.18.0.100\\acme', 'backslashes kept');
  t.equal(safeText('üñí 名前 🙂'), 'üñí 名前 🙂', 'printable non-ASCII kept');
  t.equal(safeText('a\x1b[2Jb'), 'a\\x1b[2Jb');
  t.equal(safeText('x\ny\rz\t'), 'x\\x0ay\\x0dz\\x09');
  t.equal(safeText('\x00\x7f\x9b'), '\\x00\\x7f\\x9b', 'NUL, DEL and the C1 CSI');
  t.equal(safeText('evil\u202Etxt.exe'), 'evil\\u{202E}txt.exe');
  t.equal(safeText('a\u2066b\u2069\u200Bc\uFEFF'), 'a\\u{2066}b\\u{2069}\\u{200B}c\\u{FEFF}');
  t.equal(safeText('l\u2028p\u2029'), 'l\\u{2028}p\\u{2029}');
  t.equal(safeText('s\uD800e'), 's\\u{D800}e');
  t.notOk(/[\x00-\x1f\x7f-\x9f]/.test(safeText(String.fromCharCode(...Array.from({ length: 256 }, (_, i) => i)))), 'no control byte survives');
  t.equal(safeLines('one\x1b\ntwo\u202E'), 'one\\x1b\ntwo\\u{202E}', 'safeLines keeps its own newlines');
});

t.test('idProblem() accepts printable bounded ids and names the first bad character', async (t) => {
  t.equal(idProblem('4f2c0b0e-8f6a-4d3e-9c1b-2a3d4e5f6a7b'), null);
  t.equal(idProblem('projet été'), null);
  t.equal(idProblem('x'.repeat(MAX_ID_BYTES)), null);
  t.match(idProblem('x'.repeat(MAX_ID_BYTES + 1)), /256 bytes/);
  t.match(idProblem('é'.repeat(128)), /256 bytes/, 'bytes, not characters');
  t.match(idProblem('ok\x1b[31m'), /\\x1b at offset 2/);
  t.match(idProblem('a\u202Eb'), /\\u\{202E\}/);
  t.match(idProblem(''), /empty/);
});

t.test('LogRateLimiter.hit() emits the first per key, then a summary with the count', async (t) => {
  const l = new LogRateLimiter(10_000, 100);
  t.same(l.hit('acme connection-limit', 0), { suppressed: 0, windowMs: 10_000 });
  for (let i = 1; i <= 5; i++) {
    t.equal(l.hit('acme connection-limit', i * 1000), null);
  }
  t.same(l.hit('beta connection-limit', 2000), { suppressed: 0, windowMs: 10_000 }, 'keys are independent');
  t.same(l.hit('acme connection-limit', 12_000), { suppressed: 5, windowMs: 12_000 });
  t.equal(suppressedText(5, 12_000), '5 more in the last 12s');
});

t.test('LogRateLimiter.drain() reports windows that ended quietly, once', async (t) => {
  const l = new LogRateLimiter(10_000, 100);
  l.hit('k', 0);
  l.hit('k', 1);
  l.hit('k', 2);
  l.hit('quiet', 0);
  t.same(l.drain(5_000), [], 'nothing ended yet');
  t.same(l.drain(10_000), [{ key: 'k', suppressed: 2, windowMs: 10_000 }], 'only keys that held events back');
  t.same(l.drain(20_000), []);
  t.equal(l.size, 0);
  t.same(l.hit('k', 20_001), { suppressed: 0, windowMs: 10_000 }, 'a fresh window after drain');
});

t.test('LogRateLimiter keeps at most maxKeys keys; dropped counts go to the overflow key', async (t) => {
  const l = new LogRateLimiter(60_000, 8);
  for (let i = 0; i < 1000; i++) {
    l.hit(`k${i}`, i);
    l.hit(`k${i}`, i);
  }
  t.ok(l.size <= 8, `size ${l.size}`);
  const d = l.drain(1_000_000);
  const total = d.reduce((n, x) => n + x.suppressed, 0);
  t.ok(d.some((x) => x.key === LogRateLimiter.OVERFLOW), 'an overflow summary');
  t.equal(total, 1000, 'no held-back event is lost from the summaries');
});

function validateDomain(acme: string): ReturnType<typeof validateConfig> {
  const y = labYaml('kernel');
  return validateConfig(
    { file: '/etc/sharegw/sharegwd.yaml', text: y.daemon },
    Object.entries({ ...y.domains, 'acme.yaml': acme }).map(([name, text]) => ({ file: `/etc/sharegw/domains.d/${name}`, text })),
    '/etc/sharegw/domains.d',
  );
}

t.test('validateConfig() refuses instance and share ids with control characters (SGW_ERR_CONFIG_BAD_ID)', async (t) => {
  const base = labYaml('kernel').domains['acme.yaml'] ?? '';
  const cases: [string, string, string][] = [
    ['instance: g1', 'instance: "g1\\e[2J"', '/guests/0/instance'],
    ['id: acme-nfs', 'id: "acme\\u202Enfs"', '/shares/0/id'],
    ['id: acme-smb', 'id: acme-smb\n    name: "smb\\nFAKE LINE"', '/shares/1/name'],
    ['id: acme-private', `id: ${'p'.repeat(256)}`, '/shares/2/id'],
  ];
  for (const [from, to, pointer] of cases) {
    const r = validateDomain(base.replace(from, to));
    t.equal(r.config, null, `${pointer}: refused`);
    const p = r.problems.filter((x) => x.code === 'SGW_ERR_CONFIG_BAD_ID');
    t.same(p.map((x) => x.pointer), [pointer]);
    t.notOk(/[\x00-\x1f\u202E]/.test(p[0]?.message ?? ''), 'the message shows the id escaped');
  }
  t.equal(validateDomain(base.replace('id: acme-nfs', 'id: "acme nfs été"')).config?.domains.length, 2, 'printable non-ASCII ids pass');
});

function manilaFetch(id: string, name: string | null): FetchedDomain {
  return {
    domain: 'acme',
    shareNetworkId: 'sn-1',
    network: { id: 'sn-1', name: 'net', project_id: 'p', updated_at: null, status: 'active', security_service_update_support: true, share_network_subnets: [] },
    securityServices: [],
    shares: ['ok-1', id, 'ok-2'].map((sid) => ({
      share: { id: sid, name: sid === id ? name : sid, status: 'available', share_proto: 'NFS', share_network_id: 'sn-1', project_id: 'p', updated_at: null, created_at: null, access_rules_status: 'active', encryption_key_ref: null },
      exportLocations: [{ id: `e-${sid}`, path: '198.18.0.100:/export/acme', preferred: true, is_admin_only: false }],
      accessRules: [{ id: `r-${sid}`, access_type: 'ip', access_to: '198.19.0.5', access_level: 'rw', state: 'active' }],
    })),
    fetchedAt: '2026-12-04T00:00:00.000Z',
  };
}

t.test('syncDomain() skips a Manila share whose id or name has control characters, and only that one', async (t) => {
  const d = syncDomain(manilaFetch('bad\x1b]0;owned\x07', 'n'), null);
  t.same(d.shares.map((s) => s.id), ['ok-1', 'ok-2']);
  t.same(d.skipped.map((x) => [x.share, x.code]), [['bad\\x1b]0;owned\\x07', 'SGW_ERR_MANILA_BAD_ID']], 'recorded escaped, with the code');
  const n = syncDomain(manilaFetch('fine-id', 'tenant \u202Ename'), null);
  t.same(n.shares.map((s) => s.id), ['ok-1', 'ok-2']);
  t.same(n.skipped.map((x) => [x.share, x.code]), [['fine-id', 'SGW_ERR_MANILA_BAD_ID']]);
  const long = syncDomain(manilaFetch('x'.repeat(300), null), null);
  t.equal(long.shares.length, 2, 'an over-long id is skipped');
});

t.test('mergeSynced() drops a bad id restored from an old state file', async (t) => {
  const y = labYaml('kernel');
  const cfg = configFrom(y.daemon, { ...y.domains, 'acme.yaml': `${y.domains['acme.yaml'] ?? ''}shareNetwork: sn-1\n` });
  const good = syncDomain(manilaFetch('ok-3', null), null);
  const stale = { ...good, shares: [...good.shares, { ...good.shares[0]!, id: 'old\x1b[2J' }] };
  const merged = mergeSynced(cfg, new Map([['acme', stale]]));
  const ids = merged.config.domains.find((d) => d.name === 'acme')?.shares.map((s) => s.id) ?? [];
  t.notOk(ids.some((i) => i.includes('\x1b')));
  t.ok(ids.includes('ok-1'));
});

t.test('formatFlows() and formatExplanation() print ids escaped', async (t) => {
  const flows = formatFlows({
    rows: [{ guest: 'acme/g\x1b[31m1', plane: 'proxy', backend: '198.18.0.100', port: 2049, granted: true, service: 'nfs', guestPort: 700, state: 'ESTABLISHED', bytesUp: 1, bytesDown: 2, ageS: 3, shares: ['s\u202Ex'] }],
    kernel: null,
  } as unknown as Parameters<typeof formatFlows>[0]);
  t.notOk(/[\x1b\u202E]/.test(flows));
  t.match(flows, /acme\/g\\x1b\[31m1/);
  const e = formatExplanation({ allowed: false, lines: ['denied: unknown guest "x\x1b[2Jy"', 'second'] } as unknown as Parameters<typeof formatExplanation>[0]);
  t.equal(e, 'denied: unknown guest "x\\x1b[2Jy"\nsecond');
});
