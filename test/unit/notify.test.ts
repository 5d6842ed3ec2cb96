import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { NOTIFY_ERRORS_COUNTER, createNotifier, watchdogIntervalMs } from '../../src/daemon/notify';
import { Counters } from '../../src/observability/counters';
import { createLogger } from '../../src/observability/logger';
import { NATIVE_FALLBACKS_COUNTER, NativeNotifyTransport, loadNative } from '../../src/native';
import type { NotifyTransport } from '../../src/native';

/*
 * A fake service manager: Node cannot bind AF_UNIX datagram sockets, so a
 * small python3 program binds one (as systemd binds $NOTIFY_SOCKET), prints
 * each datagram as a JSON line with the sender's pid from SCM_CREDENTIALS,
 * and closes received fds, which is how systemd answers the BARRIER=1 that
 * systemd-notify sends after each message and waits on.
 */
const RECEIVER = `
import array, json, os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
a = sys.argv[1]
s.bind("\\0" + a[1:] if a.startswith("@") else a)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print(json.dumps({"listening": sys.argv[1]}), flush=True)
isz = array.array("i").itemsize
while True:
    data, anc, _flags, _addr = s.recvmsg(65536, socket.CMSG_SPACE(16 * isz) + socket.CMSG_SPACE(12))
    pid, nfds = None, 0
    for level, kind, cdata in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(cdata[: len(cdata) - len(cdata) % isz])
            for fd in fds:
                os.close(fd)
                nfds += 1
        elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", cdata[:12])[0]
    print(json.dumps({"pid": pid, "fds": nfds, "data": data.decode("utf-8", "replace")}), flush=True)
`;

interface Datagram {
  pid: number | null;
  fds: number;
  data: string;
  /** The assignments, one per line. */
  lines: string[];
}

/** Why the real-socket tests cannot run here, or null. */
function missingTool(): string | null {
  if (spawnSync('systemd-notify', ['--version']).status !== 0) {
    return 'systemd-notify not found: these tests need the Debian `systemd` package (apt-get install -y systemd); the lab installs it';
  }
  if (spawnSync('python3', ['-c', 'import socket; socket.SCM_CREDENTIALS']).status !== 0) {
    return 'python3 (with AF_UNIX SCM_CREDENTIALS) not found: the fake NOTIFY_SOCKET receiver needs it (apt-get install -y python3)';
  }
  return null;
}
const MISSING = missingTool();

function tempDir(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgw-notify-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Starts the fake receiver on `<dir>/notify` (or an abstract `@sgw-test-...` socket); resolves once it is bound. */
async function receiver(t: Test, dir: string, abstract = false): Promise<{ socket: string; got: Datagram[]; next: (pred: (d: Datagram) => boolean, ms?: number) => Promise<Datagram> }> {
  const socket = abstract ? `@sgw-test-notify-${process.pid}-${path.basename(dir)}` : path.join(dir, 'notify');
  const child: ChildProcessWithoutNullStreams = spawn('python3', ['-u', '-c', RECEIVER, socket]);
  t.teardown(() => {
    child.kill();
  });
  const got: Datagram[] = [];
  let stderr = '';
  let buf = '';
  let onLine: (() => void) | null = null;
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const listening = new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`receiver exited ${String(code)}: ${stderr}`)));
    child.stdout.on('data', (b: Buffer) => {
      buf += b.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const v = JSON.parse(buf.slice(0, nl)) as { listening?: string } & Omit<Datagram, 'lines'>;
        buf = buf.slice(nl + 1);
        if (v.listening !== undefined) {
          resolve();
        } else {
          got.push({ ...v, lines: v.data.split('\n').filter((l) => l !== '') });
          onLine?.();
        }
      }
    });
  });
  await listening;
  let seen = 0;
  /** The next datagram (after those already returned) that matches. */
  const next = (pred: (d: Datagram) => boolean, ms = 5000): Promise<Datagram> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching datagram within ${ms} ms; got ${JSON.stringify(got.slice(seen))}`)), ms);
      const check = (): void => {
        while (seen < got.length) {
          const d = got[seen++];
          if (d !== undefined && pred(d)) {
            clearTimeout(timer);
            onLine = null;
            resolve(d);
            return;
          }
        }
        onLine = check;
      };
      check();
    });
  return { socket, got, next };
}

/** Datagrams that carry a message (not systemd-notify's BARRIER=1 follow-up). */
const message = (d: Datagram): boolean => !d.lines.includes('BARRIER=1');

function memoryLogger(): { log: ReturnType<typeof createLogger>; lines: () => Record<string, unknown>[] } {
  const out: string[] = [];
  return {
    log: createLogger('debug', { write: (s: string) => void out.push(s) }),
    lines: () => out.join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** A stand-in for systemd-notify that appends its arguments to `<dir>/calls` (after `delay` seconds). */
function recordingCommand(dir: string, delay = 0, exit = 0): { command: string; calls: () => string[][] } {
  const command = path.join(dir, 'fake-notify');
  const calls = path.join(dir, 'calls');
  fs.writeFileSync(command, `#!/bin/sh\nsleep ${delay}\nprintf '%s\\t' "$@" >> '${calls}'\necho >> '${calls}'\necho "fake failure" >&2\nexit ${exit}\n`, { mode: 0o755 });
  return {
    command,
    calls: () =>
      fs.existsSync(calls)
        ? fs
            .readFileSync(calls, 'utf8')
            .split('\n')
            .filter((l) => l !== '')
            .map((l) => l.split('\t').filter((a) => a !== ''))
        : [],
  };
}

