import t from 'tap';
import { validateConfig } from '../../src/config/validate';
import type { ValidationResult } from '../../src/config/validate';
import { compileDesired } from '../../src/policy/policy';

/** Per-domain egress in the domain file, table allocation, shared backends (issue 6, ADR 0011). */

function validate(daemon: string, domains: Record<string, string>): ValidationResult {
  return validateConfig(
    { file: '/etc/sharegw/sharegwd.yaml', text: daemon },
    Object.entries(domains).map(([name, text]) => ({ file: `/etc/sharegw/domains.d/${name}`, text })),
    '/etc/sharegw/domains.d',
  );
}

function dom(name: string, sourceIp: string, extra = '', backend = '198.18.8.10'): string {
  return `name: ${name}
project: p-${name}
sourceIp: ${sourceIp}
${extra}shares:
  - id: ${name}-nfs
    proto: NFS
    exportLocations: ["${backend}:/export/${name}"]
    accessRules: [{ accessType: ip, accessTo: 198.19.0.0/16, accessLevel: rw }]
`;
}

function codes(r: ValidationResult): string[] {
  return r.problems.map((p) => `${p.file.replace(/^.*\//, '')} ${p.pointer} ${p.code}`);
}

t.test('validateConfig() reads egress with and without via and table', async (t) => {
  const r = validate('node: hv1\n', {
    'a.yaml': dom('a', '198.18.9.1', 'shareNetwork: net-a\negress: { interface: vlan1021 }\n'),
    'b.yaml': dom('b', '198.18.9.2', 'shareNetwork: net-b\negress: { interface: stor0, via: 198.18.9.254, table: 777 }\n'),
    'c.yaml': dom('c', '198.18.9.3', '', '198.18.0.100'),
  });
  t.same(r.problems, []);
  const [a, b, c] = r.config?.domains ?? [];
  t.match(a?.egress, { iface: 'vlan1021', via: null, explicitTable: false });
  t.ok((a?.egress?.table ?? 0) >= 20000 && (a?.egress?.table ?? 0) <= 20999, 'allocated from the default range');
  t.match(b?.egress, { iface: 'stor0', via: { text: '198.18.9.254' }, table: 777, explicitTable: true });
  t.equal(c?.egress, null, 'no egress: host routing');
  const desired = r.config === null ? null : compileDesired(r.config);
  t.same(desired?.egress?.map((e) => [e.domain, e.iface, e.via, e.table, e.sourceIp, e.backends]), [
    ['a', 'vlan1021', null, a?.egress?.table, '198.18.9.1', ['198.18.8.10']],
    ['b', 'stor0', '198.18.9.254', 777, '198.18.9.2', ['198.18.8.10']],
  ]);
  t.equal(desired?.rulePriority, 20000);
});

t.test('compileDesired() keeps the old shape when no domain has egress', async (t) => {
  const r = validate('node: hv1\n', { 'c.yaml': dom('c', '198.18.9.3') });
  // limits (issue 14) are carried always; egress keys only with egress.
  t.same(Object.keys(r.config === null ? {} : compileDesired(r.config)).sort(), ['dataplane', 'guests', 'limits']);
});

t.test('validateConfig() allocates tables deterministically, independent of file order', async (t) => {
  const files = (order: string[]): Record<string, string> => Object.fromEntries(order.map((n, i) => [`${n}.yaml`, dom(n, `198.18.9.${i + 1}`, 'egress: { interface: e0 }\n', `198.18.8.${i + 1}`)]));
  const tables = (r: ValidationResult): Record<string, number> => Object.fromEntries((r.config?.domains ?? []).map((d) => [d.name, d.egress?.table ?? -1]));
  const one = tables(validate('node: hv1\negress: { tables: "100-103" }\n', files(['x', 'y', 'z', 'w'])));
  const two = tables(validate('node: hv1\negress: { tables: "100-103" }\n', files(['w', 'z', 'y', 'x'])));
  t.same(one, two);
  t.same(Object.values(one).sort(), [100, 101, 102, 103], 'a full range is used without collisions');
  const full = validate('node: hv1\negress: { tables: "100-103" }\n', files(['x', 'y', 'z', 'w', 'v']));
  t.same(codes(full).map((c) => c.split(' ')[2]), ['SGW_ERR_CONFIG_NO_TABLE']);
});

