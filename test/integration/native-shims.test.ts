/**
 * The native shims against the real kernel, in a network namespace of the
 * test's own (sgwn-<pid>, loopback and 198.18.77.0/24 on a dummy link; it
 * does not need the lab and removes the namespace at the end):
 *
 * - originalDst: the same connections, redirected, through both
 *   implementations: SO_ORIGINAL_DST behind one REDIRECT (v4 and v6, on a
 *   dual-stack listener) and the capture-port fallback behind a DNAT per
 *   destination (ADR 0003); both must name the same original destination.
 * - TCP_USER_TIMEOUT: a backend blackholed (iptables DROP) mid-transfer is
 *   detected within the configured user timeout through the JavaScript and
 *   the splice relay, and the guest gets a reset; with the fallback
 *   (keepalive only) the flow is still hanging after that time, which is
 *   the reason the shim exists.
 *
 * Each case runs test/helpers/native-probe.js inside the namespace.
 */
import * as path from 'node:path';
import t from 'tap';
import { loadNative } from '../../src/native';
import { ROOT, run } from '../helpers/lab';

const NS = `sgwn-${process.pid}`;
const PROBE = path.join(ROOT, 'dist/test/helpers/native-probe.js');
const NATIVE = loadNative().status;
t.comment(`addon: ${NATIVE.loaded ? 'loaded' : `not loaded (${String(NATIVE.reason)})`}`);

async function sh(cmd: string, args: string[]): Promise<void> {
  const r = await run(cmd, args, { ns: NS });
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')}: exit ${String(r.code)}: ${r.stderr}`);
  }
}

