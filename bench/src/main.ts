/**
 * `npm run bench` (bench/run.sh builds and brings the lab up first): every
 * path, every workload, in interleaved repetitions within one run, then the
 * table (median, spread, ratio to routed), the target checks, and the
 * results as JSON, Markdown and an SVG chart in bench/results/.
 *
 * Settings (environment):
 *   BENCH_REPS=3          repetitions (each runs every path once, order rotated)
 *   BENCH_MIB=1024        file size of the NFS and SMB transfers
 *   BENCH_IPERF_SECONDS=5 iperf3 duration
 *   BENCH_IDLE=10000      idle connections for the memory figure
 *   BENCH_RULES=1000:10000  domains:guests for rule programming ("0" skips)
 *   BENCH_PATHS=routed,kernel,...   BENCH_WORKLOADS=nfs-read,...   subsets
 *   BENCH_QUICK=1         a short smoke run (1 rep, 64 MiB, 500 idle, 20:200 rules)
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DATA, ROOT, bigFile, rmTemp, run, tempDir } from '../../test/helpers/lab';
import { allPaths, fileLimit, NOT_BUILT, resetGateway, startBackends } from './paths';
import type { GatewayPath } from './paths';
import { checkTargets, fmt, renderMarkdown, renderSvg, renderTable, renderTargets, summarize } from './report';
import type { PathDef, Sample, Skip, WorkloadDef } from './report';
import { runWorkloads, SMALL_FILE, WORKLOADS } from './workloads';
import type { Settings } from './workloads';

const env = (k: string, d: string): string => process.env[k] ?? d;
const QUICK = env('BENCH_QUICK', '0') === '1';
const REPS = Math.max(1, Number(env('BENCH_REPS', QUICK ? '1' : '3')));
const MIB = Math.max(1, Number(env('BENCH_MIB', QUICK ? '64' : '1024')));
const RULES = env('BENCH_RULES', QUICK ? '20:200' : '1000:10000');
/**
 * A proxy holds two descriptors per connection: 10,000 idle connections need
 * more than 20,000. Where the limit is lower and cannot be raised (some
 * sandboxes), measure as many as fit, and say so in the results.
 */
const IDLE_WANTED = Number(env('BENCH_IDLE', QUICK ? '500' : '10000'));
const IDLE = Math.min(IDLE_WANTED, Math.floor((fileLimit() - 2000) / 2));
const settings: Settings = {
  bytes: MIB * 1048576,
  iperfSeconds: Number(env('BENCH_IPERF_SECONDS', QUICK ? '2' : '5')),
  smallReads: QUICK ? 200 : 1000,
  rpcCalls: QUICK ? 2000 : 20000,
  conns: QUICK ? 200 : 2000,
  idleConns: IDLE,
};
const list = (k: string): Set<string> | null => {
  const v = process.env[k];
  return v === undefined || v === '' ? null : new Set(v.split(','));
};
const onlyPaths = list('BENCH_PATHS');
const onlyWorkloads = list('BENCH_WORKLOADS');
/** Where results go; BENCH_RESULTS lets a test keep them out of the repository. */
const RESULTS = process.env['BENCH_RESULTS'] ?? path.join(ROOT, 'bench/results');
// New names each run: nfs-ganesha caches names and handles, so a file
// replaced behind its back reads as NFS4ERR_STALE.
const readName = `bench-read-${process.pid}.bin`;

const say = (s = ''): void => void process.stdout.write(`${s}\n`);

/** Paths and workloads where one does not apply to the other. */
function inapplicable(p: string, w: string): string | null {
  if (p === 'routed' && (w === 'cpu-gw' || w === 'mem-idle')) {
    return 'no gateway';
  }
  if (['proxy-aware', 'proxy-aware-js', 'proxy-idmap'].includes(p) && ['iperf-1', 'iperf-4', 'conn-rate', 'mem-idle'].includes(w)) {
    return 'not RPC or SMB: the protocol-aware proxy refuses it by design';
  }
  if (p === 'proxy-idmap' && w.startsWith('smb-')) {
    return 'the id map is NFS only (the SMB policy is the same as proxy-aware)';
  }
  if (p === 'socat' && w === 'mem-idle') {
    return 'socat forks a process per connection: thousands of them would not fit';
  }
  return null;
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch {
    return '';
  }
}

