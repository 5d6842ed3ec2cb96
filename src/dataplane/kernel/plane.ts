import type { DesiredState } from '../../model/desired';
import { PREFIX } from './chains';
import { ownedTunnels, renderCleanup, renderRules } from './render';
import type { OwnedTunnel } from './render';
import { restoreRules, saveRuleset } from '../../host/iptables';
import { ownedFingerprint, parseSave, ruleChain } from './save-parse';
import type { SavedRuleset } from './save-parse';

/** What one apply did. */
export interface ApplyReport {
  lines: number;
  durationMs: number;
  /** The apply repaired changes another program made to our chains or jumps. */
  drifted: boolean;
  /** Up to 6 lines that were missing (-) or foreign (+), for the log. */
  driftSample: string[];
}

/** Per-guest kernel counters read from our rules' comments. */
export interface KernelCounters {
  /** key: `domain/instance`, value: packets per reason (antispoof, deny, deny-local). */
  byGuest: Record<string, Record<string, number>>;
  /**
   * Connections refused by a cap (each a SYN answered with a reset), key
   * `scope domain backend:port` (scope `domain` or `backend`; domain `-`
   * for the backend scope).
   */
  caps?: Record<string, number>;
}

/**
 * The kernel rule programmer: read what is there, render what should be,
 * restore it in one batch. Holds no state between calls on purpose: the
 * kernel is the source of truth for what is applied.
 */
export class KernelRules {
  /** Counts of rules an apply flushed, so totals survive re-applies. */
  private carried: KernelCounters = { byGuest: {}, caps: {} };
  /** Totals as of the last apply's iptables-save (no extra save needed to read them). */
  private observedTotal: KernelCounters = { byGuest: {}, caps: {} };
  private lastText = '';
  private lastFingerprint = '';

  /**
   * Renders and applies the desired state (both data planes use this).
   * With `onlyIfChanged`, skips the restore when the rendered text equals
   * the last applied one (which includes repairs of deleted jumps).
   */
  async apply(desired: DesiredState, proxyPorts?: ReadonlyMap<string, number>, onlyIfChanged = false): Promise<ApplyReport | null> {
    const t0 = performance.now();
    const existing = parseSave(await saveRuleset(true));
    const seen: KernelCounters = { byGuest: {}, caps: {} };
    addCounters(seen, this.carried);
    addCounters(seen, countersOf(existing));
    this.observedTotal = seen;
    const text = renderRules(proxyPorts === undefined ? { desired, existing } : { desired, existing, proxyPorts });
    const now = ownedFingerprint(existing, PREFIX);
    const drifted = this.lastFingerprint !== '' && now !== this.lastFingerprint;
    const driftSample = drifted ? sampleDiff(this.lastFingerprint, now) : [];
    const unchanged = text === this.lastText;
    if (onlyIfChanged && unchanged && !drifted) {
      return null;
    }
    await restoreRules(text);
    this.lastText = text;
    // Every chain but a kept cap chain was flushed: carry their counts. A
    // cap chain the text does not declare kept its rules and counters.
    const flushed = new Set(text.split('\n').filter((l) => l.startsWith(':')).map((l) => l.slice(1).split(' ')[0] ?? ''));
    addCounters(this.carried, countersOf(existing, (chain) => !chain.startsWith(CAP_PREFIX) || flushed.has(chain)));
    // What the kernel now holds, in its own spelling: the next sync compares
    // against this to notice edits by other programs (drift).
    const after = parseSave(await saveRuleset(false));
    this.lastFingerprint = ownedFingerprint(after, PREFIX);
    // The text the next sync renders for the same state: cap chains that are
    // now in place are left out of it (renderRules keeps them), so compare
    // against that, or every change would cost a second restore.
    this.lastText = renderRules(proxyPorts === undefined ? { desired, existing: after } : { desired, existing: after, proxyPorts });
    return { lines: text.split('\n').length, durationMs: performance.now() - t0, drifted, driftSample };
  }

