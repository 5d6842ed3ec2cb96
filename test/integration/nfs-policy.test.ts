/**
 * The proxy's NFS policy against real libnfs clients and nfs-ganesha:
 * read-only grants (reads work, NFSv3 writes get ROFS from the gateway),
 * root squash (a root write lands as the anonymous uid, where the backend
 * itself squashes nothing), uid ranges (AUTH_ERROR outside), and MOUNT
 * checks (another export on the same backend, which the backend would
 * allow to the domain's source IP, is refused: MOUNT in v3, the LOOKUP
 * path in v4). In the kernel plane the
 * same policies steer only those grants through the proxy.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { DATA, LabDaemon, NFS41_SH, NS, metricValue, run } from '../helpers/lab';

/** Built by `test/lab/lab.sh install` from test/lab/nfs-ops.c on libnfs: the writes libnfs-utils lacks. */
const NFS_OPS = '/var/lib/sgwlab/bin/nfs-ops';
import { labYaml } from '../helpers/configs';

const ACME = '198.18.0.100';
const PORT = 9613;
const nfs = (p: string, v: 3 | 4, extra = ''): string => `nfs://${ACME}${p}?version=${v}${extra}`;

const metric = (name: string, labels: string): Promise<number> => metricValue(PORT, name, labels);
const answers = (reason: string): Promise<number> => metric('sharegw_protocol_answers_total', `proto="nfs",reason="${reason}"`);

function daemon(plane: 'kernel' | 'proxy', edit: (acme: string) => string): LabDaemon {
  const acme = labYaml(plane).domains['acme.yaml'] ?? '';
  return new LabDaemon({ plane, domains: { 'acme.yaml': edit(acme) }, extra: `metrics: 127.0.0.1:${PORT}\nproxy: { drainTimeout: 2s }\n` });
}

const roRule = (y: string): string => y.replace('accessRules: [{ accessType: ip, accessTo: 198.19.0.0/24, accessLevel: rw }]', 'accessRules: [{ accessType: ip, accessTo: 198.19.0.0/24, accessLevel: ro }]');
const withNfs = (block: string) => (y: string): string => y.replace('sourceIp: 198.18.0.11\n', `sourceIp: 198.18.0.11\nnfs: ${block}\n`);

function upload(name: string): string {
  const src = path.join('/dev/shm', `sgw-nfs-policy-${process.pid}-${name}`);
  fs.writeFileSync(src, 'x'.repeat(10_000));
  return src;
}

