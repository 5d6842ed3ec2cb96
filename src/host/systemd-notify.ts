import { NotifyError } from '../errors';
import { run } from './exec';

/**
 * The systemd-notify command, run through host/exec.ts: the fallback path
 * of daemon/notify.ts when the native sd_notify shim is absent or fails.
 */

/** Output kept of one run; more kills it (a well-behaved run prints nothing). */
const MAX_OUTPUT_BYTES = 64 * 1024;

/**
 * One run of `command args` with exactly `env`; null when it exited 0,
 * else the NotifyError saying why (it never throws).
 */
export async function runSystemdNotify(command: string, args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<NotifyError | null> {
  const r = await run({ file: command, args, env, timeoutMs, maxStdoutBytes: MAX_OUTPUT_BYTES, maxStderrBytes: MAX_OUTPUT_BYTES, overflow: 'kill' });
  if (r.kind !== 'exited') {
    const err = r.error as NodeJS.ErrnoException;
    return new NotifyError('SGW_ERR_NOTIFY_SPAWN', `cannot run ${command}: ${String(err.code)}`, { cause: err });
  }
  if (r.overflowed) {
    // As execFile reported it: output past the cap counts as a failure to run.
    return new NotifyError('SGW_ERR_NOTIFY_SPAWN', `cannot run ${command}: ERR_CHILD_PROCESS_STDIO_MAXBUFFER`);
  }
  if (r.timedOut && r.code === null) {
    return new NotifyError('SGW_ERR_NOTIFY_TIMEOUT', `${command} did not finish within ${timeoutMs} ms`);
  }
  if (r.code === 0) {
    return null;
  }
  const line = r.stderr.trim().split('\n').pop()?.slice(0, 300) ?? '';
  const how = r.code !== null ? `exited with ${r.code}` : `was killed by ${r.signal ?? 'a signal'}`;
  return new NotifyError('SGW_ERR_NOTIFY_EXIT', `${command} ${how}${line === '' ? '' : `: ${line}`}`);
}
