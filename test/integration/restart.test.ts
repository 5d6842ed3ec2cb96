/**
 * Restart survival. Kernel plane: `kill -9` of the daemon in the middle of a
 * 1 GiB NFS read and a 1 GiB SMB read; the kept rules carry both while the
 * daemon is gone and after it restarts (which replaces the rules atomically),
 * and both complete byte-exact. Proxy plane: a restart drops proxied flows
 * (documented), and the guest's reconnect from the same source port works.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { LabDaemon, NS, background, transferFixture, holdConnection, sha256File, shape, sleep, SMB_ACME } from '../helpers/lab';

const ACME = '198.18.0.100';

t.test('kernel plane: kill -9 mid-transfer, restart: NFS and SMB 1 GiB reads complete byte-exact', async (t) => {
  const tag = `restart-${process.pid}`;
  const { work, d, files } = transferFixture(t, tag, { plane: 'kernel', keepRules: true }, [{ share: 'acme', mib: 1024 }]);
  const sum = files[0]?.sum;
  await d.start();
  // ~60 MB/s each for two concurrent transfers: ~17 s, long enough to kill
  // and restart the daemon in the middle.
  await shape('sgwt-g1', '1gbit');
  const nfs = background(NS.g1, 'nfs-cp', [`nfs://${ACME}/export/acme/${tag}.bin?version=4`, path.join(work, 'nfs.out')]);
  const smb = background(NS.g1, 'smbclient', [`//${ACME}/acme`, ...SMB_ACME, '-c', `get ${tag}.bin ${path.join(work, 'smb.out')}`]);
  await sleep(1500);
  const pid = d.pid ?? 0;
  t.ok(pid > 0);
  process.kill(pid, 'SIGKILL');
  t.equal(await d.stop(), null, 'daemon killed (no exit code: signal)');
  const size = (f: string): number => fs.statSync(path.join(work, f), { throwIfNoEntry: false })?.size ?? 0;
  const before = [size('nfs.out'), size('smb.out')];
  await sleep(1500);
  t.ok(nfs.running() && smb.running(), 'transfers still running with the daemon dead');
  const during = [size('nfs.out'), size('smb.out')];
  t.ok(during[0]! > before[0]! && during[1]! > before[1]!, `and still moving data (${before.join(',')} -> ${during.join(',')})`);

  await d.start();
  t.match(d.log(), /sharegwd started[\s\S]*sharegwd started/, 'restarted');
  const [n, s] = await Promise.all([nfs.done, smb.done]);
  t.equal(n.code, 0, `NFS read completed ${n.stderr}`);
  t.equal(s.code, 0, `SMB read completed ${s.stderr}`);
  t.equal(sha256File(path.join(work, 'nfs.out')), sum, 'NFS 1 GiB byte-exact');
  t.equal(sha256File(path.join(work, 'smb.out')), sum, 'SMB 1 GiB byte-exact');
});

t.test('proxy plane: a restart drops proxied flows; the reconnect from the same source port works', async (t) => {
  const d = new LabDaemon({ plane: 'proxy' });
  t.teardown(() => d.dispose());
  await d.start();
  const first = await holdConnection(NS.g1, ACME, 2049, 1000);
  t.teardown(first.release);
  t.equal(first.result.result, 'connected', 'connected from port 1000');
  process.kill(d.pid ?? 0, 'SIGKILL');
  await d.stop();
  await first.closed;
  t.pass('the proxied connection ended with the daemon');
  await d.start();
  const again = await holdConnection(NS.g1, ACME, 2049, 1000);
  t.teardown(again.release);
  t.equal(again.result.result, 'connected', 'reconnect from the same source port 1000 is proxied again');
});
