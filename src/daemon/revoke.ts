import type { DesiredState } from '../model/desired';
import type { Counters } from '../observability/counters';
import type { Logger } from '../observability/logger';
import type { ProxyPlane } from '../dataplane/proxy/plane';
import { deleteFlows } from '../dataplane/kernel/conntrack';
import type { FlowTuple } from '../dataplane/kernel/conntrack';
import { grantPlane } from '../policy/policy';
import { revocations } from '../policy/revocations';
import type { Revocation } from '../policy/revocations';
import { describeError } from '../errors';

/** Delay before conntrack entries of revoked grants are deleted (see Revoker.cut). */
export const CONNTRACK_GRACE_MS = 2000;

/** A revoked flow tuple and the source IP it was NATed to when revoked. */
export interface RevokedTuple extends FlowTuple {
  sourceIp: string;
}

/** The revocations a sync enforces, split by the plane that cuts them. */
export interface RevocationPlan {
  all: Revocation[];
  viaProxy: Revocation[];
  viaKernel: Revocation[];
}

/**
 * Decides which flows a new desired state takes away, and which plane
 * cuts each. Pure.
 * - Each revoked grant is cut by the plane that carried it under the state
 *   its flows were admitted by (`prev`).
 * - The kernel plane forwards rw and ro grants alike (the backend enforces
 *   ro until the protocol-aware proxy does): a level change alone changes
 *   nothing it enforces, so only the proxy plane cuts for it.
 */
export function planRevocations(prev: DesiredState | null, desired: DesiredState): RevocationPlan {
  const planeOf = (r: Revocation): 'kernel' | 'proxy' => {
    const gr = prev?.guests.find((g) => g.key === r.guestKey)?.grants.find((x) => x.backend === r.backend && x.port === r.port);
    return gr === undefined || prev === null ? 'kernel' : grantPlane(prev.dataplane, gr);
  };
  const all = revocations(prev, desired).filter((r) => planeOf(r) === 'proxy' || r.reason !== 'level-changed');
  return { all, viaProxy: all.filter((r) => planeOf(r) === 'proxy'), viaKernel: all.filter((r) => planeOf(r) === 'kernel') };
}

/** The conntrack tuples of kernel-plane revocations, NATed as under `prev`. Pure. */
export function revokedTuples(revs: readonly Revocation[], prev: DesiredState | null): RevokedTuple[] {
  // The source IP a guest's flows were NATed to under the last enforced state.
  const sourceOf = (guestKey: string): string => prev?.guests.find((g) => g.key === guestKey)?.sourceIp ?? '';
  return revs.map((r) => ({ src: r.guestIp, dst: r.backend, dport: r.port, sourceIp: sourceOf(r.guestKey) }));
}

/**
 * The tuples still to delete under `applied`: a grant given back since it
 * was revoked keeps its new flows (same guest address, backend and port,
 * NATed to the same source IP). Pure.
 */
export function stillRevoked(all: readonly RevokedTuple[], applied: DesiredState | null): RevokedTuple[] {
  const granted = new Set((applied?.guests ?? []).flatMap((g) => g.grants.map((gr) => `${g.guestIp} ${gr.backend}:${gr.port} ${g.sourceIp}`)));
  return all.filter((t) => !granted.has(`${t.src} ${t.dst}:${t.dport} ${t.sourceIp}`));
}

/** One line per revocation for the log. */
function describe(revs: readonly Revocation[]): string[] {
  return revs.map((r) => `${r.guestKey} ${r.backend}:${r.port} ${r.reason}`);
}

/**
 * Ends established flows of grants a sync took away.
 * State: conntrack deletions that failed, retried at each sync.
 */
export class Revoker {
  private pendingFlush: RevokedTuple[] = [];

  constructor(
    private readonly log: Logger,
    private readonly counters: Counters,
    private readonly proxy: ProxyPlane,
    /** The desired state whose grants were last fully enforced. */
    private readonly applied: () => DesiredState | null,
  ) {}

  /**
   * Ends established flows of grants that `desired` no longer has (compared
   * with `prev`, the last fully enforced state).
   * - Proxy plane: the sessions are reset now.
   * - Kernel plane: the rules just applied already do it. A guest's flow has
   *   no ESTABLISHED shortcut in its chain, so the guest's next packet on a
   *   revoked flow meets the REJECT and the guest gets a reset. The conntrack
   *   entries are deleted a moment later (CONNTRACK_GRACE_MS): deleting them
   *   at once would also stop the backend's packets reaching the guest, and a
   *   guest that only waits for data would then hang instead of being reset.
   *   Deleting them resets the backend's side (its next packet finds no NAT
   *   entry) and keeps an idle revoked flow from resuming if the grant comes
   *   back. A failed deletion is retried at every sync.
   */
  cut(prev: DesiredState | null, desired: DesiredState, t0: number): void {
    const plan = planRevocations(prev, desired);
    if (plan.all.length === 0) {
      return;
    }
    for (const r of plan.all) {
      this.counters.inc('sharegw_revocations_total', { reason: r.reason });
    }
    if (plan.viaProxy.length > 0) {
      const cut = this.proxy.revoke(plan.viaProxy);
      this.counters.inc('sharegw_flows_cut_total', { plane: 'proxy' }, cut);
      this.log.info({ plane: 'proxy', revoked: describe(plan.viaProxy), flowsCut: cut, ms: Math.round(performance.now() - t0) }, 'access revoked; established flows cut');
    }
    if (plan.viaKernel.length > 0) {
      this.log.info({ plane: 'kernel', revoked: describe(plan.viaKernel), ms: Math.round(performance.now() - t0) }, 'access revoked; established flows cut at their next packet');
      const tuples = revokedTuples(plan.viaKernel, prev);
      const timer = setTimeout(() => void this.flush(tuples), CONNTRACK_GRACE_MS);
      timer.unref();
    }
  }

  /** Retries the conntrack deletions that failed before. */
  async retryPending(): Promise<void> {
    if (this.pendingFlush.length > 0) {
      await this.flush(this.pendingFlush.splice(0));
    }
  }

  /** Deletes conntrack entries of revoked grants; keeps them for a retry on failure. */
  private async flush(all: RevokedTuple[]): Promise<void> {
    const tuples = stillRevoked(all, this.applied());
    if (tuples.length === 0) {
      return;
    }
    try {
      const n = await deleteFlows(tuples);
      this.counters.inc('sharegw_flows_cut_total', { plane: 'kernel' }, n);
      this.log.info({ entries: n }, 'conntrack entries of revoked grants deleted');
    } catch (err) {
      const e = describeError(err);
      this.counters.inc('sharegw_conntrack_errors_total', { code: e.code });
      this.log.error({ code: e.code, err: e.message }, 'cannot delete conntrack entries of revoked grants; retrying at the next sync');
      this.pendingFlush = this.pendingFlush.concat(tuples);
    }
  }
}
