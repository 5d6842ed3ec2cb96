import type { DesiredState } from '../../model/desired';
import { diffEgress, EGRESS_PROTO, parseEgress, renderEgress, renderEgressCleanup, routeKey, ruleKey } from './egress';
import type { EgressSpec } from './egress';
import { ipBatch, ipJson } from './restore';

/** What one egress apply did. */
export interface EgressReport {
  /** Batch lines run (0: the kernel already held the desired state). */
  lines: number;
  /** The kernel's copy differed from what we last applied: another program changed it. */
  drifted: boolean;
  /** Up to 6 lines of the batch, for the log. */
  sample: string[];
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
    await ipBatch(text);
    this.last = wantKey;
    const lines = text.trimEnd().split('\n');
    return { lines: lines.length, drifted, sample: lines.slice(0, 6) };
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
