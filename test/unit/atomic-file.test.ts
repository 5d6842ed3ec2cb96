import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { ManilaStateFile, MANILA_STATE_FILE } from '../../src/control/manila/state';
import { removeStaleTemps, tempPrefix, writeFileAtomic } from '../../src/persist/atomic-file';
import type { AtomicFs, AtomicStep } from '../../src/persist/atomic-file';
import { rejection } from '../helpers/errors';
import { failingFs } from '../helpers/failing-fs';

/** A fresh temp directory removed after the test. */
function tempDir(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgw-atomic-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** failingFs() for the temp names of `file`. */
const fileFailingFs = (file: string, step: AtomicStep, code: string): Partial<AtomicFs> => failingFs(tempPrefix(file), step, code);

t.test('writeFileAtomic() replaces the file, mode 0600, and leaves no temp file', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'sub', 'x.json');
  t.same(await writeFileAtomic(file, 'one\n'), { ok: true });
  t.same(await writeFileAtomic(file, 'two\n'), { ok: true });
  t.equal(fs.readFileSync(file, 'utf8'), 'two\n');
  t.equal((fs.statSync(file).mode & 0o777).toString(8), '600');
  t.equal((fs.statSync(path.dirname(file)).mode & 0o777).toString(8), '700', 'a created directory is private');
  t.strictSame(fs.readdirSync(path.dirname(file)), ['x.json']);
});

t.test('writeFileAtomic() uses a unique temp name per write, so concurrent writes never share one', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'x.json');
  const temps = new Set<string>();
  const open = (async (p: fs.PathLike, flags?: string | number, mode?: fs.Mode) => {
    if (typeof p === 'string' && path.basename(p).startsWith(tempPrefix(file))) {
      temps.add(p);
    }
    return fs.promises.open(p, flags, mode);
  }) as AtomicFs['open'];
  const bodies = Array.from({ length: 8 }, (_, i) => `body ${i}\n`);
  const results = await Promise.all(bodies.map((b) => writeFileAtomic(file, b, { fs: { open } })));
  t.ok(results.every((r) => r.ok), 'every write succeeds');
  t.equal(temps.size, bodies.length, 'one temp name per write');
  for (const p of temps) {
    t.match(path.basename(p), new RegExp(`^x\\.json\\.tmp-${process.pid}-[0-9a-f]{12}$`));
  }
  t.ok(bodies.includes(fs.readFileSync(file, 'utf8')), 'the file holds one whole body');
  t.strictSame(fs.readdirSync(dir), ['x.json']);
});

const FAILURES: { step: AtomicStep; code: string }[] = [
  { step: 'mkdir', code: 'EROFS' },
  { step: 'open', code: 'EMFILE' },
  { step: 'write', code: 'ENOSPC' },
  { step: 'fsync', code: 'EIO' },
  { step: 'close', code: 'EDQUOT' },
  { step: 'rename', code: 'EXDEV' },
];
for (const f of FAILURES) {
  t.test(`writeFileAtomic() reports ${f.step}, keeps the old file and leaves no temp file when ${f.step} fails with ${f.code}`, async (t) => {
    const dir = tempDir(t);
    const file = path.join(dir, 'x.json');
    fs.writeFileSync(file, 'old\n');
    const r = await writeFileAtomic(file, 'new content\n'.repeat(1000), { fs: fileFailingFs(file, f.step, f.code) });
    t.equal(r.ok, false);
    if (!r.ok) {
      t.equal(r.step, f.step);
      t.equal((r.error as NodeJS.ErrnoException).code, f.code, 'the error as thrown');
    }
    t.equal(fs.readFileSync(file, 'utf8'), 'old\n', 'the old file is intact');
    t.strictSame(fs.readdirSync(dir), ['x.json'], 'no temp file is left');
  });
}

t.test('writeFileAtomic() reports fsync-dir after the rename, and tolerates EINVAL there', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'x.json');
  const r = await writeFileAtomic(file, 'new\n', { fs: fileFailingFs(file, 'fsync-dir', 'EIO') });
  t.same(r.ok ? null : r.step, 'fsync-dir');
  t.equal(fs.readFileSync(file, 'utf8'), 'new\n', 'renamed before the directory fsync');
  t.same(await writeFileAtomic(file, 'again\n', { fs: fileFailingFs(file, 'fsync-dir', 'EINVAL') }), { ok: true }, 'a filesystem that cannot fsync a directory');
  t.strictSame(fs.readdirSync(dir), ['x.json']);
});

t.test('removeStaleTemps() removes dead writers\' temp files, keeps a live writer\'s recent one', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'x.json');
  fs.writeFileSync(file, 'keep');
  const p = tempPrefix(file);
  const dead = `${p}99999999-aaaaaa`; // above any pid_max: never alive
  const garbage = `${p}garbage`;
  const liveRecent = `${p}${process.ppid}-cccccc`;
  const liveOld = `${p}${process.ppid}-dddddd`;
  const other = 'y.json.tmp-99999999-aaaaaa'; // another file's temp: not ours
  for (const n of [dead, garbage, liveRecent, liveOld, other]) {
    fs.writeFileSync(path.join(dir, n), 'half');
  }
  const old = new Date(Date.now() - 2 * 3600 * 1000);
  fs.utimesSync(path.join(dir, liveOld), old, old);
  const r = await removeStaleTemps(file);
  t.strictSame(r.removed.map((x) => path.basename(x)).sort(), [dead, garbage, liveOld].sort());
  t.strictSame(r.failed, []);
  t.strictSame(fs.readdirSync(dir).sort(), ['x.json', liveRecent, other].sort());
  t.strictSame(await removeStaleTemps(path.join(dir, 'missing', 'x.json')), { removed: [], failed: [] }, 'an absent directory');
});

t.test('ManilaStateFile.save() throws the disk\'s error and leaves no temp file and the old file when a step fails', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, MANILA_STATE_FILE);
  await new ManilaStateFile(dir, 'hv-test').save([]);
  const before = fs.readFileSync(file, 'utf8');
  for (const f of FAILURES) {
    const err = await rejection(new ManilaStateFile(dir, 'hv-test', { fs: fileFailingFs(file, f.step, f.code) }).save([]));
    t.equal((err as NodeJS.ErrnoException).code, f.code, `${f.step}: the errno error as the disk gave it`);
    t.equal(fs.readFileSync(file, 'utf8'), before, `${f.step}: the old file is intact`);
    t.strictSame(fs.readdirSync(dir), [MANILA_STATE_FILE], `${f.step}: no temp file is left`);
  }
});

t.test('ManilaStateFile.load() removes temp files of interrupted saves', async (t) => {
  const dir = tempDir(t);
  await new ManilaStateFile(dir, 'hv-test').save([]);
  fs.writeFileSync(path.join(dir, `${MANILA_STATE_FILE}.tmp-99999999-aaaaaa`), '{"half');
  const r = await new ManilaStateFile(dir, 'hv-test').load();
  t.equal(r.kind, 'ok');
  t.strictSame(fs.readdirSync(dir), [MANILA_STATE_FILE]);
});
