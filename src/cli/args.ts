/** Minimal argv parser: `--flag`, `--key value`, `--key=value`, positionals. */
export interface ParsedArgs {
  flags: Set<string>;
  values: Map<string, string>;
  positionals: string[];
  unknown: string[];
}

/** Parses argv against the known flags (no value) and options (one value). */
export function parseArgs(argv: readonly string[], flags: readonly string[], options: readonly string[]): ParsedArgs {
  const out: ParsedArgs = { flags: new Set(), values: new Map(), positionals: [], unknown: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (!a.startsWith('--')) {
      out.positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq === -1 ? a.slice(2) : a.slice(2, eq);
    if (flags.includes(name) && eq === -1) {
      out.flags.add(name);
    } else if (options.includes(name)) {
      const v = eq === -1 ? argv[++i] : a.slice(eq + 1);
      if (v === undefined) {
        out.unknown.push(`${a} (needs a value)`);
      } else {
        out.values.set(name, v);
      }
    } else {
      out.unknown.push(a);
    }
  }
  return out;
}

/** Default daemon file location. */
export const DEFAULT_CONFIG = '/etc/sharegw/sharegwd.yaml';
