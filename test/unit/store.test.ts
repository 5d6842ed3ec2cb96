import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { validateConfig } from '../../src/config/validate';
import { CORRUPT_PREFIX, STATE_FILE, StateStore, TEMP_PREFIX, configDigest } from '../../src/persist/state-store';
import type { LoadResult, PersistedState, StoreFs } from '../../src/persist/state-store';
import { SgwError, StateError } from '../../src/errors';
import type { SgwConfig } from '../../src/model/config';
import type { GuestState } from '../../src/model/desired';
import { createLogger } from '../../src/observability/logger';
import { compileDesired } from '../../src/policy/policy';
import { canonicalJson } from '../../src/util/canonical-json';
import { rejection } from '../helpers/errors';
import { errno, failingFs } from '../helpers/failing-fs';
import type { AtomicStep } from '../../src/persist/atomic-file';
import { configFrom, labYaml } from '../helpers/configs';

const NODE = 'hv-test';
/** Put into file content; must never show up in an error message. */
const MARKER = 'CONTENT-MARKER-7f3a';
const IS_ROOT = process.getuid?.() === 0;

/** A fresh temp directory removed after the test. */
function tempDir(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgw-store-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function labConfig(): SgwConfig {
  const y = labYaml('kernel');
  return configFrom(y.daemon, y.domains);
}

/** A valid state built from the lab config (the real compiler's output). */
function labState(generation = 1): PersistedState {
  const config = labConfig();
  return {
    version: 1,
    node: NODE,
    generation,
    savedAt: new Date(Date.UTC(2026, 0, 2, 3, 4, 5)).toISOString(),
    configDigest: configDigest(config),
    desired: compileDesired(config),
    proxyPorts: {},
  };
}

/** A state of about `guests` KiB: many guests with a grant each. */
function bigState(guests: number, generation = 1): PersistedState {
  const list: GuestState[] = [];
  for (let i = 0; i < guests; i++) {
    const a = (i >> 8) & 255;
    const b = i & 255;
    list.push({
      key: `dom${i % 50}/instance-${i}-${'x'.repeat(600)}`,
      domain: `dom${i % 50}`,
      instance: `instance-${i}`,
      iface: `sgwt-${i}`,
      guestIp: `169.254.${a}.${b}`,
      gatewayIp: '169.254.255.1',
      sourceIp: '198.18.0.11',
      grants: [{ backend: '198.18.0.100', port: 2049, service: 'nfs', proto: 'NFS', level: 'rw', shares: [{ id: `share-${i}`, level: 'rw' }] }],
    });
  }
  return { ...labState(generation), desired: { dataplane: 'proxy', guests: list }, proxyPorts: { [`guest-${generation}`]: 40000 } };
}

function memoryLogger(): { log: ReturnType<typeof createLogger>; lines: () => Record<string, unknown>[] } {
  const out: string[] = [];
  return {
    log: createLogger('debug', { write: (s: string) => void out.push(s) }),
    lines: () => out.join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}


function listDir(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

function invalid(r: LoadResult): Extract<LoadResult, { kind: 'invalid' }> {
  if (r.kind !== 'invalid') {
    throw new Error(`expected invalid, got ${r.kind}`);
  }
  return r;
}

// ---------------------------------------------------------------------------

t.test('StateStore.load() returns none when the directory is missing, and does not create it', async (t) => {
  const dir = path.join(tempDir(t), 'missing', 'state');
  const store = new StateStore(dir, NODE);
  t.strictSame(await store.load(), { kind: 'none' });
  t.notOk(fs.existsSync(dir));
});

t.test('StateStore.load() returns none when the directory has no state file', async (t) => {
  const dir = tempDir(t);
  t.strictSame(await new StateStore(dir, NODE).load(), { kind: 'none' });
});

t.test('StateStore.save() creates a missing directory 0700 and the file 0600', async (t) => {
  const dir = path.join(tempDir(t), 'a', 'b');
  const store = new StateStore(dir, NODE);
  await store.save(labState());
  t.equal(fs.statSync(dir).mode & 0o777, 0o700, 'state dir');
  t.equal(fs.statSync(path.dirname(dir)).mode & 0o777, 0o700, 'intermediate dir');
  t.equal(fs.statSync(path.join(dir, STATE_FILE)).mode & 0o777, 0o600, 'state file');
  t.strictSame(listDir(dir), [STATE_FILE], 'no temp file left');
});

t.test('StateStore.save() then load() round-trips the state', async (t) => {
  const dir = tempDir(t);
  const state = labState(7);
  state.proxyPorts = { 'acme/g1 198.18.0.100:2049': 40001, 'beta/g2 198.18.0.101:2049': 40002 };
  t.ok(state.desired.guests.length === 2 && (state.desired.guests[0]?.grants.length ?? 0) > 0, 'a non-trivial desired state');
  await new StateStore(dir, NODE).save(state);
  const r = await new StateStore(dir, NODE).load();
  t.strictSame(r, { kind: 'ok', state });
  const text = fs.readFileSync(path.join(dir, STATE_FILE), 'utf8');
  t.ok(text.endsWith('}\n'), 'newline-terminated');
  t.match(text, /\n {2}"version": 1,\n/, 'indented for an operator to read');
});

t.test('StateStore.save() replaces the previous state; the last call wins when saves overlap', async (t) => {
  const dir = tempDir(t);
  const store = new StateStore(dir, NODE);
  await store.save(labState(1));
  await Promise.all(Array.from({ length: 10 }, (_, i) => store.save(labState(i + 2))));
  const r = await store.load();
  t.equal(r.kind === 'ok' ? r.state.generation : null, 11);
  t.strictSame(listDir(dir), [STATE_FILE]);
});

// ---------------------------------------------------------------------------

const good = (): Record<string, unknown> => JSON.parse(JSON.stringify(labState())) as Record<string, unknown>;
const withGuest = (edit: (g: Record<string, unknown>) => void): string => {
  const s = good();
  const guests = (s['desired'] as { guests: Record<string, unknown>[] }).guests;
  const g = guests[0];
  if (g === undefined) {
    throw new Error('lab state has no guest');
  }
  edit(g);
  return JSON.stringify(s);
};
const fullText = JSON.stringify(good(), null, 2);

const INVALID: { name: string; content: string; code: string; why: RegExp }[] = [
  { name: 'corrupt JSON', content: `{"version":1,"node":"${MARKER}",,}`, code: 'SGW_ERR_STATE_CORRUPT', why: /not valid JSON \(\d+ bytes; truncated\?\)/ },
  { name: 'a truncated file', content: fullText.slice(0, Math.floor(fullText.length / 2)), code: 'SGW_ERR_STATE_CORRUPT', why: /not valid JSON/ },
  { name: 'an empty file', content: '', code: 'SGW_ERR_STATE_CORRUPT', why: /empty file/ },
  { name: 'NUL bytes (a crash on a filesystem without data ordering)', content: '\0'.repeat(4096), code: 'SGW_ERR_STATE_CORRUPT', why: /not valid JSON/ },
  { name: 'JSON that is not an object', content: `["${MARKER}"]`, code: 'SGW_ERR_STATE_CORRUPT', why: /not a JSON object/ },
  { name: 'an unknown version', content: JSON.stringify({ ...good(), version: 2, extra: MARKER }), code: 'SGW_ERR_STATE_FOREIGN', why: /format version 2 is not 1/ },
  { name: 'a non-numeric version', content: JSON.stringify({ ...good(), version: MARKER }), code: 'SGW_ERR_STATE_FOREIGN', why: /format version is not 1/ },
  { name: 'another node', content: JSON.stringify({ ...good(), node: 'hv-other' }), code: 'SGW_ERR_STATE_FOREIGN', why: /written for node "hv-other", this is node "hv-test"/ },
  { name: 'another node with an unprintable name', content: JSON.stringify({ ...good(), node: `${MARKER}\n$(x)` }), code: 'SGW_ERR_STATE_FOREIGN', why: /written for node \(unprintable name\)/ },
  { name: 'a missing field', content: JSON.stringify({ ...good(), desired: undefined }), code: 'SGW_ERR_STATE_CORRUPT', why: /wrong shape: \/desired: invalid_type/ },
  { name: 'a port out of range', content: withGuest((g) => ((g['grants'] as { port: number }[])[0]!.port = 70000)), code: 'SGW_ERR_STATE_CORRUPT', why: /wrong shape: \/desired\/guests\/0\/grants\/0\/port: too_big/ },
  { name: 'an address not in canonical form', content: withGuest((g) => (g['guestIp'] = '169.254.001.002')), code: 'SGW_ERR_STATE_CORRUPT', why: /\/desired\/guests\/0\/guestIp: not a canonical IP address/ },
  { name: 'an unknown key', content: withGuest((g) => (g[MARKER] = 1)), code: 'SGW_ERR_STATE_CORRUPT', why: /\/desired\/guests\/0: unrecognized_keys/ },
  { name: 'a bad digest', content: JSON.stringify({ ...good(), configDigest: MARKER }), code: 'SGW_ERR_STATE_CORRUPT', why: /\/configDigest: invalid_format/ },
  { name: 'a bad savedAt', content: JSON.stringify({ ...good(), savedAt: 'yesterday' }), code: 'SGW_ERR_STATE_CORRUPT', why: /\/savedAt: invalid_format/ },
];

for (const c of INVALID) {
  t.test(`StateStore.load() returns invalid ${c.code} and moves the file aside when given ${c.name}`, async (t) => {
    const dir = tempDir(t);
    const file = path.join(dir, STATE_FILE);
    fs.writeFileSync(file, c.content);
    const m = memoryLogger();
    const store = new StateStore(dir, NODE, { log: m.log, now: () => new Date(Date.UTC(2026, 4, 6, 7, 8, 9, 10)) });
    const r = invalid(await store.load());
    t.ok(r.error instanceof StateError && r.error instanceof SgwError, 'a StateError');
    t.equal(r.error.code, c.code);
    t.equal(r.error.path, file);
    t.equal(r.error.errno, null);
    t.match(r.error.message, c.why);
    t.ok(r.error.message.includes(file), 'the message names the file');
    t.notOk(r.error.message.includes(MARKER), 'the message never quotes content');
    t.equal(r.movedTo, path.join(dir, `${CORRUPT_PREFIX}20260506T070809.010Z`));
    t.equal(fs.readFileSync(r.movedTo ?? '', 'utf8'), c.content, 'moved aside intact for the operator');
    t.notOk(fs.existsSync(file));
    const warn = m.lines().find((l) => l['level'] === 40);
    t.match(warn, { code: c.code, path: file, movedTo: r.movedTo });
    t.strictSame(await store.load(), { kind: 'none' }, 'the next load starts from scratch');
    await store.save(labState());
    t.equal((await store.load()).kind, 'ok', 'and a save works again');
  });
}

t.test('StateStore.load() keeps at most 3 moved-aside files, the newest', async (t) => {
  const dir = tempDir(t);
  let ms = Date.UTC(2026, 0, 1);
  const store = new StateStore(dir, NODE, { now: () => new Date(ms) });
  for (let i = 0; i < 5; i++) {
    fs.writeFileSync(path.join(dir, STATE_FILE), `broken ${i}`);
    t.equal(invalid(await store.load()).movedTo !== null, true);
    ms += 1500;
  }
  const aside = listDir(dir);
  t.strictSame(aside, [`${CORRUPT_PREFIX}20260101T000003.000Z`, `${CORRUPT_PREFIX}20260101T000004.500Z`, `${CORRUPT_PREFIX}20260101T000006.000Z`]);
  t.strictSame(
    aside.map((n) => fs.readFileSync(path.join(dir, n), 'utf8')),
    ['broken 2', 'broken 3', 'broken 4'],
  );
});

t.test('StateStore.load() does not overwrite a moved-aside file from the same millisecond', async (t) => {
  const dir = tempDir(t);
  const store = new StateStore(dir, NODE, { now: () => new Date(Date.UTC(2026, 0, 1)), keepCorrupt: 3 });
  const moved: (string | null)[] = [];
  for (let i = 0; i < 12; i++) {
    fs.writeFileSync(path.join(dir, STATE_FILE), `broken ${i}`);
    moved.push(invalid(await store.load()).movedTo);
  }
  const base = `${CORRUPT_PREFIX}20260101T000000.000Z`;
  t.equal(moved[0], path.join(dir, base));
  t.equal(moved[1], path.join(dir, `${base}-1`));
  const aside = listDir(dir);
  t.equal(aside.length, 3);
  t.strictSame(
    aside.map((n) => fs.readFileSync(path.join(dir, n), 'utf8')).sort(),
    ['broken 10', 'broken 11', 'broken 9'],
    'the newest three survive (suffix -10 sorts after -9)',
  );
});

t.test('StateStore.load() refuses a file above maxBytes before reading it', async (t) => {
  const dir = tempDir(t);
  await new StateStore(dir, NODE).save(bigState(20));
  const r = invalid(await new StateStore(dir, NODE, { maxBytes: 4096 }).load());
  t.equal(r.error.code, 'SGW_ERR_STATE_CORRUPT');
  t.match(r.error.message, /is \d+ bytes, above the limit of 4096/);
  t.not(r.movedTo, null);
});

t.test('StateStore.load() returns invalid SGW_ERR_STATE_IO without moving anything on read errors', async (t) => {
  t.test('when state.json is a directory', async (t) => {
    const dir = tempDir(t);
    fs.mkdirSync(path.join(dir, STATE_FILE));
    const r = invalid(await new StateStore(dir, NODE).load());
    t.equal(r.error.code, 'SGW_ERR_STATE_IO');
    t.match(r.error.message, /is not a regular file/);
    t.equal(r.movedTo, null);
    t.ok(fs.statSync(path.join(dir, STATE_FILE)).isDirectory());
  });
  t.test('when the state dir is a file', async (t) => {
    const dir = path.join(tempDir(t), 'file');
    fs.writeFileSync(dir, '');
    const r = invalid(await new StateStore(dir, NODE).load());
    t.equal(r.error.code, 'SGW_ERR_STATE_IO');
    t.equal(r.error.errno, 'ENOTDIR');
    t.match(r.error.message, `cannot read state file ${path.join(dir, STATE_FILE)}: ENOTDIR`);
  });
  t.test('when a FIFO sits at the path (must not hang)', async (t) => {
    const dir = tempDir(t);
    const mk = spawnSync('mkfifo', [path.join(dir, STATE_FILE)], { encoding: 'utf8' });
    t.equal(mk.status, 0, `mkfifo ${mk.stderr}`);
    const r = invalid(await new StateStore(dir, NODE).load());
    t.equal(r.error.code, 'SGW_ERR_STATE_IO');
    t.equal(r.movedTo, null);
  });
  t.test('when open() fails with EACCES (injected)', async (t) => {
    const dir = tempDir(t);
    await new StateStore(dir, NODE).save(labState());
    const open: StoreFs['open'] = async () => {
      throw errno('EACCES');
    };
    const r = invalid(await new StateStore(dir, NODE, { fs: { open } }).load());
    t.equal(r.error.code, 'SGW_ERR_STATE_IO');
    t.equal(r.error.errno, 'EACCES');
    t.equal(r.movedTo, null);
    t.ok(fs.existsSync(path.join(dir, STATE_FILE)), 'left in place');
  });
  t.test('when the file is unreadable (real EACCES, not as root)', { skip: IS_ROOT ? 'root reads any file; covered by the injected case' : false }, async (t) => {
    const dir = tempDir(t);
    await new StateStore(dir, NODE).save(labState());
    fs.chmodSync(path.join(dir, STATE_FILE), 0o000);
    const r = invalid(await new StateStore(dir, NODE).load());
    t.equal(r.error.errno, 'EACCES');
  });
});

t.test('StateStore.load() logs and still returns invalid when the file cannot be moved aside', async (t) => {
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, STATE_FILE), 'garbage');
  const m = memoryLogger();
  const rename: StoreFs['rename'] = async () => {
    throw errno('EROFS');
  };
  const r = invalid(await new StateStore(dir, NODE, { log: m.log, fs: { rename } }).load());
  t.equal(r.error.code, 'SGW_ERR_STATE_CORRUPT');
  t.equal(r.movedTo, null);
  t.match(m.lines().find((l) => l['level'] === 40), { errno: 'EROFS', msg: /could not be moved aside/ });
});

t.test('StateStore.load() removes temp files of interrupted saves and ignores their content', async (t) => {
  const dir = tempDir(t);
  const store = new StateStore(dir, NODE);
  await store.save(labState(3));
  const dead = `${TEMP_PREFIX}99999999-aaaaaa`; // above any pid_max: never alive
  const garbage = `${TEMP_PREFIX}garbage`;
  const own = `${TEMP_PREFIX}${process.pid}-bbbbbb`; // a previous process with our pid
  const liveRecent = `${TEMP_PREFIX}${process.ppid}-cccccc`; // may be another saver still writing
  const liveOld = `${TEMP_PREFIX}${process.ppid}-dddddd`; // pid reused long after a crash
  for (const n of [dead, garbage, own, liveRecent, liveOld]) {
    fs.writeFileSync(path.join(dir, n), '{"version":1,"half');
  }
  const old = new Date(Date.now() - 2 * 3600 * 1000);
  fs.utimesSync(path.join(dir, liveOld), old, old);
  const r = await store.load();
  t.equal(r.kind === 'ok' ? r.state.generation : null, 3, 'the real state loads');
  t.strictSame(listDir(dir), [STATE_FILE, liveRecent].sort());
});

// ---------------------------------------------------------------------------

/** failingFs() for the state file's temp names. */
const storeFailingFs = (step: AtomicStep, code: string): Partial<StoreFs> => failingFs(TEMP_PREFIX, step, code);

const FAILURES: { step: AtomicStep; code: string }[] = [
  { step: 'open', code: 'EMFILE' },
  { step: 'write', code: 'ENOSPC' },
  { step: 'fsync', code: 'EIO' },
  { step: 'close', code: 'EDQUOT' },
  { step: 'rename', code: 'EXDEV' },
];

for (const f of FAILURES) {
  t.test(`StateStore.save() throws SGW_ERR_STATE_IO, keeps the old file intact and leaves no temp file when ${f.step} fails with ${f.code}`, async (t) => {
    const dir = tempDir(t);
    const file = path.join(dir, STATE_FILE);
    await new StateStore(dir, NODE).save(labState(1));
    const before = fs.readFileSync(file);
    const big = bigState(300, 2);
    big.proxyPorts = { [MARKER]: 40000 };
    const err = await rejection(new StateStore(dir, NODE, { fs: storeFailingFs(f.step, f.code) }).save(big));
    t.ok(err instanceof StateError, 'a StateError');
    const e = err as StateError;
    t.equal(e.code, 'SGW_ERR_STATE_IO');
    t.equal(e.errno, f.code);
    t.equal(e.path, file);
    t.equal(e.message, `cannot save state to ${file} (${f.step}): ${f.code}`);
    t.notOk(e.message.includes(MARKER));
    t.ok(fs.readFileSync(file).equals(before), 'old state byte for byte');
    t.strictSame(listDir(dir), [STATE_FILE], 'temp file removed');
    const r = await new StateStore(dir, NODE).load();
    t.equal(r.kind === 'ok' ? r.state.generation : null, 1);
  });
}

t.test('StateStore.save() throws SGW_ERR_STATE_IO when the directory cannot be created', async (t) => {
  const dir = path.join(tempDir(t), 'new');
  const e = (await rejection(new StateStore(dir, NODE, { fs: storeFailingFs('mkdir', 'EROFS') }).save(labState()))) as StateError;
  t.equal(e.code, 'SGW_ERR_STATE_IO');
  t.equal(e.message, `cannot save state to ${path.join(dir, STATE_FILE)} (mkdir): EROFS`);
});

t.test('StateStore.save() reports a failed directory fsync after the rename (new state in place)', async (t) => {
  const dir = tempDir(t);
  await new StateStore(dir, NODE).save(labState(1));
  const e = (await rejection(new StateStore(dir, NODE, { fs: storeFailingFs('fsync-dir', 'EIO') }).save(labState(2)))) as StateError;
  t.equal(e.code, 'SGW_ERR_STATE_IO');
  t.match(e.message, /\(fsync-dir\): EIO$/);
  t.strictSame(listDir(dir), [STATE_FILE]);
  t.equal(fs.readFileSync(path.join(dir, STATE_FILE), 'utf8'), `${JSON.stringify(labState(2), null, 2)}\n`, 'renamed; durability unknown');
});

t.test('StateStore.save() tolerates filesystems that cannot fsync a directory (EINVAL)', async (t) => {
  const dir = tempDir(t);
  await new StateStore(dir, NODE, { fs: storeFailingFs('fsync-dir', 'EINVAL') }).save(labState(2));
  const r = await new StateStore(dir, NODE).load();
  t.equal(r.kind === 'ok' ? r.state.generation : null, 2);
});

t.test('StateStore.save() refuses, writing nothing, a state that load() would reject', async (t) => {
  const dir = tempDir(t);
  const store = new StateStore(dir, NODE);
  const other = (await rejection(store.save({ ...labState(), node: 'hv-other' }))) as StateError;
  t.equal(other.code, 'SGW_ERR_STATE_FOREIGN');
  t.match(other.message, /refusing to save state for node "hv-other"/);
  const bad = labState();
  bad.proxyPorts = { x: 0 };
  const shape = (await rejection(store.save(bad))) as StateError;
  t.equal(shape.code, 'SGW_ERR_STATE_CORRUPT');
  t.match(shape.message, /would not load back.*\/proxyPorts\/x: too_small/);
  t.notOk(fs.existsSync(dir) && listDir(dir).length > 0, 'nothing written');
});

t.test('StateStore.save() is atomic: concurrent readers only ever see a whole old or new file', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, STATE_FILE);
  const store = new StateStore(dir, NODE);
  const a = bigState(1500, 1);
  const b = bigState(1200, 2);
  const texts = new Set([`${JSON.stringify(a, null, 2)}\n`, `${JSON.stringify(b, null, 2)}\n`]);
  t.ok([...texts].every((s) => s.length > 1_000_000), 'states of more than 1 MB');
  await store.save(a);
  let reading = true;
  let reads = 0;
  let torn = 0;
  const reader = (async () => {
    while (reading) {
      const s = await fs.promises.readFile(file, 'utf8');
      reads++;
      if (!texts.has(s)) {
        torn++;
      }
    }
  })();
  for (let i = 0; i < 20; i++) {
    await store.save(i % 2 === 0 ? b : a);
  }
  reading = false;
  await reader;
  t.ok(reads > 0, `${reads} reads during 20 saves`);
  t.equal(torn, 0, 'no partial or mixed file seen');
});

