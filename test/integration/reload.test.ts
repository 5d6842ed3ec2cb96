/**
 * Reload without collateral damage, in both planes: while a guest of domain
 * beta is mid-transfer, a reload adds a domain and edits another (acme).
 * beta's transfer never pauses (its output keeps growing throughout) and
 * completes byte-exact; the edit to acme takes effect.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { labYaml } from '../helpers/configs';
import { NS, background, transferFixture, probe, sha256File, shape, sleep } from '../helpers/lab';

const BETA = '198.18.0.101';
const acmeYaml = labYaml('kernel').domains['acme.yaml'] ?? '';
const gammaYaml = `name: gamma
project: 3c3c3c3c3c3c43c3a3c3c3c3c3c3c3c3
sourceIp: 198.18.0.13
guests:
  - instance: g9
    tunnel: { interface: sgwt-g9, guestIp: 169.254.9.2, gatewayIp: 169.254.9.1 }
    addresses: [198.19.9.5]
shares:
  - id: gamma-nfs
    proto: NFS
    exportLocations: ["198.18.0.103:/export/gamma"]
    accessRules: [{ accessType: ip, accessTo: 198.19.9.0/24, accessLevel: rw }]
`;
const MAX_STALL_MS = 1000;

for (const plane of ['kernel', 'proxy'] as const) {
  t.test(`${plane} plane: adding a domain and editing another never pauses a third domain's transfer`, async (t) => {
    const tag = `reload-${plane}-${process.pid}`;
    const { work, d, files } = transferFixture(t, tag, { plane }, [{ share: 'beta', mib: 96 }], ['sgwt-g2']);
    const sum = files[0]?.sum;
    await d.start();
    t.equal((await probe(NS.g1, '198.18.0.100', 445)).result, 'connected', 'acme SMB granted before');
    await shape('sgwt-g2', '200mbit'); // ~4 s for 96 MiB
    const out = path.join(work, 'beta.out');
    const xfer = background(NS.g2, 'nfs-cp', [`nfs://${BETA}/export/beta/${tag}.bin?version=4`, out]);

    // Sample the transfer's progress every 50 ms until it ends.
    const samples: { at: number; size: number }[] = [];
    const sampler = (async (): Promise<void> => {
      while (xfer.running()) {
        samples.push({ at: Date.now(), size: fs.statSync(out, { throwIfNoEntry: false })?.size ?? 0 });
        await sleep(50);
      }
    })();

    await sleep(1000);
    d.writeDomain('gamma.yaml', gammaYaml);
    d.writeDomain('acme.yaml', acmeYaml.replace('accessTo: 198.19.0.5,', 'accessTo: 198.19.0.99,'));
    const reloadAt = Date.now();
    const rel = await d.sighup();
    t.equal(rel.ok, true, 'reload accepted');
    const generation = (await d.status()).generation as number;
    t.ok(generation >= 2, `new generation ${generation}`);

    const r = await xfer.done;
    await sampler;
    t.equal(r.code, 0, `beta's transfer completed ${r.stderr}`);
    t.equal(sha256File(out), sum, 'byte-exact');
    t.ok(r.at > reloadAt + 500, 'it was running across the reload');

    // Longest time the output did not grow while the transfer ran.
    let stall = 0;
    let lastGrowth = samples.find((s) => s.size > 0)?.at ?? reloadAt;
    for (let i = 1; i < samples.length; i++) {
      const s = samples[i]!;
      if (s.size > samples[i - 1]!.size) {
        stall = Math.max(stall, s.at - lastGrowth);
        lastGrowth = s.at;
      }
    }
    t.comment(`${plane}: longest pause in beta's transfer: ${stall} ms over ${samples.length} samples`);
    t.ok(stall < MAX_STALL_MS, `never paused (longest gap ${stall} ms)`);

    t.equal((await probe(NS.g1, '198.18.0.100', 445)).result, 'refused', 'the edit to acme took effect');
    t.equal((await probe(NS.g1, '198.18.0.100', 2049)).result, 'connected', 'acme NFS unchanged');
    const st = await d.status();
    t.same((st.domains as { name: string }[]).map((x) => x.name), ['acme', 'beta', 'gamma'], 'gamma added');
  });
}