  /** Removes every chain and jump we own. Returns whether anything was removed. */
  async cleanup(): Promise<boolean> {
    return (await this.cleanupAll()).removed;
  }

  /** The tunnels our current rules guard (from the anti-spoof rules). */
  async ownedTunnels(): Promise<OwnedTunnel[]> {
    return ownedTunnels(parseSave(await saveRuleset()));
  }

  /** Like cleanup(), and also says which tunnels the removed rules guarded. */
  async cleanupAll(): Promise<{ removed: boolean; tunnels: OwnedTunnel[] }> {
    const saved = parseSave(await saveRuleset());
    const tunnels = ownedTunnels(saved);
    const text = renderCleanup(saved);
    this.lastText = '';
    this.lastFingerprint = '';
    if (text === null) {
      return { removed: false, tunnels };
    }
    await restoreRules(text);
    return { removed: true, tunnels };
  }

  /**
   * The counters as the last apply read them (every sync saves the rules
   * to compare them): cheap, at most one sync interval old.
   */
  observed(): KernelCounters {
    return this.observedTotal;
  }

  /** Denial and anti-spoof counters of our rules, including flushed ones. */
  async counters(): Promise<KernelCounters> {
    const now = countersOf(parseSave(await saveRuleset(true)));
    const total: KernelCounters = { byGuest: {}, caps: {} };
    addCounters(total, this.carried);
    addCounters(total, now);
    return total;
  }
}

function addCounters(into: KernelCounters, from: KernelCounters): void {
  for (const [k, n] of Object.entries(from.caps ?? {})) {
    const caps = (into.caps ??= {});
    caps[k] = (caps[k] ?? 0) + n;
  }
  for (const [key, reasons] of Object.entries(from.byGuest)) {
    const g = (into.byGuest[key] ??= {});
    for (const [reason, n] of Object.entries(reasons)) {
      g[reason] = (g[reason] ?? 0) + n;
    }
  }
}

/** Cap chains (SGW-CAPB, SGW-CAPD-*): kept across applies when unchanged. */
const CAP_PREFIX = 'SGW-CAP';

/**
 * Reads per-guest counters off rule comments (`sharegw KEY REASON`) and the
 * cap refusals (`sharegw DOMAIN cap-SCOPE BACKEND:PORT`), of the chains
 * `include` selects (default: all of ours).
 */
export function countersOf(saved: SavedRuleset, include: (chain: string) => boolean = () => true): KernelCounters {
  const byGuest: Record<string, Record<string, number>> = {};
  const caps: Record<string, number> = {};
    for (const table of saved.values()) {
      table.rules.forEach((rule, i) => {
        if (!ruleChain(rule).startsWith(PREFIX) || !include(ruleChain(rule))) {
          return;
        }
        const cap = /--comment "?sharegw (\S+) cap-(domain|backend) (\S+?)"? /.exec(rule);
        const cc = table.counters[i];
        if (cap !== null && cc !== null && cc !== undefined) {
          const k = `${cap[2] ?? ''} ${cap[1] ?? ''} ${cap[3] ?? ''}`;
          caps[k] = (caps[k] ?? 0) + cc.packets;
          return;
        }
        const m = /--comment "?sharegw (\S+) (antispoof|deny|deny-local)"?/.exec(rule);
        const c = table.counters[i];
        if (m === null || c === null || c === undefined) {
          return;
        }
        const key = m[1] ?? '';
        const reason = m[2] ?? '';
        const g = (byGuest[key] ??= {});
        g[reason] = (g[reason] ?? 0) + c.packets;
      });
    }
  return { byGuest, caps };
}

/** A few lines of difference between two fingerprints, for the drift log. */
function sampleDiff(was: string, now: string): string[] {
  const a = new Set(was.split('\n'));
  const b = new Set(now.split('\n'));
  const missing = [...a].filter((l) => !b.has(l)).map((l) => `- ${l}`);
  const extra = [...b].filter((l) => !a.has(l)).map((l) => `+ ${l}`);
  return [...missing.slice(0, 3), ...extra.slice(0, 3)];
}