/** Why a 64k tmpfs cannot be mounted here (not root, no CAP_SYS_ADMIN), or false when it can. */
function tmpfsUnavailable(): string | false {
  if (!IS_ROOT) {
    return 'needs root to mount a tmpfs; the injected ENOSPC case covers the logic';
  }
  const probe = fs.mkdtempSync(path.join(os.tmpdir(), 'sgw-tmpfs-probe-'));
  try {
    const mnt = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { encoding: 'utf8' });
    if (mnt.status !== 0) {
      return `cannot mount a tmpfs here (${mnt.stderr.trim() || `exit ${String(mnt.status)}`}); the injected ENOSPC case covers the logic`;
    }
    spawnSync('umount', [probe]);
    return false;
  } finally {
    fs.rmdirSync(probe);
  }
}

t.test('StateStore.save() on a full disk (real ENOSPC on a 64k tmpfs)', { skip: tmpfsUnavailable() }, async (t) => {
  const dir = tempDir(t);
  const mnt = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', dir], { encoding: 'utf8' });
  t.equal(mnt.status, 0, `mount: ${mnt.stderr}`);
  // Registered after tempDir's rmSync, so it runs first (teardowns run in reverse).
  t.teardown(() => {
    spawnSync('umount', [dir]);
  });
  const file = path.join(dir, STATE_FILE);
  const store = new StateStore(dir, NODE);
  await store.save(labState(1));
  const before = fs.readFileSync(file);
  const big = bigState(200, 2);
  t.ok(JSON.stringify(big, null, 2).length > 64 * 1024, 'larger than the filesystem');
  const e = (await rejection(store.save(big))) as StateError;
  t.ok(e instanceof StateError);
  t.equal(e.code, 'SGW_ERR_STATE_IO');
  t.equal(e.errno, 'ENOSPC');
  t.match(e.message, `cannot save state to ${file} (write): ENOSPC`);
  t.ok(fs.readFileSync(file).equals(before), 'old state intact');
  t.strictSame(listDir(dir), [STATE_FILE], 'temp file removed, its space freed');
  const r = await store.load();
  t.equal(r.kind === 'ok' ? r.state.generation : null, 1);
  await store.save(labState(3));
  const again = await store.load();
  t.equal(again.kind === 'ok' ? again.state.generation : null, 3, 'small saves work again afterwards');
});

