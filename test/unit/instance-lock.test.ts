/**
 * The single-instance lock with real abstract unix sockets (names private
 * to this test run, so nothing else's lock is touched) and real processes;
 * only /proc is faked where the holder lookup's parsing is the subject.
 */
import { spawn } from 'node:child_process';
import t from 'tap';
import { acquireInstanceLock, findHolder, listeningInodes, LOCK_NAME } from '../../src/daemon/instance-lock';
import type { ProcReader } from '../../src/daemon/instance-lock';
import { DaemonLockError } from '../../src/errors';

const testName = (tag: string): string => `sharegw/test-${process.pid}-${tag}-${Math.random().toString(36).slice(2)}`;

t.test('acquireInstanceLock() refuses a second holder with the code and the holder pid', async (t) => {
  const name = testName('twice');
  const first = await acquireInstanceLock(name);
  t.teardown(() => first.release());
  const err = await acquireInstanceLock(name).then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof DaemonLockError);
  const e = err as DaemonLockError;
  t.equal(e.code, 'SGW_ERR_DAEMON_ALREADY_RUNNING');
  t.equal(e.holder?.pid, process.pid, 'the holder is found through /proc');
  t.match(e.message, new RegExp(`another sharegwd already runs in this network namespace \\(pid ${process.pid}: `));
});

t.test('acquireInstanceLock() succeeds again after release()', async (t) => {
  const name = testName('release');
  const a = await acquireInstanceLock(name);
  await a.release();
  await a.release();
  const b = await acquireInstanceLock(name);
  await b.release();
  t.pass('re-acquired');
});

t.test('acquireInstanceLock() is free again after its holder is killed with SIGKILL', async (t) => {
  const name = testName('kill9');
  const script = `require(${JSON.stringify(require.resolve('../../src/daemon/instance-lock'))}).acquireInstanceLock(${JSON.stringify(name)}).then(() => { process.stdout.write('held\\n'); setInterval(() => undefined, 1000); })`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
    }
  });
  await new Promise<void>((r) => child.stdout.once('data', () => r()));
  const refused = await acquireInstanceLock(name).then(
    () => null,
    (e: unknown) => e as DaemonLockError,
  );
  t.equal(refused?.code, 'SGW_ERR_DAEMON_ALREADY_RUNNING');
  t.equal(refused?.holder?.pid, child.pid, 'the child is named as the holder');
  t.match(refused?.holder?.command ?? '', /node/);
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGKILL');
  await gone;
  const lock = await acquireInstanceLock(name);
  await lock.release();
  t.pass('taken after kill -9: the kernel released it, no stale file');
});

t.test('acquireInstanceLock() keeps the process alive no longer than its work', async (t) => {
  const name = testName('unref');
  const script = `require(${JSON.stringify(require.resolve('../../src/daemon/instance-lock'))}).acquireInstanceLock(${JSON.stringify(name)}).then(() => process.stdout.write('held\\n'))`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  t.equal(code, 0, 'the lock alone does not hold the event loop');
});

t.test('listeningInodes() finds the NUL-padded abstract name in listening state only', async (t) => {
  const listing = [
    'Num       RefCount Protocol Flags    Type St Inode Path',
    `0000000011111111: 00000002 00000000 00010000 0001 01 30705 @${LOCK_NAME}@@@@@@@@@@`,
    `0000000022222222: 00000002 00000000 00010000 0001 01 30706 @${LOCK_NAME}-other@@@@`,
    `0000000033333333: 00000003 00000000 00000000 0001 03 30707 @${LOCK_NAME}@@@@`,
    '0000000044444444: 00000003 00000000 00000000 0001 03 27409',
    `0000000055555555: 00000002 00000000 00010000 0001 01 30708 /run/${LOCK_NAME}`,
  ].join('\n');
  t.strictSame(listeningInodes(listing, LOCK_NAME), [30705]);
});

t.test('findHolder() names pid, uid and command; null when /proc does not tell', async (t) => {
  const files: Record<string, string> = {
    '/proc/42/status': 'Name:\tnode\nUid:\t1000\t1000\t1000\t1000\n',
    '/proc/42/cmdline': 'node\0/usr/lib/sharegw/sharegwd.js\0--config\0/etc/x.yaml\0',
  };
  const proc: ProcReader = {
    netUnix: () => `Num RefCount Protocol Flags Type St Inode Path\n00: 00000002 00000000 00010000 0001 01 777 @${LOCK_NAME}@@`,
    pids: () => ['7', '42'],
    fds: (pid) => {
      if (pid === '7') {
        throw new Error('EACCES');
      }
      return ['0', '1', '5'];
    },
    readlink: (p) => (p === '/proc/42/fd/5' ? 'socket:[777]' : '/dev/null'),
    read: (p) => {
      const v = files[p];
      if (v === undefined) {
        throw new Error('ENOENT');
      }
      return v;
    },
  };
  t.strictSame(findHolder(LOCK_NAME, proc), { pid: 42, uid: 1000, command: 'node /usr/lib/sharegw/sharegwd.js --config /etc/x.yaml' });
  t.equal(findHolder(LOCK_NAME, { ...proc, netUnix: () => 'Num\n' }), null, 'no such socket');
  t.equal(findHolder(LOCK_NAME, { ...proc, readlink: () => 'pipe:[1]' }), null, 'no process holds it');
});

t.test('acquireInstanceLock() reports a holder of another uid as a squatter', async (t) => {
  if (typeof process.geteuid !== 'function') {
    t.fail('needs a POSIX process');
    return;
  }
  const name = testName('squat');
  const first = await acquireInstanceLock(name);
  t.teardown(() => first.release());
  const me = process.geteuid();
  const real = { netUnix: () => '', pids: () => [], fds: () => [], readlink: () => '', read: () => '' };
  const fs = await import('node:fs');
  const proc: ProcReader = {
    ...real,
    netUnix: () => fs.readFileSync('/proc/net/unix', 'utf8'),
    pids: () => [String(process.pid)],
    fds: (pid) => fs.readdirSync(`/proc/${pid}/fd`),
    readlink: (p) => fs.readlinkSync(p),
    read: (p) => (p.endsWith('/status') ? `Uid:\t${me + 1}\n` : 'evil\0'),
  };
  const e = await acquireInstanceLock(name, proc).then(
    () => null,
    (x: unknown) => x as DaemonLockError,
  );
  t.equal(e?.code, 'SGW_ERR_DAEMON_ALREADY_RUNNING');
  t.match(e?.message ?? '', new RegExp(`held by pid ${process.pid} \\(uid ${me + 1}: evil\\), which is not a sharegwd of this user`));
});
