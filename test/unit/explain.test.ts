import t from 'tap';
import type { SgwConfig } from '../../src/model/config';
import type { DesiredState } from '../../src/model/desired';
import { explain, resolveGuestRef } from '../../src/policy/explain';
import type { Explanation, ExplainReason } from '../../src/policy/explain';
import { compileDesired, decide } from '../../src/policy/policy';
import { parseIp } from '../../src/util/ip';
import { configFrom, labYaml } from '../helpers/configs';

// A third domain next to the lab's two: a guest with an IPv6 tenant
// address, ro and rw rules, rules the gateway ignores (user, cert, cephx),
// NFSv3 with its own mountd port, a share without rules, and a NAS address
// (198.18.0.100) shared with acme.
const GAMMA = `name: gamma
project: 5e6f7a8b9c0d41e2a3b4c5d6e7f8a9b0
sourceIp: 198.18.0.13
guests:
  - instance: g3
    tunnel: { interface: sgwt-g3, guestIp: 169.254.3.2, gatewayIp: 169.254.3.1 }
    addresses: [198.19.3.5, "2001:db8:3::5"]
  - instance: g4
    tunnel: { interface: sgwt-g4, guestIp: 169.254.4.2, gatewayIp: 169.254.4.1 }
    addresses: [198.19.4.5]
shares:
  - id: gamma-v3
    proto: NFS
    nfsv3: true
    mountdPort: 32767
    exportLocations: ["198.18.0.100:/export/gamma", "198.18.0.103:/export/gamma"]
    accessRules:
      - { accessType: user, accessTo: alice, accessLevel: rw }
      - { accessType: ip, accessTo: 198.19.3.0/24, accessLevel: ro }
      - { accessType: ip, accessTo: "2001:db8:3::/64", accessLevel: rw }
  - id: gamma-smb
    proto: CIFS
    exportLocations: ['\\\\198.18.0.103\\gamma']
    accessRules:
      - { accessType: cephx, accessTo: client.gamma, accessLevel: rw }
      - { accessType: cert, accessTo: gamma.example, accessLevel: rw }
      - { accessType: ip, accessTo: 198.19.4.5, accessLevel: ro }
  - id: gamma-empty
    proto: NFS
    exportLocations: ["198.18.0.104:/export/empty"]
`;

function labConfig(): SgwConfig {
  const y = labYaml('kernel');
  return configFrom(y.daemon, y.domains);
}

function richConfig(): SgwConfig {
  const y = labYaml('kernel');
  return configFrom(y.daemon, { ...y.domains, 'gamma.yaml': GAMMA });
}

const lab = labConfig();
const labDesired = compileDesired(lab);
const rich = richConfig();
const richDesired = compileDesired(rich);

function ex(guest: string, to: string, cfg: SgwConfig = rich, desired: DesiredState = richDesired): Explanation {
  const i = to.lastIndexOf(':');
  return explain(cfg, desired, guest, { addr: to.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(to.slice(i + 1)) });
}

t.test('resolveGuestRef() resolves keys, instance ids and tunnel names', async (t) => {
  const guests = [
    { key: 'acme/g1', instance: 'g1', iface: 'sgwt-g1' },
    { key: 'beta/g2', instance: 'g2', iface: 'sgwt-g2' },
    // An instance id that is also another guest's tunnel name.
    { key: 'odd/sgwt-g2', instance: 'sgwt-g2', iface: 'sgwt-x' },
  ];
  t.strictSame(resolveGuestRef(guests, 'acme/g1'), { guest: guests[0], by: 'key' });
  t.strictSame(resolveGuestRef(guests, 'g1'), { guest: guests[0], by: 'instance' });
  t.strictSame(resolveGuestRef(guests, 'sgwt-g1'), { guest: guests[0], by: 'tunnel' });
  t.strictSame(resolveGuestRef(guests, 'sgwt-x'), { guest: guests[2], by: 'tunnel' });
  t.strictSame(resolveGuestRef(guests, 'odd/sgwt-g2'), { guest: guests[2], by: 'key' });
  t.strictSame(resolveGuestRef(guests, 'sgwt-g2'), { guest: null, candidates: [guests[1], guests[2]] }, 'one name for two guests resolves to none');
  t.strictSame(resolveGuestRef(guests, 'G1'), { guest: null, candidates: [] }, 'matching is exact (case too)');
  t.strictSame(resolveGuestRef(guests, 'acme'), { guest: null, candidates: [] }, 'a domain is not a guest');
  t.strictSame(resolveGuestRef(guests, ''), { guest: null, candidates: [] });
});