t.test('StateStore.save() in a read-only directory (real EACCES, not as root)', { skip: IS_ROOT ? 'root writes into read-only dirs; the injected cases cover the logic' : false }, async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, STATE_FILE);
  await new StateStore(dir, NODE).save(labState(1));
  const before = fs.readFileSync(file);
  fs.chmodSync(dir, 0o500);
  t.teardown(() => fs.chmodSync(dir, 0o700));
  const e = (await rejection(new StateStore(dir, NODE).save(labState(2)))) as StateError;
  t.equal(e.code, 'SGW_ERR_STATE_IO');
  t.equal(e.errno, 'EACCES');
  t.ok(fs.readFileSync(file).equals(before));
});

// ---------------------------------------------------------------------------

t.test('configDigest() is 64 hex digits and stable across moved and renamed files', async (t) => {
  const y = labYaml('kernel');
  const a = labConfig();
  const moved = validateConfig(
    { file: '/srv/elsewhere/sgw.yaml', text: y.daemon },
    Object.entries(y.domains)
      .reverse()
      .map(([name, text], i) => ({ file: `/srv/elsewhere/domains.d/${i}0-${name}`, text })),
    '/srv/elsewhere/domains.d',
  ).config;
  if (moved === null) {
    throw new Error('moved config invalid');
  }
  t.not(moved.daemon.domainsDir, a.daemon.domainsDir);
  t.not(moved.domains[0]?.name, a.domains[0]?.name, 'domains read in another order');
  t.match(configDigest(a), /^[0-9a-f]{64}$/);
  t.equal(configDigest(moved), configDigest(a));
  t.equal(configDigest(labConfig()), configDigest(a), 'deterministic');
});

