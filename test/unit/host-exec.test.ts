/**
 * host/exec.ts, the one process runner, against /bin/sh: exit status,
 * stdin, timeout, caps, streamed lines, start failures.
 */
import t from 'tap';
import { run, spawnStream } from '../../src/host/exec';

const sh = (script: string): { file: string; args: string[] } => ({ file: '/bin/sh', args: ['-c', script] });

t.test('run() returns the exit code, stdout and stderr when the command exits', async (t) => {
  const r = await run({ ...sh('cat; echo oops >&2; exit 3'), input: 'hello\n', timeoutMs: 10_000 });
  t.match(r, { kind: 'exited', code: 3, signal: null, stdout: 'hello\n', stderr: 'oops\n', timedOut: false, overflowed: false });
});

t.test('run() reports spawn-failed when the binary does not exist', async (t) => {
  const r = await run({ file: '/nonexistent/sgw-no-such-tool', args: [], timeoutMs: 10_000 });
  t.equal(r.kind, 'spawn-failed');
  t.equal(r.kind === 'spawn-failed' ? r.error.code : '', 'ENOENT');
});

t.test('run() kills the child and says timedOut when it runs past the timeout', async (t) => {
  const r = await run({ ...sh('exec sleep 30'), timeoutMs: 200 });
  t.match(r, { kind: 'exited', code: null, signal: 'SIGKILL', timedOut: true });
});

t.test('run() keeps only the cap and kills the child when overflow is kill', async (t) => {
  const r = await run({ ...sh('head -c 100000 /dev/zero; exec sleep 30'), timeoutMs: 10_000, maxStdoutBytes: 1000, overflow: 'kill' });
  t.match(r, { kind: 'exited', overflowed: true, timedOut: false, signal: 'SIGKILL' });
  t.equal(r.kind === 'exited' ? r.stdout.length : -1, 1000);
});

t.test('run() streams stdout by line and drops an overlong line whole', async (t) => {
  const lines: string[] = [];
  const r = await run({ ...sh(`echo a; head -c 50 /dev/zero | tr '\\0' x; echo; printf b`), timeoutMs: 10_000, maxLineChars: 10, onLine: (l) => lines.push(l) });
  t.match(r, { kind: 'exited', code: 0, stdout: '' });
  t.same(lines, ['a', 'b']);
});

t.test('run() reports line-failed with what onLine threw', async (t) => {
  const boom = new Error('boom');
  const r = await run({
    ...sh('echo a; exec sleep 30'),
    timeoutMs: 10_000,
    onLine: () => {
      throw boom;
    },
  });
  t.equal(r.kind, 'line-failed');
  t.equal(r.kind === 'line-failed' ? r.error : null, boom);
});

t.test('spawnStream() hands lines over and calls onExit once with the stderr tail', async (t) => {
  const lines: string[] = [];
  const exit = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    spawnStream({ ...sh('echo one; echo two; echo bad >&2; exit 4'), onLine: (l) => lines.push(l), onExit: (code, stderr) => resolve({ code, stderr }) });
  });
  t.same(lines, ['one', 'two']);
  t.same(exit, { code: 4, stderr: 'bad' });
});

t.test('spawnStream() reports a start failure through onExit', async (t) => {
  const code = await new Promise<number | null>((resolve) => {
    spawnStream({ file: '/nonexistent/sgw-no-such-tool', args: [], onLine: () => undefined, onExit: (c) => resolve(c) });
  });
  t.not(code, 0);
});

t.test('spawnStream().stop() ends the stream', async (t) => {
  const code = await new Promise<number | null>((resolve) => {
    const h = spawnStream({ ...sh('exec sleep 30'), onLine: () => undefined, onExit: (c) => resolve(c) });
    setTimeout(() => h.stop(), 50);
  });
  t.equal(code, null);
});

t.test('run() reports spawn-failed, not a rejection, when Node refuses the arguments', async (t) => {
  const r = await run({ file: '/bin/echo', args: ['a\0b'], timeoutMs: 10_000 });
  t.equal(r.kind, 'spawn-failed');
});
