/**
 * `npm run bench` end to end on the real lab, cut down to two paths, two
 * workloads and a small rule set: it must measure, and write the table, the
 * JSON (with host, kernel, CPU and commit) and the chart. No figure is
 * asserted: benchmarks are information, not gates.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { ROOT, rmTemp, run, tempDir } from '../helpers/lab';

t.test('the bench measures, and writes the table, JSON and SVG', async (t) => {
  const out = tempDir('bench-results');
  t.teardown(() => rmTemp(out));
  const r = await run('env', [
    'BENCH_QUICK=1',
    'BENCH_MIB=16',
    'BENCH_PATHS=routed,kernel',
    'BENCH_WORKLOADS=nfs-read,rpc-null',
    'BENCH_RULES=5:20',
    `BENCH_RESULTS=${out}`,
    process.execPath,
    path.join(ROOT, 'dist/bench/src/main.js'),
  ], { timeoutMs: 300_000 });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /NFSv4 read, 1 file \[MiB\/s, higher is better\]/, 'the table');
  t.match(r.stdout, /routed, no gateway\s+\S+\s+±\d+%\s+1\s+1\.00x/, 'routed is the 1.00x reference');
  t.match(r.stdout, /== targets/);
  const names = fs.readdirSync(out);
  const json = names.find((n) => n.endsWith('.json'));
  t.ok(json !== undefined && names.some((n) => n.endsWith('.svg')) && names.some((n) => n.endsWith('.md')), `written: ${names.join(', ')}`);
  const res = JSON.parse(fs.readFileSync(path.join(out, json ?? ''), 'utf8')) as {
    meta: Record<string, unknown>;
    workloads: { id: string; rows: { path: string; ratio: number | null; n: number }[] }[];
    rules: { backend: string; guests?: number }[];
  };
  for (const k of ['host', 'kernel', 'cpu', 'commit']) {
    t.ok(typeof res.meta[k] === 'string' && res.meta[k] !== '', `meta.${k}`);
  }
  for (const id of ['nfs-read', 'rpc-null']) {
    const w = res.workloads.find((x) => x.id === id);
    t.same(w?.rows.map((x) => x.path).sort(), ['kernel', 'routed'], `${id}: both paths measured`);
    t.ok(w?.rows.every((x) => x.n === 1 && typeof x.ratio === 'number'), `${id}: a ratio to routed for each`);
  }
  t.ok(res.rules.some((x) => x.guests === 20), 'rule programming measured');
  t.match(fs.readFileSync(path.join(out, names.find((n) => n.endsWith('.svg')) ?? ''), 'utf8'), /^<svg [^>]*>[\s\S]*NFSv4 read/);
});
