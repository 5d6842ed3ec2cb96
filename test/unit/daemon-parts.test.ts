/**
 * The pure parts of src/daemon/: revocation plans, kernel access records,
 * kernel cap use and the health view, without a host.
 */
import t from 'tap';
import type { DesiredState, GuestState, Grant } from '../../src/model/desired';
import type { KernelFlow } from '../../src/dataplane/kernel/conntrack';
import { planRevocations, revokedTuples, stillRevoked } from '../../src/daemon/revoke';
import { openRecord, zoneOf } from '../../src/daemon/access-log';
import { kernelCapUse } from '../../src/daemon/caps';
import { healthOf, statusLine } from '../../src/daemon/status';

const grant = (backend: string, port: number, level: 'rw' | 'ro' = 'rw', steer = false): Grant => ({
  backend,
  port,
  service: port === 445 ? 'smb' : 'nfs',
  proto: port === 445 ? 'CIFS' : 'NFS',
  level,
  shares: [{ id: 's', level }],
  ...(steer ? { nfs: { steer: true } } : {}),
} as Grant);
const guest = (key: string, grants: Grant[], over: Partial<GuestState> = {}): GuestState => ({
  key,
  domain: key.split('/')[0] ?? '',
  instance: key.split('/')[1] ?? '',
  iface: `t-${key.split('/')[1] ?? ''}`,
  guestIp: '169.254.1.2',
  gatewayIp: '169.254.1.1',
  sourceIp: '198.18.0.11',
  grants,
  ...over,
});
const state = (...guests: GuestState[]): DesiredState => ({ dataplane: 'kernel', guests });
const flow = (src: string, dst: string, dport: number, over: Partial<KernelFlow> = {}): KernelFlow => ({
  proto: 'tcp',
  state: 'ESTABLISHED',
  timeoutS: 100,
  orig: { src, dst, sport: 900, dport, packets: null, bytes: null },
  reply: { src: dst, dst: '198.18.0.11', sport: dport, dport: 900, packets: null, bytes: null },
  assured: true,
  ...over,
} as KernelFlow);

const A = guest('acme/g1', [grant('198.18.0.100', 445), grant('198.18.0.100', 2049)]);

t.test('planRevocations() leaves a level change to the kernel plane uncut', async (t) => {
  const next = state(guest('acme/g1', [grant('198.18.0.100', 445), grant('198.18.0.100', 2049, 'ro')]));
  t.same(planRevocations(state(A), next).all, []);
});

t.test('planRevocations() cuts a removed grant in the plane that carried it', async (t) => {
  const prev = state(guest('acme/g1', [grant('198.18.0.100', 445), grant('198.18.0.100', 2049, 'rw', true)]));
  const plan = planRevocations(prev, state(guest('acme/g1', [])));
  t.same(plan.viaKernel.map((r) => r.port), [445]);
  t.same(plan.viaProxy.map((r) => r.port), [2049]);
  t.equal(plan.all.length, 2);
});

t.test('revokedTuples() carries the source IP of the previous state', async (t) => {
  const plan = planRevocations(state(A), state());
  t.same(revokedTuples(plan.viaKernel, state(A)).map((x) => x.sourceIp), ['198.18.0.11', '198.18.0.11']);
});

t.test('stillRevoked() keeps a tuple out when its grant came back', async (t) => {
  const tuples = revokedTuples(planRevocations(state(A), state()).viaKernel, state(A));
  t.same(stillRevoked(tuples, state(A)), []);
  t.equal(stillRevoked(tuples, state()).length, 2);
  t.equal(stillRevoked(tuples, state(guest('acme/g1', A.grants, { sourceIp: '198.18.0.99' }))).length, 2, 'NATed to another source IP: still cut');
});

t.test('openRecord() shapes a granted kernel flow and skips others', async (t) => {
  const rec = openRecord(state(A), flow('169.254.1.2', '198.18.0.100', 2049));
  t.match(rec, { plane: 'kernel', domain: 'acme', guest: 'acme/g1', backend: '198.18.0.100', port: 2049, service: 'nfs', shares: ['s'], natSource: '198.18.0.11' });
  t.equal(openRecord(state(A), flow('169.254.1.2', '198.18.0.100', 111)), null, 'no grant');
  t.equal(openRecord(null, flow('169.254.1.2', '198.18.0.100', 2049)), null, 'nothing enforced yet');
  const dnat = flow('169.254.1.2', '198.18.0.100', 2049, { reply: { src: '169.254.1.1', dst: '169.254.1.2', sport: 20000, dport: 900, packets: null, bytes: null } });
  t.equal(openRecord(state(A), dnat), null, 'DNATed to a proxy listener');
});

t.test('zoneOf() is the egress table of the guest domain', async (t) => {
  const st = { ...state(A), egress: [{ domain: 'acme', table: 1042 }] } as unknown as DesiredState;
  t.equal(zoneOf(st, '169.254.1.2'), 1042);
  t.equal(zoneOf(state(A), '169.254.1.2'), undefined);
});

t.test('kernelCapUse() counts live kernel-plane flows per domain and backend', async (t) => {
  const flows = [
    flow('169.254.1.2', '198.18.0.100', 2049),
    flow('169.254.1.2', '198.18.0.100', 2049),
    flow('169.254.1.2', '198.18.0.100', 445, { state: 'TIME_WAIT' }),
    flow('169.254.9.9', '198.18.0.100', 2049),
  ];
  t.same(kernelCapUse(state(A), flows), [{ plane: 'kernel', backend: '198.18.0.100:2049', domain: 'acme', inUse: 2 }]);
});

t.test('healthOf() is ready only after a recent good sync', async (t) => {
  const ok = { ok: true, at: '', durationMs: 1, applied: true };
  const base = { readySent: true, lastSync: ok, lastSyncSuccessAt: 1000, syncIntervalMs: 10_000, generation: 3, now: 1010 };
  t.same(healthOf(base), { ready: true, reason: 'generation 3' });
  t.same(healthOf({ ...base, readySent: false }), { ready: false, reason: 'no successful sync yet' });
  t.same(healthOf({ ...base, lastSync: { ...ok, ok: false, error: { code: 'X', message: 'boom' } } }), { ready: false, reason: 'last sync failed: boom' });
  t.same(healthOf({ ...base, now: 1100 }), { ready: false, reason: 'no successful sync for 100 s' });
});

t.test('statusLine() says never before the first sync', async (t) => {
  t.equal(statusLine(1, 0, null), 'generation 1, 0 guests, last sync never');
  t.equal(statusLine(2, 3, { ok: false, at: '', durationMs: 0, applied: false }), 'generation 2, 3 guests, last sync FAILED');
});