function meta(): Record<string, unknown> {
  const status = sh('git', ['-C', ROOT, 'status', '--porcelain']);
  return {
    date: new Date().toISOString(),
    host: os.hostname(),
    kernel: `${os.type()} ${os.release()} ${sh('uname', ['-v'])}`,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    commit: sh('git', ['-C', ROOT, 'rev-parse', 'HEAD']),
    dirty: status !== '',
    iptables: sh('iptables', ['-V']),
    haproxy: sh('haproxy', ['-v']).split('\n')[0] ?? '',
    socat: (sh('socat', ['-V']).split('\n').find((l) => l.startsWith('socat version')) ?? '').trim(),
    settings: { reps: REPS, mib: MIB, ...settings, idleWanted: IDLE_WANTED, fileLimit: fileLimit(), rules: RULES },
  };
}

/** Rule programming in scratch namespaces, once per iptables backend present. */
async function rulesBench(): Promise<Record<string, unknown>[]> {
  if (RULES === '0') {
    return [];
  }
  const [domains = '1000', guests = '10000'] = RULES.split(':');
  const backends: { name: string; env: Record<string, string> }[] = [{ name: sh('iptables', ['-V']).includes('nf_tables') ? 'nf_tables' : 'legacy', env: {} }];
  if (backends[0]?.name === 'nf_tables' && sh('iptables-legacy-restore', ['--version']) !== '') {
    backends.push({ name: 'legacy', env: { SGW_IPTABLES_RESTORE: 'iptables-legacy-restore', SGW_IPTABLES_SAVE: 'iptables-legacy-save' } });
  }
  const out: Record<string, unknown>[] = [];
  for (const b of backends) {
    const ns = `sgwbench-rules-${process.pid}`;
    await run('ip', ['netns', 'add', ns]);
    try {
      say(`rules: ${domains} domains, ${guests} guests on ${b.name} ...`);
      const r = await run('ip', ['netns', 'exec', ns, 'env', ...Object.entries(b.env).map(([k, v]) => `${k}=${v}`), process.execPath, path.join(ROOT, 'dist/bench/src/rules.js'), domains, guests], { timeoutMs: 1_800_000 });
      if (r.code !== 0) {
        out.push({ backend: b.name, error: (r.stderr || r.stdout).trim().split('\n')[0] ?? `exit ${r.code}` });
        continue;
      }
      const res = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
      out.push({ backend: b.name, ...res });
    } finally {
      await run('ip', ['netns', 'del', ns]);
    }
  }
  return out;
}