for (const plane of ['proxy', 'kernel'] as const) {
  t.test(`${plane} plane: an ro grant reads, and NFSv3 and NFSv4 writes get ROFS from the gateway`, async (t) => {
    const d = daemon(plane, roRule);
    t.teardown(() => d.dispose());
    await d.start();
    const st = await d.status();
    const grants = st.domains.find((x: { name: string }) => x.name === 'acme').guests[0].grants as { backend: string; plane: string }[];
    t.equal(grants.find((g) => g.backend === `${ACME}:2049`)?.plane, 'proxy', 'the ro NFS grant goes through the proxy');
    const cat = await run('nfs-cat', [nfs('/export/acme/hello.txt', 3)], { ns: NS.g1 });
    t.equal(cat.code, 0, cat.stderr);
    t.match(cat.stdout, /hello from acme/, 'reads work');
    const name = `ro-${plane}-${process.pid}.txt`;
    const src = upload(name);
    t.teardown(() => fs.rmSync(src, { force: true }));
    const w = await run('nfs-cp', [src, nfs(`/export/acme/${name}`, 3)], { ns: NS.g1 });
    t.not(w.code, 0, 'the write fails');
    t.match(w.stderr + w.stdout, /ROFS|read-only|Read-only/i, `the client sees a read-only file system: ${w.stderr.trim()}`);
    t.notOk(fs.existsSync(path.join(DATA, 'acme', name)), 'nothing reached the backend');
    t.ok((await answers('rofs')) >= 1, 'answered by the gateway, and counted');
    t.match(d.log(), /"answered":\{"rofs":\d+\}/, 'the access log says so');

    // NFSv4: reads pass, a writing COMPOUND gets NFS4ERR_ROFS and is never executed.
    const cat4 = await run('nfs-cat', [nfs('/export/acme/hello.txt', 4)], { ns: NS.g1 });
    t.equal(cat4.code, 0, cat4.stderr);
    t.match(cat4.stdout, /hello from acme/, 'NFSv4 reads work');
    const before = await answers('rofs');
    const small = path.join('/dev/shm', `sgw-nfs-policy-${process.pid}-v4`);
    fs.writeFileSync(small, 'small v4 write\n');
    t.teardown(() => fs.rmSync(small, { force: true }));
    const name4 = `ro4-${plane}-${process.pid}.txt`;
    const w4 = await run('nfs-cp', [small, nfs(`/export/acme/${name4}`, 4)], { ns: NS.g1 });
    t.not(w4.code, 0, 'the NFSv4 write fails');
    t.match(w4.stderr + w4.stdout, /ROFS|read-only|Read-only/i, `with a read-only error: ${w4.stderr.trim()}`);
    t.notOk(fs.existsSync(path.join(DATA, 'acme', name4)), 'not even created on the backend');
    t.ok((await answers('rofs')) > before, 'answered by the gateway');

    // Every other kind of write, on objects that exist on the backend.
    const file = `rof-${plane}-${process.pid}.txt`;
    const dir = `rod-${plane}-${process.pid}`;
    fs.writeFileSync(path.join(DATA, 'acme', file), 'keep me\n');
    fs.chmodSync(path.join(DATA, 'acme', file), 0o666);
    fs.mkdirSync(path.join(DATA, 'acme', dir));
    t.teardown(() => {
      fs.rmSync(path.join(DATA, 'acme', file), { force: true });
      fs.rmSync(path.join(DATA, 'acme', dir), { recursive: true, force: true });
    });
    const ops: string[][] = [
      ['mkdir', `/new-${dir}`],
      ['rmdir', `/${dir}`],
      ['unlink', `/${file}`],
      ['rename', `/${file}`, `/moved-${file}`],
      ['chmod', `/${file}`, '600'],
      ['chown', `/${file}`, '1', '1'],
      ['truncate', `/${file}`, '0'],
      ['write', `/${file}`],
      ['symlink', file, `/sym-${file}`],
      ['link', `/${file}`, `/hard-${file}`],
      ['creat', `/creat-${file}`],
    ];
    for (const v of [3, 4] as const) {
      for (const op of ops) {
        const n = await answers('rofs');
        const r = await run(NFS_OPS, [`nfs://${ACME}/export/acme?version=${v}`, ...op], { ns: NS.g1 });
        t.equal(r.code, 1, `v${v} ${op[0]} fails: ${r.stdout.trim()} ${r.stderr.trim()}`);
        t.ok((await answers('rofs')) > n, `v${v} ${op[0]}: answered ROFS by the gateway`);
        if (!(v === 3 && op[0] === 'write')) {
          // libnfs 4.0 reports any failed NFSv3 WRITE as EFAULT with no text.
          t.match(r.stdout, /ROFS|read-only|Read-only/i, `v${v} ${op[0]}: the client sees a read-only error`);
        }
      }
    }
    const left = fs.readdirSync(path.join(DATA, 'acme')).filter((n) => n.includes(`${plane}-${process.pid}`));
    t.same(left.sort(), [dir, file].sort(), 'nothing created, moved or removed on the backend');
    const after = fs.statSync(path.join(DATA, 'acme', file));
    t.same([after.mode & 0o777, after.uid, fs.readFileSync(path.join(DATA, 'acme', file), 'utf8')], [0o666, 0, 'keep me\n'], 'mode, owner and content unchanged');
  });
}

t.test('root squash: a root write lands as the anonymous uid (the backend squashes nothing itself)', async (t) => {
  const name = `squash-${process.pid}.txt`;
  const dst = path.join(DATA, 'acme', name);
  const src = upload(name);
  t.teardown(() => {
    fs.rmSync(src, { force: true });
    fs.rmSync(dst, { force: true });
    fs.rmSync(`${dst}.plain`, { force: true });
  });
  const plain = daemon('proxy', (y) => y);
  await plain.start();
  const w0 = await run('nfs-cp', [src, nfs(`/export/acme/${name}.plain`, 3)], { ns: NS.g1 });
  await plain.dispose();
  t.equal(w0.code, 0, w0.stderr);
  t.equal(fs.statSync(`${dst}.plain`).uid, 0, 'without a policy, root stays root on the backend');

  const d = daemon('proxy', withNfs('{ rootSquash: true, anonUid: 65534, anonGid: 65534 }'));
  t.teardown(() => d.dispose());
  await d.start();
  const w = await run('nfs-cp', [src, nfs(`/export/acme/${name}`, 3)], { ns: NS.g1 });
  t.equal(w.code, 0, w.stderr);
  const st = fs.statSync(dst);
  t.equal(st.uid, 65534, 'owned by the anonymous uid');
  t.equal(st.gid, 65534, 'and gid');
});

