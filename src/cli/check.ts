import { loadConfig } from '../config/load';
import { ConfigError, describeError, formatProblem } from '../errors';
import { compileDesired } from '../policy/policy';

/**
 * `--check-config` / `sharegw validate`: prints every problem, one per line,
 * and returns the exit code (0 valid, 1 invalid).
 */
export function checkConfig(file: string, out: (line: string) => void, err: (line: string) => void): number {
  try {
    const cfg = loadConfig(file);
    for (const w of cfg.warnings) {
      err(`warning: ${formatProblem(w)}`);
    }
    const desired = compileDesired(cfg);
    const grants = desired.guests.reduce((n, g) => n + g.grants.length, 0);
    out(`${file}: configuration OK: ${cfg.domains.length} domains, ${desired.guests.length} guests, ${grants} grants (dataplane ${cfg.daemon.dataplane})`);
    return 0;
  } catch (e) {
    if (e instanceof ConfigError) {
      for (const p of e.problems) {
        err(formatProblem(p));
      }
      err(`${e.problems.length} problem${e.problems.length === 1 ? '' : 's'} found`);
    } else {
      err(`error: ${describeError(e).message}`);
    }
    return 1;
  }
}