t.test('explain() allows with the share, rule and address that match', async (t) => {
  const e = ex('acme/g1', '198.18.0.100:2049', lab, labDesired);
  t.strictSame(
    { allowed: e.allowed, reason: e.reason, detail: e.detail, enforced: e.enforced, to: e.to, grant: e.grant },
    {
      allowed: true,
      reason: null,
      detail: null,
      enforced: true,
      to: { addr: '198.18.0.100', port: 2049 },
      grant: { backend: '198.18.0.100', port: 2049, service: 'nfs', proto: 'NFS', level: 'rw', shares: [{ id: 'acme-nfs', level: 'rw' }], nfs: { readOnly: false, identity: null, exports: ['/export/acme'], steer: false } },
    },
  );
  t.strictSame(e.guest, {
    key: 'acme/g1',
    domain: 'acme',
    instance: 'g1',
    tunnel: 'sgwt-g1',
    guestIp: '169.254.1.2',
    sourceIp: '198.18.0.11',
    addresses: ['198.19.0.5'],
    matchedBy: 'key',
    egress: null,
  });
  t.equal(e.summary, 'allowed: acme/g1 may reach 198.18.0.100:2049 (nfs, rw) through share acme-nfs rule #0 (198.19.0.0/24 rw matches 198.19.0.5)');
  t.strictSame(e.shares, [
    {
      id: 'acme-nfs',
      name: null,
      proto: 'NFS',
      exportLocations: ['198.18.0.100:/export/acme'],
      ports: [
        { port: 2049, service: 'nfs' },
        { port: 111, service: 'portmap' },
        { port: 20048, service: 'mountd' },
      ],
      servesPort: true,
      level: 'rw',
      grants: true,
      rules: [{ index: 0, type: 'ip', accessTo: '198.19.0.0/24', level: 'rw', matches: ['198.19.0.5'], result: 'match' }],
    },
    {
      id: 'acme-smb',
      name: null,
      proto: 'CIFS',
      exportLocations: ['\\\\198.18.0.100\\acme'],
      ports: [{ port: 445, service: 'smb' }],
      servesPort: false,
      level: 'rw',
      grants: false,
      rules: [{ index: 0, type: 'ip', accessTo: '198.19.0.5', level: 'rw', matches: ['198.19.0.5'], result: 'match' }],
    },
  ]);
  t.strictSame(e.allowedPorts, [
    { port: 111, service: 'portmap', level: 'rw', shares: ['acme-nfs'] },
    { port: 445, service: 'smb', level: 'rw', shares: ['acme-smb'] },
    { port: 2049, service: 'nfs', level: 'rw', shares: ['acme-nfs'] },
    { port: 20048, service: 'mountd', level: 'rw', shares: ['acme-nfs'] },
  ]);
  t.strictSame(e.lines, [
    e.summary,
    'guest acme/g1: domain acme, instance g1, tunnel sgwt-g1 (guest IP 169.254.1.2), tenant addresses 198.19.0.5; backends see 198.18.0.11',
    'share acme-nfs (NFS, serves 2049 nfs, 111 portmap, 20048 mountd): grants rw on 2049',
    '  rule #0 ip 198.19.0.0/24 rw: matches 198.19.0.5',
    'share acme-smb (CIFS, serves 445 smb): grants rw, but does not serve port 2049',
    '  rule #0 ip 198.19.0.5 rw: matches 198.19.0.5',
    'enforced: the grant is in the desired state the data plane applies',
  ]);
});

t.test('explain() resolves the guest by instance id and by tunnel, with the same verdict', async (t) => {
  for (const [ref, by] of [
    ['acme/g1', 'key'],
    ['g1', 'instance'],
    ['sgwt-g1', 'tunnel'],
  ] as const) {
    const e = ex(ref, '198.18.0.100:445');
    t.equal(e.allowed, true, ref);
    t.equal(e.guest?.key, 'acme/g1', ref);
    t.equal(e.guest?.matchedBy, by, ref);
    t.equal(e.guestRef, ref);
    t.strictSame(e.grant?.shares, [{ id: 'acme-smb', level: 'rw' }], ref);
  }
});