function rulesTable(rows: Record<string, unknown>[]): string {
  const lines = ['| iptables backend | domains | guests | restore lines | validate | compile | render | first apply | re-apply | one rule changed | cleanup |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|'];
  for (const r of rows) {
    if (r['error'] !== undefined) {
      lines.push(`| ${String(r['backend'])} | failed: ${String(r['error'])} |`);
      continue;
    }
    const s = (k: string): string => (typeof r[k] === 'number' ? `${fmt((r[k] as number) / 1000)} s` : '-');
    lines.push(`| ${String(r['backend'])} | ${String(r['domains'])} | ${String(r['guests'])} | ${String(r['lines'])} | ${s('validateMs')} | ${s('compileMs')} | ${s('renderMs')} | ${s('firstApplyMs')} | ${s('reapplyMs')} | ${s('oneChangeMs')} | ${s('cleanupMs')} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new Error('run as root (network namespaces, iptables)');
  }
  const work = tempDir('bench');
  const paths: GatewayPath[] = allPaths().filter((p) => onlyPaths === null || onlyPaths.has(p.id));
  const workloads: WorkloadDef[] = WORKLOADS.filter((w) => onlyWorkloads === null || onlyWorkloads.has(w.id)).map((w) =>
    w.id === 'mem-idle' ? { ...w, title: `gateway memory, ${settings.idleConns} idle proxied connections (process RSS + conntrack)` } : w,
  );
  const pathDefs: PathDef[] = [...paths.map((p) => ({ id: p.id, title: p.title })), ...NOT_BUILT.map((p) => ({ id: p.id, title: p.title }))];
  const samples: Sample[] = [];
  const skips: Skip[] = [];
  const errors: { path: string; workload: string; rep: number; error: string }[] = [];
  let stopBackends: (() => Promise<void>) | null = null;
  const started = Date.now();
  // The commit and tree state the run measures: taken now, after run.sh built dist/.
  const m = meta();
  try {
    if (IDLE < IDLE_WANTED) {
      say(`== note: open-files limit ${fileLimit()}: measuring ${IDLE} idle connections, not ${IDLE_WANTED}`);
    }
    say(`== files: ${MIB} MiB read file, ${MIB} MiB source for writes, ${SMALL_FILE}`);
    const readFile = path.join(DATA, 'acme', readName);
    const readSum = bigFile(readFile, MIB);
    const srcFile = '/dev/shm/sgwbench-src.bin';
    const srcSum = bigFile(srcFile, MIB);
    fs.writeFileSync(path.join(DATA, 'acme', SMALL_FILE), Buffer.alloc(4096, 7));
    fs.chmodSync(path.join(DATA, 'acme', SMALL_FILE), 0o666);
    stopBackends = await startBackends(work);

    const total = REPS * paths.length;
    let step = 0;
    for (let rep = 1; rep <= REPS; rep++) {
      // Rotate the order each repetition, so no path always runs first (warm caches) or last.
      const order = paths.map((_, i) => paths[(i + rep - 1) % paths.length] as GatewayPath);
      for (const p of order) {
        step++;
        const eta = step > 1 ? ` (about ${Math.round((((Date.now() - started) / (step - 1)) * (total - step + 1)) / 60000)} min left)` : '';
        say(`\n== [${step}/${total}] repetition ${rep}/${REPS}: ${p.title}${eta}`);
        try {
          await p.setup(work);
        } catch (err) {
          const msg = err instanceof Error ? err.message : String(err);
          say(`   setup failed: ${msg}`);
          errors.push({ path: p.id, workload: '*', rep, error: msg });
          await p.teardown().catch(() => undefined);
          continue;
        }
        try {
          const only = new Set(workloads.map((w) => w.id).filter((w) => inapplicable(p.id, w) === null));
          for await (const r of runWorkloads({ settings, verify: rep === 1, readSum, readName, srcFile, srcSum }, only)) {
            const w = workloads.find((x) => x.id === r.workload);
            if ('error' in r) {
              say(`   ${r.workload.padEnd(10)} FAILED: ${r.error}`);
              errors.push({ path: p.id, workload: r.workload, rep, error: r.error });
            } else if (w !== undefined && inapplicable(p.id, r.workload) === null) {
              say(`   ${r.workload.padEnd(10)} ${fmt(r.value).padStart(9)} ${w.unit}`);
              samples.push({ path: p.id, workload: r.workload, rep, value: r.value });
            }
          }
        } finally {
          await p.teardown();
        }
      }
    }
    for (const p of paths) {
      for (const w of workloads) {
        const why = inapplicable(p.id, w.id);
        if (why !== null) {
          skips.push({ path: p.id, workload: w.id, why });
        }
      }
    }
    for (const p of NOT_BUILT) {
      for (const w of workloads) {
        skips.push({ path: p.id, workload: w.id, why: p.why });
      }
    }
    for (const e of errors) {
      if (!samples.some((s) => s.path === e.path && (s.workload === e.workload || e.workload === '*'))) {
        skips.push({ path: e.path, workload: e.workload, why: `failed: ${e.error}` });
      }
    }

    say('\n== rule programming (render + iptables-restore in a scratch namespace)');
    const rules = await rulesBench();

    const results = summarize(workloads, pathDefs, samples);
    const targets = checkTargets(results);
    const stamp = new Date().toISOString().replace(/[:]/g, '-').replace(/\..*$/, '');
    const base = path.join(RESULTS, `${stamp}-${os.hostname()}`);
    fs.mkdirSync(RESULTS, { recursive: true });
    const subtitle = `${String(m['date'])} · ${String(m['cpu'])} × ${String(m['cores'])} · ${os.release()} · commit ${String(m['commit']).slice(0, 10)}${m['dirty'] === true ? '+' : ''} · ${REPS} reps, ${MIB} MiB files`;
    fs.writeFileSync(`${base}.json`, `${JSON.stringify({ meta: m, paths: pathDefs, workloads: results, samples, skips, errors, targets, rules }, null, 2)}\n`);
    fs.writeFileSync(`${base}.svg`, renderSvg(results, pathDefs, subtitle));
    const md = [
      `# sharegw bench, ${String(m['date'])}`,
      '',
      `${String(m['cpu'])} × ${String(m['cores'])}, ${String(m['memGiB'])} GiB, ${String(m['kernel'])}; node ${process.version}; ${String(m['iptables'])}; ${String(m['haproxy'])}; commit ${String(m['commit'])}${m['dirty'] === true ? ' (with uncommitted changes)' : ''}.`,
      `${REPS} interleaved repetitions; ${MIB} MiB files. Medians; spread is half the range; ratios are to routed access (> 1 is better).`,
      '',
      renderMarkdown(results, pathDefs),
      '',
      '## Targets (goals, not gates)',
      '',
      '```',
      renderTargets(targets),
      '```',
      '',
      '## Rule programming',
      '',
      rulesTable(rules),
      '',
      '## Not measured',
      '',
      ...[...new Map(skips.map((s) => [`${s.path}|${s.why}`, s])).values()].map((s) => `- ${pathDefs.find((p) => p.id === s.path)?.title ?? s.path}: ${s.why}${s.workload !== '*' && skips.filter((x) => x.path === s.path && x.why === s.why).length < workloads.length ? ` (${skips.filter((x) => x.path === s.path && x.why === s.why).map((x) => x.workload).join(', ')})` : ''}`),
      '',
    ].join('\n');
    fs.writeFileSync(`${base}.md`, md);

    say(`\n== results (${REPS} repetitions, medians; ratio to routed, > 1 is better)\n`);
    say(renderTable(results, pathDefs, skips.filter((s) => !NOT_BUILT.some((n) => n.id === s.path))));
    for (const n of NOT_BUILT) {
      say(`${n.title}: ${n.why}`);
    }
    say('\n== targets (goals, not gates)');
    say(renderTargets(targets));
    say('\n== rule programming');
    say(rulesTable(rules));
    say(`\nwritten: ${base}.json, .md, .svg (${Math.round((Date.now() - started) / 60000)} min)`);
  } finally {
    await resetGateway().catch(() => undefined);
    if (stopBackends !== null) {
      await stopBackends();
    }
    fs.rmSync('/dev/shm/sgwbench-src.bin', { force: true });
    fs.rmSync('/dev/shm/sgwbench-out.bin', { force: true });
    fs.rmSync(path.join(DATA, 'acme', SMALL_FILE), { force: true });
    fs.rmSync(path.join(DATA, 'acme', readName), { force: true });
    for (const f of fs.readdirSync(path.join(DATA, 'acme')).filter((n) => n.startsWith('bench-nfs-upload-'))) {
      fs.rmSync(path.join(DATA, 'acme', f), { force: true });
    }
    rmTemp(work);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
