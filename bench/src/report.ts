/**
 * The benchmark's results: statistics, the table, target checks and the SVG
 * chart. Pure (no I/O): the runner feeds samples in, writes what comes out.
 *
 * Every figure is a ratio inside one run: shared vCPUs wander by tens of
 * percent between runs, so absolute numbers from different runs do not
 * compare, and nothing here (or in the tests) asserts a timing.
 */

export type Better = 'higher' | 'lower';

export interface WorkloadDef {
  id: string;
  title: string;
  unit: string;
  better: Better;
  /** No ratio to routed: a figure routed access has no counterpart of (gateway process CPU, gateway memory). */
  noBaseline?: boolean;
}

export interface PathDef {
  id: string;
  title: string;
}

/** One measurement: one path, one workload, one repetition. */
export interface Sample {
  path: string;
  workload: string;
  rep: number;
  value: number;
}

/** A (path, workload) that was not measured, and why. */
export interface Skip {
  path: string;
  workload: string;
  why: string;
}

export interface Row {
  path: string;
  n: number;
  median: number;
  min: number;
  max: number;
  /** Half the range, in percent of the median. */
  spreadPct: number;
  /** Performance relative to routed access, oriented so that > 1 is better; null without a routed figure. */
  ratio: number | null;
}

export interface WorkloadResult extends WorkloadDef {
  rows: Row[];
}

export interface TargetCheck {
  target: string;
  workload: string;
  path: string;
  against: string;
  /** Relative performance (> 1 is better), and the goal it is held to. */
  ratio: number;
  goal: number;
  met: boolean;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) {
    return NaN;
  }
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** `a` relative to `b`, oriented so that > 1 means `a` is better. */
export function relative(a: number, b: number, better: Better): number | null {
  if (!Number.isFinite(a) || !Number.isFinite(b) || a < 0 || b < 0) {
    return null;
  }
  if (better === 'higher') {
    return b === 0 ? null : a / b;
  }
  return a === 0 ? null : b / a;
}

/** Folds samples into one row per path and workload, best first. */
export function summarize(workloads: readonly WorkloadDef[], paths: readonly PathDef[], samples: readonly Sample[], baseline = 'routed'): WorkloadResult[] {
  return workloads.map((w) => {
    const rows: Row[] = [];
    for (const p of paths) {
      const xs = samples.filter((s) => s.path === p.id && s.workload === w.id).map((s) => s.value);
      if (xs.length === 0) {
        continue;
      }
      const med = median(xs);
      const min = Math.min(...xs);
      const max = Math.max(...xs);
      rows.push({ path: p.id, n: xs.length, median: med, min, max, spreadPct: med === 0 ? 0 : ((max - min) / 2 / med) * 100, ratio: null });
    }
    const base = w.noBaseline === true ? undefined : rows.find((r) => r.path === baseline);
    for (const r of rows) {
      r.ratio = base === undefined ? null : relative(r.median, base.median, w.better);
    }
    rows.sort((a, b) => (w.better === 'higher' ? b.median - a.median : a.median - b.median));
    return { ...w, rows };
  });
}

/** The issue's targets: the goal the results are reported against, not a gate. */
export const TARGETS: readonly { target: string; path: string; against: string; goal: number }[] = [
  { target: 'kernel plane >= 0.95x routed', path: 'kernel', against: 'routed', goal: 0.95 },
  { target: 'proxy >= 1.0x haproxy splice', path: 'proxy', against: 'haproxy', goal: 1.0 },
  { target: 'protocol-aware proxy >= 0.9x plain proxy', path: 'proxy-aware', against: 'proxy', goal: 0.9 },
  { target: 'protocol-aware proxy with an id map >= 0.9x plain proxy', path: 'proxy-idmap', against: 'proxy', goal: 0.9 },
  { target: 'proxy (splice relay) >= 1.0x proxy (JavaScript relay)', path: 'proxy', against: 'proxy-js', goal: 1.0 },
];

export function checkTargets(results: readonly WorkloadResult[]): TargetCheck[] {
  const out: TargetCheck[] = [];
  for (const t of TARGETS) {
    for (const w of results) {
      const a = w.rows.find((r) => r.path === t.path);
      const b = w.rows.find((r) => r.path === t.against);
      // A figure routed access has none of (gateway CPU, memory) has no routed target either.
      if (a === undefined || b === undefined || (t.against === 'routed' && w.noBaseline === true)) {
        continue;
      }
      const ratio = relative(a.median, b.median, w.better);
      if (ratio === null) {
        continue;
      }
      out.push({ target: t.target, workload: w.id, path: t.path, against: t.against, ratio, goal: t.goal, met: ratio >= t.goal });
    }
  }
  return out;
}

