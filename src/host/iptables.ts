import { KernelApplyError } from '../errors';
import { HOST_BINARIES, run } from './exec';
import type { ExecResult } from './exec';

/**
 * iptables-save and iptables-restore, run through host/exec.ts. Everything
 * else renders text (pure) and hands it here.
 */

/** Overridable binaries (SGW_IPTABLES_SAVE, SGW_IPTABLES_RESTORE; see exec.ts). */
export const BINARIES = {
  save: HOST_BINARIES.iptablesSave,
  restore: HOST_BINARIES.iptablesRestore,
};

/** Seconds to wait for the xtables lock held by another program. */
const LOCK_WAIT_S = '5';

/**
 * Longest an iptables-save/-restore may run. The lock wait is bounded by -w,
 * but a wedged netlink call is not: a hung child must not hang the sync loop
 * (and with it reloads, revocations and shutdown) forever.
 */
export const RUN_TIMEOUT_MS = 30_000;

/**
 * Extra time a restore gets per input line. iptables-nft-restore is not
 * linear in the number of chains: the bench (bench/src/rules.ts) measured
 * 10,000 guests (200,000 lines, 20,000 chains) at 45-60 s on nf_tables and
 * under 2 s on the legacy backend. A fixed 30 s would make a large host
 * unprogrammable on nf_tables; the bound still catches a wedged child.
 */
export const RESTORE_MS_PER_LINE = 0.5;

/** The bound for one restore of `text`. */
export function restoreTimeoutMs(text: string): number {
  let lines = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) {
    lines++;
  }
  return RUN_TIMEOUT_MS + Math.ceil(lines * RESTORE_MS_PER_LINE);
}

/** The result of one exec, with a killed run said as such rather than "exited null". */
export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a batch-style tool (iptables-save/-restore, ip -batch): output kept
 * whole, SIGKILL at the timeout. Rejects only when it cannot be started.
 */
export async function runTool(cmd: string, args: string[], input?: string, timeoutMs = RUN_TIMEOUT_MS): Promise<RunResult> {
  const r: ExecResult = await run({ file: cmd, args, ...(input === undefined ? {} : { input }), timeoutMs });
  if (r.kind !== 'exited') {
    throw r.error;
  }
  // Killed by the timeout: say so, rather than "exited null".
  return { code: r.code, stdout: r.stdout, stderr: r.code === null ? `killed after ${timeoutMs} ms (timeout)\n${r.stderr}` : r.stderr };
}

/** `iptables-save` of all tables, with packet/byte counters when asked. */
export async function saveRuleset(counters = false): Promise<string> {
  let r: RunResult;
  try {
    r = await runTool(BINARIES.save, counters ? ['-c'] : []);
  } catch (err) {
    throw new KernelApplyError('SGW_ERR_KERNEL_SAVE_FAILED', `cannot run ${BINARIES.save}: ${(err as Error).message}`, { exitCode: null, stderr: '' });
  }
  if (r.code !== 0) {
    throw new KernelApplyError('SGW_ERR_KERNEL_SAVE_FAILED', `${BINARIES.save} exited ${String(r.code)}: ${r.stderr.trim()}`, { exitCode: r.code, stderr: r.stderr });
  }
  return r.stdout;
}

/**
 * Applies restore input with `--noflush`. Each table section is atomic (it
 * is committed at its COMMIT line, all or nothing), but a batch is not: a
 * failure in a later table leaves the earlier ones committed. Callers
 * therefore never depend on two tables changing together (see ADR 0002 and
 * the rules-before-tunnels order in the daemon). On failure the error carries the exit code, stderr
 * and the failing line with three lines around it.
 */
export async function restoreRules(text: string): Promise<void> {
  let r: RunResult;
  try {
    r = await runTool(BINARIES.restore, ['-w', LOCK_WAIT_S, '--noflush'], text, restoreTimeoutMs(text));
  } catch (err) {
    throw new KernelApplyError('SGW_ERR_KERNEL_RESTORE_FAILED', `cannot run ${BINARIES.restore}: ${(err as Error).message}`, { exitCode: null, stderr: '' });
  }
  if (r.code !== 0) {
    const context = failureContext(text, r.stderr);
    throw new KernelApplyError('SGW_ERR_KERNEL_RESTORE_FAILED', `${BINARIES.restore} exited ${String(r.code)}: ${r.stderr.trim().split('\n')[0] ?? ''}`, {
      exitCode: r.code,
      stderr: r.stderr,
      context,
    });
  }
}

/** The failing line (from "line N failed" / "at line: N") with ±3 lines. */
export function failureContext(text: string, stderr: string): string {
  const m = /line:? (\d+)(?: failed)?/i.exec(stderr);
  if (m === null) {
    return '';
  }
  const n = Number(m[1]);
  const lines = text.split('\n');
  const from = Math.max(1, n - 3);
  const to = Math.min(lines.length, n + 3);
  const out: string[] = [];
  for (let i = from; i <= to; i++) {
    out.push(`${i === n ? '>' : ' '}${String(i).padStart(5)}: ${lines[i - 1] ?? ''}`);
  }
  return out.join('\n');
}
