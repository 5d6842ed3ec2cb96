/**
 * The workloads, each run by real clients in the guest namespace (iperf3,
 * libnfs's nfs-cp, smbclient, and the bench's own RPC and connection
 * clients). Each returns its figures by workload id; a failure throws, and
 * the runner records it as not measured rather than as a number.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DATA, NS, ROOT, SMB_ACME, run, sha256File, sleep } from '../../test/helpers/lab';
import type { WorkloadDef } from './report';
import { ACME, BENCH_PORT, IPERF, SINK } from './paths';

export const WORKLOADS: readonly WorkloadDef[] = [
  { id: 'iperf-1', title: 'iperf3, 1 stream', unit: 'Gbit/s', better: 'higher' },
  { id: 'iperf-4', title: 'iperf3, 4 streams', unit: 'Gbit/s', better: 'higher' },
  { id: 'nfs-read', title: 'NFSv4 read, 1 file', unit: 'MiB/s', better: 'higher' },
  { id: 'nfs-write', title: 'NFSv3 write, 1 file', unit: 'MiB/s', better: 'higher' },
  { id: 'smb-read', title: 'SMB3 read, 1 file', unit: 'MiB/s', better: 'higher' },
  { id: 'smb-write', title: 'SMB3 write, 1 file', unit: 'MiB/s', better: 'higher' },
  { id: 'smb-small', title: 'SMB3 small reads (4 KiB, one session)', unit: 'reads/s', better: 'higher' },
  { id: 'rpc-null', title: 'ONC RPC NULL, serial, one connection', unit: 'calls/s', better: 'higher' },
  { id: 'rpc-p50', title: 'ONC RPC NULL latency p50', unit: 'us', better: 'lower' },
  { id: 'rpc-p99', title: 'ONC RPC NULL latency p99', unit: 'us', better: 'lower' },
  { id: 'conn-rate', title: 'connection setup + 1-byte echo, serial', unit: 'conns/s', better: 'higher' },
  { id: 'cpu-host', title: 'host CPU per GiB (NFSv4 read, all processes and softirq)', unit: 'CPU s/GiB', better: 'lower' },
  { id: 'cpu-gw', title: 'gateway process CPU per GiB (NFSv4 read)', unit: 'CPU s/GiB', better: 'lower', noBaseline: true },
  { id: 'mem-idle', title: 'gateway memory, idle proxied connections (process RSS + conntrack)', unit: 'MiB', better: 'lower', noBaseline: true },
];

export interface Settings {
  /** Bytes of each file transfer. */
  bytes: number;
  iperfSeconds: number;
  smallReads: number;
  rpcCalls: number;
  conns: number;
  idleConns: number;
}

export interface Context {
  settings: Settings;
  /** Verify content (sha256) this time: first repetition of each path. */
  verify: boolean;
  /** sha256 of the read file, computed once. */
  readSum: string;
  /** The read file's name in acme's share. */
  readName: string;
  srcFile: string;
  srcSum: string;
}

const OUT = '/dev/shm/sgwbench-out.bin';
export const SMALL_FILE = 'bench-small.bin';
const NFS_UPLOAD = 'bench-nfs-upload';
let uploads = 0;
const SMB_UPLOAD = 'bench-smb-upload.bin';
const CONNECT = path.join(ROOT, 'dist/bench/src/peers/connect.js');
const RPCPING = path.join(ROOT, 'dist/bench/src/peers/rpcping.js');

async function inGuest(what: string, cmd: string, args: string[], timeoutMs = 300_000): Promise<{ out: string; secs: number }> {
  const t0 = process.hrtime.bigint();
  const r = await run(cmd, args, { ns: NS.g1, timeoutMs });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.code !== 0) {
    throw new Error(`${what}: exit ${r.code}: ${(r.stderr || r.stdout).trim().split('\n').slice(-2).join(' ')}`);
  }
  return { out: r.stdout, secs };
}

function json<T>(what: string, out: string): T {
  const line = out.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as T;
  } catch {
    throw new Error(`${what}: no JSON result in ${JSON.stringify(out.slice(-200))}`);
  }
}

/**
 * Every process in the gateway namespace: sharegwd (and its conntrack event
 * reader), haproxy, socat and its per-connection children, or the naive pipe.
 */
export function gatewayPids(): number[] {
  try {
    return execFileSync('ip', ['netns', 'pids', NS.gw], { encoding: 'utf8' }).split('\n').filter((l) => l !== '').map(Number);
  } catch {
    return [];
  }
}