t.test('uid ranges: a uid outside is refused by the gateway, one inside works', async (t) => {
  const d = daemon('proxy', withNfs('{ rootSquash: false, uids: ["1000-2000"], gids: ["1000-2000"] }'));
  t.teardown(() => d.dispose());
  await d.start();
  const root = await run('nfs-ls', [nfs('/export/acme', 3)], { ns: NS.g1 });
  t.not(root.code, 0, 'uid 0 is refused');
  t.ok((await answers('uid-range')) >= 1, 'with an AUTH_ERROR from the gateway, counted');
  const user = await run('nfs-ls', [nfs('/export/acme', 3, '&uid=1500&gid=1500')], { ns: NS.g1 });
  t.equal(user.code, 0, user.stderr);
  t.match(user.stdout, /hello\.txt/, 'uid 1500 lists the share');
});

t.test('MOUNT: another export on the same backend is refused; the granted one works', async (t) => {
  // The backend itself would allow it: acme-private is exported to acme's source IP.
  const k = daemon('kernel', (y) => y);
  await k.start();
  const direct = await run('nfs-ls', [nfs('/export/acme-private', 3)], { ns: NS.g1 });
  const direct4 = await run('nfs-ls', [nfs('/export/acme-private', 4)], { ns: NS.g1 });
  await k.dispose();
  t.equal(direct.code, 0, 'without mount checks (kernel plane, nothing steered) the backend lets it through');
  t.equal(direct4.code, 0, `in NFSv4 too: ${direct4.stderr}`);

  const d = daemon('proxy', (y) => y);
  t.teardown(() => d.dispose());
  await d.start();
  const other = await run('nfs-ls', [nfs('/export/acme-private', 3)], { ns: NS.g1 });
  t.not(other.code, 0, 'through the proxy it is refused');
  t.equal(await answers('mount-denied'), 1, 'by the gateway (MNT3ERR_ACCES), counted');
  const own = await run('nfs-ls', [nfs('/export/acme', 3)], { ns: NS.g1 });
  t.equal(own.code, 0, own.stderr);
  t.match(own.stdout, /hello\.txt/);
  t.ok((await answers('export-list')) >= 1, "libnfs's MOUNT EXPORT was answered with acme's exports only");

  // NFSv4 has no MOUNT: the gateway follows PUTROOTFH and the LOOKUPs.
  const other4 = await run('nfs-ls', [nfs('/export/acme-private', 4)], { ns: NS.g1 });
  t.not(other4.code, 0, 'NFSv4: the other export is refused');
  t.match(other4.stderr + other4.stdout, /ACCESS|ermission/i, `with an access error: ${other4.stderr.trim()}`);
  t.equal(await answers('mount-denied'), 2, 'by the gateway (NFS4ERR_ACCESS), counted');
  const own4 = await run('nfs-ls', [nfs('/export/acme', 4)], { ns: NS.g1 });
  t.equal(own4.code, 0, own4.stderr);
  t.match(own4.stdout, /hello\.txt/, 'NFSv4: the granted export lists');
  const cat4 = await run('nfs-cat', [nfs('/export/acme/hello.txt', 4)], { ns: NS.g1 });
  t.match(cat4.stdout, /hello from acme/, 'and reads');
});

