/**
 * The whole path: shares and access rules created in the real Manila of
 * test/lab/manila.sh reach a guest through the real sharegwd in the
 * network lab (nfs-ganesha and samba on 198.18.0.100), and go away again.
 *
 * Needs both labs. The network lab is shared with other engineers: run
 * this file only under the lab lock, after `bash test/lab/lab.sh up`:
 *   flock /tmp/sgwlab.lock npx tap --timeout=600 dist/test/integration/manila-gateway.test.js
 * The daemon runs in sgwlab-gw, whose 127.0.0.1 is not the host's: the
 * Manila API and RabbitMQ are bridged in through unix sockets (socat).
 * Timings are printed as `# figure:` lines.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { NS, ROOT, background, probe, run, shape, sleep, SMB_ACME, tempDir, rmTemp, transferFixture } from '../helpers/lab';
import { freshProject, ManilaAdmin, manilaUp, waitFor } from '../helpers/manila-lab';

const ACME = '198.18.0.100';
const INTERVAL = '2s';

if (process.getuid?.() !== 0) {
  t.plan(0, 'skipped: needs root (network namespaces, test/lab/manila.sh)');
} else {
  main();
}

/** TCP port `inner` on sgwlab-gw's loopback forwards to `outer` on the host's loopback. */
function bridge(t: { teardown(fn: () => unknown): void }, dir: string, outer: number, inner: number): { stop: () => void } {
  const sock = path.join(dir, `bridge-${outer}.sock`);
  const procs: ChildProcess[] = [
    spawn('socat', [`UNIX-LISTEN:${sock},fork,mode=600,unlink-early`, `TCP:127.0.0.1:${outer}`], { stdio: 'ignore' }),
  ];
  const stop = (): void => {
    for (const p of procs) {
      p.kill('SIGKILL');
    }
  };
  procs.push(spawn('ip', ['netns', 'exec', NS.gw, 'socat', `TCP-LISTEN:${inner},bind=127.0.0.1,fork,reuseaddr`, `UNIX-CONNECT:${sock}`], { stdio: 'ignore' }));
  t.teardown(stop);
  return { stop };
}

async function smbLs(): Promise<boolean> {
  const r = await run('smbclient', [`//${ACME}/acme`, ...SMB_ACME, '-c', 'ls'], { ns: NS.g1, timeoutMs: 8000 });
  return r.code === 0;
}

