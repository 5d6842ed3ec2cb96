/**
 * Rule programming time: the daemon's own path from domain files to kernel
 * rules (YAML + schema validation, policy compile, render, iptables-restore)
 * for a large host. Runs inside a scratch network namespace that the runner
 * creates and deletes (`ip netns exec sgwbench-rules node rules.js D G`).
 * Prints one JSON line with the phase timings.
 */
import { writeFileSync } from 'node:fs';
import { largeHostConfig } from './large-host';
import { KernelRules } from '../../src/dataplane/kernel/plane';
import { renderRules } from '../../src/dataplane/kernel/render';
import { parseSave } from '../../src/dataplane/kernel/save-parse';
import { compileDesired } from '../../src/policy/policy';

const [domainsS = '1000', guestsS = '10000'] = process.argv.slice(2);
const DOMAINS = Number(domainsS);
const GUESTS = Number(guestsS);
const config = (ruleFor: (d: number) => string): ReturnType<typeof largeHostConfig> => largeHostConfig(DOMAINS, GUESTS, ruleFor);
const ms = (t0: number): number => Math.round((performance.now() - t0) * 10) / 10;

async function main(): Promise<void> {
  let t = performance.now();
  const v = config(() => '198.19.0.0/16');
  const validateMs = ms(t);
  if (v.config === null) {
    throw new Error(`generated config invalid: ${JSON.stringify(v.problems.slice(0, 3))}`);
  }
  t = performance.now();
  const desired = compileDesired(v.config);
  const compileMs = ms(t);
  t = performance.now();
  const text = renderRules({ desired, existing: parseSave('') });
  const renderMs = ms(t);
  if (process.env['SGWBENCH_DUMP'] !== undefined) {
    writeFileSync(process.env['SGWBENCH_DUMP'], text);
    process.stdout.write(`${JSON.stringify({ lines: text.split('\n').length, validateMs, compileMs, renderMs })}\n`);
    return;
  }
  const rules = new KernelRules();
  const first = await rules.apply(desired);
  const again = await rules.apply(desired);
  // One domain's access rule narrows: everything is re-rendered and restored
  // in one batch (the daemon's way), so this is the cost of any change.
  const changed = config((d) => (d === 0 ? '198.19.0.1/32' : '198.19.0.0/16'));
  if (changed.config === null) {
    throw new Error('changed config invalid');
  }
  t = performance.now();
  const one = await rules.apply(compileDesired(changed.config));
  const changeMs = ms(t);
  t = performance.now();
  await rules.cleanup();
  const cleanupMs = ms(t);
  process.stdout.write(
    `${JSON.stringify({
      domains: DOMAINS,
      guests: desired.guests.length,
      lines: text.split('\n').length,
      validateMs,
      compileMs,
      renderMs,
      firstApplyMs: Math.round(first?.durationMs ?? NaN),
      reapplyMs: Math.round(again?.durationMs ?? NaN),
      oneChangeMs: Math.round(changeMs),
      oneChangeApplyMs: Math.round(one?.durationMs ?? NaN),
      cleanupMs: Math.round(cleanupMs),
    })}\n`,
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`rules: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