t.test('configDigest() changes with any setting, guest, share or rule', async (t) => {
  const y = labYaml('kernel');
  const base = configDigest(configFrom(y.daemon, y.domains));
  const variants: [string, string, Record<string, string>][] = [
    ['dataplane', y.daemon.replace('dataplane: kernel', 'dataplane: proxy'), y.domains],
    ['sync interval', `${y.daemon}syncInterval: 5s\n`, y.domains],
    ['access level', y.daemon, { ...y.domains, 'beta.yaml': (y.domains['beta.yaml'] ?? '').replace('accessLevel: rw', 'accessLevel: ro') }],
    ['guest address', y.daemon, { ...y.domains, 'beta.yaml': (y.domains['beta.yaml'] ?? '').replace('addresses: [198.19.1.5]', 'addresses: [198.19.1.6]') }],
    ['a domain removed', y.daemon, { 'acme.yaml': y.domains['acme.yaml'] ?? '' }],
  ];
  for (const [name, daemon, domains] of variants) {
    t.not(configDigest(configFrom(daemon, domains)), base, name);
  }
});

t.test('canonicalJson() sorts keys, encodes bigint, drops undefined, refuses cycles', async (t) => {
  t.equal(canonicalJson({ b: 1, a: [3, { d: undefined, c: 'x' }], e: 10n }), '{"a":[3,{"c":"x"}],"b":1,"e":"10"}');
  t.equal(canonicalJson({ a: 1, b: 2 }), canonicalJson({ b: 2, a: 1 }));
  t.equal(canonicalJson([undefined, () => 1, NaN, null, true]), '[null,null,null,null,true]');
  t.equal(canonicalJson(undefined), 'null');
  t.equal(canonicalJson('é"\n'), JSON.stringify('é"\n'));
  const shared = { x: 1 };
  t.equal(canonicalJson([shared, shared]), '[{"x":1},{"x":1}]', 'a repeated object is not a cycle');
  const cyc: Record<string, unknown> = {};
  cyc['self'] = cyc;
  t.throws(() => canonicalJson(cyc), TypeError);
});
