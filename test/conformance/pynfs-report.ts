/**
 * Pure part of the pynfs conformance run (test/conformance/pynfs.sh): parse
 * pynfs's `testserver.py -v --showomit` text into per-test outcomes, and
 * compare the planes' outcomes with direct. No I/O here, so the unit test can
 * feed it captured output.
 */

/** One pynfs test's outcome, as pynfs prints it. */
export interface PynfsOutcome {
  /** `st_lookup.testZeroLength`. */
  name: string;
  /** PASS, WARNING, UNSUPPORTED, FAILURE, OMIT, ... or HUNG (running when the run was cut). */
  result: string;
  /** pynfs's message (why it failed or was omitted), joined to one line. */
  msg: string;
}

/** Outcomes keyed by `<suite>/<code>`, e.g. `4.1/SEQ6`. */
export type PynfsOutcomes = Record<string, PynfsOutcome>;

/** What one plane's run left in its results file. */
export interface PlaneRun {
  plane: string;
  /** Per suite (`4.0`, `4.1`): wall time, exit code, whether the time box cut it. */
  suites: Record<string, { secs: number; rc: number | null; timedOut: boolean }>;
  outcomes: PynfsOutcomes;
}

// testmod.py Test.display(): "%-65s : %s" of "%-8s %s" (code, fullname) and
// the result's name; the message follows on lines indented by 11 columns.
const RESULT_LINE = /^(\S+)\s+(\S+)\s+: (\S.*?)\s*$/;
const MSG_LINE = /^ {10,}(\S.*)$/;

/**
 * Parses one suite's output. A test printed RUNNING and never again was cut
 * by the time box: HUNG. The summary after the run repeats every result, and
 * the last line seen for a code wins.
 */
export function parsePynfs(text: string, suite: string): PynfsOutcomes {
  const out: PynfsOutcomes = {};
  let current: PynfsOutcome | null = null;
  for (const line of text.split('\n')) {
    const m = RESULT_LINE.exec(line);
    if (m !== null && /^st_/.test(m[2] ?? '')) {
      const [, code = '', name = '', result = ''] = m;
      const o: PynfsOutcome = { name, result: result === 'RUNNING' ? 'HUNG' : result, msg: '' };
      out[`${suite}/${code}`] = o;
      // A RUNNING line is followed by the test's own chatter, not its message.
      current = result === 'RUNNING' ? null : o;
      continue;
    }
    const msg = MSG_LINE.exec(line);
    if (current !== null && msg !== null) {
      current.msg = current.msg === '' ? (msg[1] ?? '') : `${current.msg} ${msg[1] ?? ''}`;
      continue;
    }
    current = null;
  }
  return out;
}

/** Counting classes: pynfs's own (WARN includes UNSUPPORTED, skip is OMIT). */
export function outcomeClass(result: string): 'pass' | 'warn' | 'fail' | 'omit' | 'other' {
  switch (result) {
    case 'PASS': {
      return 'pass';
    }
    case 'WARNING':
    case 'UNSUPPORTED': {
      return 'warn';
    }
    case 'FAILURE': {
      return 'fail';
    }
    case 'OMIT': {
      return 'omit';
    }
    default: {
      return 'other';
    }
  }
}

/** A test whose outcome through a plane differs from direct. */
export interface PynfsDifference {
  key: string;
  name: string;
  direct: PynfsOutcome | null;
  other: PynfsOutcome | null;
}

/** Tests whose result differs from direct (messages alone do not count). */
export function pynfsDifferences(direct: PynfsOutcomes, other: PynfsOutcomes): PynfsDifference[] {
  const keys = [...new Set([...Object.keys(direct), ...Object.keys(other)])].sort();
  return keys
    .filter((k) => direct[k]?.result !== other[k]?.result)
    .map((k) => ({ key: k, name: direct[k]?.name ?? other[k]?.name ?? '', direct: direct[k] ?? null, other: other[k] ?? null }));
}

// Each run works in its own directory (pynfs-<plane>-<suite>-<pid>), which
// pynfs names in some messages.
const normal = (msg: string): string => msg.replace(/pynfs-\w+-[\d.]+-\d+/g, 'pynfs-DIR');

/** Tests with the same result as direct but another message (e.g. the error on another operation). */
export function pynfsMessageChanges(direct: PynfsOutcomes, other: PynfsOutcomes): PynfsDifference[] {
  return Object.keys(direct)
    .sort()
    .filter((k) => other[k] !== undefined && direct[k]?.result === other[k]?.result && normal(direct[k]?.msg ?? '') !== normal(other[k]?.msg ?? ''))
    .map((k) => ({ key: k, name: direct[k]?.name ?? '', direct: direct[k] ?? null, other: other[k] ?? null }));
}

/** A markdown table of the totals per plane and suite. */
export function pynfsTable(runs: readonly PlaneRun[]): string {
  const lines = ['| plane | suite | tests | PASS | WARN | FAIL | OMIT | other | time |', '|---|---|---:|---:|---:|---:|---:|---:|---:|'];
  for (const r of runs) {
    for (const [suite, s] of Object.entries(r.suites)) {
      const os = Object.entries(r.outcomes)
        .filter(([k]) => k.startsWith(`${suite}/`))
        .map(([, o]) => outcomeClass(o.result));
      const n = (c: string): number => os.filter((x) => x === c).length;
      const time = `${s.secs} s${s.timedOut ? ' (cut)' : ''}`;
      lines.push(`| ${r.plane} | ${suite} | ${os.length} | ${n('pass')} | ${n('warn')} | ${n('fail')} | ${n('omit')} | ${n('other')} | ${time} |`);
    }
  }
  return lines.join('\n');
}

const show = (o: PynfsOutcome | null): string => (o === null ? 'absent' : o.msg === '' ? o.result : `${o.result} (${o.msg})`);

/** The whole report: totals, then each plane's differences with both sides' messages. */
export function pynfsReport(runs: readonly PlaneRun[]): string {
  const parts = [pynfsTable(runs)];
  const direct = runs.find((r) => r.plane === 'direct');
  if (direct === undefined) {
    parts.push('No direct run: no differences computed.');
    return `${parts.join('\n\n')}\n`;
  }
  for (const r of runs.filter((x) => x.plane !== 'direct')) {
    const d = pynfsDifferences(direct.outcomes, r.outcomes);
    const rows = d.map((x) => `- \`${x.key}\` ${x.name}: direct ${show(x.direct)}; ${r.plane} ${show(x.other)}`);
    parts.push([`### ${r.plane} vs direct: ${d.length} differences`, ...rows].join('\n'));
    const m = pynfsMessageChanges(direct.outcomes, r.outcomes);
    if (m.length > 0) {
      parts.push([`Same result, other message (${r.plane}):`, ...m.map((x) => `- \`${x.key}\` ${x.name}: direct ${show(x.direct)}; ${r.plane} ${show(x.other)}`)].join('\n'));
    }
  }
  return `${parts.join('\n\n')}\n`;
}
