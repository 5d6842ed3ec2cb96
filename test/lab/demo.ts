/**
 * `npm run demo` (via scripts/demo.sh, which builds and brings the lab up):
 * starts the real sharegwd in the lab's gateway namespace, copies files over
 * NFS and SMB from guest 1 through it, shows guest 2 (another domain) being
 * refused, then reads 1 GiB over NFS and SMB through each path: routed access
 * without a gateway (the limit), the kernel plane and the proxy plane,
 * interleaved, and prints the medians side by side. A demonstration, not a
 * benchmark suite (that is bench/, issue 7).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DATA, LabDaemon, NS, ROOT, probe, randomFile, run, sgwRules, sha256File, tempDir, rmTemp, SMB_ACME } from '../helpers/lab';

const ACME = '198.18.0.100';
const BIG = path.join(DATA, 'acme', 'big1g');
const OUT = '/dev/shm/sgw-demo.bin';
const REPS = Math.max(1, Number(process.env['DEMO_REPS'] ?? '3'));
const SHAREGWD = path.join(ROOT, 'dist/src/cli/sharegwd.js');
const SHAREGW = path.join(ROOT, 'dist/src/cli/sharegw.js');

const say = (s = ''): void => void process.stdout.write(`${s}\n`);
const step = (s: string): void => say(`\n== ${s}`);

type PathName = 'routed' | 'kernel' | 'proxy';
let daemon: LabDaemon | null = null;

async function must(what: string, cmd: string, args: string[], ns?: string): Promise<string> {
  const r = await run(cmd, args, { ...(ns !== undefined ? { ns } : {}), timeoutMs: 180_000 });
  if (r.code !== 0) {
    throw new Error(`${what} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
  }
  return r.stdout;
}

async function stopDaemon(): Promise<void> {
  if (daemon !== null) {
    await daemon.dispose();
    daemon = null;
  }
}

/** Puts the gateway namespace into the state one path needs. */
async function use(p: PathName): Promise<void> {
  await stopDaemon();
  await run('ip', ['netns', 'exec', NS.gw, process.execPath, SHAREGWD, '--cleanup']);
  await run('ip', ['-4', 'addr', 'flush', 'dev', 'sgwt-g1'], { ns: NS.gw });
  if (p === 'routed') {
    // No gateway: the tunnel is a plain routed link, the backend sees the
    // guest's tunnel address (the lab's exports allow it for this baseline).
    await must('tunnel address', 'ip', ['addr', 'add', '169.254.1.1', 'peer', '169.254.1.2/32', 'dev', 'sgwt-g1'], NS.gw);
    return;
  }
  // The default sync interval, as in production: the tests' 1 s loop would
  // spend the measured CPU on iptables-save and ip.
  daemon = new LabDaemon({ plane: p, syncInterval: '10s' });
  await daemon.start();
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const nfsRead = (): Promise<void> => must('NFS read', 'nfs-cp', [`nfs://${ACME}/export/acme/big1g?version=4`, OUT], NS.g1).then(() => undefined);
const smbRead = (): Promise<void> => must('SMB read', 'smbclient', [`//${ACME}/acme`, ...SMB_ACME, '-c', `get big1g ${OUT}`], NS.g1).then(() => undefined);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
}

