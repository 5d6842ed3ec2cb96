import t from 'tap';
import { checkTargets, fmt, median, relative, renderMarkdown, renderSvg, renderTable, summarize } from '../../bench/src/report';
import type { PathDef, Sample, WorkloadDef } from '../../bench/src/report';

const W: WorkloadDef[] = [
  { id: 'read', title: 'NFS read', unit: 'MiB/s', better: 'higher' },
  { id: 'p99', title: 'RPC p99', unit: 'us', better: 'lower' },
  { id: 'mem', title: 'idle memory', unit: 'MiB', better: 'lower', noBaseline: true },
];
const P: PathDef[] = [
  { id: 'routed', title: 'routed' },
  { id: 'kernel', title: 'kernel' },
  { id: 'proxy', title: 'proxy' },
  { id: 'haproxy', title: 'haproxy <splice>' },
];
const S = (path: string, workload: string, values: number[]): Sample[] => values.map((value, rep) => ({ path, workload, rep, value }));
const samples: Sample[] = [
  ...S('routed', 'read', [500, 520, 480]),
  ...S('kernel', 'read', [470, 490, 900]),
  ...S('proxy', 'read', [250, 260, 240]),
  ...S('haproxy', 'read', [300, 310, 290]),
  ...S('routed', 'p99', [100, 100]),
  ...S('kernel', 'p99', [110, 90]),
  ...S('proxy', 'p99', [200, 400]),
  ...S('routed', 'mem', [0]),
  ...S('kernel', 'mem', [2]),
  ...S('proxy', 'mem', [40]),
  ...S('haproxy', 'mem', [20]),
];

t.test('median of odd, even and empty', async (t) => {
  t.equal(median([3, 1, 2]), 2);
  t.equal(median([4, 1, 3, 2]), 2.5);
  t.ok(Number.isNaN(median([])));
});

t.test('relative() is > 1 when the first is better, either orientation', async (t) => {
  t.equal(relative(200, 100, 'higher'), 2);
  t.equal(relative(50, 100, 'lower'), 2);
  t.equal(relative(1, 0, 'higher'), null);
  t.equal(relative(0, 5, 'lower'), null);
  t.equal(relative(NaN, 5, 'higher'), null);
});

t.test('summarize(): medians, spread, ratio to routed, best first', async (t) => {
  const [read, p99, mem] = summarize(W, P, samples);
  t.same(read?.rows.map((r) => r.path), ['routed', 'kernel', 'haproxy', 'proxy'], 'sorted by throughput');
  const kernel = read?.rows.find((r) => r.path === 'kernel');
  t.equal(kernel?.median, 490, 'the outlier does not move the median');
  t.equal(kernel?.min, 470);
  t.equal(kernel?.max, 900);
  t.equal(Math.round(kernel?.spreadPct ?? 0), 44);
  t.equal(kernel?.ratio?.toFixed(3), (490 / 500).toFixed(3));
  t.same(p99?.rows.map((r) => r.path), ['routed', 'kernel', 'proxy'], 'lower is better: smallest first');
  t.equal(p99?.rows.find((r) => r.path === 'proxy')?.ratio, 1 / 3);
  t.same(mem?.rows.map((r) => [r.path, r.ratio]), [['routed', null], ['kernel', null], ['haproxy', null], ['proxy', null]], 'noBaseline: no ratio to routed');
});

t.test('checkTargets(): the issue goals, against the right reference path', async (t) => {
  const checks = checkTargets(summarize(W, P, samples));
  const kernelRead = checks.find((c) => c.path === 'kernel' && c.workload === 'read');
  t.equal(kernelRead?.met, true, '0.98x routed meets 0.95');
  const proxyRead = checks.find((c) => c.path === 'proxy' && c.workload === 'read');
  t.equal(proxyRead?.against, 'haproxy');
  t.equal(proxyRead?.met, false, '250 vs 300 misses 1.0x haproxy');
  const proxyMem = checks.find((c) => c.path === 'proxy' && c.workload === 'mem');
  t.equal(proxyMem?.ratio, 0.5, 'memory: twice haproxy is 0.5x');
  t.notOk(checks.some((c) => c.path === 'proxy-aware'), 'no figure, no check');
  t.notOk(checks.some((c) => c.workload === 'mem' && c.against === 'routed'), 'noBaseline: no target against routed');
});

t.test('table, markdown and SVG carry the same figures', async (t) => {
  const res = summarize(W, P, samples);
  const table = renderTable(res, P, [{ path: 'proxy', workload: 'p99', why: 'x' }, { path: 'kernel', workload: 'mem', why: 'no process' }]);
  t.match(table, /NFS read \[MiB\/s, higher is better\]/);
  t.match(table, /kernel\s+490\s+±44%\s+3\s+0\.98x/);
  t.match(table, /kernel\s+not measured: no process/);
  const md = renderMarkdown(res, P);
  t.match(md, /\| NFS read \(MiB\/s\) \| proxy \| 250 \| ±4% \| 3 \| 0\.50x \|/);
  const svg = renderSvg(res, P, 'host & <kernel>');
  t.match(svg, /^<svg /);
  t.match(svg, /host &amp; &lt;kernel&gt;/, 'text is escaped');
  t.match(svg, /haproxy &lt;splice&gt;/);
  t.equal((svg.match(/<rect x="250"/g) ?? []).length, 7, 'one bar per path with a ratio (4 read + 3 p99)');
  t.notMatch(svg, /idle memory/, 'workloads without a routed figure are not charted');
});

t.test('fmt() keeps three significant digits', async (t) => {
  t.same([fmt(1234.5), fmt(56.78), fmt(4.567), fmt(0.12345), fmt(NaN)], ['1235', '56.8', '4.57', '0.123', '-']);
});