t.test('id offset map: two domains writing as uid 500 land as two backend owners, and each sees its own files as uid 500', async (t) => {
  const lab = labYaml('proxy').domains;
  const acme = withNfs('{ rootSquash: true, idOffset: 131072 }')(lab['acme.yaml'] ?? '');
  const beta = (lab['beta.yaml'] ?? '')
    .replace('sourceIp: 198.18.0.12\n', 'sourceIp: 198.18.0.12\nnfs: { rootSquash: true, idOffset: 196608 }\n')
    .replace('    proto: NFS\n', '    proto: NFS\n    nfsv3: true\n');
  const d = new LabDaemon({ plane: 'proxy', domains: { 'acme.yaml': acme, 'beta.yaml': beta }, extra: `metrics: 127.0.0.1:${PORT}\n` });
  t.teardown(() => d.dispose());
  await d.start();
  const as500 = '&uid=500&gid=500';
  const who = [
    { ns: NS.g1, host: ACME, exp: '/export/acme', dir: 'acme', backendId: 131072 + 500 },
    { ns: NS.g2, host: '198.18.0.101', exp: '/export/beta', dir: 'beta', backendId: 196608 + 500 },
  ];
  for (const v of [3, 4] as const) {
    for (const w of who) {
      const name = `idmap-v${v}-${w.dir}-${process.pid}.txt`;
      const src = upload(name);
      if (v === 4) {
        // libnfs 4.0 fails NFSv4 writes above about 3.8 KiB before sending
        // them, with or without the gateway (README, Tests).
        fs.writeFileSync(src, 'id map v4\n');
      }
      const dst = path.join(DATA, w.dir, name);
      t.teardown(() => {
        fs.rmSync(src, { force: true });
        fs.rmSync(dst, { force: true });
      });
      const cp = await run('nfs-cp', [src, `nfs://${w.host}${w.exp}/${name}?version=${v}${as500}`], { ns: w.ns });
      t.equal(cp.code, 0, `${w.dir} v${v}: ${cp.stderr}`);
      const st = fs.statSync(dst);
      t.same([st.uid, st.gid], [w.backendId, w.backendId], `${w.dir} v${v}: uid 500 lands as backend uid ${w.backendId}`);
      const ls = await run('nfs-ls', [`nfs://${w.host}${w.exp}?version=${v}${as500}`], { ns: w.ns });
      t.equal(ls.code, 0, ls.stderr);
      const line = ls.stdout.split('\n').find((l) => l.endsWith(` ${name}`)) ?? '';
      t.match(line, /\s500\s+500\s/, `${w.dir} v${v}: the guest sees its file as uid 500: ${line.trim()}`);
      t.notMatch(ls.stdout, new RegExp(`\\s${w.backendId}\\s`), 'no backend id reaches the guest');
    }
  }
  // The backend's own ids (root's hello.txt) show as the domain's anonymous id in v3 attributes.
  const ls3 = await run('nfs-ls', [nfs('/export/acme', 3, as500)], { ns: NS.g1 });
  t.match(ls3.stdout.split('\n').find((l) => l.endsWith(' hello.txt')) ?? '', /\s65534\s+65534\s/, "a file of the backend's own root shows as nobody");
  // uid 70000 is past the window: refused.
  const far = await run('nfs-ls', [nfs('/export/acme', 3, '&uid=70000&gid=500')], { ns: NS.g1 });
  t.not(far.code, 0, 'a uid outside the id map is refused');
});

t.test('NFSv4.1 (a real session client) on an ro grant: writes get ROFS, and the session stays in step for what follows', async (t) => {
  const d = daemon('proxy', roRule);
  t.teardown(async () => {
    await run('bash', [NFS41_SH, 'stop', NS.g1]);
    await d.dispose();
  });
  await d.start();
  // nfs-ganesha with PROXY_V4 in the guest: an NFSv4.1 client (sessions, SEQUENCE) towards the backend.
  const start = await run('bash', [NFS41_SH, 'start', NS.g1, ACME], { timeoutMs: 30_000 });
  t.equal(start.code, 0, start.stderr);
  const local = (p: string): string => `nfs://127.0.0.1/export/acme${p}?version=4`;
  const cat = await run('nfs-cat', [local('/hello.txt')], { ns: NS.g1 });
  t.equal(cat.stdout, 'hello from acme\n', `reads work: ${cat.stderr}`);
  const small = path.join('/dev/shm', `sgw-nfs41-ro-${process.pid}`);
  fs.writeFileSync(small, 'v4.1 write\n');
  t.teardown(() => fs.rmSync(small, { force: true }));
  const before = await answers('rofs');
  for (let i = 0; i < 3; i++) {
    const name = `ro41-${process.pid}-${i}.txt`;
    const w = await run('nfs-cp', [small, local(`/${name}`)], { ns: NS.g1 });
    t.not(w.code, 0, `write ${i} fails`);
    t.notOk(fs.existsSync(path.join(DATA, 'acme', name)), `write ${i} never reached the backend`);
    // Every slot the client used for a refused write must still work: the
    // server saw each SEQUENCE (without it, the next use of that slot gets
    // NFS4ERR_SEQ_MISORDERED).
    const again = await run('nfs-cat', [local('/hello.txt')], { ns: NS.g1, timeoutMs: 20_000 });
    t.equal(again.stdout, 'hello from acme\n', `a read after refused write ${i} works: ${again.stderr}`);
  }
  t.ok((await answers('rofs')) > before, 'the gateway answered the writes');
  t.notMatch(d.log(), /"reason":"malformed"/, 'nothing was refused as malformed');
});
