import type { Table } from './chains';

/** One table of an `iptables-save` dump. */
export interface SavedTable {
  /** Every chain declared in the table, built-in or user. */
  chains: Set<string>;
  /** Rule lines (`-A CHAIN ...`) in order, without counters. */
  rules: string[];
  /** Counters per rule line index, when saved with `-c`. */
  counters: ({ packets: number; bytes: number } | null)[];
}

/** A parsed `iptables-save` dump, keyed by table name. */
export type SavedRuleset = Map<string, SavedTable>;

/**
 * Parses `iptables-save [-c]` output. Pure and forgiving about tables we do
 * not know; strict about the structure we rely on (a rule outside a table is
 * ignored rather than guessed at).
 */
export function parseSave(text: string): SavedRuleset {
  const out: SavedRuleset = new Map();
  let cur: SavedTable | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      cur = { chains: new Set(), rules: [], counters: [] };
      out.set(line.slice(1).trim(), cur);
    } else if (cur === null) {
      continue;
    } else if (line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0];
      if (name !== undefined && name !== '') {
        cur.chains.add(name);
      }
    } else if (line.startsWith('COMMIT')) {
      cur = null;
    } else {
      const m = /^\[(\d+):(\d+)\] (-A .*)$/.exec(line);
      if (m !== null) {
        cur.rules.push(m[3] ?? '');
        cur.counters.push({ packets: Number(m[1]), bytes: Number(m[2]) });
      } else if (line.startsWith('-A ')) {
        cur.rules.push(line);
        cur.counters.push(null);
      }
    }
  }
  return out;
}

/** The chain a rule line appends to (`-A CHAIN ...`). */
export function ruleChain(rule: string): string {
  return rule.split(' ')[1] ?? '';
}

/** The jump target of a rule line, if any. */
export function ruleTarget(rule: string): string | null {
  const m = / -j (\S+)/.exec(rule);
  return m === null ? null : (m[1] ?? null);
}

/** An empty table (used when a table is absent from the dump). */
export function emptyTable(): SavedTable {
  return { chains: new Set(), rules: [], counters: [] };
}

/** The table's parsed form or an empty one. */
export function tableOf(saved: SavedRuleset, t: Table): SavedTable {
  return saved.get(t) ?? emptyTable();
}

/**
 * A canonical text of everything in a dump that belongs to chains with the
 * given prefix: our chains, their rules and the jumps into them, as
 * iptables-save prints them (counters excluded). Two dumps with the same
 * fingerprint have the same owned rules; any edit by another program to our
 * chains or jumps changes it. Comparing the kernel's own rendering, not our
 * input text, avoids guessing how iptables normalises rules.
 */
export function ownedFingerprint(saved: SavedRuleset, prefix: string): string {
  let out: string[] = [];
  for (const name of [...saved.keys()].sort()) {
    const t = saved.get(name);
    if (t === undefined) {
      continue;
    }
    const chains = [...t.chains].filter((c) => c.startsWith(prefix)).sort();
    const rules = t.rules.filter((r) => ruleChain(r).startsWith(prefix) || (ruleTarget(r) ?? '').startsWith(prefix));
    if (chains.length > 0 || rules.length > 0) {
      // concat, not push(...): a large host has more rules than a call has arguments
      out = out.concat(`*${name}`, chains.map((c) => `:${c}`), rules);
    }
  }
  return out.join('\n');
}