// ---------------------------------------------------------------------------

t.test('watchdogIntervalMs() is half of WATCHDOG_USEC for this process, else null', async (t) => {
  const pid = 4242;
  const cases: [NodeJS.ProcessEnv, number | null][] = [
    [{}, null],
    [{ WATCHDOG_USEC: '20000000' }, 10_000],
    [{ WATCHDOG_USEC: '20000000', WATCHDOG_PID: '4242' }, 10_000],
    [{ WATCHDOG_USEC: '20000000', WATCHDOG_PID: '' }, 10_000],
    [{ WATCHDOG_USEC: '20000000', WATCHDOG_PID: '1' }, null],
    [{ WATCHDOG_USEC: '3001' }, 1],
    [{ WATCHDOG_USEC: '1' }, 1],
    [{ WATCHDOG_USEC: '0' }, null],
    [{ WATCHDOG_USEC: '-5' }, null],
    [{ WATCHDOG_USEC: '10s' }, null],
    [{ WATCHDOG_USEC: '' }, null],
  ];
  for (const [env, want] of cases) {
    t.equal(watchdogIntervalMs(env, pid), want, JSON.stringify(env));
  }
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '4000000', WATCHDOG_PID: String(process.pid) }), 2000, 'defaults to process.pid');
});

t.test('createNotifier() is a no-op that spawns nothing when NOTIFY_SOCKET is unset or empty', async (t) => {
  const dir = tempDir(t);
  for (const env of [{ PATH: process.env['PATH'] }, { PATH: process.env['PATH'], NOTIFY_SOCKET: '' }]) {
    const fake = recordingCommand(dir);
    const n = createNotifier(env, undefined, { command: fake.command });
    t.equal(n.kind, 'none');
    await n.ready('synced');
    await n.reloading();
    await n.stopping();
    await n.watchdog();
    await n.status('x');
    t.strictSame(fake.calls(), [], 'nothing spawned');
    t.strictSame(n.stats(), { sent: 0, failed: 0, lastError: null });
  }
});

t.test('systemd-notify is installed (needed by the tests below and by the daemon under systemd)', async (t) => {
  t.equal(MISSING, null, MISSING ?? 'ok');
});

/*
 * Parity (STYLE.md, "Native shim with fallback"): the same table runs
 * against the native datagram transport, when the addon is built, and the
 * systemd-notify fallback, on a path socket and on an abstract one.
 */
const NATIVE = loadNative().binding;
const transports: { kind: 'sd_notify' | 'systemd-notify'; native: NotifyTransport | null }[] = [
  { kind: 'systemd-notify', native: null },
  ...(NATIVE !== null ? [{ kind: 'sd_notify' as const, native: new NativeNotifyTransport(NATIVE) }] : []),
];
t.comment(`sd_notify implementations under test: ${transports.map((x) => x.kind).join(', ')}${NATIVE === null ? ' (addon not loaded: ' + String(loadNative().status.reason) + ')' : ''}`);

