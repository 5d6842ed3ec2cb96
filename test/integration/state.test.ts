/**
 * Last-known-good state on disk and systemd notifications, with the real
 * daemon in the lab: state restored after a restart (and grants removed
 * while the daemon was down are cut at the first sync), a corrupt state
 * file, a missing state dir, a full disk on state write; READY / RELOADING /
 * STOPPING reach a NOTIFY_SOCKET.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { labYaml } from '../helpers/configs';
import { LabDaemon, NS, background, transferFixture, notifyReceiver, probe, rmTemp, run, shape, sleep, tempDir, until, SMB_ACME } from '../helpers/lab';
import { loadNative } from '../../src/native';

const ACME = '198.18.0.100';
const acmeYaml = labYaml('kernel').domains['acme.yaml'] ?? '';

t.test('restart restores the state; a grant removed while the daemon was down is cut at the first sync', async (t) => {
  const tag = `state-${process.pid}`;
  const { work, d } = transferFixture(t, tag, { plane: 'kernel', keepRules: true }, [{ share: 'acme', mib: 256 }]);
  await d.start();
  const stateFile = path.join(d.dir, 'state', 'state.json');
  t.ok(fs.existsSync(stateFile), 'state written after the first sync');
  t.equal((fs.statSync(path.dirname(stateFile)).mode & 0o777).toString(8), '700', 'state dir is private');
  const saved = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as { node: string; generation: number; desired: { guests: unknown[] } };
  t.equal(saved.node, 'hv-test');
  t.equal(saved.desired.guests.length, 2);

  await shape('sgwt-g1', '200mbit');
  const smb = background(NS.g1, 'smbclient', [`//${ACME}/acme`, ...SMB_ACME, '-c', `get ${tag}.bin ${path.join(work, 'smb.out')}`]);
  await sleep(1000);
  process.kill(d.pid ?? 0, 'SIGKILL');
  await d.stop();
  // While the daemon is down the operator removes acme's SMB rule.
  d.writeDomain('acme.yaml', acmeYaml.replace('accessTo: 198.19.0.5,', 'accessTo: 198.19.0.99,'));
  await sleep(500);
  t.ok(smb.running(), 'transfer survives the crash (kept rules)');
  const restartAt = Date.now();
  await d.start();
  const s = await smb.done;
  t.not(s.code, 0, `transfer cut ${s.at - restartAt} ms after the restart began`);
  t.match(d.log(), /last-known-good state restored/);
  t.match(d.log(), /access revoked; established flows cut/);
  const st = await d.status();
  t.equal(st.state.restored.generation, saved.generation, 'restored the saved generation');
  t.equal(st.state.restored.sameConfig, false, 'noticed the config changed while down');
  t.equal((await probe(NS.g1, ACME, 445)).result, 'refused', 'and new connections are refused');
});

t.test('a corrupt state file: clear error, set aside, rebuilt from config', async (t) => {
  const d = new LabDaemon({ plane: 'kernel' });
  t.teardown(() => d.dispose());
  const dir = path.join(d.dir, 'state');
  fs.mkdirSync(dir, { mode: 0o700 });
  fs.writeFileSync(path.join(dir, 'state.json'), '{"version":1,"node":"hv-test","generation":3,"desired":{"guests":[{"key":');
  await d.start();
  t.match(d.log(), /"code":"SGW_ERR_STATE_CORRUPT".*state file unusable; rebuilding from configuration/);
  t.ok(fs.readdirSync(dir).some((f) => f.startsWith('state.json.corrupt-')), 'the bad file is kept aside for inspection');
  const st = await d.status();
  t.equal(st.lastSync.ok, true, 'running');
  t.equal(st.state.lastSave.ok, true, 'a good state written');
  t.equal((await probe(NS.g1, ACME, 2049)).result, 'connected');
  t.equal(st.counters['sharegw_state_load_errors_total{code="SGW_ERR_STATE_CORRUPT"}'], 1);
});

t.test('a full disk on state write: error reported and counted, the daemon runs on and recovers', async (t) => {
  const d = new LabDaemon({ plane: 'kernel' });
  const dir = path.join(d.dir, 'state');
  fs.mkdirSync(dir, { mode: 0o700 });
  const m = await run('mount', ['-t', 'tmpfs', '-o', 'size=16k,mode=0700', 'tmpfs', dir]);
  t.equal(m.code, 0, `tmpfs mounted ${m.stderr}`);
  t.teardown(async () => {
    await d.dispose().catch(() => undefined);
    await run('umount', [dir]);
  });
  // Fill it.
  const filler = path.join(dir, 'filler');
  try {
    fs.writeFileSync(filler, Buffer.alloc(64 * 1024));
  } catch {
    // ENOSPC: full, as wanted
  }
  await d.start();
  let st = await d.status();
  t.equal(st.lastSync.ok, true, 'rules applied regardless');
  t.equal(st.state.lastSave.ok, false, 'state write failed');
  t.equal(st.state.lastSave.error.code, 'SGW_ERR_STATE_IO');
  t.match(st.state.lastSave.error.message, /ENOSPC/);
  t.equal((await probe(NS.g1, ACME, 2049)).result, 'connected', 'guests served');
  t.match(d.log(), /cannot write state file; running on/);
  fs.rmSync(filler);
  await until('state written after space freed', async () => (await d.status()).state.lastSave?.ok === true);
  st = await d.status();
  t.ok(fs.existsSync(path.join(dir, 'state.json')), 'state.json written once there is room');
  t.ok((st.counters['sharegw_state_save_errors_total{code="SGW_ERR_STATE_IO"}'] as number) >= 1, 'failures counted');
});

t.test('systemd notifications: READY after the first sync, RELOADING on SIGHUP, STOPPING on SIGTERM', async (t) => {
  const dir = tempDir('notify');
  const rx = await notifyReceiver(dir);
  const lines = rx.lines;
  const d = new LabDaemon({ plane: 'kernel', env: { NOTIFY_SOCKET: rx.socket } });
  t.teardown(async () => {
    rx.stop();
    await d.dispose();
    rmTemp(dir);
  });
  await d.start();
  await until('READY=1', async () => lines.some((l) => l.includes('READY=1')));
  t.match(lines.find((l) => l.includes('READY=1')) ?? '', /STATUS=generation 1, 2 guests, last sync ok/);
  // The daemon inherits this process's environment: the native datagram
  // when the addon is loaded, systemd-notify when not (SGW_NATIVE=off).
  t.equal((await d.status()).notify, loadNative().status.loaded ? 'sd_notify' : 'systemd-notify');
  await d.sighup();
  await until('RELOADING=1', async () => lines.some((l) => l.includes('RELOADING=1')));
  t.match(lines.find((l) => l.includes('RELOADING=1')) ?? '', /MONOTONIC_USEC=\d+/);
  await until('READY after reload', async () => lines.filter((l) => l.includes('READY=1')).length >= 2);
  t.equal(await d.stop(), 0);
  await until('STOPPING=1', async () => lines.some((l) => l.includes('STOPPING=1')));
  t.pass('STOPPING=1 sent');
});

t.test('a guest removed while the daemon was down has its tunnel released at the restart', async (t) => {
  const d = new LabDaemon({ plane: 'kernel', keepRules: true });
  t.teardown(() => d.dispose());
  await d.start();
  t.equal((await probe(NS.g2, '198.18.0.101', 2049)).result, 'connected', 'beta guest served');
  process.kill(d.pid ?? 0, 'SIGKILL');
  await d.stop();
  d.writeDomain('beta.yaml', null);
  await d.start();
  const addr = await run('ip', ['-4', '-br', 'addr', 'show', 'dev', 'sgwt-g2'], { ns: NS.gw });
  t.notMatch(addr.stdout, /169\.254\.2\.1/, 'gateway address taken off the removed guest\'s tunnel');
  t.not((await probe(NS.g2, '198.18.0.101', 2049, { timeoutMs: 1500 })).result, 'connected', 'the removed guest reaches nothing');
  t.equal((await probe(NS.g1, ACME, 2049)).result, 'connected', 'the other guest is untouched');
});
