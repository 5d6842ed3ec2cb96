/**
 * The proxy's SMB policy against real smbclient and samba: SMB1 and a
 * dialect below the domain's floor are refused at NEGOTIATE, a share marked
 * `encryption: required` admits only encrypted sessions, and a tree connect
 * may name only granted shares. Each refusal is the gateway's (its counter
 * and access-log record say so), not samba's: samba itself would accept
 * SMB 2.1 and unencrypted sessions.
 */
import t from 'tap';
import { LabDaemon, NS, metricValue, run, sgwRules } from '../helpers/lab';
import { labYaml } from '../helpers/configs';

const ACME = '198.18.0.100';
const USER = ['-U', 'usera%labpass123'];
const PORT = 9612;

const metric = (name: string, labels: string): Promise<number> => metricValue(PORT, name, labels);

function smb(share: string, opts: string[]): Promise<{ code: number | null; out: string }> {
  return run('smbclient', [`//${ACME}/${share}`, ...USER, ...opts, '-c', 'ls'], { ns: NS.g1, timeoutMs: 30_000 }).then((r) => ({ code: r.code, out: `${r.stdout}${r.stderr}` }));
}

function daemon(acmeEdit: (y: string) => string, plane: 'kernel' | 'proxy' = 'proxy'): LabDaemon {
  const acme = labYaml(plane).domains['acme.yaml'] ?? '';
  return new LabDaemon({ plane, domains: { 'acme.yaml': acmeEdit(acme) }, extra: `metrics: 127.0.0.1:${PORT}\nproxy: { drainTimeout: 2s }\n` });
}

const refusals = (reason: string): Promise<number> => metric('sharegw_protocol_refusals_total', `proto="smb",reason="${reason}"`);

t.test('SMB1 and dialects below the floor are refused by the gateway; SMB3 passes', async (t) => {
  const d = daemon((y) => y);
  t.teardown(() => d.dispose());
  await d.start();
  const ok = await smb('acme', ['-m', 'SMB3', '--option=client min protocol=SMB3']);
  t.equal(ok.code, 0, `SMB3 works: ${ok.out}`);
  t.match(ok.out, /hello\.txt/);

  const smb1 = await smb('acme', ['-m', 'NT1', '--option=client min protocol=NT1']);
  t.not(smb1.code, 0, 'SMB1 fails');
  t.equal(await refusals('smb1'), 1, 'refused by the gateway as SMB1');

  const smb21 = await smb('acme', ['-m', 'SMB2_10', '--option=client min protocol=SMB2_02']);
  t.not(smb21.code, 0, 'SMB 2.1 fails (samba alone would accept it: server min protocol = SMB2_10)');
  t.equal(await refusals('dialect'), 1, 'refused by the gateway: below the default floor 3.0');

  const log = d.log();
  t.match(log, /"refusal":"smb1"/, 'the access log says why');
  t.match(log, /"refusal":"dialect"/);
  t.notMatch(log, /labpass123/, 'no secrets in the log');
});

t.test('a domain floor of 2.1 admits SMB 2.1: the floor is the gateway\'s', async (t) => {
  const d = daemon((y) => y.replace('sourceIp: 198.18.0.11\n', 'sourceIp: 198.18.0.11\nsmb: { minDialect: "2.1" }\n'));
  t.teardown(() => d.dispose());
  await d.start();
  const smb21 = await smb('acme', ['-m', 'SMB2_10', '--option=client min protocol=SMB2_02']);
  t.equal(smb21.code, 0, smb21.out);
  t.equal(await refusals('dialect'), 0);
});

t.test('encryption: required admits only encrypted sessions', async (t) => {
  const d = daemon((y) => y.replace('  - id: acme-smb\n    proto: CIFS\n', '  - id: acme-smb\n    proto: CIFS\n    encryption: required\n'));
  t.teardown(() => d.dispose());
  await d.start();
  const plain = await smb('acme', ['-m', 'SMB3', '--client-protection=sign']);
  t.not(plain.code, 0, 'signed but not encrypted: refused');
  t.equal(await refusals('unencrypted'), 1, 'by the gateway, after session setup');
  const enc = await smb('acme', ['-m', 'SMB3', '--client-protection=encrypt']);
  t.equal(enc.code, 0, `encrypted session works: ${enc.out}`);
  t.match(enc.out, /hello\.txt/);
  const get = await run('smbclient', [`//${ACME}/acme`, ...USER, '-m', 'SMB3', '--client-protection=encrypt', '-c', 'get hello.txt -'], { ns: NS.g1 });
  t.match(get.stdout, /hello from acme/, 'and reads the file');
});

t.test('a tree connect may name only granted shares (and IPC$)', async (t) => {
  const d = daemon((y) => y);
  t.teardown(() => d.dispose());
  await d.start();
  const other = await smb('beta', ['-m', 'SMB3']);
  t.not(other.code, 0);
  const answers = (): Promise<number> => metric('sharegw_protocol_answers_total', 'proto="smb",reason="share"');
  t.equal(await answers(), 1, 'beta is not granted to acme\'s guest: the gateway refuses the tree connect (that request only)');
  t.equal(await refusals('share'), 0, 'not the session');
  const list = await run('smbclient', ['-L', `//${ACME}`, ...USER, '-m', 'SMB3'], { ns: NS.g1, timeoutMs: 30_000 });
  t.equal(list.code, 0, `share listing over IPC$ works: ${list.stderr}`);
  t.equal(await answers(), 1, 'IPC$ is not refused');
});

t.test('kernel plane: a domain SMB policy steers its SMB grant through the proxy; NFS stays on the fast path', async (t) => {
  const d = daemon((y) => y.replace('sourceIp: 198.18.0.11\n', 'sourceIp: 198.18.0.11\nsmb: { minDialect: "3.0" }\n'), 'kernel');
  t.teardown(() => d.dispose());
  await d.start();
  const st = await d.status();
  const grants = (st.domains.find((x: { name: string }) => x.name === 'acme').guests[0].grants as { backend: string; plane: string; smb?: unknown }[]);
  t.match(grants.find((g) => g.backend === `${ACME}:445`), { plane: 'proxy', smb: { minDialect: '3.0', encryptionRequired: false, shares: ['acme'] } }, 'status shows the SMB grant on the proxy, with its policy');
  t.equal(grants.find((g) => g.backend === `${ACME}:2049`)?.plane, 'kernel', 'and NFS on the kernel');
  const rules = await sgwRules();
  t.ok(rules.some((l) => l.includes('--dport 445') && l.includes('DNAT')), 'SMB is DNATed to a listener');
  t.notOk(rules.some((l) => l.includes('--dport 2049') && l.includes('DNAT')), 'NFS is not');

  const smb1 = await smb('acme', ['-m', 'NT1', '--option=client min protocol=NT1']);
  t.not(smb1.code, 0);
  t.equal(await refusals('smb1'), 1, 'SMB1 refused by the gateway in the kernel plane');
  const ok = await smb('acme', ['-m', 'SMB3']);
  t.equal(ok.code, 0, ok.out);
  const cat = await run('nfs-cat', [`nfs://${ACME}/export/acme/hello.txt?version=4`], { ns: NS.g1 });
  t.equal(cat.code, 0, 'NFS works on the fast path');
  t.match(cat.stdout, /hello from acme/);
});