for (const tr of transports) {
  for (const abstract of [false, true]) {
t.test(`Notifier via ${tr.kind} delivers datagrams to NOTIFY_SOCKET (${abstract ? 'abstract' : 'path'} socket)`, { skip: MISSING ?? false }, async (t) => {
  const dir = tempDir(t);
  const rx = await receiver(t, dir, abstract);
  const counters = new Counters();
  const n = createNotifier({ NOTIFY_SOCKET: rx.socket, PATH: process.env['PATH'] }, undefined, { counters, native: tr.native });
  t.equal(n.kind, tr.kind);

  t.test('ready() sends READY=1, STATUS= and MAINPID=<our pid>', async (t) => {
    await n.ready('synced');
    const d = await rx.next(message);
    t.ok(d.lines.includes('READY=1'), d.data);
    t.ok(d.lines.includes('STATUS=synced'), d.data);
    t.ok(d.lines.includes(`MAINPID=${process.pid}`), d.data);
    // As root with CAP_SYS_ADMIN systemd-notify sends our pid as the
    // credentials (systemd attributes it to the main process); without, its own.
    // The native shim sends from this process: the kernel's credentials are ours.
    if (tr.native !== null) {
      t.equal(d.pid, process.pid, 'sent by this process');
    } else {
      t.ok(d.pid !== null && d.pid > 0, `sender pid ${String(d.pid)} (ours ${process.pid})`);
    }
  });

  t.test('ready() without a status sends no STATUS=', async (t) => {
    await n.ready();
    const d = await rx.next(message);
    t.ok(d.lines.includes('READY=1'));
    t.notOk(d.lines.some((l) => l.startsWith('STATUS=')), d.data);
  });

  t.test('watchdog() sends WATCHDOG=1', async (t) => {
    await n.watchdog();
    const d = await rx.next(message);
    t.ok(d.lines.includes('WATCHDOG=1'), d.data);
  });

  t.test('stopping() sends STOPPING=1 (+ STATUS=)', async (t) => {
    await n.stopping('draining');
    const d = await rx.next(message);
    t.ok(d.lines.includes('STOPPING=1'), d.data);
    t.ok(d.lines.includes('STATUS=draining'), d.data);
  });

  t.test('reloading() sends RELOADING=1 and MONOTONIC_USEC= of CLOCK_MONOTONIC', async (t) => {
    const before = process.hrtime.bigint() / 1000n;
    await n.reloading();
    const after = process.hrtime.bigint() / 1000n;
    const d = await rx.next(message);
    t.ok(d.lines.includes('RELOADING=1'), d.data);
    const mono = d.lines.find((l) => l.startsWith('MONOTONIC_USEC='));
    const usec = BigInt(mono?.slice('MONOTONIC_USEC='.length) ?? '-1');
    t.ok(usec >= before && usec <= after, `${usec} within [${before}, ${after}]`);
    // Same clock as systemd's: /proc/uptime counts CLOCK_BOOTTIME, which is
    // >= CLOCK_MONOTONIC and equal to it unless the host has suspended.
    const uptimeUsec = BigInt(Math.round(Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1e6));
    t.ok(usec <= uptimeUsec + 1_000_000n, 'not after boot time');
  });

  t.test('status() sends STATUS= with control characters blanked (no injected assignment)', async (t) => {
    await n.status('line1\nREADY=1\tx');
    const d = await rx.next(message);
    t.strictSame(d.lines.filter((l) => !l.startsWith('MAINPID=')), ['STATUS=line1 READY=1 x']);
  });

  t.test('messages arrive in call order', async (t) => {
    await Promise.all([n.reloading(), n.status('reloading config'), n.ready('synced'), n.stopping()]);
    const order = [];
    for (let i = 0; i < 4; i++) {
      const d = await rx.next(message);
      order.push(d.lines.find((l) => /^(RELOADING|READY|STOPPING)=1$/.test(l)) ?? d.lines.find((l) => l.startsWith('STATUS=')));
    }
    t.strictSame(order, ['RELOADING=1', 'STATUS=reloading config', 'READY=1', 'STOPPING=1']);
  });

  if (tr.native === null) {
    t.test('systemd-notify waits for the barrier: each message is followed by BARRIER=1 with an fd', async (t) => {
      await n.watchdog();
      const barrier = await rx.next((d) => d.lines.includes('BARRIER=1'));
      t.equal(barrier.fds, 1);
    });
  } else {
    t.test('the native transport sends one datagram per message, no barrier', async (t) => {
      t.notOk(rx.got.some((d) => d.lines.includes('BARRIER=1')));
      t.ok(rx.got.every((d) => d.fds === 0));
    });
  }

  t.test('counts deliveries and no errors', async (t) => {
    t.ok(n.stats().sent >= 10, `sent ${n.stats().sent}`);
    t.equal(n.stats().failed, 0);
    t.strictSame(counters.snapshot(), {}, 'no errors and no fallbacks');
  });
});
  }
}

