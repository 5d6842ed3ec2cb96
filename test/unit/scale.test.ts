/**
 * A large host (1,000 domains, 10,000 guests: 200,000 restore lines) must
 * render, fingerprint and clean up without blowing the call stack. The first
 * bench run found `push(...lines)` overflowing at this size.
 */
import t from 'tap';
import { renderCleanup, renderRules } from '../../src/dataplane/kernel/render';
import { restoreTimeoutMs, RUN_TIMEOUT_MS } from '../../src/host/iptables';
import { ownedFingerprint, parseSave } from '../../src/dataplane/kernel/save-parse';
import { compileDesired } from '../../src/policy/policy';
import { largeHostConfig } from '../../bench/src/large-host';

t.test('1,000 domains and 10,000 guests render, fingerprint and clean up', async (t) => {
  const v = largeHostConfig(1000, 10_000);
  t.same(v.problems, [], 'the generated host is valid');
  if (v.config === null) {
    return;
  }
  const desired = compileDesired(v.config);
  t.equal(desired.guests.length, 10_000);
  const text = renderRules({ desired, existing: parseSave('') });
  const lines = text.split('\n');
  t.ok(lines.length > 200_000, `${lines.length} lines`);
  t.equal(lines.filter((l) => l === 'COMMIT').length, 3, 'one batch per table');
  // What iptables-save would print back: the same rules, as appends.
  const saved = parseSave(text.replace(/^-I (\S+) 1 /gm, '-A $1 '));
  const fp = ownedFingerprint(saved, 'SGW-');
  t.ok(fp.split('\n').length > 200_000, 'fingerprint covers every owned line');
  const cleanup = renderCleanup(saved);
  t.ok(cleanup !== null && cleanup.split('\n').filter((l) => l.startsWith('-X ')).length >= 20_000, 'cleanup deletes every owned chain');
  t.equal(restoreTimeoutMs(text), RUN_TIMEOUT_MS + Math.ceil((lines.length - 1) * 0.5), 'the restore bound grows with the input');
});

t.test('restoreTimeoutMs() is the base bound for a small input', async (t) => {
  t.equal(restoreTimeoutMs(''), RUN_TIMEOUT_MS);
  t.equal(restoreTimeoutMs('*filter\nCOMMIT\n'), RUN_TIMEOUT_MS + 1);
});
