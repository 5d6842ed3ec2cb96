import { HostNetError, KernelApplyError } from '../errors';
import { HOST_BINARIES, run } from './exec';
import { failureContext, restoreTimeoutMs, runTool } from './iptables';
import type { RunResult } from './iptables';

/**
 * iproute2 (`ip`), run through host/exec.ts: JSON reads and batches for
 * egress routing (ADR 0011), and the single commands of tunnel adoption
 * (tunnels/host.ts). Both honour SGW_IP.
 */

/** The iproute2 binary (SGW_IP; see exec.ts). */
export const IP_BINARY = HOST_BINARIES.ip;

/** `ip -j <args>` output (JSON text). */
export async function ipJson(args: string[]): Promise<string> {
  let r: RunResult;
  try {
    r = await runTool(IP_BINARY, ['-j', ...args]);
  } catch (err) {
    throw new KernelApplyError('SGW_ERR_KERNEL_ROUTES_FAILED', `cannot run ${IP_BINARY}: ${(err as Error).message}`, { exitCode: null, stderr: '' });
  }
  if (r.code !== 0) {
    throw new KernelApplyError('SGW_ERR_KERNEL_ROUTES_FAILED', `${IP_BINARY} -j ${args.join(' ')} exited ${String(r.code)}: ${r.stderr.trim()}`, { exitCode: r.code, stderr: r.stderr });
  }
  return r.stdout;
}

/**
 * Runs `ip -force -batch -`: every line is tried even when one fails (a
 * missing egress interface must not keep other domains' routes out), and
 * the failures are reported together with the failing line and its
 * neighbours. Not atomic: the renderer orders lines so that each step is
 * safe (egress.ts diffEgress).
 */
export async function ipBatch(text: string): Promise<void> {
  let r: RunResult;
  try {
    r = await runTool(IP_BINARY, ['-force', '-batch', '-'], text, restoreTimeoutMs(text));
  } catch (err) {
    throw new KernelApplyError('SGW_ERR_KERNEL_ROUTES_FAILED', `cannot run ${IP_BINARY}: ${(err as Error).message}`, { exitCode: null, stderr: '' });
  }
  if (r.code !== 0) {
    throw new KernelApplyError('SGW_ERR_KERNEL_ROUTES_FAILED', `${IP_BINARY} -batch exited ${String(r.code)}: ${r.stderr.trim().split('\n').slice(0, 3).join('; ')}`, {
      exitCode: r.code,
      stderr: r.stderr,
      // iproute2 says "Command failed -:N" for line N of the batch.
      context: failureContext(text, r.stderr.replace(/Command failed -:(\d+)/, 'line $1')),
    });
  }
}

/** One tunnel-adoption command may take this long (it is SIGTERMed after). */
const IP_COMMAND_TIMEOUT_MS = 5000;
/** Output kept of one command; more kills it (execFile's default maxBuffer, kept). */
const IP_COMMAND_MAX_BYTES = 1024 * 1024;

/**
 * One `ip <args>` for tunnel adoption; its stdout. Any failure is a
 * HostNetError naming the command and iproute2's own words (or, when it
 * printed none, how it ended).
 */
export async function ipCommand(args: string[]): Promise<string> {
  const r = await run({
    file: IP_BINARY,
    args,
    timeoutMs: IP_COMMAND_TIMEOUT_MS,
    killSignal: 'SIGTERM',
    maxStdoutBytes: IP_COMMAND_MAX_BYTES,
    maxStderrBytes: IP_COMMAND_MAX_BYTES,
    overflow: 'kill',
  });
  if (r.kind === 'exited' && r.code === 0 && !r.overflowed) {
    return r.stdout;
  }
  const what = `${IP_BINARY} ${args.join(' ')}`;
  let why: string;
  if (r.kind !== 'exited') {
    why = (r.error as Error).message;
  } else if (r.stderr.trim() !== '') {
    why = r.stderr.trim();
  } else if (r.overflowed) {
    why = 'stdout maxBuffer length exceeded';
  } else {
    why = `Command failed: ${what}\n`;
  }
  throw new HostNetError('SGW_ERR_HOSTNET_IP', `${what}: ${why}`);
}
