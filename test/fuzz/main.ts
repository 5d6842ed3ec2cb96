/**
 * `npm run fuzz`: the long fuzz run (docs/fuzzing.md). Every codec target
 * of targets.ts in a worker thread (FUZZ_JOBS at a time), then the socket
 * path: the proxy's Session machinery in a child process (proxy-host.ts)
 * between many fuzzed loopback connections and stub backends; or, with
 * FUZZ_LAB=1 as root, the real sharegwd in the lab's proxy plane with the
 * real nfs-ganesha and samba (lab.ts; hold /tmp/sgwlab.lock).
 *
 * Prints per target: inputs, seconds, inputs/s, crashes, violations,
 * hangs, and memory (the process's RSS at the start and end of the target
 * and its peak; for the socket path, the proxy process's). A finding's
 * input goes to .fuzz/ with its error and the line to replay it.
 *
 * Environment: FUZZ_INPUTS (per target, default 1000000), FUZZ_SECONDS
 * (per target cap, default 3600), FUZZ_SEED (default random, printed),
 * FUZZ_TARGETS (comma-separated substrings of target names; 'socket' is
 * the socket path), FUZZ_JOBS (default 2), FUZZ_HANG_MS (default 15000),
 * FUZZ_LAB=1, FUZZ_REPLAY=<file in .fuzz/> (runs that one input and
 * prints its error).
 */
import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { loadCorpus } from './corpus';
import { FUZZ_DIR, inputAt, saveFinding } from './engine';
import type { Finding, RunStats } from './engine';
import type { Front, HostStats } from './proxy-host';
import { connectionAt, fuzzSockets, legitNfs, legitSmb, procStatus } from './socket';
import type { Endpoint, FuzzConnection, SocketFuzzStats } from './socket';
import { inputFromJson, TARGETS } from './targets';
import type { WorkerJob } from './worker';

const env = (k: string, d: number): number => {
  const v = process.env[k];
  return v === undefined || v === '' ? d : Number(v);
};
const INPUTS = env('FUZZ_INPUTS', 1_000_000);
const SECONDS = env('FUZZ_SECONDS', 3600);
const SEED = env('FUZZ_SEED', Math.floor(Math.random() * 0x7fffffff));
const JOBS = Math.max(1, env('FUZZ_JOBS', 2));
const HANG_MS = env('FUZZ_HANG_MS', 15_000);
const FILTER = (process.env['FUZZ_TARGETS'] ?? '').split(',').filter((x) => x !== '');
const wanted = (name: string): boolean => FILTER.length === 0 || FILTER.some((f) => name.includes(f));
const MiB = (b: number | null): string => (b === null ? '-' : (b / 1048576).toFixed(1));

interface Row {
  target: string;
  inputs: number;
  ms: number;
  crashes: number;
  violations: number;
  hangs: number;
  rssStart: number | null;
  rssEnd: number | null;
  rssMax: number | null;
  note: string;
}

const rows: Row[] = [];
const findings: Finding[] = [];

/** Samples this process's RSS while `work` runs. */
async function sampled<T>(pid: number, work: (peak: () => number) => Promise<T>): Promise<{ value: T; start: number | null; end: number | null; max: number | null }> {
  const start = procStatus(pid);
  let max = start ?? 0;
  const timer = setInterval(() => (max = Math.max(max, procStatus(pid) ?? 0)), 250);
  try {
    const value = await work(() => max);
    const end = procStatus(pid);
    return { value, start, end, max: Math.max(max, end ?? 0) };
  } finally {
    clearInterval(timer);
  }
}

function runWorker(target: string): Promise<{ stats: RunStats; failOpen: { count: number; example: string } }> {
  const sab = new SharedArrayBuffer(4);
  const current = new Int32Array(sab);
  const job: WorkerJob = { target, seed: SEED, maxInputs: INPUTS, maxMs: SECONDS * 1000, saveDir: FUZZ_DIR, current: sab };
  const w = new Worker(path.join(__dirname, 'worker.js'), { workerData: job });
  return new Promise((resolve) => {
    let last = -1;
    let lastChange = Date.now();
    let settled = false;
    const watchdog = setInterval(() => {
      const now = Atomics.load(current, 0);
      if (now !== last) {
        last = now;
        lastChange = Date.now();
        return;
      }
      if (Date.now() - lastChange > HANG_MS && !settled) {
        // Stuck in one input: stop the thread, regenerate the input here and save it.
        settled = true;
        clearInterval(watchdog);
        void w.terminate();
        void loadCorpus().then((c) => {
          const t = TARGETS.find((x) => x.name === target);
          const f = { kind: 'hang' as const, target, seed: SEED, index: now, message: `no progress for ${HANG_MS} ms in one input`, stack: '' };
          const file = t === undefined ? null : saveFinding(FUZZ_DIR, f, inputAt(t, c, SEED, now));
          resolve({ stats: { target, seed: SEED, inputs: now, ms: 0, findings: [{ ...f, file }], maxInputMs: HANG_MS }, failOpen: { count: 0, example: '' } });
        });
      }
    }, 1000);
    w.on('message', (m: { progress?: number; stats?: RunStats; knownFailOpen?: { count: number; example: string } }) => {
      if (m.stats !== undefined && !settled) {
        settled = true;
        clearInterval(watchdog);
        resolve({ stats: m.stats, failOpen: m.knownFailOpen ?? { count: 0, example: '' } });
      }
    });
    w.on('error', (err) => {
      if (!settled) {
        settled = true;
        clearInterval(watchdog);
        const f = { kind: 'crash' as const, target, seed: SEED, index: Atomics.load(current, 0), message: `worker died: ${err.message}`, stack: err.stack ?? '', file: null };
        resolve({ stats: { target, seed: SEED, inputs: f.index, ms: 0, findings: [f], maxInputMs: 0 }, failOpen: { count: 0, example: '' } });
      }
    });
  });
}

