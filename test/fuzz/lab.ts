/**
 * The socket-path fuzzer against the real thing: sharegwd in the lab's
 * proxy plane (gateway namespace), the fuzz client in guest 1's namespace,
 * the real nfs-ganesha and samba behind. Watches the daemon's RSS
 * (/proc/<pid>/status; `ip netns exec` runs it as the child's own pid),
 * that it stays up, that its refusal counters grow, and that real clients
 * (nfs-cat over NFSv3 and v4, smbclient) are served afterwards. Root and
 * the lab (test/lab/lab.sh up) required; hold /tmp/sgwlab.lock.
 */
import * as path from 'node:path';
import { labYaml } from '../helpers/configs';
import { gatewayGet, LabDaemon, NS, run, SMB_ACME } from '../helpers/lab';
import type { Finding } from './engine';
import { procStatus } from './socket';
import type { SocketFuzzStats } from './socket';

const ACME = '198.18.0.100';
const METRICS = 9631;
const CLIENT = path.join(__dirname, 'client-cli.js');

export interface LabFuzzResult {
  findings: Finding[];
  row: { target: string; inputs: number; ms: number; crashes: number; violations: number; hangs: number; rssStart: number | null; rssEnd: number | null; rssMax: number | null; note: string };
  stats: SocketFuzzStats | null;
  /** Refusals counted by the daemon during the run. */
  refusals: number;
  /** Real clients served after the run: nfs-cat v3, v4, smbclient. */
  legit: { nfs3: boolean; nfs4: boolean; smb: boolean };
  alive: boolean;
  logBytes: number;
}

/** The sum of every sample of a metric (all label sets). */
export async function metricSum(port: number, name: string): Promise<number> {
  const m = await gatewayGet(port, '/metrics');
  return m.body
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .reduce((n, l) => n + Number(l.split(' ').pop() ?? 0), 0);
}

/**
 * Starts sharegwd, fuzzes it from guest 1 with each seed for `seconds`
 * (inputs counted per seed up to maxInputs), checks it, and disposes of it;
 * `during` runs while the daemon is still up, after the checks.
 */
export async function labSocketFuzz(opts: { seeds: readonly number[]; maxInputs: number; seconds: number; log?: (l: string) => void; during?: (d: LabDaemon) => Promise<void> }): Promise<LabFuzzResult> {
  const seed = opts.seeds[0] ?? 0;
  const acme = (labYaml('proxy').domains['acme.yaml'] ?? '').replace('sourceIp: 198.18.0.11\n', 'sourceIp: 198.18.0.11\nnfs: { rootSquash: true, anonUid: 65534, anonGid: 65534 }\n');
  const d = new LabDaemon({ plane: 'proxy', domains: { 'acme.yaml': acme }, extra: `metrics: 127.0.0.1:${METRICS}\nproxy: { drainTimeout: 2s, maxConnectionsPerGuest: 64 }\n` });
  const findings: Finding[] = [];
  try {
    await d.start();
    const pid = d.pid ?? 0;
    const before = await metricSum(METRICS, 'sharegw_protocol_refusals_total');
    const rssStart = procStatus(pid);
    let rssMax = rssStart ?? 0;
    let alive = true;
    const timer = setInterval(() => {
      const r = procStatus(pid);
      alive &&= r !== null;
      rssMax = Math.max(rssMax, r ?? 0);
    }, 250);
    const endpoints = [`${ACME}:2049:nfs`, `${ACME}:20048:nfs`, `${ACME}:445:smb`].join(',');
    const started = Date.now();
    const c = await run(process.execPath, [CLIENT, '--endpoints', endpoints, '--seeds', opts.seeds.join(','), '--inputs', String(opts.maxInputs), '--seconds', String(opts.seconds), '--concurrency', '8', '--linger', '500'], { ns: NS.g1, timeoutMs: opts.seeds.length * opts.seconds * 1000 + 60_000 });
    const ms = Date.now() - started;
    clearInterval(timer);
    let stats: SocketFuzzStats | null = null;
    try {
      stats = JSON.parse(c.stdout.trim().split('\n').pop() ?? '') as SocketFuzzStats;
    } catch {
      findings.push({ kind: 'crash', target: 'socket.lab', seed, index: 0, message: `fuzz client failed: ${c.code} ${c.stderr.slice(0, 500)}`, stack: '', file: null });
    }
    alive &&= procStatus(pid) !== null && d.pid !== undefined;
    const rssEnd = procStatus(pid);
    const refusals = alive ? (await metricSum(METRICS, 'sharegw_protocol_refusals_total')) - before : 0;
    const cat3 = await run('nfs-cat', [`nfs://${ACME}/export/acme/hello.txt?version=3`], { ns: NS.g1 });
    const cat4 = await run('nfs-cat', [`nfs://${ACME}/export/acme/hello.txt?version=4`], { ns: NS.g1 });
    const smb = await run('smbclient', [`//${ACME}/acme`, ...SMB_ACME, '-c', 'get hello.txt -'], { ns: NS.g1 });
    const legit = { nfs3: cat3.code === 0 && cat3.stdout.includes('hello from acme'), nfs4: cat4.code === 0 && cat4.stdout.includes('hello from acme'), smb: smb.code === 0 && smb.stdout.includes('hello from acme') };
    if (!alive) {
      findings.push({ kind: 'crash', target: 'socket.lab', seed, index: 0, message: `sharegwd died during the run: ${d.log().slice(-2000)}`, stack: '', file: null });
    }
    if (!legit.nfs3 || !legit.nfs4 || !legit.smb) {
      findings.push({ kind: 'violation', target: 'socket.lab', seed, index: 0, message: `real clients not served after the run: ${JSON.stringify(legit)} ${cat3.stderr} ${cat4.stderr} ${smb.stderr.slice(0, 300)}`, stack: '', file: null });
    }
    await opts.during?.(d);
    const logBytes = d.log().length;
    const note = `${stats?.connections ?? 0} connections (${stats?.closed ?? 0} closed, ${stats?.reset ?? 0} reset, ${stats?.stuck ?? 0} open after 500 ms), ${refusals} refusals counted by sharegwd, log ${(logBytes / 1024).toFixed(0)} KiB, real clients after: ${JSON.stringify(legit)}`;
    opts.log?.(`socket.lab: ${note}`);
    return {
      findings,
      row: { target: 'socket.lab (sharegwd proxy plane, ganesha, samba)', inputs: stats?.inputs ?? 0, ms, crashes: alive ? 0 : 1, violations: findings.filter((f) => f.kind === 'violation').length, hangs: 0, rssStart, rssEnd, rssMax, note },
      stats,
      refusals,
      legit,
      alive,
      logBytes,
    };
  } finally {
    await d.dispose();
  }
}
