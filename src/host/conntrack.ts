import { KernelApplyError } from '../errors';
import { HOST_BINARIES, run, spawnStream } from './exec';
import type { StreamHandle } from './exec';

/**
 * conntrack-tools, run through host/exec.ts: delete by tuple, list and get
 * streamed by line (a large table is never held as one string), and the
 * `-E` event stream. Parsing the lines is the kernel plane's job
 * (dataplane/kernel/conntrack.ts).
 */

/** Overridable binary (SGW_CONNTRACK; tests may point it at a failing one). */
export const CONNTRACK = HOST_BINARIES.conntrack;

/** How long one conntrack run may take before it is killed. */
export const CONNTRACK_TIMEOUT_MS = 30_000;
/** Longer stdout lines are no conntrack entries (those are < 1 KiB): dropped unread. */
const MAX_LINE_CHARS = 16 * 1024;

/** Bounded like iptables: a hung child must not hang the daemon. */
function conntrack(args: string[], onLine?: (line: string) => void, keepStdout = true): ReturnType<typeof run> {
  return run({
    file: CONNTRACK,
    args,
    ...(keepStdout ? {} : { maxStdoutBytes: 0 }),
    timeoutMs: CONNTRACK_TIMEOUT_MS,
    // Only the first stderr line is reported.
    maxStderrBytes: MAX_LINE_CHARS,
    overflow: 'truncate',
    maxLineChars: MAX_LINE_CHARS,
    ...(onLine === undefined ? {} : { onLine }),
  });
}

/**
 * `conntrack -D <args>`; how many entries it deleted. Exit 1 when nothing
 * matched is not an error here: the count line says 0.
 */
export async function conntrackDelete(args: string[]): Promise<number> {
  // -D prints each deleted entry: read and dropped, only the count matters.
  const r = await conntrack(['-D', ...args], undefined, false);
  if (r.kind !== 'exited') {
    throw new KernelApplyError('SGW_ERR_CONNTRACK_FAILED', `cannot run ${CONNTRACK}: ${(r.error as Error).message}`, { exitCode: null, stderr: '' });
  }
  const m = /(\d+) flow entries have been deleted/.exec(r.stderr);
  if (m !== null) {
    return Number(m[1]);
  }
  throw new KernelApplyError('SGW_ERR_CONNTRACK_FAILED', `${CONNTRACK} exited ${String(r.code)}: ${r.stderr.trim().split('\n')[0] ?? ''}`, { exitCode: r.code, stderr: r.stderr });
}

/**
 * `conntrack -L <args>`, each stdout line to `onLine`. A throw from
 * `onLine` kills the child and is reported, never escapes into the event
 * loop.
 */
export async function conntrackList(args: string[], onLine: (line: string) => void): Promise<void> {
  const r = await conntrack(['-L', ...args], onLine);
  if (r.kind === 'spawn-failed') {
    throw new KernelApplyError('SGW_ERR_CONNTRACK_FAILED', `cannot run ${CONNTRACK}: ${r.error.message}`, { exitCode: null, stderr: '' });
  }
  if (r.kind === 'line-failed') {
    throw new KernelApplyError('SGW_ERR_CONNTRACK_FAILED', `reading ${CONNTRACK} -L output failed: ${(r.error as Error).message}`, { exitCode: null, stderr: '' });
  }
  if (r.code !== 0) {
    const why = r.signal !== null ? `was killed (${r.signal}; the limit is ${CONNTRACK_TIMEOUT_MS / 1000} s)` : `exited ${String(r.code)}: ${r.stderr.trim().split('\n')[0] ?? ''}`;
    throw new KernelApplyError('SGW_ERR_CONNTRACK_FAILED', `${CONNTRACK} -L ${why}`, { exitCode: r.code, stderr: r.stderr });
  }
}

/**
 * `conntrack -G <args>`, each stdout line to `onLine`. Best effort: a
 * missing entry (non-zero exit) or a failing tool just yields no lines.
 */
export async function conntrackGet(args: string[], onLine: (line: string) => void): Promise<void> {
  await conntrack(['-G', ...args], onLine);
}

/**
 * Starts `conntrack -E <args>`: each event line to `onLine`, and `onExit`
 * once the tool is gone (including when it could not be started).
 */
export function conntrackEvents(args: string[], onLine: (line: string) => void, onExit: (code: number | null, stderr: string) => void): StreamHandle {
  return spawnStream({ file: CONNTRACK, args: ['-E', ...args], onLine, onExit, maxLineChars: MAX_LINE_CHARS });
}