async function main(): Promise<void> {
  const work = tempDir('demo');
  try {
    step('kernel plane: sharegwd starts in the gateway namespace');
    await use('kernel');
    say((await must('status', process.execPath, [SHAREGW, 'status', '--socket', daemon?.socket ?? ''])).trimEnd());
    say(`rules: ${(await sgwRules()).length} iptables lines in sharegw's own chains`);

    step('guest 1 (domain acme) copies files through the gateway');
    say(`NFSv4 read  nfs://${ACME}/export/acme/hello.txt -> ${JSON.stringify(await must('nfs-cat', 'nfs-cat', [`nfs://${ACME}/export/acme/hello.txt?version=4`], NS.g1))}`);
    const src = path.join(work, 'upload.bin');
    const sum = randomFile(src, 32 * 1024 * 1024);
    await must('NFS write', 'nfs-cp', [src, `nfs://${ACME}/export/acme/demo-nfs-upload.bin?version=3`], NS.g1);
    say(`NFSv3 write 32 MiB -> backend file sha256 ${sha256File(path.join(DATA, 'acme', 'demo-nfs-upload.bin')) === sum ? 'matches' : 'DIFFERS'}`);
    const back = path.join(work, 'smb.back');
    await must('SMB put/get', 'smbclient', [`//${ACME}/acme`, ...SMB_ACME, '-c', `put ${src} demo-smb-upload.bin; get demo-smb-upload.bin ${back}`], NS.g1);
    say(`SMB3 put+get 32 MiB -> ${sha256File(back) === sum && sha256File(path.join(DATA, 'acme', 'demo-smb-upload.bin')) === sum ? 'byte-exact both ways' : 'DIFFERS'}`);
    fs.rmSync(path.join(DATA, 'acme', 'demo-nfs-upload.bin'), { force: true });
    fs.rmSync(path.join(DATA, 'acme', 'demo-smb-upload.bin'), { force: true });

    step('guest 2 (domain beta) tries acme\'s share');
    const denied = await probe(NS.g2, ACME, 2049);
    say(`tcp ${ACME}:2049 from guest 2: ${denied.result} after ${denied.ms} ms`);
    const ls = await run('nfs-ls', [`nfs://${ACME}/export/acme?version=4`], { ns: NS.g2 });
    say(`nfs-ls from guest 2: exit ${ls.code} (${(ls.stderr || ls.stdout).trim()})`);
    const own = await run('nfs-cat', ['nfs://198.18.0.101/export/beta/hello.txt?version=4'], { ns: NS.g2 });
    say(`guest 2 reads its own share: ${JSON.stringify(own.stdout)}`);
    const c = await daemon?.kernelCounters('beta/g2');
    say(`gateway counted ${c?.deny ?? 0} denied packet(s) from guest 2`);
    if (denied.result !== 'refused' || ls.code === 0 || own.code !== 0) {
      throw new Error('isolation check failed');
    }

    step(`1 GiB reads: routed (no gateway) vs kernel plane vs proxy plane, ${REPS} interleaved rounds`);
    const want = sha256File(BIG);
    const paths: PathName[] = ['routed', 'kernel', 'proxy'];
    const times: Record<PathName, { nfs: number[]; smb: number[] }> = { routed: { nfs: [], smb: [] }, kernel: { nfs: [], smb: [] }, proxy: { nfs: [], smb: [] } };
    for (let rep = 1; rep <= REPS; rep++) {
      for (const p of paths) {
        await use(p);
        const nfs = await timed(nfsRead);
        const exact = rep === 1 ? (sha256File(OUT) === want ? ' byte-exact' : ' DIFFERS') : '';
        const smb = await timed(smbRead);
        const exact2 = rep === 1 ? (sha256File(OUT) === want ? ' byte-exact' : ' DIFFERS') : '';
        times[p].nfs.push(nfs);
        times[p].smb.push(smb);
        say(`round ${rep} ${p.padEnd(6)}  NFSv4 ${nfs.toFixed(2)} s${exact}   SMB3 ${smb.toFixed(2)} s${exact2}`);
        fs.rmSync(OUT, { force: true });
      }
    }
    await stopDaemon();

    step('result (median; MiB/s; ratio to routed)');
    const mib = (s: number): string => `${(1024 / s).toFixed(0).padStart(5)} MiB/s`;
    const base = { nfs: median(times.routed.nfs), smb: median(times.routed.smb) };
    say('path                      NFSv4 1 GiB read                 SMB3 1 GiB read');
    for (const p of paths) {
      const n = median(times[p].nfs);
      const s = median(times[p].smb);
      const label = p === 'routed' ? 'routed, no gateway' : `sharegw ${p} plane`;
      say(`${label.padEnd(24)}  ${n.toFixed(2)} s ${mib(n)} ${(base.nfs / n).toFixed(2)}x    ${s.toFixed(2)} s ${mib(s)} ${(base.smb / s).toFixed(2)}x`);
    }
    say('\n(2 shared vCPUs in namespaces: expect +-20-40 % noise between runs; compare within one run.)');
  } finally {
    await stopDaemon();
    await run('ip', ['netns', 'exec', NS.gw, process.execPath, SHAREGWD, '--cleanup']);
    await run('ip', ['-4', 'addr', 'flush', 'dev', 'sgwt-g1'], { ns: NS.gw });
    fs.rmSync(OUT, { force: true });
    rmTemp(work);
  }
}

main().then(
  () => say('\ndemo: done'),
  (err: unknown) => {
    process.stderr.write(`demo: FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
