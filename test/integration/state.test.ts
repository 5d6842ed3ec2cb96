/**
 * Last-known-good state on disk and systemd notifications, with the real
 * daemon in the lab: state restored after a restart (and grants removed
 * while the daemon was down are cut at the first sync), a corrupt state
 * file, a missing state dir, a full disk on state write; READY / RELOADING /
 * STOPPING reach a NOTIFY_SOCKET.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { labYaml } from '../helpers/configs';
import { DATA, LabDaemon, NS, background, bigFile, probe, rmTemp, run, shape, sleep, tempDir } from '../helpers/lab';

const ACME = '198.18.0.100';
const SMB = ['-U', 'usera%labpass123', '--option=client min protocol=SMB3', '-m', 'SMB3'];
const acmeYaml = labYaml('kernel').domains['acme.yaml'] ?? '';

async function until(what: string, cond: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) {
      return;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

t.test('restart restores the state; a grant removed while the daemon was down is cut at the first sync', async (t) => {
  const tag = `state-${process.pid}`;
  const work = tempDir(tag);
  const file = path.join(DATA, 'acme', `${tag}.bin`);
  const d = new LabDaemon({ plane: 'kernel', keepRules: true });
  t.teardown(async () => {
    await shape('sgwt-g1', null);
    await d.dispose();
    fs.rmSync(file, { force: true });
    rmTemp(work);
  });
  bigFile(file, 256);
  await d.start();
  const stateFile = path.join(d.dir, 'state', 'state.json');
  t.ok(fs.existsSync(stateFile), 'state written after the first sync');
  t.equal((fs.statSync(path.dirname(stateFile)).mode & 0o777).toString(8), '700', 'state dir is private');
  const saved = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as { node: string; generation: number; desired: { guests: unknown[] } };
  t.equal(saved.node, 'hv-test');
  t.equal(saved.desired.guests.length, 2);

  await shape('sgwt-g1', '200mbit');
  const smb = background(NS.g1, 'smbclient', [`//${ACME}/acme`, ...SMB, '-c', `get ${tag}.bin ${path.join(work, 'smb.out')}`]);
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

const RECEIVER = `
import socket, sys, os
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    data, anc, _f, _a = s.recvmsg(65536, socket.CMSG_SPACE(64))
    for level, kind, cdata in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            for i in range(0, len(cdata) - len(cdata) % 4, 4):
                os.close(int.from_bytes(cdata[i:i+4], "little"))
    print(data.decode().replace("\\n", " "), flush=True)
`;

t.test('systemd notifications: READY after the first sync, RELOADING on SIGHUP, STOPPING on SIGTERM', async (t) => {
  const dir = tempDir('notify');
  const sock = path.join(dir, 'notify');
  const rx = spawn('python3', ['-u', '-c', RECEIVER, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  rx.stdout.setEncoding('utf8').on('data', (s: string) => lines.push(...s.split('\n').filter((l) => l !== '')));
  const d = new LabDaemon({ plane: 'kernel', env: { NOTIFY_SOCKET: sock } });
  t.teardown(async () => {
    rx.kill();
    await d.dispose();
    rmTemp(dir);
  });
  await until('receiver', async () => lines.includes('listening'));
  await d.start();
  await until('READY=1', async () => lines.some((l) => l.includes('READY=1')));
  t.match(lines.find((l) => l.includes('READY=1')) ?? '', /STATUS=generation 1, 2 guests, last sync ok/);
  t.equal((await d.status()).notify, 'systemd-notify');
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