async function codecTargets(): Promise<void> {
  // The slowest target first, so that the pool's other job runs the rest meanwhile.
  const names = TARGETS.map((t) => t.name).filter(wanted).sort((a, b) => Number(b.startsWith('config')) - Number(a.startsWith('config')));
  const queue = [...names];
  const one = async (): Promise<void> => {
    for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
      const r = await sampled(process.pid, () => runWorker(name));
      const s = r.value.stats;
      findings.push(...s.findings);
      const fo = r.value.failOpen;
      rows.push({
        target: name,
        inputs: s.inputs,
        ms: s.ms,
        crashes: s.findings.filter((f) => f.kind === 'crash').length,
        violations: s.findings.filter((f) => f.kind === 'violation').length,
        hangs: s.findings.filter((f) => f.kind === 'hang').length,
        rssStart: r.start,
        rssEnd: r.end,
        rssMax: r.max,
        note: `slowest input ${s.maxInputMs.toFixed(1)} ms${fo.count > 0 ? `; ${fo.count} multi-fragment fail-open (issue 14 #1), e.g. ${fo.example}` : ''}`,
      });
      console.log(`  ${name}: ${s.inputs} inputs in ${(s.ms / 1000).toFixed(1)} s, ${s.findings.length} findings`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(JOBS, names.length) }, () => one()));
}

