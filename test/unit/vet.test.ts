import t from 'tap';
import type { DesiredState, GuestState } from '../../src/model/desired';
import { vetTunnels } from '../../src/tunnels/vet';

const g = (key: string, iface: string): GuestState => ({ key, domain: 'd', instance: key, iface, guestIp: '169.254.1.2', gatewayIp: '169.254.1.1', sourceIp: '198.18.0.11', grants: [] });
const D: DesiredState = { dataplane: 'kernel', guests: [g('a', 'tap1'), g('b', 'eth0'), g('c', 'vb'), g('d', 'missing'), g('e', 'tap2')] };
const KINDS = ['tun', 'veth', 'macvtap'];

t.test('vetTunnels() keeps tunnels, refuses the uplink and interfaces with host addresses', async (t) => {
  const links = new Map([
    ['tap1', { kind: 'tun', addrs: [] }],
    ['eth0', { kind: '', addrs: [{ local: '203.0.113.5' }] }],
    ['vb', { kind: 'veth', addrs: [{ local: '198.18.0.1' }] }],
    ['tap2', { kind: 'tun', addrs: [{ local: '169.254.9.1', peer: '169.254.9.2' }] }],
  ]);
  const r = vetTunnels(D, links, KINDS);
  t.same(r.desired.guests.map((x) => x.key), ['a', 'd', 'e'], 'tunnels, missing ones, and tunnels with stale peer addresses are kept');
  t.same([...r.refused.keys()], ['b', 'c']);
  t.match(r.refused.get('b')?.reason, /eth0 is not a tunnel \(link kind "physical"\)/);
  t.match(r.refused.get('c')?.reason, /vb carries host addresses \(198\.18\.0\.1\)/);
});