function main(): void {
  const env = manilaUp('noauth');
  const project = freshProject();
  const admin = new ManilaAdmin(env['MANILA_ENDPOINT'] ?? '', project, `admin:${project}`);
  const apiPort = 20000 + (process.pid % 10000);
  const amqpPort = apiPort + 1;

  t.test('Manila shares and rules reach the guest through the gateway; deny, delete and Manila down', async (t) => {
    const dir = tempDir('manila-gw');
    t.teardown(() => rmTemp(dir));
    const api = bridge(t, dir, Number(new URL(env['MANILA_ENDPOINT'] ?? '').port), apiPort);
    bridge(t, dir, Number(new URL(env['MANILA_AMQP_URL'] ?? '').port), amqpPort);
    await waitFor('bridged API in sgwlab-gw', async () => (await probe(NS.gw, '127.0.0.1', apiPort, { timeoutMs: 500 })).result === 'connected', 10_000);

    const sn = await admin.createShareNetwork('sgw-gw');
    const ss1 = await admin.createSecurityService('ldap', 'ldap-1', '198.18.0.60', `ldap-pw-${process.pid}`);
    await admin.addSecurityService(sn, ss1);
    const nfs = await admin.createShare('NFS', 'acme', sn);
    const cifs = await admin.createShare('CIFS', 'acme', sn);
    await admin.waitShare(nfs, 'available');
    await admin.waitShare(cifs, 'available');

    const acme = `name: acme
project: ${project}
shareNetwork: ${sn}
sourceIp: 198.18.0.11
guests:
  - instance: g1
    tunnel: { interface: sgwt-g1, guestIp: 169.254.1.2, gatewayIp: 169.254.1.1 }
    addresses: [198.19.0.5]
`;
    const manila = `manila:
  auth: { type: noauth, project: ${env['MANILA_PROJECT_ID'] ?? ''} }
  endpoint: http://127.0.0.1:${apiPort}/v2
  interval: ${INTERVAL}
  minInterval: 200ms
  notifications: amqp://guest:guest@127.0.0.1:${amqpPort}/
proxy: { drainTimeout: 2s }
`;
    const tag = `mgw-${process.pid}`;
    const { work, d } = transferFixture(t, tag, { plane: 'kernel', domains: { 'acme.yaml': acme }, extra: manila }, [{ share: 'acme', mib: 256 }]);
    await d.start();
    let st = await d.status();
    t.equal(st.manila?.domains?.[0]?.status, 'active', 'the daemon synced the share network');
    t.equal(st.manila?.domains?.[0]?.shares, 2);
    await waitFor('notifications connected', async () => (await d.status()).manila?.notifications?.connected === true, 15_000);
    t.not((await probe(NS.g1, ACME, 2049)).result, 'connected', 'no rule yet: no access');

    // allow -> reachable
    const a0 = Date.now();
    const rule = await admin.allow(nfs, '198.19.0.5', 'rw');
    const nfsMs = await waitFor('NFS reachable', async () => (await probe(NS.g1, ACME, 2049, { timeoutMs: 300 })).result === 'connected', 20_000);
    t.comment(`figure: allow_access (NFS) -> guest connects through the gateway ${nfsMs} ms (interval ${INTERVAL})`);
    t.ok(Date.now() - a0 < 2000 + 3000, 'within one interval (+ Manila applying the rule, the kernel apply and the probe)');
    const ls = await run('nfs-ls', [`nfs://${ACME}/export/acme/?version=4`], { ns: NS.g1, timeoutMs: 10_000 });
    t.match(ls.stdout, /hello\.txt/, 'and lists the real export');
    const c0 = Date.now();
    const cifsRule = await admin.allow(cifs, '198.19.0.5', 'rw');
    const smbMs = await waitFor('SMB reachable', smbLs, 20_000);
    t.comment(`figure: allow_access (CIFS) -> smbclient ls through the gateway ${smbMs} ms`);
    t.ok(Date.now() - c0 < 2000 + 3000);

    // deny -> live flow cut, new ones refused
    await shape('sgwt-g1', '200mbit');
    const copy = background(NS.g1, 'nfs-cp', [`nfs://${ACME}/export/acme/${tag}.bin?version=4`, path.join(work, 'nfs.out')]);
    const size = (): number => fs.statSync(path.join(work, 'nfs.out'), { throwIfNoEntry: false })?.size ?? 0;
    await waitFor('transfer moving', () => size() > 0, 10_000);
    t.ok(copy.running(), 'a transfer is under way');
    const d0 = Date.now();
    await admin.deny(nfs, rule);
    const done = await copy.done;
    t.not(done.code, 0, 'the live transfer is cut');
    t.comment(`figure: deny_access -> live NFS transfer cut ${done.at - d0} ms (interval ${INTERVAL})`);
    t.ok(done.at - d0 < 2000 + 3000, 'within one interval (+ Manila, apply, cut)');
    t.equal((await probe(NS.g1, ACME, 2049)).result, 'refused', 'new connections refused');

    // update_security_service on the in-use network: network_change freezes
    // the domain (live flows kept, nothing new applied), then it applies.
    const smbFlow = background(NS.g1, 'smbclient', [`//${ACME}/acme`, ...SMB_ACME, '-c', `get ${tag}.bin ${path.join(work, 'smb-freeze.out')}`]);
    await waitFor('SMB transfer moving', () => (fs.statSync(path.join(work, 'smb-freeze.out'), { throwIfNoEntry: false })?.size ?? 0) > 0, 15_000);
    const ss2 = await admin.createSecurityService('ldap', 'ldap-2', '198.18.0.61', `ldap-pw-${process.pid}`);
    await admin.updateSecurityService(sn, ss1, ss2);
    const u0 = Date.now();
    await waitFor('domain frozen', async () => (await d.status()).manila?.domains?.[0]?.frozen === true, 10_000);
    const human = await run(process.execPath, [path.join(ROOT, 'dist/src/cli/sharegw.js'), '--socket', d.socket, 'status'], { timeoutMs: 10_000 });
    t.match(human.stdout, /manila: http:\/\/127\.0\.0\.1:\d+\/v2 \(2\.73\)/, '`sharegw status` shows the Manila sync');
    t.match(human.stdout, new RegExp(`acme: share network ${sn} network_change, 2 synced shares  FROZEN`), 'and the frozen domain');
    t.notMatch(human.stdout, /guest:guest|ldap-pw-/);
    // A rule allowed while the network changes is not applied before it is active again.
    const during = await admin.call('POST', `shares/${nfs}/action`, { allow_access: { access_type: 'ip', access_to: '198.19.0.5', access_level: 'rw' } });
    t.comment(`allow_access during network_change: HTTP ${during.status}`);
    const frozenProbe = (await admin.shareNetworkStatus(sn)) === 'network_change' ? await probe(NS.g1, ACME, 2049, { timeoutMs: 500 }) : null;
    if (frozenProbe !== null && (await d.status()).manila?.domains?.[0]?.frozen === true) {
      t.not(frozenProbe.result, 'connected', 'nothing new applied while frozen');
    }
    await waitFor('domain active again', async () => (await d.status()).manila?.domains?.[0]?.frozen === false, 30_000);
    t.comment(`figure: update_security_service -> frozen and back to active in ${Date.now() - u0} ms`);
    t.ok(smbFlow.running(), 'the live SMB transfer was kept through network_change');
    st = await d.status();
    t.same(st.manila?.domains?.[0]?.securityServices?.map((x: { server: string }) => x.server), ['198.18.0.61'], 'the replaced security service shows in status');
    // Zed refuses allow_access while the share server is in network_change
    // (HTTP 400); then the change is made once the network is active again.
    if (during.status !== 200) {
      await admin.allow(nfs, '198.19.0.5', 'rw');
    }
    const applied = await waitFor('the domain applies changes again', async () => (await probe(NS.g1, ACME, 2049, { timeoutMs: 300 })).result === 'connected', 20_000);
    t.comment(`figure: after network_change, a new NFS rule reachable in ${applied} ms`);
    smbFlow.kill();
    await smbFlow.done;
    await shape('sgwt-g1', null);

    // Manila unreachable, daemon restarted meanwhile: access kept.
    await d.stop();
    api.stop();
    await sleep(200);
    await d.start();
    st = await d.status();
    t.equal(st.manila?.lastError?.code, 'SGW_ERR_MANILA_UNREACHABLE', 'Manila is unreachable');
    t.ok(st.manila?.restored !== null, 'restored from manila.json');
    t.ok(await smbLs(), 'the guest keeps its SMB access');
    // Stay down a while (SGW_MANILA_OUTAGE_S, default 30 s): access holds and
    // the retries stay bounded (no request storm).
    const outageS = Number(process.env['SGW_MANILA_OUTAGE_S'] ?? '30');
    const r0 = (await d.status()).manila?.requests ?? 0;
    await sleep(outageS * 1000);
    const attempts = ((await d.status()).manila?.requests ?? 0) - r0;
    t.comment(`figure: ${attempts} API request attempts during a ${outageS} s outage (interval ${INTERVAL}, 3 attempts per request)`);
    t.ok(attempts <= outageS * 3, 'bounded by the backoff');
    t.ok(await smbLs(), `access still there after ${outageS} s without Manila`);
    t.notMatch(JSON.stringify(st), /guest:guest/, 'no credential in status');
    const restartedApi = bridge(t, dir, Number(new URL(env['MANILA_ENDPOINT'] ?? '').port), apiPort);
    void restartedApi;
    await waitFor('Manila back', async () => (await d.status()).manila?.lastError === null, 20_000);

    // delete with notifications: cut within about 2 s
    await shape('sgwt-g1', '200mbit');
    const smb = background(NS.g1, 'smbclient', [`//${ACME}/acme`, ...SMB_ACME, '-c', `get ${tag}.bin ${path.join(work, 'smb.out')}`]);
    await waitFor('SMB transfer moving', () => (fs.statSync(path.join(work, 'smb.out'), { throwIfNoEntry: false })?.size ?? 0) > 0, 15_000);
    const x0 = Date.now();
    // The rule stays: only the deletion (status `deleting`, announced by
    // share.delete.start) takes the share away.
    await admin.deleteShare(cifs);
    void cifsRule;
    const s = await smb.done;
    t.not(s.code, 0, 'the SMB transfer is cut');
    t.comment(`figure: share delete (notifications on) -> live SMB transfer cut ${s.at - x0} ms`);
    await shape('sgwt-g1', null);
    t.match(d.log(), /access revoked; established flows cut/);
    t.notMatch(d.log(), /guest:guest|ldap-pw-/, 'no credential in the daemon log');
  });
}
