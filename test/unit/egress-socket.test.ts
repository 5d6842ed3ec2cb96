/**
 * The backend leg of a domain with its own egress (ADR 0011), over real
 * sockets on 127.0.0.1: with the native egressSocket shim the leg is bound
 * to the egress device (here `lo`) before it connects; without it, a
 * domain whose source IP is unique falls back to net.connect, and one
 * whose source IP another domain shares is refused (the fallback's `from`
 * rule cannot tell the two apart).
 */
import * as net from 'node:net';
import t from 'tap';
import { NativeError } from '../../src/errors';
import { egressSocket, loadNative } from '../../src/native';
import type { CloseReason } from '../../src/dataplane/proxy/session';
import { egressByDomain } from '../../src/dataplane/proxy/plane';
import { frontRig, sessionRig } from '../helpers/session-rig';

function echo(seen: { port: number }[]): net.Server {
  return net.createServer((c) => {
    seen.push({ port: c.remotePort ?? 0 });
    c.on('error', () => undefined); // the session's teardown resets it
    c.pipe(c);
  });
}

function roundTrip(guest: net.Socket, text: string): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    guest.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.length >= text.length) {
        resolve(got);
      }
    });
    guest.write(text);
  });
}

function closed(): { reason: Promise<CloseReason>; onClosed: (_s: unknown, r: CloseReason) => void } {
  let done: (r: CloseReason) => void = () => undefined;
  const reason = new Promise<CloseReason>((res) => (done = res));
  return { reason, onClosed: (_s, r) => done(r) };
}

const native = loadNative().status.loaded;
const root = process.getuid?.() === 0;

t.test('egressByDomain() marks source IPs two egress domains share', async (t) => {
  const e = (domain: string, iface: string, sourceIp: string): { domain: string; iface: string; via: null; table: number; sourceIp: string; backends: string[] } => ({ domain, iface, via: null, table: 1, sourceIp, backends: [] });
  const m = egressByDomain({ dataplane: 'proxy', guests: [], egress: [e('a', 'e0', '198.18.9.1'), e('b', 'e1', '198.18.9.1'), e('c', 'e2', '198.18.9.3')] });
  t.same([...m], [
    ['a', { iface: 'e0', sharedSourceIp: true }],
    ['b', { iface: 'e1', sharedSourceIp: true }],
    ['c', { iface: 'e2', sharedSourceIp: false }],
  ]);
  t.same([...egressByDomain({ dataplane: 'proxy', guests: [] })], []);
});

t.test('native egressSocket: the backend leg is bound to the device and relays', { skip: !native ? 'addon not loaded' : !root ? 'SO_BINDTODEVICE needs CAP_NET_RAW' : false }, async (t) => {
  const seen: { port: number }[] = [];
  let calls = 0;
  const bound = (device: string, address: string, port: number): net.Socket | null => {
    calls++;
    return egressSocket(device, address, port);
  };
  const { guest, counters } = await sessionRig(t, echo(seen), { egress: { iface: 'lo', sharedSourceIp: true }, egressSocket: bound });
  t.equal(await roundTrip(guest, 'ping through a bound leg'), 'ping through a bound leg');
  t.equal(calls, 1, 'the session asked for a bound socket');
  t.equal(seen.length, 1);
  t.same(counters.entries().filter((c) => c.name === 'sharegw_native_fallbacks_total'), [], 'no fallback');
});

t.test('native egressSocket: a missing device is a typed error', { skip: !native || !root ? 'addon not loaded, or not root' : false }, async (t) => {
  const thrown = (fn: () => unknown): unknown => {
    try {
      fn();
    } catch (err) {
      return err;
    }
    return null;
  };
  const nodev = thrown(() => egressSocket('sgw-no-such0', '127.0.0.1', 0));
  t.ok(nodev instanceof NativeError, 'a NativeError');
  t.equal((nodev as NativeError).errno, 'ENODEV');
  t.ok(thrown(() => egressSocket('lo', 'not-an-ip', 0)) instanceof NativeError, 'a bad address too');
});

t.test('no addon, source IP not shared: net.connect from the source IP, as before', async (t) => {
  const seen: { port: number }[] = [];
  const { guest } = await sessionRig(t, echo(seen), { egress: { iface: 'lo', sharedSourceIp: false }, egressSocket: () => null });
  t.equal(await roundTrip(guest, 'fallback'), 'fallback');
  t.equal(seen.length, 1);
});

t.test('no addon, source IP shared: refused without touching the backend', async (t) => {
  const seen: { port: number }[] = [];
  const c = closed();
  const { guest } = await sessionRig(t, echo(seen), { egress: { iface: 'lo', sharedSourceIp: true }, egressSocket: () => null }, { onClosed: c.onClosed });
  const guestClosed = guest.destroyed ? Promise.resolve() : new Promise((res) => guest.once('close', res));
  t.equal(await c.reason, 'egress-unavailable');
  await guestClosed;
  t.equal(seen.length, 0, 'no connection reached the backend');
});

t.test('the shim failing at run time: counted; shared source IP refused, unique one falls back', async (t) => {
  const failing = (): net.Socket | null => {
    throw new NativeError('SGW_ERR_NATIVE_CALL', 'egressSocket: No such device', { errno: 'ENODEV' });
  };
  const c = closed();
  const shared = await sessionRig(t, echo([]), { egress: { iface: 'lo', sharedSourceIp: true }, egressSocket: failing }, { onClosed: c.onClosed });
  t.equal(await c.reason, 'egress-unavailable');
  t.equal(shared.counters.get('sharegw_native_fallbacks_total', { shim: 'egressSocket', code: 'ENODEV' }), 1);

  const seen: { port: number }[] = [];
  const unique = await sessionRig(t, echo(seen), { egress: { iface: 'lo', sharedSourceIp: false }, egressSocket: failing });
  t.equal(await roundTrip(unique.guest, 'still works'), 'still works');
  t.equal(seen.length, 1);
});

t.test('a privileged port taken on the device: another privileged port is tried', { skip: root ? false : 'a guest on a privileged port needs root' }, async (t) => {
  const seen: { port: number }[] = [];
  const asked: number[] = [];
  const busyOnce = (device: string, address: string, port: number): net.Socket | null => {
    asked.push(port);
    if (asked.length === 1) {
      throw new NativeError('SGW_ERR_NATIVE_CALL', 'egressSocket: bind: Address already in use', { errno: 'EADDRINUSE' });
    }
    // The retry: an ordinary unbound socket stands in for the bound one.
    void device;
    void address;
    return new net.Socket({ allowHalfOpen: true });
  };
  const rig = await frontRig(t, echo(seen), { egress: { iface: 'lo', sharedSourceIp: true }, egressSocket: busyOnce });
  const guest = await rig.guest({ port: 600 + (process.pid % 300) });
  t.equal(await roundTrip(guest, 'retried'), 'retried');
  t.equal(asked.length, 2);
  t.ok(asked[0] !== undefined && asked[0] > 0 && asked[0] < 1024, `first the guest's own privileged port (${String(asked[0])})`);
  t.ok(asked[1] !== undefined && asked[1] >= 600 && asked[1] < 1024 && asked[1] !== asked[0], `then another privileged one (${String(asked[1])})`);
});
