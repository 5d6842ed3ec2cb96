/**
 * Proxy plane shutdown: SIGTERM stops accepting at once, lets proxied flows
 * finish up to proxy.drainTimeout, then cuts what is left and exits 0.
 */
import * as path from 'node:path';
import t from 'tap';
import { NS, background, transferFixture, probe, sha256File, shape, sleep } from '../helpers/lab';

const ACME = '198.18.0.100';

for (const [what, mib, drain] of [
  ['a flow that finishes within the drain timeout completes byte-exact', 40, '10s'],
  ['a flow still running at the drain deadline is cut, and the daemon exits', 256, '2s'],
] as const) {
  t.test(`proxy plane SIGTERM: ${what}`, async (t) => {
    const tag = `drain-${mib}-${process.pid}`;
    const { work, d, files } = transferFixture(t, tag, { plane: 'proxy', extra: `proxy: { drainTimeout: ${drain} }\n` }, [{ share: 'acme', mib }]);
    const sum = files[0]?.sum;
    await d.start();
    await shape('sgwt-g1', '200mbit'); // 25 MB/s: 40 MiB ~1.7 s, 256 MiB ~11 s
    const out = path.join(work, 'out.bin');
    const xfer = background(NS.g1, 'nfs-cp', [`nfs://${ACME}/export/acme/${tag}.bin?version=4`, out]);
    await sleep(500);
    t.ok(xfer.running(), 'transfer under way');
    const stopAt = Date.now();
    const stopping = d.stop(30_000);
    await sleep(200);
    const r = await probe(NS.g1, ACME, 2049);
    t.equal(r.result, 'refused', 'new connections refused while draining');
    const code = await stopping;
    const stopMs = Date.now() - stopAt;
    t.equal(code, 0, 'exit 0');
    const x = await xfer.done;
    if (mib === 40) {
      t.equal(x.code, 0, 'transfer completed');
      t.equal(sha256File(out), sum, 'byte-exact');
      t.ok(stopMs < 9000, `daemon exited once the flow was done (${stopMs} ms), not at the deadline`);
    } else {
      t.not(x.code, 0, 'transfer cut');
      t.ok(stopMs >= 1800 && stopMs < 6000, `daemon exited at the 2 s deadline (${stopMs} ms)`);
    }
  });
}