/** The loopback socket path: proxy-host.ts in a child, fuzzed through its fronts. */
async function socketLoopback(): Promise<void> {
  const corpus = await loadCorpus();
  const child = fork(path.join(__dirname, 'proxy-host.js'), [String(SEED)], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const pid = child.pid ?? 0;
  let exited: { code: number | null; signal: string | null } | null = null;
  child.on('exit', (code, signal) => (exited = { code, signal }));
  const fronts = await new Promise<Front[]>((resolve, reject) => {
    child.once('message', (m: { fronts?: Front[] }) => (m.fronts !== undefined ? resolve(m.fronts) : reject(new Error('proxy host did not start'))));
    child.once('exit', () => reject(new Error('proxy host exited at start')));
  });
  const stats = (): Promise<HostStats | null> =>
    new Promise((resolve) => {
      if (exited !== null) {
        resolve(null);
        return;
      }
      const t = setTimeout(() => resolve(null), 10_000);
      child.once('message', (m: { stats?: HostStats }) => {
        clearTimeout(t);
        resolve(m.stats ?? null);
      });
      child.send('stats');
    });
  const endpoints: Endpoint[] = fronts.map((f) => ({ host: '127.0.0.1', port: f.port, proto: f.proto }));
  const recent: FuzzConnection[] = [];
  const before = await stats();
  const rssStart = procStatus(pid);
  let rssMax = rssStart ?? 0;
  const timer = setInterval(() => (rssMax = Math.max(rssMax, procStatus(pid) ?? 0)), 250);
  const st: SocketFuzzStats = await fuzzSockets(corpus, {
    endpoints,
    seed: SEED,
    maxInputs: INPUTS,
    maxMs: SECONDS * 1000,
    concurrency: 32,
    lingerMs: 10_000,
    onConnection: (c) => {
      recent.push(c);
      if (recent.length > 64) {
        recent.shift();
      }
    },
    onProgress: (s) => {
      if (s.connections % 10_000 === 0) {
        console.log(`  socket: ${s.inputs} inputs over ${s.connections} connections, proxy RSS ${MiB(procStatus(pid))} MiB`);
      }
    },
    stop: () => exited !== null,
  });
  clearInterval(timer);
  const after = await stats();
  const rssEnd = procStatus(pid);
  const legit = exited === null ? [await legitNfs('127.0.0.1', fronts.find((f) => f.proto === 'nfs')?.port ?? 0), await legitSmb('127.0.0.1', fronts.find((f) => f.proto === 'smb')?.port ?? 0)] : [false, false];
  const crashed = exited !== null;
  if (crashed) {
    const f = { kind: 'crash' as const, target: 'socket.loopback', seed: SEED, index: recent[0]?.index ?? 0, message: `proxy host exited: ${JSON.stringify(exited)}`, stack: '' };
    fs.mkdirSync(FUZZ_DIR, { recursive: true });
    const file = path.join(FUZZ_DIR, `socket.loopback-crash-${SEED}.json`);
    fs.writeFileSync(file, JSON.stringify({ ...f, connections: recent.map((c) => ({ index: c.index, endpoint: c.endpoint, chunks: c.chunks.map((x) => x.toString('base64')) })) }));
    findings.push({ ...f, file });
  }
  const refused = (s: HostStats | null): number => Object.entries(s?.counters ?? {}).filter(([k]) => k.startsWith('sharegw_protocol_refusals_total')).reduce((n, [, v]) => n + v, 0);
  if (!legit.every((x) => x)) {
    findings.push({ kind: 'violation', target: 'socket.loopback', seed: SEED, index: 0, message: `a well-formed client was not served after the run (nfs ${legit[0]}, smb ${legit[1]})`, stack: '', file: null });
  }
  rows.push({
    target: 'socket.loopback (Session + transforms)',
    inputs: st.inputs,
    ms: st.ms,
    crashes: crashed ? 1 : 0,
    violations: legit.every((x) => x) ? 0 : 1,
    hangs: st.stuck,
    rssStart,
    rssEnd,
    rssMax,
    note: `${st.connections} connections (${st.closed} closed, ${st.reset} reset, ${st.stuck} stuck), ${refused(after) - refused(before)} refusals counted, ${after?.sessions ?? '?'} sessions left, heap after GC ${MiB(before?.heapUsed ?? null)} -> ${MiB(after?.heapUsed ?? null)} MiB, legit nfs ${legit[0]} smb ${legit[1]}`,
  });
  console.log(`  socket: ${JSON.stringify(st)}`);
  child.kill('SIGTERM');
}

async function socketLab(): Promise<void> {
  const { labSocketFuzz } = await import('./lab');
  const r = await labSocketFuzz({ seeds: [SEED], maxInputs: INPUTS, seconds: SECONDS, log: (l) => console.log(`  ${l}`) });
  findings.push(...r.findings);
  rows.push(r.row);
}

async function replay(file: string): Promise<void> {
  const j = JSON.parse(fs.readFileSync(file, 'utf8')) as { target: string; input?: { parts: string[]; knobs: number[] }; seed: number; connections?: { index: number }[] };
  if (j.target.startsWith('socket')) {
    const c = await loadCorpus();
    console.log(`socket findings replay by seed ${j.seed}: connections ${j.connections?.map((x) => x.index).join(', ')}; e.g.`, connectionAt(c, [{ host: '127.0.0.1', port: 0, proto: 'nfs' }], j.seed, j.connections?.[0]?.index ?? 0).records, 'records');
    return;
  }
  const t = TARGETS.find((x) => x.name === j.target);
  if (t === undefined || j.input === undefined) {
    throw new Error(`${file}: no target ${j.target} or no input`);
  }
  try {
    t.run(inputFromJson(j.input));
    console.log(`${j.target}: the input runs clean now`);
  } catch (err) {
    console.log(`${j.target}: ${(err as Error).stack ?? String(err)}`);
    process.exitCode = 1;
  }
}

async function main(): Promise<void> {
  const rp = process.env['FUZZ_REPLAY'];
  if (rp !== undefined && rp !== '') {
    await replay(rp);
    return;
  }
  console.log(`fuzz: seed ${SEED} (FUZZ_SEED=${SEED} reproduces), ${INPUTS} inputs or ${SECONDS} s per target, ${JOBS} jobs, node ${process.version}`);
  const t0 = Date.now();
  await codecTargets();
  if (wanted('socket')) {
    if (process.env['FUZZ_LAB'] === '1') {
      await socketLab();
    } else {
      await socketLoopback();
    }
  }
  console.log('');
  console.log(['target', 'inputs', 'seconds', 'inputs/s', 'crashes', 'violations', 'hangs', 'RSS start/end/max MiB', 'note'].join(' | '));
  for (const r of rows) {
    console.log([r.target, r.inputs, (r.ms / 1000).toFixed(1), Math.round(r.inputs / Math.max(r.ms / 1000, 0.001)), r.crashes, r.violations, r.hangs, `${MiB(r.rssStart)}/${MiB(r.rssEnd)}/${MiB(r.rssMax)}`, r.note].join(' | '));
  }
  console.log('');
  for (const f of findings) {
    console.log(`FINDING ${f.kind} ${f.target} seed ${f.seed} index ${f.index}: ${f.message}${f.file === null ? '' : ` (saved: ${f.file})`}`);
  }
  console.log(`fuzz: ${findings.length} findings, ${rows.reduce((n, r) => n + r.inputs, 0)} inputs in ${((Date.now() - t0) / 1000).toFixed(0)} s, seed ${SEED}`);
  process.exitCode = findings.length > 0 ? 1 : 0;
}

void main();
