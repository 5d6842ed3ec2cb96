/**
 * smbtorture through each plane gives the same per-case results as direct
 * access to samba (a bounded subset; the whole smb2 suite is
 * `npm run conformance`). Fails when smbtorture (samba-testsuite) is missing.
 */
import t from 'tap';
import { differences, runPlane } from '../conformance/smbtorture';
import type { Outcomes, Plane } from '../conformance/smbtorture';
import { run } from '../helpers/lab';

const SUBSET = ['smb2.connect', 'smb2.read', 'smb2.compound', 'smb2.lock', 'smb2.create'];

t.test('smbtorture subset: kernel and proxy planes match direct, case by case', async (t) => {
  const have = await run('smbtorture', ['--version']);
  t.equal(have.code, 0, 'smbtorture is installed (Debian samba-testsuite, lab.sh install)');
  const results = {} as Record<Plane, Outcomes>;
  for (const p of ['direct', 'kernel', 'proxy'] as const) {
    results[p] = await runPlane(p, SUBSET);
  }
  const n = Object.values(results.direct).filter((x) => x === 'success').length;
  t.ok(n >= 40, `direct: ${n} cases succeed (the subset is really run)`);
  for (const p of ['kernel', 'proxy'] as const) {
    t.same(differences(results.direct, results[p]), [], `${p} plane: same results as direct`);
  }
});
