/**
 * pynfs (a public copy, never vendored: PYNFS_DIR) against the lab's
 * nfs-ganesha, run from guest 1 the three ways smbtorture.ts runs: direct
 * (routed, no gateway), through the kernel plane and through the proxy
 * plane, each NFSv4.0 (nfs4.0/testserver.py) and NFSv4.1
 * (nfs4.1/testserver.py) suite in a fresh directory of acme's export.
 * Driven by test/conformance/pynfs.sh, which holds the lab lock around each
 * `run` and then calls `report`:
 *   node pynfs.js run <plane> <outdir>   writes <outdir>/<plane>.json (+ raw text)
 *   node pynfs.js report <outdir>        prints the table and the differences
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DATA, NS } from '../helpers/lab';
import { parsePynfs, pynfsReport } from './pynfs-report';
import type { PlaneRun } from './pynfs-report';
import { withPlane } from './smbtorture';
import type { Plane } from './smbtorture';

const ACME = '198.18.0.100';
const SUITES: Record<string, string> = { '4.0': 'nfs4.0', '4.1': 'nfs4.1' };

interface Settings {
  pynfs: string;
  python: string;
  suites: string[];
  tests: string[];
  timeoutS: number;
}

function settings(): Settings {
  const pynfs = process.env['PYNFS_DIR'];
  if (pynfs === undefined || pynfs === '') {
    throw new Error('PYNFS_DIR is not set');
  }
  const suites = (process.env['SGW_PYNFS_SUITES'] ?? '4.0 4.1').split(/\s+/).filter((s) => s !== '');
  for (const s of suites) {
    if (SUITES[s] === undefined) {
      throw new Error(`SGW_PYNFS_SUITES: unknown suite ${s} (4.0, 4.1)`);
    }
  }
  return {
    pynfs,
    // Debian's python3 carries python3-ply and python3-gssapi; a python3
    // earlier on PATH (pyenv) may not.
    python: process.env['PYNFS_PYTHON'] ?? '/usr/bin/python3',
    suites,
    tests: (process.env['SGW_PYNFS_TESTS'] ?? 'all').split(/\s+/).filter((s) => s !== ''),
    timeoutS: Number(process.env['SGW_PYNFS_TIMEOUT_S'] ?? 1500),
  };
}

/**
 * One testserver.py run from guest 1, output streamed to `outFile` so a run
 * cut by the time box still leaves every result it printed.
 */
function testserver(s: Settings, suite: string, dir: string, outFile: string): Promise<{ rc: number | null; timedOut: boolean; secs: number }> {
  const cwd = path.join(s.pynfs, SUITES[suite] ?? '');
  const args = [`${ACME}:/export/acme/${dir}`, '--maketree', '-v', '--showomit', ...s.tests];
  const started = Date.now();
  const fd = fs.openSync(outFile, 'w');
  return new Promise((resolve) => {
    // `ip netns exec` execs in place: the child's pid is python's own.
    const child = spawn('ip', ['netns', 'exec', NS.g1, s.python, '-u', 'testserver.py', ...args], {
      cwd,
      stdio: ['ignore', fd, fd],
      env: { ...process.env, PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    });
    fs.closeSync(fd);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, s.timeoutS * 1000);
    child.on('close', (rc) => {
      clearTimeout(timer);
      resolve({ rc, timedOut, secs: Math.round((Date.now() - started) / 1000) });
    });
  });
}

/** Runs the chosen suites on one plane; the lab lock must be held by the caller. */
export async function runPynfsPlane(plane: Plane, outDir: string): Promise<PlaneRun> {
  const s = settings();
  const result: PlaneRun = { plane, suites: {}, outcomes: {} };
  await withPlane(plane, async () => {
    for (const suite of s.suites) {
      // A fresh directory per run: pynfs's --maketree builds its tree in it,
      // and a tree removed behind ganesha's back leaves stale handles.
      const dir = `pynfs-${plane}-${suite}-${process.pid}`;
      const host = path.join(DATA, 'acme', dir);
      fs.mkdirSync(host, { mode: 0o777 });
      fs.chmodSync(host, 0o777);
      const outFile = path.join(outDir, `${plane}-${suite}.txt`);
      try {
        const r = await testserver(s, suite, dir, outFile);
        result.suites[suite] = r;
        Object.assign(result.outcomes, parsePynfs(fs.readFileSync(outFile, 'utf8'), suite));
        process.stderr.write(`pynfs ${suite} ${plane}: ${r.secs} s, rc ${r.rc}${r.timedOut ? ', cut by the time box' : ''}\n`);
      } finally {
        fs.rmSync(host, { recursive: true, force: true });
      }
    }
  }, path.join(outDir, `${plane}-sharegwd.log`));
  return result;
}

async function main(): Promise<void> {
  const [cmd, a, b] = process.argv.slice(2);
  if (cmd === 'run' && (a === 'direct' || a === 'kernel' || a === 'proxy') && b !== undefined) {
    fs.mkdirSync(b, { recursive: true });
    const r = await runPynfsPlane(a, b);
    fs.writeFileSync(path.join(b, `${a}.json`), `${JSON.stringify({ ...r, at: new Date().toISOString(), commit: process.env['SGW_COMMIT'] ?? 'unknown' }, null, 1)}\n`);
    return;
  }
  if (cmd === 'report' && a !== undefined) {
    const runs: PlaneRun[] = [];
    for (const p of ['direct', 'kernel', 'proxy']) {
      const f = path.join(a, `${p}.json`);
      if (fs.existsSync(f)) {
        runs.push(JSON.parse(fs.readFileSync(f, 'utf8')) as PlaneRun);
      }
    }
    const text = pynfsReport(runs);
    fs.writeFileSync(path.join(a, 'report.md'), text);
    process.stdout.write(text);
    return;
  }
  throw new Error('usage: pynfs.js run direct|kernel|proxy <outdir> | report <outdir>');
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`${String(err)}\n`);
    process.exitCode = 1;
  });
}