async function probe(mode: string, o: unknown): Promise<Record<string, unknown>> {
  // The probe runs with this test's environment (SGW_NATIVE=off applies to it too).
  const r = await run(process.execPath, [PROBE, mode, JSON.stringify(o)], { ns: NS, timeoutMs: 60_000 });
  if (r.code !== 0) {
    throw new Error(`native-probe ${mode} failed: ${r.stderr}`);
  }
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

t.before(async () => {
  if (process.getuid?.() !== 0) {
    throw new Error('this test needs root: it creates a network namespace and iptables rules');
  }
  await run('ip', ['netns', 'del', NS]);
  const add = await run('ip', ['netns', 'add', NS]);
  if (add.code !== 0) {
    throw new Error(`ip netns add ${NS}: ${add.stderr}`);
  }
  await sh('ip', ['link', 'set', 'lo', 'up']);
  await sh('ip', ['link', 'add', 'sgwn0', 'type', 'veth', 'peer', 'name', 'sgwn1']);
  await sh('ip', ['link', 'set', 'sgwn1', 'up']);
  await sh('ip', ['addr', 'add', '198.18.77.254/24', 'dev', 'sgwn0']);
  await sh('ip', ['link', 'set', 'sgwn0', 'up']);
});
t.teardown(async () => {
  await run('ip', ['netns', 'del', NS]);
});

const DESTS = [
  { host: '198.18.77.1', port: 2049 },
  { host: '198.18.77.1', port: 111 },
  { host: '198.18.77.2', port: 445 },
  { host: '::1', port: 2049 },
];
const REDIRECT_PORT = 15000;

async function flushNat(): Promise<void> {
  await sh('iptables', ['-w', '-t', 'nat', '-F', 'OUTPUT']);
  await sh('ip6tables', ['-w', '-t', 'nat', '-F', 'OUTPUT']);
}

/** What one implementation says about each connection of DESTS. */
async function originalDsts(impl: 'native' | 'fallback'): Promise<unknown[]> {
  await flushNat();
  let listen: unknown[];
  if (impl === 'native') {
    // One REDIRECT target for every destination, v4 and v6 alike.
    await sh('iptables', ['-w', '-t', 'nat', '-A', 'OUTPUT', '-d', '198.18.77.0/24', '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(REDIRECT_PORT)]);
    await sh('ip6tables', ['-w', '-t', 'nat', '-A', 'OUTPUT', '-d', '::1', '-p', 'tcp', '--dport', '2049', '-j', 'REDIRECT', '--to-ports', String(REDIRECT_PORT)]);
    listen = [{ host: '::', port: REDIRECT_PORT }];
  } else {
    // ADR 0003: each destination to its own local port.
    listen = [];
    for (const [i, d] of DESTS.entries()) {
      const local = REDIRECT_PORT + 1 + i;
      const v6 = d.host.includes(':');
      const to = v6 ? `[::1]:${local}` : `127.0.0.1:${local}`;
      await sh(v6 ? 'ip6tables' : 'iptables', ['-w', '-t', 'nat', '-A', 'OUTPUT', '-d', d.host, '-p', 'tcp', '--dport', String(d.port), '-j', 'DNAT', '--to-destination', to]);
      listen.push({ host: v6 ? '::1' : '127.0.0.1', port: local, dest: { address: d.host, port: d.port } });
    }
  }
  const out = await probe('original-dst', { impl, listen, connects: DESTS });
  if (out['impl'] !== impl) {
    throw new Error(`the probe ran ${String(out['impl'])}, not ${impl}`);
  }
  return out['results'] as unknown[];
}

t.test('originalDst: SO_ORIGINAL_DST and the capture-port fallback name the same original destination (v4 and v6)', async (t) => {
  const want = DESTS.map((d) => ({ connect: d, original: { address: d.host, port: d.port } }));
  t.test('fallback', async (t) => {
    t.strictSame(await originalDsts('fallback'), want, 'the capture port names the destination');
  });
  t.test('native', { skip: NATIVE.loaded ? false : `addon not loaded (${String(NATIVE.reason)})` }, async (t) => {
    t.strictSame(await originalDsts('native'), want, 'SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST behind one REDIRECT');
  });
});

t.test('originalDst (native): a connection that was not redirected has no original destination', { skip: NATIVE.loaded ? false : `addon not loaded (${String(NATIVE.reason)})` }, async (t) => {
  await flushNat();
  const out = await probe('original-dst', { impl: 'native', listen: [{ host: '127.0.0.1', port: REDIRECT_PORT }], connects: [{ host: '127.0.0.1', port: REDIRECT_PORT }] });
  t.strictSame(out['results'], [{ connect: { host: '127.0.0.1', port: REDIRECT_PORT }, original: null }]);
});

const USER_TIMEOUT_MS = 3000;
// Linux clamps the retransmission timer to what is left of the user
// timeout (since 4.19), so the drop comes at the timeout plus scheduling.
const SLACK_MS = 1500;

for (const relay of ['js', 'splice'] as const) {
  t.test(`TCP_USER_TIMEOUT (native, ${relay} relay): a blackholed backend is detected within the user timeout and the guest is reset`, { skip: NATIVE.loaded ? false : `addon not loaded (${String(NATIVE.reason)})` }, async (t) => {
    await run('iptables', ['-w', '-F', 'INPUT'], { ns: NS });
    const out = await probe('blackhole', { impl: 'native', relay, userTimeoutMs: USER_TIMEOUT_MS, dropAfterMs: 500, waitMs: USER_TIMEOUT_MS + 5000 });
    t.equal(out['relay'], relay === 'splice' ? 'native' : 'fallback', `relayed by the ${relay} relay`);
    const guest = out['guest'] as { afterMs: number; how: string } | null;
    const session = out['session'] as { afterMs: number; reason: string } | null;
    t.ok(guest !== null, 'the guest side ended');
    t.equal(guest?.how, 'ECONNRESET', 'with a reset, not a hang');
    t.equal(session?.reason, 'backend-error');
    const ms = session?.afterMs ?? Infinity;
    t.ok(ms >= USER_TIMEOUT_MS - 100 && ms <= USER_TIMEOUT_MS + SLACK_MS, `detected ${ms} ms after the drop (user timeout ${USER_TIMEOUT_MS} ms)`);
    t.match(out['counters'], { 'sharegw_proxy_backend_errors_total{code="ETIMEDOUT"}': 1 }, 'counted as ETIMEDOUT');
  });
}

t.test('keepalive only (fallback): the same blackholed transfer still hangs after the user timeout', async (t) => {
  await run('iptables', ['-w', '-F', 'INPUT'], { ns: NS });
  const out = await probe('blackhole', { impl: 'fallback', relay: 'js', userTimeoutMs: USER_TIMEOUT_MS, dropAfterMs: 500, waitMs: USER_TIMEOUT_MS + SLACK_MS + 1000 });
  t.equal(out['guest'], null, 'no error reached the guest: unacknowledged data waits for tcp_retries2 (minutes)');
  t.match(out['session'], { reason: 'shutdown' }, 'still open until the probe shut it down');
});
