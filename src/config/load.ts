import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../errors';
import type { ConfigProblem } from '../errors';
import type { SgwConfig } from '../model/config';
import { parseYaml } from './yaml-source';
import { validateConfig } from './validate';
import { cloudsSearchPath } from './clouds';
import type { SourceText } from './validate';

/**
 * Reads the daemon file and every `*.yaml`/`*.yml` in its domains
 * directory, then validates them together. Throws ConfigError listing every
 * problem; never returns a partially valid configuration.
 */
export function loadConfig(file: string): SgwConfig {
  const abs = path.resolve(file);
  const problems: ConfigProblem[] = [];
  const daemonSrc = readSource(abs, problems);
  if (daemonSrc === null) {
    throw new ConfigError(problems);
  }
  const domainsDir = path.resolve(path.dirname(abs), domainsDirOf(daemonSrc));
  const domainSrcs: SourceText[] = [];
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(domainsDir).filter((n) => /\.ya?ml$/.test(n) && !n.startsWith('.')).sort();
  } catch (err) {
    problems.push({ file: domainsDir, pointer: '', code: 'SGW_ERR_CONFIG_IO', message: `cannot read domains directory: ${(err as Error).message}` });
  }
  for (const name of entries) {
    const s = readSource(path.join(domainsDir, name), problems);
    if (s !== null) {
      domainSrcs.push(s);
    }
  }
  const cloudsFile = cloudOf(daemonSrc) === null ? null : cloudsSearchPath(process.env, path.dirname(abs)).find((f) => fs.existsSync(f)) ?? null;
  const clouds = cloudsFile === null ? null : readSource(cloudsFile, problems);
  const result = validateConfig(daemonSrc, domainSrcs, domainsDir, clouds);
  problems.push(...result.problems);
  if (problems.length > 0 || result.config === null) {
    throw new ConfigError(problems);
  }
  return result.config;
}

function readSource(file: string, problems: ConfigProblem[]): SourceText | null {
  try {
    return { file, text: fs.readFileSync(file, 'utf8') };
  } catch (err) {
    problems.push({ file, pointer: '', code: 'SGW_ERR_CONFIG_IO', message: `cannot read file: ${(err as Error).message}` });
    return null;
  }
}

/** The domainsDir key, read leniently before full validation. */
function domainsDirOf(src: SourceText): string {
  const v = parseYaml(src.file, src.text).value;
  if (v !== null && typeof v === 'object' && typeof (v as { domainsDir?: unknown }).domainsDir === 'string') {
    return (v as { domainsDir: string }).domainsDir;
  }
  return 'domains.d';
}

/** `manila.cloud`, read leniently before full validation (whether to look for clouds.yaml). */
function cloudOf(src: SourceText): string | null {
  const v = parseYaml(src.file, src.text).value as { manila?: { cloud?: unknown } } | null;
  const c = v !== null && typeof v === 'object' ? v.manila?.cloud : undefined;
  return typeof c === 'string' ? c : null;
}