t.test('explain() with ro and rw rules, an IPv6 tenant address and an ignored user rule', async (t) => {
  const e = ex('g3', '198.18.0.100:32767');
  t.equal(e.allowed, true);
  t.strictSame(e.grant, {
    backend: '198.18.0.100',
    port: 32767,
    service: 'mountd',
    proto: 'NFS',
    level: 'rw',
    shares: [{ id: 'gamma-v3', level: 'rw' }],
    nfs: { readOnly: false, identity: null, exports: ['/export/gamma'], steer: false },
  });
  t.strictSame(e.shares.map((s) => s.rules), [
    [
      { index: 0, type: 'user', accessTo: 'alice', level: 'rw', matches: [], result: 'ignored' },
      { index: 1, type: 'ip', accessTo: '198.19.3.0/24', level: 'ro', matches: ['198.19.3.5'], result: 'match' },
      { index: 2, type: 'ip', accessTo: '2001:db8:3::/64', level: 'rw', matches: ['2001:db8:3::5'], result: 'match' },
    ],
  ]);
  t.equal(e.summary, 'allowed: gamma/g3 may reach 198.18.0.100:32767 (mountd, rw) through share gamma-v3 rules #1 (198.19.3.0/24 ro matches 198.19.3.5), #2 (2001:db8:3::/64 rw matches 2001:db8:3::5)');
  t.ok(e.lines.includes('  rule #0 user alice rw: ignored (user rules are checked by the backend and open no network path)'));
  t.strictSame(e.otherDomains, [{ domain: 'acme', shares: ['acme-nfs', 'acme-smb'] }], 'another domain on the same NAS is named, as a fact');

  const ro = ex('g4', '198.18.0.103:445');
  t.equal(ro.allowed, true);
  t.strictSame(ro.grant, { backend: '198.18.0.103', port: 445, service: 'smb', proto: 'CIFS', level: 'ro', shares: [{ id: 'gamma-smb', level: 'ro' }], smb: { minDialect: 0x0300, encryptionRequired: false, shares: ['gamma'], steer: false } });
});

t.test('explain() denies an unknown guest and lists similar names', async (t) => {
  const e = ex('g', '198.18.0.100:2049');
  t.strictSame(
    { allowed: e.allowed, reason: e.reason, guest: e.guest, grant: e.grant, enforced: e.enforced, candidates: e.candidates, shares: e.shares },
    { allowed: false, reason: 'unknown-guest', guest: null, grant: null, enforced: false, candidates: ['acme/g1', 'beta/g2', 'gamma/g3', 'gamma/g4'], shares: [] },
  );
  t.equal(e.summary, 'denied: unknown guest "g": no domain/instance key, instance id or tunnel interface matches');
  t.strictSame(e.lines, [e.summary, 'similar guests: acme/g1, beta/g2, gamma/g3, gamma/g4']);
  const none = ex('nobody', '198.18.0.100:2049');
  t.equal(none.reason, 'unknown-guest');
  t.strictSame(none.candidates, []);
  t.strictSame(none.lines, [none.summary]);
  t.strictSame(ex('SGWT-G3', '198.18.0.100:2049').candidates, ['gamma/g3'], 'candidates ignore case, the match itself does not');
  t.equal(ex('SGWT-G3', '198.18.0.100:2049').reason, 'unknown-guest');
});

t.test('explain() denies an ambiguous guest reference', async (t) => {
  // Not possible in a validated configuration (names are unique host-wide),
  // but an instance id may equal another guest's tunnel name.
  const cfg = structuredClone(rich);
  const g4 = cfg.domains.find((d) => d.name === 'gamma')?.guests.find((g) => g.instance === 'g4');
  if (g4 === undefined) {
    throw new Error('fixture');
  }
  g4.instance = 'sgwt-g1';
  const e = explain(cfg, compileDesired(cfg), 'sgwt-g1', { addr: '198.18.0.100', port: 2049 });
  t.equal(e.allowed, false);
  t.equal(e.reason, 'ambiguous-guest');
  t.strictSame(e.candidates, ['acme/g1', 'gamma/sgwt-g1']);
  t.equal(e.summary, 'denied: guest reference "sgwt-g1" names 2 guests (acme/g1, gamma/sgwt-g1); use the domain/instance key');
  t.equal(explain(cfg, compileDesired(cfg), 'acme/g1', { addr: '198.18.0.100', port: 2049 }).allowed, true, 'the key still works');
});

