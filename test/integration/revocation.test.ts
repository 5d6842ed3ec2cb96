/**
 * Revocation of live flows, in both data planes: a guest is mid-transfer
 * over NFS and SMB when its domain's access rule is removed (file edit +
 * SIGHUP). Its transfers are cut at once, it cannot reconnect, and another
 * domain's transfer running at the same time completes byte-exact.
 * The tunnels are shaped (tc tbf) so that transfers last long enough to be
 * interrupted.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { labYaml } from '../helpers/configs';
import { NS, background, transferFixture, probe, sha256File, shape, sleep, SMB_ACME } from '../helpers/lab';

const ACME = '198.18.0.100';
const BETA = '198.18.0.101';
const acmeYaml = labYaml('kernel').domains['acme.yaml'] ?? '';
/** Both of acme's rules that match guest 1 now point elsewhere. */
const acmeRevoked = acmeYaml.replace('accessTo: 198.19.0.0/24', 'accessTo: 198.19.0.64/26').replace('accessTo: 198.19.0.5,', 'accessTo: 198.19.0.99,');
const CUT_MS = 1000;

for (const plane of ['kernel', 'proxy'] as const) {
  t.test(`${plane} plane: access removed mid-transfer`, async (t) => {
    const tag = `rev-${plane}-${process.pid}`;
    const { work, d, files } = transferFixture(t, tag, { plane }, [{ share: 'acme', mib: 256 }, { share: 'beta', mib: 64 }], ['sgwt-g1', 'sgwt-g2']);
    const betaSum = files[1]?.sum;
    await d.start();
    // 25 MB/s per guest: acme's 256 MiB would take ~10 s, beta's 64 MiB ~3 s.
    await shape('sgwt-g1', '200mbit');
    await shape('sgwt-g2', '200mbit');

    const nfs = background(NS.g1, 'nfs-cp', [`nfs://${ACME}/export/acme/${tag}.bin?version=4`, path.join(work, 'acme-nfs.out')]);
    const smb = background(NS.g1, 'smbclient', [`//${ACME}/acme`, ...SMB_ACME, '-c', `get ${tag}.bin ${path.join(work, 'acme-smb.out')}`]);
    const other = background(NS.g2, 'nfs-cp', [`nfs://${BETA}/export/beta/${tag}.bin?version=4`, path.join(work, 'beta.out')]);
    // Wait until both of acme's transfers have moved data (smbclient needs a
    // moment for its session setup).
    const size = (f: string): number => fs.statSync(path.join(work, f), { throwIfNoEntry: false })?.size ?? 0;
    for (let i = 0; i < 100 && (size('acme-nfs.out') === 0 || size('acme-smb.out') === 0); i++) {
      await sleep(100);
    }
    await sleep(300);
    t.ok(nfs.running() && smb.running() && other.running(), 'all three transfers are under way');
    t.ok(size('acme-nfs.out') > 0 && size('acme-smb.out') > 0, `acme's transfers have moved data (NFS ${size('acme-nfs.out')}, SMB ${size('acme-smb.out')} bytes)`);

    d.writeDomain('acme.yaml', acmeRevoked);
    const revokedAt = Date.now();
    const rel = await d.sighup();
    t.equal(rel.ok, true, 'reload accepted');

    const [n, s] = await Promise.all([nfs.done, smb.done]);
    t.not(n.code, 0, `NFS transfer failed (${n.stderr.trim().split('\n').pop() ?? ''})`);
    t.not(s.code, 0, 'SMB transfer failed');
    const cutMs = Math.max(n.at, s.at) - revokedAt;
    t.comment(`${plane} plane: both transfers cut ${cutMs} ms after the rule was removed (SIGHUP)`);
    t.ok(cutMs < CUT_MS, `cut within ${CUT_MS} ms (${cutMs} ms)`);

    for (const port of [2049, 445]) {
      const r = await probe(NS.g1, ACME, port);
      t.equal(r.result, 'refused', `guest 1 cannot reconnect to ${port}`);
    }

    const o = await other.done;
    t.equal(o.code, 0, `the other domain's transfer completed (${o.stderr.trim()})`);
    t.equal(sha256File(path.join(work, 'beta.out')), betaSum, 'byte-exact');
    t.ok(o.at > revokedAt, 'and it was still running when acme was revoked');

    // Kernel plane: the conntrack entries go a moment after the rules (the
    // rules reset the guest; the deletion resets the backend's side).
    let cut = 0;
    for (let i = 0; i < 50 && cut < 2; i++) {
      const st = await d.status();
      cut = (st.counters[`sharegw_flows_cut_total{plane="${plane}"}`] as number | undefined) ?? 0;
      if (cut < 2) {
        await sleep(100);
      }
    }
    t.ok(cut >= 2, `flows cut counted (${cut})`);
    t.match(d.log(), /access revoked; established flows cut/);
  });
}
