import type { ConfigProblem } from '../../errors';
import type { SgwConfig } from '../../model/config';
import { allocateTables } from '../resolve-tables';
import { parseYaml } from '../yaml-source';
import type { SourceText } from '../yaml-source';
import { crossDomainChecks } from './cross-domain';
import { checkDaemon, DEFAULT_EGRESS } from './daemon-file';
import { checkDomain } from './domain-file';
import type { Checked } from './domain-file';

/*
 * Validation of a daemon file and its domain files, one job per module:
 * daemon-file.ts (the daemon file), manila.ts (its `manila:` block and
 * clouds.yaml), domain-file.ts (one domain file), cross-domain.ts (what
 * must be unique on the host), ../resolve-tables.ts (egress tables, given
 * last). part.ts holds the schema reading they share.
 */

export type { SourceText } from '../yaml-source';
export { DEFAULT_EGRESS, DEFAULT_LIMITS, PROXY_BUDGETS } from './daemon-file';
export { allocateTables } from '../resolve-tables';

/** Result of validation: a config only when there are no problems. */
export interface ValidationResult {
  config: SgwConfig | null;
  problems: ConfigProblem[];
  warnings: ConfigProblem[];
}

/**
 * Validates a daemon file and its domain files completely, returning every
 * problem at once (an operator fixing a file wants the whole list).
 * Pure: the caller reads the files.
 */
export function validateConfig(daemonSrc: SourceText, domainSrcs: readonly SourceText[], domainsDir: string, clouds: SourceText | null = null): ValidationResult {
  const problems: ConfigProblem[] = [];
  const warnings: ConfigProblem[] = [];

  const dsrc = parseYaml(daemonSrc.file, daemonSrc.text);
  const daemon = checkDaemon(dsrc, problems, clouds);

  // Domains with problems still take part in the host-wide checks, with the
  // parts that parsed, so one run reports every collision too.
  const checked: Checked[] = [];
  let broken = false;
  for (const s of domainSrcs) {
    const src = parseYaml(s.file, s.text);
    const before = problems.length;
    const c = checkDomain(src, problems, warnings);
    broken ||= problems.length !== before;
    if (c !== null) {
      checked.push(c);
    }
  }
  crossDomainChecks(checked, problems);
  allocateTables(checked, daemon?.egress.tables ?? DEFAULT_EGRESS.tables, problems);
  const domains = broken ? [] : checked.map((c) => c.domain);

  if (daemon !== null) {
    daemon.domainsDir = domainsDir;
  }
  problems.sort(byPosition);
  const ok = problems.length === 0 && daemon !== null;
  return { config: ok ? { daemon, domains, warnings } : null, problems, warnings };
}

function byPosition(a: ConfigProblem, b: ConfigProblem): number {
  if (a.file !== b.file) {
    return a.file < b.file ? -1 : 1;
  }
  return (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0);
}