t.test('explain() no-share-on-backend names the other domain and the guest backends', async (t) => {
  const e = ex('g1', '198.18.0.101:2049', lab, labDesired);
  t.strictSame(
    { allowed: e.allowed, reason: e.reason, detail: e.detail, shares: e.shares, allowedPorts: e.allowedPorts, otherDomains: e.otherDomains, guestBackends: e.guestBackends },
    {
      allowed: false,
      reason: 'no-share-on-backend',
      detail: 'no share of domain acme has an export location on 198.18.0.101',
      shares: [],
      allowedPorts: [],
      otherDomains: [{ domain: 'beta', shares: ['beta-nfs'] }],
      guestBackends: ['198.18.0.100'],
    },
  );
  t.strictSame(e.lines, [
    'denied: no share of domain acme has an export location on 198.18.0.101',
    'guest acme/g1: domain acme, instance g1, tunnel sgwt-g1 (guest IP 169.254.1.2), tenant addresses 198.19.0.5; backends see 198.18.0.11',
    "domain beta has 1 share on 198.18.0.101 (beta-nfs); a guest reaches only its own domain's shares",
    'acme/g1 has grants on 198.18.0.100 (111, 445, 2049, 20048)',
  ]);
  const nowhere = ex('g1', '10.0.0.1:2049', lab, labDesired);
  t.strictSame(nowhere.otherDomains, [], 'no other domain there: nothing to name');
  t.equal(nowhere.lines.length, 3);
});

t.test('explain() no-access-rule lists every rule and the addresses compared', async (t) => {
  const e = ex('g4', '198.18.0.100:2049');
  t.equal(e.reason, 'no-access-rule');
  t.equal(e.detail, 'no access rule of gamma-v3 matches 198.19.4.5');
  t.equal(e.summary, 'denied: no access rule of gamma-v3 matches 198.19.4.5');
  t.strictSame(e.lines.slice(2), [
    'share gamma-v3 (NFS, serves 2049 nfs, 111 portmap, 32767 mountd): grants nothing: no ip access rule matches (it serves 2049)',
    '  rule #0 user alice rw: ignored (user rules are checked by the backend and open no network path)',
    '  rule #1 ip 198.19.3.0/24 ro: no guest address matches',
    '  rule #2 ip 2001:db8:3::/64 rw: no guest address matches',
  ]);
  t.strictSame(e.guestBackends, ['198.18.0.103']);

  const empty = ex('g3', '198.18.0.104:2049');
  t.equal(empty.reason, 'no-access-rule');
  t.strictSame(empty.shares.map((s) => ({ id: s.id, level: s.level, rules: s.rules })), [{ id: 'gamma-empty', level: null, rules: [] }]);
  t.ok(empty.lines.includes('  no access rules'));
});

t.test('explain() says why cephx and cert rules open nothing', async (t) => {
  const cfg = structuredClone(rich);
  const smb = cfg.domains.find((d) => d.name === 'gamma')?.shares.find((s) => s.id === 'gamma-smb');
  if (smb === undefined) {
    throw new Error('fixture');
  }
  smb.accessRules = smb.accessRules.filter((r) => r.type !== 'ip');
  const e = explain(cfg, compileDesired(cfg), 'g4', { addr: '198.18.0.103', port: 445 });
  t.equal(e.reason, 'no-access-rule');
  t.strictSame(e.lines.slice(2), [
    'share gamma-v3 (NFS, serves 2049 nfs, 111 portmap, 32767 mountd): grants nothing: no ip access rule matches',
    '  rule #0 user alice rw: ignored (user rules are checked by the backend and open no network path)',
    '  rule #1 ip 198.19.3.0/24 ro: no guest address matches',
    '  rule #2 ip 2001:db8:3::/64 rw: no guest address matches',
    'share gamma-smb (CIFS, serves 445 smb): grants nothing: no ip access rule matches (it serves 445)',
    '  rule #0 cephx client.gamma rw: ignored (cephx rules are checked by the backend and open no network path)',
    '  rule #1 cert gamma.example rw: ignored (cert rules are checked by the backend and open no network path)',
  ]);
});

