import type { DesiredState } from '../../model/desired';
import { diffEgress, EGRESS_PROTO, parseEgress, renderEgress, renderEgressCleanup, routeKey, ruleKey } from './egress';
import type { EgressSpec } from './egress';
import { ipBatch, ipJson } from '../../host/iproute';

/** What one egress apply did. */
export interface EgressReport {
  /** Batch lines run (0: the kernel already held the desired state). */
  lines: number;
  /** The kernel's copy differed from what we last applied: another program changed it. */
  drifted: boolean;
  /** Up to 6 lines of the batch, for the log. */
  sample: string[];
  /**
   * Some lines failed (a missing egress interface, say) but every rule and
   * every table's unreachable default is in place: the affected domains fail
   * closed, the others work. Null when the batch fully applied.
   */
  partial: { message: string; context: string } | null;
}

/**
 * The egress routing programmer (ADR 0011): read our rules and routes (by
 * protocol), render what should be, run the difference as one `ip -batch`.
 * State: only the spec last applied, to tell drift from a config change.
 */
export class EgressRoutes {
  private last: string | null = null;

  /** Reads everything of ours the kernel holds. */
  async read(): Promise<EgressSpec> {
    const [rules, routes] = await Promise.all([ipJson(['-4', 'rule', 'show']), ipJson(['-4', 'route', 'show', 'table', 'all', 'proto', String(EGRESS_PROTO)])]);
    return parseEgress(rules, routes);
  }

  /** Brings the kernel to `desired`; null when nothing needed doing. */
  async apply(desired: DesiredState): Promise<EgressReport | null> {
    const want = renderEgress(desired);
    const have = await this.read();
    const text = diffEgress(want, have);
    const wantKey = fingerprint(want);
    if (text === '') {
      this.last = wantKey;
      return null;
    }
    // Same desired spec as last time, yet the kernel differs: someone else
    // changed our rules or routes.
    const drifted = this.last === wantKey;
    const lines = text.trimEnd().split('\n');
    try {
      await ipBatch(text);
    } catch (err) {
      // Only a failure that leaves a domain's traffic able to reach the
      // host's routing is fatal for the sync: every rule must be there and
      // every table must end in its unreachable default.
      const now = await this.read();
      const rules = new Set(now.rules.map(ruleKey));
      const routes = new Set(now.routes.map(routeKey));
      const closed = want.rules.every((r) => rules.has(ruleKey(r))) && want.routes.filter((r) => r.type === 'unreachable').every((r) => routes.has(routeKey(r)));
      if (!closed) {
        throw err;
      }
      this.last = null;
      const e = err as { message: string; context?: string };
      return { lines: lines.length, drifted, sample: lines.slice(0, 6), partial: { message: e.message, context: e.context ?? '' } };
    }
    this.last = wantKey;
    return { lines: lines.length, drifted, sample: lines.slice(0, 6), partial: null };
  }

  /** Removes every rule and route of ours. Returns whether anything was removed. */
  async cleanup(): Promise<boolean> {
    const text = renderEgressCleanup(await this.read());
    this.last = null;
    if (text === '') {
      return false;
    }
    await ipBatch(text);
    return true;
  }
}

function fingerprint(s: EgressSpec): string {
  return [...s.routes.map(routeKey), ...s.rules.map(ruleKey)].join('\n');
}