/** Three significant digits, without exponent notation. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) {
    return '-';
  }
  const a = Math.abs(x);
  if (a >= 100) {
    return x.toFixed(0);
  }
  if (a >= 10) {
    return x.toFixed(1);
  }
  if (a >= 1) {
    return x.toFixed(2);
  }
  return x.toFixed(3);
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

/** The human table: per workload, paths best first, with median, spread, runs and ratio to routed. */
export function renderTable(results: readonly WorkloadResult[], paths: readonly PathDef[], skips: readonly Skip[] = []): string {
  const title = new Map(paths.map((p) => [p.id, p.title]));
  const width = Math.max(12, ...paths.map((p) => p.title.length));
  const lines: string[] = [];
  for (const w of results) {
    if (w.rows.length === 0) {
      continue;
    }
    lines.push(`${w.title} [${w.unit}, ${w.better} is better]`);
    lines.push(`  ${pad('path', width)}  ${pad('median', 9, true)}  ${pad('spread', 7, true)}  ${pad('runs', 4, true)}  ${pad('vs routed', 9, true)}`);
    for (const r of w.rows) {
      const ratio = r.ratio === null ? '-' : `${r.ratio.toFixed(2)}x`;
      lines.push(`  ${pad(title.get(r.path) ?? r.path, width)}  ${pad(fmt(r.median), 9, true)}  ${pad(`±${r.spreadPct.toFixed(0)}%`, 7, true)}  ${pad(String(r.n), 4, true)}  ${pad(ratio, 9, true)}`);
    }
    const skipped = skips.filter((s) => s.workload === w.id);
    for (const s of skipped) {
      lines.push(`  ${pad(title.get(s.path) ?? s.path, width)}  not measured: ${s.why}`);
    }
    lines.push('');
  }
  return lines.join('\n');
}

/** Markdown version of the same table, for the closing note and bench/results. */
export function renderMarkdown(results: readonly WorkloadResult[], paths: readonly PathDef[]): string {
  const title = new Map(paths.map((p) => [p.id, p.title]));
  const lines = ['| workload | path | median | spread | runs | vs routed |', '|---|---|---:|---:|---:|---:|'];
  for (const w of results) {
    for (const r of w.rows) {
      lines.push(`| ${w.title} (${w.unit}) | ${title.get(r.path) ?? r.path} | ${fmt(r.median)} | ±${r.spreadPct.toFixed(0)}% | ${r.n} | ${r.ratio === null ? '-' : `${r.ratio.toFixed(2)}x`} |`);
    }
  }
  return lines.join('\n');
}

export function renderTargets(checks: readonly TargetCheck[]): string {
  return checks.map((c) => `  ${c.met ? 'met   ' : 'missed'}  ${c.target.padEnd(42)} ${c.workload.padEnd(14)} ${c.ratio.toFixed(2)}x`).join('\n');
}

const COLORS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#9c755f'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/**
 * A grouped horizontal bar chart of each path's performance relative to
 * routed access (1.0 = as fast as no gateway), one group per workload that
 * has a routed figure. Bars past the axis end are clipped and labelled.
 */
export function renderSvg(results: readonly WorkloadResult[], paths: readonly PathDef[], subtitle: string): string {
  const shown = results.filter((w) => w.rows.some((r) => r.ratio !== null));
  const order = paths.filter((p) => shown.some((w) => w.rows.some((r) => r.path === p.id && r.ratio !== null)));
  const color = new Map(order.map((p, i) => [p.id, COLORS[i % COLORS.length] as string]));
  const bar = 12;
  const labelW = 250;
  const plotW = 560;
  const maxRatio = 1.5;
  const top = 70;
  const groupH = (w: WorkloadResult): number => w.rows.filter((r) => r.ratio !== null).length * bar + 18;
  const height = top + shown.reduce((a, w) => a + groupH(w), 0) + 40 + Math.ceil(order.length / 3) * 18;
  const width = labelW + plotW + 60;
  const x = (r: number): number => labelW + (Math.min(r, maxRatio) / maxRatio) * plotW;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${width}" height="${height}" fill="#fff"/>`);
  out.push(`<text x="10" y="20" font-size="15" font-weight="bold">sharegw benchmark: performance relative to routed access (1.0 = no gateway)</text>`);
  out.push(`<text x="10" y="38" fill="#555">${esc(subtitle)}</text>`);
  for (const t of [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5]) {
    out.push(`<line x1="${x(t)}" y1="${top - 8}" x2="${x(t)}" y2="${height - 40 - Math.ceil(order.length / 3) * 18}" stroke="${t === 1 ? '#333' : '#ddd'}"/>`);
    out.push(`<text x="${x(t)}" y="${top - 12}" text-anchor="middle" fill="#555">${t.toFixed(2)}x</text>`);
  }
  let y = top;
  for (const w of shown) {
    // Long titles would run into the bars: cut at the label column.
    const title = w.title.length > 42 ? `${w.title.slice(0, 41)}…` : w.title;
    out.push(`<text x="10" y="${y + 10}" font-weight="bold">${esc(title)}</text>`);
    let yy = y + 14;
    for (const p of order) {
      const r = w.rows.find((row) => row.path === p.id);
      if (r === undefined || r.ratio === null) {
        continue;
      }
      const wpx = Math.max(1, x(r.ratio) - labelW);
      out.push(`<rect x="${labelW}" y="${yy - 10}" width="${wpx.toFixed(1)}" height="${bar - 2}" fill="${color.get(p.id) ?? '#999'}"/>`);
      out.push(`<text x="${(labelW + wpx + 4).toFixed(1)}" y="${yy - 1}" fill="#333">${r.ratio.toFixed(2)}x${r.ratio > maxRatio ? ' (clipped)' : ''}</text>`);
      yy += bar;
    }
    y += groupH(w);
  }
  y += 20;
  order.forEach((p, i) => {
    const lx = 10 + (i % 3) * 280;
    const ly = y + Math.floor(i / 3) * 18;
    out.push(`<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${color.get(p.id) ?? '#999'}"/>`);
    out.push(`<text x="${lx + 18}" y="${ly}">${esc(p.title)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