t.test('explain() port-not-allowed lists the allowed ports and the share that serves the port', async (t) => {
  const e = ex('g4', '198.18.0.103:2049');
  t.equal(e.reason, 'port-not-allowed');
  t.equal(e.detail, 'port 2049 is not a share port of gamma-smb');
  t.strictSame(e.allowedPorts, [{ port: 445, service: 'smb', level: 'ro', shares: ['gamma-smb'] }]);
  t.strictSame(e.lines.slice(2, 4), [
    'allowed on 198.18.0.103: 445 (smb, ro)',
    'share gamma-v3 (NFS, serves 2049 nfs, 111 portmap, 32767 mountd): grants nothing: no ip access rule matches (it serves 2049)',
  ]);
  t.strictSame(
    e.shares.map((s) => [s.id, s.servesPort, s.level, s.grants]),
    [
      ['gamma-v3', true, null, false],
      ['gamma-smb', false, 'ro', false],
    ],
  );
  const ssh = ex('acme/g1', '198.18.0.100:22', lab, labDesired);
  t.equal(ssh.reason, 'port-not-allowed');
  t.equal(ssh.lines[2], 'allowed on 198.18.0.100: 111 (portmap, rw), 445 (smb, rw), 2049 (nfs, rw), 20048 (mountd, rw)');
  t.equal(ex('g1', '198.18.0.100:20048', lab, labDesired).allowed, true, 'the default mountd port of an NFSv3 share');
  t.equal(ex('g3', '198.18.0.100:20048').reason, 'port-not-allowed', 'not when the share names another mountd port');
});

t.test('explain() canonicalizes the destination and refuses invalid ones', async (t) => {
  const v6 = explain(rich, richDesired, 'g3', { addr: '2001:DB8:0::100', port: 2049 });
  t.strictSame(v6.to, { addr: '2001:db8::100', port: 2049 });
  t.equal(v6.reason, 'no-share-on-backend');
  for (const [addr, port, why] of [
    ['198.18.0', 2049, '"198.18.0" is not an IP address'],
    ['198.18.0.100/32', 2049, '"198.18.0.100/32" is not an IP address'],
    ['nas.example', 2049, '"nas.example" is not an IP address'],
    ['198.18.0.100', 0, '0 is not a TCP port (1-65535)'],
    ['198.18.0.100', 65536, '65536 is not a TCP port (1-65535)'],
    ['198.18.0.100', 20.5, '20.5 is not a TCP port (1-65535)'],
    ['198.18.0.100', Number.NaN, 'NaN is not a TCP port (1-65535)'],
  ] as const) {
    const e = explain(rich, richDesired, 'g1', { addr, port });
    t.strictSame([e.allowed, e.reason, e.summary, e.guest?.key], [false, 'invalid-destination', `denied: ${why}`, 'acme/g1'], `${addr} ${port}`);
  }
});

t.test('explain() reports a grant missing from the desired state as not enforced', async (t) => {
  const stale: DesiredState = { ...labDesired, guests: labDesired.guests.map((g) => ({ ...g, grants: g.grants.filter((gr) => gr.port !== 2049) })) };
  const e = explain(lab, stale, 'g1', { addr: '198.18.0.100', port: 2049 });
  t.equal(e.allowed, true, 'the verdict comes from the configuration');
  t.equal(e.enforced, false);
  t.equal(e.lines[e.lines.length - 1], 'NOT enforced: the desired state the data plane applies does not hold this grant yet (pending sync?)');
  t.equal(explain(lab, { ...labDesired, guests: [] }, 'g1', { addr: '198.18.0.100', port: 2049 }).enforced, false, 'guest absent from the desired state');
});

