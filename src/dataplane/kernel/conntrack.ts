import { spawn } from 'node:child_process';
import { KernelApplyError } from '../../errors';

/**
 * The backend half of cutting a revoked flow in the kernel plane. The guest
 * half is done by the rules (a guest chain has no ESTABLISHED shortcut, so
 * the guest's next packet on a revoked flow meets the REJECT and gets a
 * reset). Deleting the conntrack entry by its original tuple (guest tunnel
 * IP -> backend:port) then leaves the backend's next packet, addressed to the
 * domain's source IP, without a NAT entry: the gateway's own stack resets
 * it. It also keeps an idle revoked flow from resuming if the grant comes
 * back. With kernel/restore.ts and tunnels/host.ts, the only modules that
 * run host commands.
 */

/** Overridable binary (tests may point it at a failing one). */
export const CONNTRACK = process.env['SGW_CONNTRACK'] ?? 'conntrack';

/** One original tuple to forget: TCP from `src` to `dst`:`dport`. */
export interface FlowTuple {
  src: string;
  dst: string;
  dport: number;
}

function run(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    // Bounded like iptables in restore.ts: a hung child must not hang the daemon.
    const child = spawn(CONNTRACK, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000, killSignal: 'SIGKILL' });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

/**
 * Deletes the conntrack entries of each tuple; returns how many were deleted.
 * `conntrack -D` exits 1 when nothing matched: that is not an error here.
 */
export async function deleteFlows(tuples: readonly FlowTuple[]): Promise<number> {
  let deleted = 0;
  for (const t of tuples) {
    let r;
    try {
      r = await run(['-D', '-p', 'tcp', '--orig-src', t.src, '--orig-dst', t.dst, '--dport', String(t.dport)]);
    } catch (err) {
      throw new KernelApplyError('SGW_ERR_CONNTRACK_FAILED', `cannot run ${CONNTRACK}: ${(err as Error).message}`, { exitCode: null, stderr: '' });
    }
    const m = /(\d+) flow entries have been deleted/.exec(r.stderr);
    if (m !== null) {
      deleted += Number(m[1]);
      continue;
    }
    throw new KernelApplyError('SGW_ERR_CONNTRACK_FAILED', `${CONNTRACK} exited ${String(r.code)}: ${r.stderr.trim().split('\n')[0] ?? ''}`, { exitCode: r.code, stderr: r.stderr });
  }
  return deleted;
}
