/**
 * listFlows() against a fake `conntrack` (SGW_CONNTRACK): arguments, output
 * streamed in many chunks with garbage and an overlong line, failures.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { SgwError } from '../../src/errors';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgw-ct-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const fake = path.join(dir, 'conntrack');
const argsFile = path.join(dir, 'args');
const outFile = path.join(dir, 'out');
fs.writeFileSync(
  fake,
  `#!/bin/sh
echo "$@" > "${argsFile}"
case "$FAKE_CT_MODE" in
  ok) cat "${outFile}"; echo "conntrack v1.4.7 (conntrack-tools): 3 flow entries have been shown." >&2; exit 0 ;;
  fail) echo "conntrack v1.4.7 (conntrack-tools): Operation failed: Permission denied" >&2; exit 1 ;;
  kill) kill -9 $$ ;;
esac
exit 9
`,
  { mode: 0o755 },
);
// Read once, when the module loads: set it before the dynamic import.
process.env['SGW_CONNTRACK'] = fake;

const line = (sport: number, src = '169.254.1.2'): string =>
  `tcp      6 431998 ESTABLISHED src=${src} dst=198.18.0.100 sport=${sport} dport=2049 packets=3 bytes=180 src=198.18.0.100 dst=198.18.0.11 sport=2049 dport=${sport} packets=2 bytes=120 [ASSURED] mark=0 use=1`;

function mode(m: string): void {
  process.env['FAKE_CT_MODE'] = m;
}

async function failure(p: Promise<unknown>): Promise<{ isSgw: boolean; code: string; message: string }> {
  try {
    await p;
  } catch (err) {
    return { isSgw: err instanceof SgwError, code: (err as SgwError).code, message: (err as Error).message };
  }
  throw new Error('expected a rejection');
}

t.test('listFlows() runs conntrack -L -p tcp and parses a large, messy output', async (t) => {
  const { listFlows } = await import('../../src/dataplane/kernel/conntrack');
  const { CONNTRACK } = await import('../../src/host/conntrack');
  t.equal(CONNTRACK, fake);
  // About 500 KiB: many pipe chunks, lines split across them. An overlong
  // line (parseable, but no conntrack entry is 20 KiB) is dropped whole,
  // and the line after it still counts.
  const lines: string[] = [];
  for (let i = 1; i <= 2000; i++) {
    lines.push(line(i, i % 2 === 0 ? '169.254.1.2' : '169.254.2.2'));
    if (i % 100 === 0) {
      lines.push('garbage line', '');
    }
    if (i === 1000) {
      lines.push(`${line(60000)}${' mark=0'.repeat(3000)}`);
    }
  }
  fs.writeFileSync(outFile, `${lines.join('\n')}\n${line(65000)}`); // The last line has no newline.
  mode('ok');
  const all = await listFlows();
  t.equal(fs.readFileSync(argsFile, 'utf8'), '-L -p tcp\n');
  t.equal(all.length, 2001);
  t.strictSame(
    all.map((f) => f.orig.sport),
    [...Array.from({ length: 2000 }, (_, i) => i + 1), 65000],
    'every entry once, in order; the overlong line is dropped',
  );
  t.strictSame(all[0]?.orig, { src: '169.254.2.2', dst: '198.18.0.100', sport: 1, dport: 2049, packets: 3, bytes: 180 });
  const mine = await listFlows((f) => f.orig.src === '169.254.1.2');
  t.equal(mine.length, 1001, 'keep filters while reading');
  t.ok(mine.every((f) => f.orig.src === '169.254.1.2'));
});

t.test('listFlows() fails with SGW_ERR_CONNTRACK_FAILED and the first stderr line', async (t) => {
  const { listFlows } = await import('../../src/dataplane/kernel/conntrack');
  mode('fail');
  t.strictSame(await failure(listFlows()), {
    isSgw: true,
    code: 'SGW_ERR_CONNTRACK_FAILED',
    message: `${fake} -L exited 1: conntrack v1.4.7 (conntrack-tools): Operation failed: Permission denied`,
  });
  mode('kill');
  t.strictSame(await failure(listFlows()), { isSgw: true, code: 'SGW_ERR_CONNTRACK_FAILED', message: `${fake} -L was killed (SIGKILL; the limit is 30 s)` });
});

t.test('listFlows() turns a throwing filter into a rejection, not a crash', async (t) => {
  const { listFlows } = await import('../../src/dataplane/kernel/conntrack');
  fs.writeFileSync(outFile, `${line(1)}\n${line(2)}\n`);
  mode('ok');
  const e = await failure(
    listFlows(() => {
      throw new Error('boom');
    }),
  );
  t.strictSame(e, { isSgw: true, code: 'SGW_ERR_CONNTRACK_FAILED', message: `reading ${fake} -L output failed: boom` });
});

t.test('listFlows() reports a missing binary', async (t) => {
  const { listFlows } = await import('../../src/dataplane/kernel/conntrack');
  fs.renameSync(fake, `${fake}.away`);
  t.teardown(() => fs.renameSync(`${fake}.away`, fake));
  const e = await failure(listFlows());
  t.equal(e.code, 'SGW_ERR_CONNTRACK_FAILED');
  t.match(e.message, /^cannot run .*conntrack: spawn .*ENOENT$/);
});