t.test('explain() agrees with decide() and the compiled grants everywhere', async (t) => {
  for (const [name, cfg] of [
    ['lab', lab],
    ['lab + gamma', rich],
  ] as const) {
    const desired = compileDesired(cfg);
    const hosts = new Set<string>(['198.18.0.105', '10.0.0.1', '0.0.0.0', '255.255.255.255', '2001:db8::100']);
    const ports = new Set<number>([1, 22, 80, 139, 443, 2050, 20049, 32768, 65535]);
    for (const d of cfg.domains) {
      hosts.add(d.sourceIp.text);
      for (const g of d.guests) {
        hosts.add(g.tunnel.guestIp.text);
        hosts.add(g.tunnel.gatewayIp.text);
        g.addresses.forEach((a) => hosts.add(a.text));
      }
      for (const s of d.shares) {
        s.exportLocations.forEach((l) => hosts.add(l.host.text));
        ports.add(s.mountdPort);
      }
    }
    [111, 445, 2049, 20048].forEach((p) => ports.add(p));
    const mismatches: string[] = [];
    const seen: Record<string, number> = {};
    let n = 0;
    for (const d of cfg.domains) {
      for (const g of d.guests) {
        const key = `${d.name}/${g.instance}`;
        const dg = desired.guests.find((x) => x.key === key);
        for (const ref of [key, g.instance, g.tunnel.iface]) {
          for (const host of hosts) {
            for (const port of ports) {
              n++;
              const e = explain(cfg, desired, ref, { addr: host, port });
              const ip = parseIp(host);
              if (ip === null) {
                throw new Error(host);
              }
              const want = decide(d, g, ip, port);
              const compiled = dg?.grants.some((gr) => gr.backend === ip.text && gr.port === port) ?? false;
              const where = `${name} ${ref} -> ${host}:${port}`;
              const reason = e.reason ?? 'allow';
              seen[reason] = (seen[reason] ?? 0) + 1;
              if (e.allowed !== want.allow || e.allowed !== compiled || e.enforced !== compiled) {
                mismatches.push(`${where}: explain ${String(e.allowed)}, decide ${String(want.allow)}, compiled ${String(compiled)}`);
                continue;
              }
              if (e.guest?.key !== key) {
                mismatches.push(`${where}: resolved to ${e.guest?.key ?? 'nobody'}`);
              }
              if (want.allow) {
                const granting = e.shares.filter((s) => s.grants).map((s) => s.id).sort();
                if (JSON.stringify(e.grant) !== JSON.stringify(want.grant) || JSON.stringify(granting) !== JSON.stringify(want.grant.shares.map((s) => s.id).sort())) {
                  mismatches.push(`${where}: grant ${JSON.stringify(e.grant)} / granting shares ${granting.join(',')}`);
                }
                if (!e.shares.filter((s) => s.grants).every((s) => s.rules.some((r) => r.result === 'match'))) {
                  mismatches.push(`${where}: a granting share without a matching rule`);
                }
              } else {
                if (e.reason !== want.reason || e.detail !== want.detail) {
                  mismatches.push(`${where}: reason ${String(e.reason)} (${String(e.detail)}), decide ${want.reason} (${want.detail})`);
                }
                if (e.shares.some((s) => s.grants)) {
                  mismatches.push(`${where}: denied but a share claims to grant`);
                }
                const consistent =
                  want.reason === 'no-share-on-backend'
                    ? e.shares.length === 0 && e.allowedPorts.length === 0
                    : want.reason === 'no-access-rule'
                      ? e.shares.length > 0 && e.shares.every((s) => s.level === null && s.rules.every((r) => r.result !== 'match'))
                      : e.allowedPorts.length > 0 && !e.allowedPorts.some((p) => p.port === port);
                if (!consistent) {
                  mismatches.push(`${where}: details do not support ${want.reason}`);
                }
              }
            }
          }
        }
      }
    }
    t.strictSame(mismatches, [], `${name}: ${n} combinations agree`);
    // The loop is only worth something if it met every outcome.
    const outcomes: (ExplainReason | 'allow')[] = ['allow', 'no-share-on-backend', 'no-access-rule', 'port-not-allowed'];
    for (const o of outcomes) {
      t.ok((seen[o] ?? 0) > 0, `${name}: met ${o}`);
    }
  }
});
