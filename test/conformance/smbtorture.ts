/**
 * smbtorture (Debian samba-testsuite) against the lab's samba, run from
 * guest 1 three ways: direct (routed, no gateway: the tunnel address the
 * lab's [acme] share allows for this baseline), through the kernel plane
 * and through the proxy plane. Each test's per-case outcomes are parsed
 * from smbtorture's subunit-like lines ("success: x", "failure: x [",
 * "skip: x [", "error: x ["). Used by the integration test (a subset)
 * and by `npm run conformance` (all of smb2, time-boxed per test).
 */
import * as fs from 'node:fs';
import { LabDaemon, NS, run } from '../helpers/lab';

export type Plane = 'direct' | 'kernel' | 'proxy';
/** Case name -> outcome, per smbtorture test. */
export type Outcomes = Record<string, string>;

const ACME = '198.18.0.100';

/** Runs each test once; outcomes by `test/case`. */
async function torture(tests: readonly string[], perTestMs: number): Promise<Outcomes> {
  const out: Outcomes = {};
  for (const test of tests) {
    const r = await run('smbtorture', [`//${ACME}/acme`, '-U', 'usera%labpass123', test], { ns: NS.g1, timeoutMs: perTestMs });
    const lines = `${r.stdout}\n${r.stderr}`.split('\n');
    let n = 0;
    for (const l of lines) {
      const m = /^(success|failure|skip|error|xfail|uxsuccess): ([^\s[]+)/.exec(l);
      if (m !== null) {
        out[`${test}/${m[2] ?? ''}`] = m[1] ?? '';
        n++;
      }
    }
    if (n === 0) {
      out[`${test}/*`] = r.code === null ? 'timeout' : `no-result(rc=${r.code})`;
    }
  }
  return out;
}

/**
 * Runs `fn` with guest 1 reaching the lab's backends through `plane`: direct
 * (the gateway namespace routes the tunnel, no sharegwd, no rules) or the
 * real daemon in that plane with the lab's config. The lab lock must be
 * held by the caller.
 */
export async function withPlane<T>(plane: Plane, fn: () => Promise<T>, logTo?: string): Promise<T> {
  if (plane === 'direct') {
    const add = await run('ip', ['addr', 'add', '169.254.1.1', 'peer', '169.254.1.2/32', 'dev', 'sgwt-g1'], { ns: NS.gw });
    if (add.code !== 0) {
      throw new Error(`routed baseline: ${add.stderr}`);
    }
    try {
      return await fn();
    } finally {
      await run('ip', ['-4', 'addr', 'flush', 'dev', 'sgwt-g1'], { ns: NS.gw });
    }
  }
  const d = new LabDaemon({ plane });
  try {
    await d.start();
    return await fn();
  } finally {
    if (logTo !== undefined) {
      // The daemon's log goes with its temp dir: keep it for the report.
      fs.writeFileSync(logTo, d.log());
    }
    await d.dispose();
  }
}

/** Runs `tests` on one plane; the lab lock must be held by the caller. */
export function runPlane(plane: Plane, tests: readonly string[], perTestMs = 120_000): Promise<Outcomes> {
  return withPlane(plane, () => torture(tests, perTestMs));
}

/** Cases whose outcome through `plane` differs from direct. */
export function differences(direct: Outcomes, other: Outcomes): string[] {
  const keys = [...new Set([...Object.keys(direct), ...Object.keys(other)])].sort();
  return keys.filter((k) => direct[k] !== other[k]).map((k) => `${k}: direct ${direct[k] ?? '-'}, gateway ${other[k] ?? '-'}`);
}

/** A markdown table of the totals per plane and the differing cases. */
export function table(results: Record<Plane, Outcomes>): string {
  const count = (o: Outcomes, v: string): number => Object.values(o).filter((x) => x === v).length;
  const lines = ['| plane | cases | success | failure | skip | error/other |', '|---|---:|---:|---:|---:|---:|'];
  for (const p of ['direct', 'kernel', 'proxy'] as const) {
    const o = results[p];
    const n = Object.keys(o).length;
    const s = count(o, 'success');
    const f = count(o, 'failure');
    const k = count(o, 'skip');
    lines.push(`| ${p} | ${n} | ${s} | ${f} | ${k} | ${n - s - f - k} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const list = await run('smbtorture', ['--list']);
  const filter = process.env['SGW_SMBTORTURE_FILTER'] ?? '^smb2\\.';
  // Top-level suites (smb2.x), each run as one smbtorture invocation.
  const tests = [...new Set(list.stdout.split('\n').filter((l) => new RegExp(filter).test(l)).map((l) => l.split('.').slice(0, 2).join('.')))].sort();
  const perTest = Number(process.env['SGW_SMBTORTURE_TIMEOUT_MS'] ?? 180_000);
  const results = {} as Record<Plane, Outcomes>;
  for (const p of ['direct', 'kernel', 'proxy'] as const) {
    results[p] = await runPlane(p, tests, perTest);
    process.stderr.write(`${p}: ${Object.keys(results[p]).length} cases\n`);
  }
  process.stdout.write(`${table(results)}\n\n`);
  for (const p of ['kernel', 'proxy'] as const) {
    const d = differences(results.direct, results[p]);
    process.stdout.write(`### ${p} vs direct: ${d.length} differences\n${d.map((x) => `- ${x}`).join('\n')}\n\n`);
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`${String(err)}\n`);
    process.exitCode = 1;
  });
}
