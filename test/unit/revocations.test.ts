import t from 'tap';
import type { DesiredState, GuestState, Grant } from '../../src/model/desired';
import { revocations } from '../../src/policy/revocations';

const grant = (backend: string, port: number, level: 'rw' | 'ro' = 'rw'): Grant => ({ backend, port, service: port === 445 ? 'smb' : 'nfs', proto: port === 445 ? 'CIFS' : 'NFS', level, shares: [{ id: 's', level }] });
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

const A = guest('acme/g1', [grant('198.18.0.100', 445), grant('198.18.0.100', 2049)]);
const B = guest('beta/g2', [grant('198.18.0.101', 2049)], { guestIp: '169.254.2.2', sourceIp: '198.18.0.12' });

t.test('nothing to revoke on the first sync or when nothing changed', async (t) => {
  t.same(revocations(null, state(A, B)), []);
  t.same(revocations(state(A, B), state(A, B)), []);
  t.same(revocations(state(A), state(A, B)), [], 'adding a guest revokes nothing');
  t.same(revocations(state(A, B), state(guest('acme/g1', [...A.grants, grant('198.18.0.102', 2049)]), B)), [], 'adding a grant revokes nothing');
});

t.test('a removed grant is revoked for that guest only', async (t) => {
  const next = state(guest('acme/g1', [grant('198.18.0.100', 2049)]), B);
  t.same(revocations(state(A, B), next), [{ guestKey: 'acme/g1', guestIp: '169.254.1.2', backend: '198.18.0.100', port: 445, reason: 'grant-removed' }]);
});

t.test('a level change is revoked so the new level applies on reconnect', async (t) => {
  const next = state(guest('acme/g1', [grant('198.18.0.100', 445), grant('198.18.0.100', 2049, 'ro')]), B);
  t.same(revocations(state(A, B), next).map((r) => `${r.port} ${r.reason}`), ['2049 level-changed']);
});

t.test('a removed guest loses every grant, with its old tunnel address', async (t) => {
  t.same(revocations(state(A, B), state(A)), [{ guestKey: 'beta/g2', guestIp: '169.254.2.2', backend: '198.18.0.101', port: 2049, reason: 'guest-removed' }]);
});

t.test('a new tunnel address or interface or source IP cuts all flows of the guest', async (t) => {
  const moved = state(guest('acme/g1', A.grants, { guestIp: '169.254.1.6' }), B);
  const r = revocations(state(A, B), moved);
  t.same(r.map((x) => `${x.guestIp} ${x.port} ${x.reason}`), ['169.254.1.2 445 tunnel-changed', '169.254.1.2 2049 tunnel-changed'], 'old address is the one conntrack knows');
  t.same(revocations(state(A), state(guest('acme/g1', A.grants, { iface: 'other' }))).map((x) => x.reason), ['tunnel-changed', 'tunnel-changed']);
  t.same(revocations(state(A), state(guest('acme/g1', A.grants, { sourceIp: '198.18.0.99' }))).map((x) => x.reason), ['source-changed', 'source-changed']);
});

t.test('a changed SMB policy (floor, encryption, shares) cuts that grant so the new policy applies on reconnect', async (t) => {
  const smb = (over: Partial<NonNullable<Grant['smb']>> = {}): Grant => ({ ...grant('198.18.0.100', 445), smb: { minDialect: 0x0300, encryptionRequired: false, shares: ['acme'], steer: false, ...over } });
  const before = state(guest('acme/g1', [smb()]));
  t.same(revocations(before, state(guest('acme/g1', [smb()]))), [], 'same policy: nothing cut');
  for (const over of [{ minDialect: 0x0311 }, { encryptionRequired: true }, { shares: ['acme', 'more'] }, { steer: true }]) {
    t.same(revocations(before, state(guest('acme/g1', [smb(over)]))).map((r) => r.reason), ['policy-changed'], JSON.stringify(over));
  }
});

t.test('NFS: ro and the identity policy cut the grant; the export list (read live by the proxy) does not', async (t) => {
  const id = { rootSquash: true, anonUid: 65534, anonGid: 65534, uids: null, gids: null, idOffset: null };
  const nfs = (over: Partial<NonNullable<Grant['nfs']>> = {}): Grant => ({ ...grant('198.18.0.100', 2049), nfs: { readOnly: false, identity: id, exports: ['/export/a'], steer: true, ...over } });
  const before = state(guest('acme/g1', [nfs()]));
  t.same(revocations(before, state(guest('acme/g1', [nfs({ exports: ['/export/a', '/export/b'] })]))), [], 'a share added on the backend: flows stay');
  t.same(revocations(before, state(guest('acme/g1', [nfs({ exports: [] })]))), [], 'one removed: flows stay (new LOOKUPs see the new list)');
  for (const over of [{ readOnly: true }, { identity: { ...id, idOffset: 131072 } }, { identity: null }, { identity: { ...id, rootSquash: false } }]) {
    t.same(revocations(before, state(guest('acme/g1', [nfs(over)]))).map((r) => r.reason), ['policy-changed'], JSON.stringify(over));
  }
});