/** Busy CPU seconds of the whole host (all cores, including softirq), from /proc/stat. */
export function hostCpuSeconds(): number {
  const f = (fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return (user + nice + system + irq + softirq + steal) / 100;
}

/** CPU seconds of processes, their reaped children included (socat forks one per connection). */
export function processCpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // fields 14-17 of stat(5): utime stime cutime cstime (f[0] is field 3)
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    } catch {
      // exited
    }
  }
  return ticks / 100;
}

/** Resident memory of processes in bytes. */
export function rssBytes(pids: readonly number[]): number {
  let kb = 0;
  for (const pid of pids) {
    try {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      kb += Number(m?.[1] ?? 0);
    } catch {
      // exited
    }
  }
  return kb * 1024;
}

/** Bytes held by conntrack entries (the kernel plane's per-flow state), from /proc/slabinfo. */
export function conntrackSlabBytes(): number {
  try {
    const line = fs
      .readFileSync('/proc/slabinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('nf_conntrack '));
    const f = (line ?? '').split(/\s+/);
    return Number(f[1] ?? 0) * Number(f[3] ?? 0);
  } catch {
    return 0;
  }
}

async function iperf(streams: number, s: Settings): Promise<number> {
  const { out } = await inGuest('iperf3', 'iperf3', ['-c', IPERF, '-p', String(BENCH_PORT), '-t', String(s.iperfSeconds), '-P', String(streams), '-J', '--connect-timeout', '5000'], (s.iperfSeconds + 30) * 1000);
  const r = JSON.parse(out) as { end?: { sum_received?: { bits_per_second?: number } } };
  const bps = r.end?.sum_received?.bits_per_second;
  if (bps === undefined) {
    throw new Error('iperf3: no sum_received in its JSON');
  }
  return bps / 1e9;
}

const mibs = (bytes: number, secs: number): number => bytes / 1048576 / secs;

/** Runs every workload once on the current path; yields (workload, value) as they finish. */
export async function* runWorkloads(ctx: Context, only: ReadonlySet<string> | null): AsyncGenerator<{ workload: string; value: number } | { workload: string; error: string }> {
  const s = ctx.settings;
  const want = (...ids: string[]): boolean => only === null || ids.some((id) => only.has(id));
  const attempt = async function* (ids: string[], fn: () => Promise<Record<string, number>>): AsyncGenerator<{ workload: string; value: number } | { workload: string; error: string }> {
    if (!want(...ids)) {
      return;
    }
    try {
      const r = await fn();
      for (const [workload, value] of Object.entries(r)) {
        yield { workload, value };
      }
    } catch (err) {
      for (const workload of ids) {
        yield { workload, error: err instanceof Error ? err.message : String(err) };
      }
    }
  };

  yield* attempt(['iperf-1'], async () => ({ 'iperf-1': await iperf(1, s) }));
  yield* attempt(['iperf-4'], async () => ({ 'iperf-4': await iperf(4, s) }));

  yield* attempt(['nfs-read', 'cpu-host', 'cpu-gw'], async () => {
    const h0 = hostCpuSeconds();
    const p0 = processCpuSeconds(gatewayPids());
    const { secs } = await inGuest('nfs-cp read', 'nfs-cp', [`nfs://${ACME}/export/acme/${ctx.readName}?version=4`, OUT]);
    const host = hostCpuSeconds() - h0;
    const gw = processCpuSeconds(gatewayPids()) - p0;
    const size = fs.statSync(OUT).size;
    if (size !== s.bytes || (ctx.verify && sha256File(OUT) !== ctx.readSum)) {
      throw new Error(`nfs-cp read: the copy differs from the backend's file (${size} bytes)`);
    }
    fs.rmSync(OUT, { force: true });
    const gib = s.bytes / 2 ** 30;
    return { 'nfs-read': mibs(s.bytes, secs), 'cpu-host': host / gib, 'cpu-gw': gw / gib };
  });

  // A new name each time: nfs-ganesha caches directory entries, so a file
  // removed behind its back would still "exist" for the next CREATE.
  // NFSv3: libnfs's NFSv4 writes fail past a few KiB (a libnfs bug; see the lab README).
  yield* attempt(['nfs-write'], () =>
    upload(ctx, 'nfs-write', 'nfs-cp write', `${NFS_UPLOAD}-${process.pid}-${++uploads}`, (name) => ['nfs-cp', [ctx.srcFile, `nfs://${ACME}/export/acme/${name}?version=3`]]),
  );

  yield* attempt(['smb-read'], async () => {
    const { secs } = await inGuest('smbclient get', 'smbclient', [`//${ACME}/acme`, ...SMB_ACME, '-c', `get ${ctx.readName} ${OUT}`]);
    const size = fs.statSync(OUT).size;
    if (size !== s.bytes || (ctx.verify && sha256File(OUT) !== ctx.readSum)) {
      throw new Error('smbclient get: the copy differs from the backend file');
    }
    fs.rmSync(OUT, { force: true });
    return { 'smb-read': mibs(s.bytes, secs) };
  });

  yield* attempt(['smb-write'], () => upload(ctx, 'smb-write', 'smbclient put', SMB_UPLOAD, (name) => ['smbclient', [`//${ACME}/acme`, ...SMB_ACME, '-c', `put ${ctx.srcFile} ${name}`]]));

  yield* attempt(['smb-small'], async () => {
    const cmds = Array.from({ length: s.smallReads }, () => `get ${SMALL_FILE} /dev/null`).join('; ');
    const { secs, out } = await inGuest('smbclient small gets', 'smbclient', [`//${ACME}/acme`, ...SMB_ACME, '-c', cmds]);
    if (/NT_STATUS_/.test(out)) {
      throw new Error(`smbclient small gets: ${out.split('\n').find((l) => l.includes('NT_STATUS_')) ?? ''}`);
    }
    return { 'smb-small': s.smallReads / secs };
  });

  yield* attempt(['rpc-null', 'rpc-p50', 'rpc-p99'], async () => {
    const { out } = await inGuest('rpcping', process.execPath, [RPCPING, ACME, '2049', String(s.rpcCalls), '4']);
    const r = json<{ per_s: number; p50_us: number; p99_us: number }>('rpcping', out);
    return { 'rpc-null': r.per_s, 'rpc-p50': r.p50_us, 'rpc-p99': r.p99_us };
  });

  yield* attempt(['conn-rate'], async () => {
    const { out } = await inGuest('connect rate', process.execPath, [CONNECT, 'rate', SINK, String(BENCH_PORT), String(s.conns)]);
    return { 'conn-rate': json<{ per_s: number }>('connect rate', out).per_s };
  });

  yield* attempt(['mem-idle'], async () => ({ 'mem-idle': await idleMemory(ctx) }));
}

/** Writes the source file to acme's share as `name` with `command`, checks what landed, removes it. */
async function upload(ctx: Context, workload: string, what: string, name: string, command: (name: string) => [string, string[]]): Promise<Record<string, number>> {
  const dst = path.join(DATA, 'acme', name);
  fs.rmSync(dst, { force: true });
  const [cmd, args] = command(name);
  const { secs } = await inGuest(what, cmd, args);
  const ok = fs.existsSync(dst) && fs.statSync(dst).size === ctx.settings.bytes && (!ctx.verify || sha256File(dst) === ctx.srcSum);
  fs.rmSync(dst, { force: true });
  if (!ok) {
    throw new Error(`${what}: the backend file differs from the source`);
  }
  return { [workload]: mibs(ctx.settings.bytes, secs) };
}

/**
 * Opens `idleConns` connections from the guest through the path to the sink
 * (each proven end to end by an echoed byte), then reads what the gateway
 * holds for them: its processes' resident memory plus conntrack's slab, in
 * MiB, over the same reading taken just before.
 */
async function idleMemory(ctx: Context): Promise<number> {
  const n = ctx.settings.idleConns;
  const rss0 = rssBytes(gatewayPids());
  const ct0 = conntrackSlabBytes();
  const holder = spawn('ip', ['netns', 'exec', NS.g1, process.execPath, CONNECT, 'hold', SINK, String(BENCH_PORT), String(n)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  holder.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  holder.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => holder.on('close', (code) => resolve(code)));
  try {
    const deadline = Date.now() + 180_000;
    while (!out.includes('"held"')) {
      if (holder.exitCode !== null || Date.now() > deadline) {
        throw new Error(`holder: ${err.trim() || 'timed out'}`);
      }
      await sleep(100);
    }
    // Let allocations settle (lazy buffers, GC) before reading.
    await sleep(2000);
    const bytes = rssBytes(gatewayPids()) - rss0 + (conntrackSlabBytes() - ct0);
    return Math.max(0, bytes) / 1048576;
  } finally {
    holder.stdin.end();
    const timer = setTimeout(() => holder.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
    // the gateway and the sink close their ends; give them a moment
    await sleep(1000);
  }
}