t.test('validateConfig() refuses bad tables, ranges and duplicates', async (t) => {
  const bad = validate('node: hv1\negress: { tables: "250-260" }\n', {
    'a.yaml': dom('a', '198.18.9.1', 'egress: { interface: e0, table: 254 }\n', '198.18.8.1'),
    'b.yaml': dom('b', '198.18.9.2', 'egress: { interface: "bad name!", table: 70000 }\n', '198.18.8.2'),
    'c.yaml': dom('c', '198.18.9.3', 'egress: { interface: e1, table: 500, via: nope }\n', '198.18.8.3'),
    'd.yaml': dom('d', '198.18.9.4', 'egress: { interface: e2, table: 500, colour: red }\n', '198.18.8.4'),
  });
  t.same(codes(bad), [
    'a.yaml /egress/table SGW_ERR_CONFIG_BAD_TABLE',
    'b.yaml /egress/table SGW_ERR_CONFIG_SCHEMA',
    'c.yaml /egress/via SGW_ERR_CONFIG_BAD_IP',
    'd.yaml /egress/table SGW_ERR_CONFIG_DUPLICATE',
    'd.yaml /egress/colour SGW_ERR_CONFIG_UNKNOWN_KEY',
    'sharegwd.yaml /egress/tables SGW_ERR_CONFIG_BAD_TABLE_RANGE',
  ]);
});

t.test('validateConfig() refuses one backend address in two share networks unless one has its own egress', async (t) => {
  const clash = validate('node: hv1\n', {
    'a.yaml': dom('a', '198.18.9.1', 'shareNetwork: net-a\n'),
    'b.yaml': dom('b', '198.18.9.2', 'shareNetwork: net-b\n'),
  });
  t.same(codes(clash), ['b.yaml /shares/0/exportLocations/0 SGW_ERR_CONFIG_SHARED_BACKEND']);
  t.match(clash.problems[0]?.message, /198\.18\.8\.10.*"a" \(a\.yaml:\d+\).*b\.yaml and a\.yaml/, 'names the address and both files');
  const oneEgress = validate('node: hv1\n', {
    'a.yaml': dom('a', '198.18.9.1', 'shareNetwork: net-a\negress: { interface: e0 }\n'),
    'b.yaml': dom('b', '198.18.9.2', 'shareNetwork: net-b\n'),
  });
  t.same(oneEgress.problems, [], 'one domain with its own egress');
  const sameServer = validate('node: hv1\n', { 'a.yaml': dom('a', '198.18.9.1'), 'b.yaml': dom('b', '198.18.9.2') });
  t.same(sameServer.problems, [], 'no share networks: one shared (DHSS=False) server, as before');
  const sameNetwork = validate('node: hv1\n', { 'a.yaml': dom('a', '198.18.9.1', 'shareNetwork: n\n'), 'b.yaml': dom('b', '198.18.9.2', 'shareNetwork: n\n') });
  t.same(sameNetwork.problems, [], 'one share network: one server');
});

t.test('validateConfig() lets domains on separate egress links share a source IP, and nothing else', async (t) => {
  const shared = validate('node: hv1\n', {
    'a.yaml': dom('a', '198.18.9.1', 'shareNetwork: net-a\negress: { interface: e0 }\n'),
    'b.yaml': dom('b', '198.18.9.1', 'shareNetwork: net-b\negress: { interface: e1 }\n'),
  });
  t.same(shared.problems, [], 'two tenant networks gave the gateway the same address');
  const egress = compileDesired(shared.config ?? (() => { throw new Error('no config'); })()).egress ?? [];
  t.same(egress.map((e) => [e.domain, e.sourceIp, e.iface]), [['a', '198.18.9.1', 'e0'], ['b', '198.18.9.1', 'e1']]);

  const sameLink = validate('node: hv1\n', {
    'a.yaml': dom('a', '198.18.9.1', 'shareNetwork: net-a\negress: { interface: e0 }\n'),
    'b.yaml': dom('b', '198.18.9.1', 'shareNetwork: net-b\negress: { interface: e0 }\n'),
  });
  t.same(codes(sameLink), ['b.yaml /sourceIp SGW_ERR_CONFIG_DUPLICATE']);
  t.match(sameLink.problems[0]?.message, /already used on egress e0 by domain "a" \(a\.yaml:\d+\)/);

  const oneHostRouted = validate('node: hv1\n', {
    'a.yaml': dom('a', '198.18.9.1', 'shareNetwork: net-a\negress: { interface: e0 }\n'),
    'b.yaml': dom('b', '198.18.9.1', 'shareNetwork: net-b\n', '198.18.8.11'),
  });
  t.same(codes(oneHostRouted), ['b.yaml /sourceIp SGW_ERR_CONFIG_DUPLICATE'], 'a host-routed domain never shares its source IP');

  const three = validate('node: hv1\n', {
    'a.yaml': dom('a', '198.18.9.1', 'shareNetwork: net-a\negress: { interface: e0 }\n'),
    'b.yaml': dom('b', '198.18.9.1', 'shareNetwork: net-b\negress: { interface: e1 }\n'),
    'c.yaml': dom('c', '198.18.9.1', 'shareNetwork: net-c\negress: { interface: e1 }\n'),
  });
  t.same(codes(three), ['c.yaml /sourceIp SGW_ERR_CONFIG_DUPLICATE'], 'the third on b\'s link clashes with b, not a');
  t.match(three.problems[0]?.message, /domain "b"/);
});