t.test('the addon is loaded unless SGW_NATIVE=off (CI builds it with SGW_NATIVE_REQUIRED=1)', async (t) => {
  if (process.env['SGW_NATIVE'] === 'off') {
    t.equal(NATIVE, null, 'SGW_NATIVE=off forces the fallbacks');
    t.equal(loadNative().status.reason, 'SGW_NATIVE=off');
  } else {
    t.not(NATIVE, null, `addon loaded (${String(loadNative().status.reason)})`);
  }
});

t.test('Notifier falls back to systemd-notify for a message the native shim cannot send, and counts it', { skip: NATIVE === null ? 'addon not loaded' : false }, async (t) => {
  const dir = tempDir(t);
  const fake = recordingCommand(dir);
  const counters = new Counters();
  const failing: NotifyTransport = { impl: 'native', send: () => Promise.reject(Object.assign(new Error('sendto: EAGAIN'), { code: 'EAGAIN' })) };
  const n = createNotifier({ NOTIFY_SOCKET: path.join(dir, 'sock') }, undefined, { command: fake.command, counters, native: failing, pid: 55 });
  t.equal(n.kind, 'sd_notify');
  await n.ready('x');
  t.strictSame(fake.calls(), [['--pid=55', 'READY=1', 'STATUS=x']], 'the command sent it');
  t.equal(counters.get(NATIVE_FALLBACKS_COUNTER, { shim: 'sdNotify', code: 'EAGAIN' }), 1);
  if (NATIVE === null) {
    return;
  }
  // A socket nobody listens on: the real native call fails (ENOENT), the
  // command is tried and fails too; both are counted, nothing throws.
  const real = createNotifier({ NOTIFY_SOCKET: path.join(dir, 'absent') }, undefined, { command: path.join(dir, 'none'), counters, native: new NativeNotifyTransport(NATIVE) });
  await real.watchdog();
  t.equal(counters.get(NATIVE_FALLBACKS_COUNTER, { shim: 'sdNotify', code: 'ENOENT' }), 1);
  t.equal(real.stats().lastError?.code, 'SGW_ERR_NOTIFY_SPAWN');
});

t.test('Notifier logs a missing binary once, counts every failure and never throws', async (t) => {
  const dir = tempDir(t);
  const m = memoryLogger();
  const counters = new Counters();
  const command = path.join(dir, 'no-such-systemd-notify');
  const n = createNotifier({ NOTIFY_SOCKET: path.join(dir, 'sock') }, m.log, { command, counters , native: null });
  t.equal(n.kind, 'systemd-notify');
  await n.ready('synced');
  await n.watchdog();
  await n.stopping();
  t.strictSame(n.stats(), { sent: 0, failed: 3, lastError: { code: 'SGW_ERR_NOTIFY_SPAWN', message: `cannot run ${command}: ENOENT` } });
  t.equal(counters.get(NOTIFY_ERRORS_COUNTER, { code: 'SGW_ERR_NOTIFY_SPAWN' }), 3);
  const warns = m.lines().filter((l) => l['level'] === 40);
  t.equal(warns.length, 1, 'one warning');
  t.match(warns[0], { code: 'SGW_ERR_NOTIFY_SPAWN', err: `cannot run ${command}: ENOENT`, message: 'READY=1' });
  t.equal(m.lines().filter((l) => l['level'] === 20).length, 2, 'repeats at debug');
});

