/**
 * The shipped systemd unit: systemd-analyze accepts it (alone and with the
 * cleanup drop-in), and it says what the daemon relies on.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';

const ROOT = path.resolve(__dirname, '../../..');
const UNIT = path.join(ROOT, 'systemd/sharegwd.service');
const text = fs.readFileSync(UNIT, 'utf8');
const directives = (key: string): string[] =>
  text
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));

t.test('systemd-analyze verify accepts the unit and the unit with the cleanup drop-in', async (t) => {
  const has = spawnSync('systemd-analyze', ['--version']);
  t.equal(has.status, 0, 'systemd-analyze is installed (Debian package systemd; the lab installs it)');
  const r = spawnSync('systemd-analyze', ['verify', UNIT], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stderr.trim(), '', 'no warnings');
  // The drop-in, installed next to a copy of the unit.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgw-unit-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.copyFileSync(UNIT, path.join(dir, 'sharegwd.service'));
  fs.mkdirSync(path.join(dir, 'sharegwd.service.d'));
  fs.copyFileSync(path.join(ROOT, 'systemd/sharegwd.service.d/cleanup-on-stop.conf.example'), path.join(dir, 'sharegwd.service.d/cleanup-on-stop.conf'));
  const r2 = spawnSync('systemd-analyze', ['verify', path.join(dir, 'sharegwd.service')], { encoding: 'utf8' });
  t.equal(r2.status, 0, r2.stderr);
});

t.test('the unit states what the daemon relies on', async (t) => {
  t.same(directives('Type'), ['notify'], 'readiness after the first sync');
  t.same(directives('NotifyAccess'), ['all'], 'systemd-notify runs as a child process');
  t.ok(directives('WatchdogSec').length === 1, 'watchdog');
  t.same(directives('ExecStopPost'), [], 'fail-static: no cleanup on stop in the main unit');
  t.same(directives('ExecReload').slice(-1), ['/bin/kill -HUP $MAINPID']);
  const caps = directives('CapabilityBoundingSet')[0]?.split(' ').sort();
  t.same(caps, ['CAP_NET_ADMIN', 'CAP_NET_BIND_SERVICE', 'CAP_NET_RAW']);
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  t.ok(directives('ExecStart')[0]?.includes(`/usr/lib/sharegw/${pkg.bin['sharegwd'] ?? '?'}`), 'ExecStart runs the package bin');
});