t.test('Notifier reports a non-zero exit with the last stderr line, and logs again after a recovery', { skip: MISSING ?? false }, async (t) => {
  const dir = tempDir(t);
  const m = memoryLogger();
  const counters = new Counters();
  // Nobody listens here: systemd-notify exits 1.
  const sock = path.join(dir, 'absent');
  const n = createNotifier({ NOTIFY_SOCKET: sock, PATH: process.env['PATH'] }, m.log, { counters , native: null });
  await n.ready();
  t.equal(n.stats().lastError?.code, 'SGW_ERR_NOTIFY_EXIT');
  t.match(n.stats().lastError?.message, /^systemd-notify exited with 1: .*No such file or directory/);
  t.equal(counters.get(NOTIFY_ERRORS_COUNTER, { code: 'SGW_ERR_NOTIFY_EXIT' }), 1);

  const rx = await receiver(t, dir);
  fs.renameSync(rx.socket, sock);
  await n.watchdog();
  t.ok((await rx.next(message)).lines.includes('WATCHDOG=1'));
  fs.unlinkSync(sock);
  await n.watchdog();
  t.strictSame(
    m.lines().map((l) => [l['level'], l['code'] ?? null, l['msg']]),
    [
      [40, 'SGW_ERR_NOTIFY_EXIT', 'systemd notification failed; continuing (repeats are logged at debug)'],
      [30, null, 'systemd notifications are delivered again'],
      [40, 'SGW_ERR_NOTIFY_EXIT', 'systemd notification failed; continuing (repeats are logged at debug)'],
    ],
  );
  t.strictSame({ sent: n.stats().sent, failed: n.stats().failed }, { sent: 1, failed: 2 });
});

t.test('Notifier kills a run that hangs and reports SGW_ERR_NOTIFY_TIMEOUT', async (t) => {
  const dir = tempDir(t);
  const command = path.join(dir, 'hang');
  // exec: the killed process is the sleeper itself, no orphan is left behind.
  fs.writeFileSync(command, '#!/bin/sh\nexec sleep 5\n', { mode: 0o755 });
  const n = createNotifier({ NOTIFY_SOCKET: path.join(dir, 'sock') }, undefined, { command, timeoutMs: 200 , native: null });
  const t0 = Date.now();
  await n.ready();
  t.ok(Date.now() - t0 < 3000, 'did not wait for the hung child');
  t.strictSame(n.stats().lastError, { code: 'SGW_ERR_NOTIFY_TIMEOUT', message: `${command} did not finish within 200 ms` });
});

t.test('Notifier passes --pid and the assignments as arguments, and coalesces queued watchdog and status updates', async (t) => {
  const dir = tempDir(t);
  const fake = recordingCommand(dir, 0.2);
  const n = createNotifier({ NOTIFY_SOCKET: path.join(dir, 'sock') }, undefined, { command: fake.command, pid: 777, monotonicUsec: () => 123n , native: null });
  const all = [n.watchdog(), n.watchdog(), n.watchdog(), n.status('a'), n.status('b'), n.watchdog(), n.ready('c'), n.status('d'), n.reloading()];
  await Promise.all(all);
  t.strictSame(fake.calls(), [
    ['--pid=777', 'WATCHDOG=1'],
    ['--pid=777', 'WATCHDOG=1'],
    ['--pid=777', 'STATUS=b'],
    ['--pid=777', 'READY=1', 'STATUS=c'],
    ['--pid=777', 'STATUS=d'],
    ['--pid=777', 'RELOADING=1', 'MONOTONIC_USEC=123'],
  ]);
  t.equal(n.stats().sent, 6);
});

t.test('Notifier reports a child killed by a signal as SGW_ERR_NOTIFY_EXIT', async (t) => {
  const dir = tempDir(t);
  const command = path.join(dir, 'suicide');
  fs.writeFileSync(command, '#!/bin/sh\nkill -TERM $$\n', { mode: 0o755 });
  const n = createNotifier({ NOTIFY_SOCKET: path.join(dir, 'sock') }, undefined, { command , native: null });
  await n.watchdog();
  t.strictSame(n.stats().lastError, { code: 'SGW_ERR_NOTIFY_EXIT', message: `${command} was killed by SIGTERM` });
});
