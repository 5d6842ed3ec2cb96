import t from 'tap';
import type { AccessLevel, AccessRule, DaemonConfig, Domain, Guest, Share, SgwConfig } from '../../src/model/config';
import type { Grant } from '../../src/model/desired';
import { parseExportLocation } from '../../src/model/export-location';
import type { ShareProto } from '../../src/model/export-location';
import { compileDesired, decide, grantPlane, grantsFor, PORTS, shareLevelFor, sharePorts } from '../../src/policy/policy';
import { parseCidr, parseIp } from '../../src/util/ip';
import type { Ip } from '../../src/util/ip';
import { configFrom, labYaml } from '../helpers/configs';

// Fixtures are built directly from the model types so that these tests
// exercise the policy alone, not the configuration loader.

function ip(text: string): Ip {
  const v = parseIp(text);
  if (v === null) {
    throw new Error(`bad test address ${text}`);
  }
  return v;
}

function rule(type: AccessRule['type'], to: string, level: AccessLevel = 'rw'): AccessRule {
  if (type !== 'ip') {
    return { type, to, cidr: null, level };
  }
  const cidr = parseCidr(to);
  if (cidr === null) {
    throw new Error(`bad test prefix ${to}`);
  }
  return { type, to, cidr, level };
}

function share(id: string, proto: ShareProto, locations: string[], rules: AccessRule[], extra: { nfsv3?: boolean; mountdPort?: number; encryptionRequired?: boolean } = {}): Share {
  return {
    id,
    proto,
    exportLocations: locations.map((raw) => {
      const l = parseExportLocation(proto, raw);
      if (typeof l === 'string') {
        throw new Error(`bad test export location ${raw}: ${l}`);
      }
      return l;
    }),
    accessRules: rules,
    nfsv3: extra.nfsv3 ?? false,
    mountdPort: extra.mountdPort ?? 20048,
    encryptionRequired: extra.encryptionRequired ?? false,
  };
}

function guest(instance: string, addresses: string[], n = 1): Guest {
  return {
    instance,
    tunnel: { iface: `sgwt-${instance}`, guestIp: ip(`169.254.${n}.2`), gatewayIp: ip(`169.254.${n}.1`) },
    addresses: addresses.map(ip),
  };
}

function domain(name: string, sourceIp: string, guests: Guest[], shares: Share[]): Domain {
  return { file: `/etc/sharegw/domains.d/${name}.yaml`, name, project: `project-${name}`, sourceIp: ip(sourceIp), guests, shares, smb: { minDialect: 0x0300, explicit: false }, nfs: null, egress: null };
}

t.test('PORTS are the well-known ports', async (t) => {
  t.strictSame(PORTS, { portmap: 111, nfs: 2049, smb: 445 });
});

t.test('sharePorts()', async (t) => {
  t.strictSame(sharePorts(share('v4', 'NFS', ['198.18.0.100:/e'], [])), [{ port: 2049, service: 'nfs' }], 'NFSv4 needs 2049 only');
  t.strictSame(
    sharePorts(share('v3', 'NFS', ['198.18.0.100:/e'], [], { nfsv3: true })),
    [
      { port: 2049, service: 'nfs' },
      { port: 111, service: 'portmap' },
      { port: 20048, service: 'mountd' },
    ],
    'NFSv3 adds portmapper and mountd on its default port',
  );
  t.strictSame(
    sharePorts(share('v3p', 'NFS', ['198.18.0.100:/e'], [], { nfsv3: true, mountdPort: 32767 })),
    [
      { port: 2049, service: 'nfs' },
      { port: 111, service: 'portmap' },
      { port: 32767, service: 'mountd' },
    ],
    'a configured mountd port is used',
  );
  t.strictSame(sharePorts(share('v4p', 'NFS', ['198.18.0.100:/e'], [], { mountdPort: 32767 })), [{ port: 2049, service: 'nfs' }], 'mountdPort alone does not open mountd');
  t.strictSame(sharePorts(share('smb', 'CIFS', ['//198.18.0.100/s'], [])), [{ port: 445, service: 'smb' }], 'CIFS needs 445 only');
});

t.test('shareLevelFor()', async (t) => {
  const g = guest('g1', ['198.19.0.5']);
  const loc = ['198.18.0.100:/e'];
  t.equal(shareLevelFor(share('s', 'NFS', loc, []), g), null, 'no rules: nothing');
  t.equal(shareLevelFor(share('s', 'NFS', loc, [rule('ip', '198.19.0.0/24', 'rw')]), g), 'rw');
  t.equal(shareLevelFor(share('s', 'NFS', loc, [rule('ip', '198.19.0.0/24', 'ro')]), g), 'ro');
  t.equal(shareLevelFor(share('s', 'NFS', loc, [rule('ip', '198.19.1.0/24', 'rw')]), g), null, 'a rule for another network grants nothing');
  t.equal(shareLevelFor(share('s', 'NFS', loc, [rule('ip', '198.19.0.0/24', 'ro'), rule('ip', '198.19.0.5', 'rw')]), g), 'rw', 'ro then rw: rw wins');
  t.equal(shareLevelFor(share('s', 'NFS', loc, [rule('ip', '198.19.0.5', 'rw'), rule('ip', '198.19.0.0/24', 'ro')]), g), 'rw', 'rw then ro: rw wins');
  t.equal(shareLevelFor(share('s', 'NFS', loc, [rule('ip', '198.19.1.0/24', 'rw'), rule('ip', '198.19.0.0/24', 'ro')]), g), 'ro', 'a non-matching rw rule does not upgrade a matching ro rule');

  const two = guest('g2', ['198.19.7.7', '198.19.0.5']);
  t.equal(shareLevelFor(share('s', 'NFS', loc, [rule('ip', '198.19.0.5', 'ro')]), two), 'ro', 'any of the guest addresses may match');

  for (const type of ['user', 'cert', 'cephx'] as const) {
    t.equal(shareLevelFor(share('s', 'NFS', loc, [rule(type, '198.19.0.5', 'rw')]), g), null, `${type} rules grant nothing`);
    // Even a non-ip rule that somehow carries a prefix must grant nothing.
    const forged: AccessRule = { ...rule('ip', '198.19.0.0/24', 'rw'), type };
    t.equal(shareLevelFor(share('s', 'NFS', loc, [forged]), g), null, `${type} rule with a prefix grants nothing`);
  }
  const noCidr: AccessRule = { type: 'ip', to: '198.19.0.5', cidr: null, level: 'rw' };
  t.equal(shareLevelFor(share('s', 'NFS', loc, [noCidr]), g), null, 'an ip rule without a parsed prefix grants nothing');
});

t.test('shareLevelFor() matches IPv4 prefixes exactly', async (t) => {
  const s = (to: string): Share => share('s', 'NFS', ['198.18.0.100:/e'], [rule('ip', to, 'rw')]);
  const cases: [string, string, AccessLevel | null][] = [
    ['198.19.0.0/24', '198.19.0.0', 'rw'],
    ['198.19.0.0/24', '198.19.0.255', 'rw'],
    ['198.19.0.0/24', '198.19.1.0', null],
    ['198.19.0.0/24', '198.18.255.255', null],
    ['198.19.0.5', '198.19.0.5', 'rw'],
    ['198.19.0.5', '198.19.0.6', null],
    ['198.19.0.5/32', '198.19.0.4', null],
    ['198.19.0.0/23', '198.19.1.200', 'rw'],
    ['198.19.0.0/23', '198.19.2.0', null],
    ['0.0.0.0/0', '203.0.113.9', 'rw'],
    ['0.0.0.0/0', '2001:db8::5', null],
    ['198.19.0.0/24', '::ffff:198.19.0.5', null],
  ];
  for (const [to, addr, want] of cases) {
    t.equal(shareLevelFor(s(to), guest('g', [addr])), want, `${to} vs ${addr}`);
  }
});

t.test('shareLevelFor() matches IPv6 prefixes exactly', async (t) => {
  const s = (to: string): Share => share('s', 'NFS', ['[2001:db8::100]:/e'], [rule('ip', to, 'ro')]);
  const cases: [string, string, AccessLevel | null][] = [
    ['2001:db8:1::/48', '2001:db8:1::5', 'ro'],
    ['2001:db8:1::/48', '2001:db8:1:ffff:ffff:ffff:ffff:ffff', 'ro'],
    ['2001:db8:1::/48', '2001:db8:2::5', null],
    ['2001:db8:1::/48', '2001:db8:0:ffff::1', null],
    ['2001:db8:1:2::/63', '2001:db8:1:3::1', 'ro'],
    ['2001:db8:1:2::/63', '2001:db8:1:4::1', null],
    ['2001:db8::5', '2001:DB8:0:0::5', 'ro'],
    ['2001:db8::5/128', '2001:db8::6', null],
    ['::/0', '2001:db8:ffff::1', 'ro'],
    ['::/0', '198.19.0.5', null],
  ];
  for (const [to, addr, want] of cases) {
    t.equal(shareLevelFor(s(to), guest('g', [addr])), want, `${to} vs ${addr}`);
  }
});

t.test('decide() allows exactly the share ports of a matching share', async (t) => {
  const g1 = guest('g1', ['198.19.0.5']);
  const d = domain('acme', '198.18.0.11', [g1], [
    share('acme-nfs', 'NFS', ['198.18.0.100:/export/acme'], [rule('ip', '198.19.0.0/24', 'rw')]),
  ]);
  t.strictSame(decide(d, g1, ip('198.18.0.100'), 2049), {
    allow: true,
    grant: { backend: '198.18.0.100', port: 2049, service: 'nfs', proto: 'NFS', level: 'rw', shares: [{ id: 'acme-nfs', level: 'rw' }], nfs: { readOnly: false, identity: null, exports: ['/export/acme'], steer: false } },
  });
  for (const port of [111, 20048, 445, 22, 2050]) {
    t.strictSame(
      decide(d, g1, ip('198.18.0.100'), port),
      { allow: false, reason: 'port-not-allowed', detail: `port ${port} is not a share port of acme-nfs` },
      `port ${port} is denied for an NFSv4 share`,
    );
  }
});

t.test('decide() denial reasons', async (t) => {
  const g1 = guest('g1', ['198.19.0.5']);
  const d = domain('acme', '198.18.0.11', [g1], [
    share('acme-nfs', 'NFS', ['198.18.0.100:/export/acme'], [rule('ip', '198.19.0.0/24', 'rw')]),
    share('acme-private', 'NFS', ['198.18.0.102:/export/private'], [rule('ip', '198.19.0.99', 'rw'), rule('user', 'alice', 'rw')]),
    share('acme-other', 'CIFS', ['//198.18.0.102/other'], [rule('cephx', 'client.acme', 'rw')]),
  ]);
  t.strictSame(decide(d, g1, ip('198.18.0.101'), 2049), {
    allow: false,
    reason: 'no-share-on-backend',
    detail: 'no share of domain acme has an export location on 198.18.0.101',
  });
  t.strictSame(decide(d, g1, ip('198.18.0.11'), 2049), {
    allow: false,
    reason: 'no-share-on-backend',
    detail: 'no share of domain acme has an export location on 198.18.0.11',
  }, 'the domain source address is no backend');
  t.strictSame(decide(d, g1, ip('198.18.0.102'), 2049), {
    allow: false,
    reason: 'no-access-rule',
    detail: 'no access rule of acme-private, acme-other matches 198.19.0.5',
  });
  t.strictSame(decide(d, g1, ip('198.18.0.102'), 445), {
    allow: false,
    reason: 'no-access-rule',
    detail: 'no access rule of acme-private, acme-other matches 198.19.0.5',
  }, 'a cephx rule on a CIFS share does not open 445');
});

t.test('decide() uses only shares of the guest own domain', async (t) => {
  // Both tenants have shares on the same NAS address; acme's rule is wide
  // enough to cover beta's guest, beta's own rule is not.
  const nas = '198.18.0.100';
  const g1 = guest('g1', ['198.19.0.5'], 1);
  const g2 = guest('g2', ['198.19.1.5'], 2);
  const acme = domain('acme', '198.18.0.11', [g1], [share('acme-nfs', 'NFS', [`${nas}:/export/acme`], [rule('ip', '198.19.0.0/16', 'rw')])]);
  const beta = domain('beta', '198.18.0.12', [g2], [share('beta-nfs', 'NFS', [`${nas}:/export/beta`], [rule('ip', '198.19.9.0/24', 'rw')])]);
  const gamma = domain('gamma', '198.18.0.13', [], []);

  t.equal(decide(acme, g1, ip(nas), 2049).allow, true, 'acme guest reaches its own share');
  t.strictSame(decide(beta, g2, ip(nas), 2049), {
    allow: false,
    reason: 'no-access-rule',
    detail: 'no access rule of beta-nfs matches 198.19.1.5',
  }, "acme's rule does not let beta's guest in");
  t.strictSame(decide(gamma, g2, ip(nas), 2049), {
    allow: false,
    reason: 'no-share-on-backend',
    detail: 'no share of domain gamma has an export location on 198.18.0.100',
  }, 'a domain without shares reaches nothing');
  t.strictSame(grantsFor(beta, g2), [], 'beta guest has no grants at all');
});

t.test('decide() NFSv3 ports and a configured mountd port', async (t) => {
  const g1 = guest('g1', ['198.19.0.5']);
  const d = domain('acme', '198.18.0.11', [g1], [
    share('v3', 'NFS', ['198.18.0.100:/export/v3'], [rule('ip', '198.19.0.0/24', 'ro')], { nfsv3: true, mountdPort: 32767 }),
  ]);
  const want: [number, string][] = [
    [2049, 'nfs'],
    [111, 'portmap'],
    [32767, 'mountd'],
  ];
  for (const [port, service] of want) {
    t.strictSame(decide(d, g1, ip('198.18.0.100'), port), {
      allow: true,
      grant: {
        backend: '198.18.0.100',
        port,
        service,
        proto: 'NFS',
        level: 'ro',
        shares: [{ id: 'v3', level: 'ro' }],
        // ro on the NFS and mountd ports: the proxy answers mutating calls and checks mounts
        ...(service === 'portmap' ? {} : { nfs: { readOnly: true, identity: null, exports: ['/export/v3'], steer: true } }),
      },
    }, `port ${port} (${service})`);
  }
  t.strictSame(decide(d, g1, ip('198.18.0.100'), 20048), {
    allow: false,
    reason: 'port-not-allowed',
    detail: 'port 20048 is not a share port of v3',
  }, 'the default mountd port is closed when another one is configured');
});

t.test('decide() checks the port against the protocol of the shares that grant access', async (t) => {
  const g1 = guest('g1', ['198.19.0.5']);
  const d = domain('acme', '198.18.0.11', [g1], [
    share('nfs-closed', 'NFS', ['198.18.0.100:/export/closed'], [rule('ip', '198.19.9.0/24', 'rw')], { nfsv3: true }),
    share('smb-open', 'CIFS', ['\\\\198.18.0.100\\open'], [rule('ip', '198.19.0.5', 'rw')]),
  ]);
  t.strictSame(decide(d, g1, ip('198.18.0.100'), 445), {
    allow: true,
    grant: { backend: '198.18.0.100', port: 445, service: 'smb', proto: 'CIFS', level: 'rw', shares: [{ id: 'smb-open', level: 'rw' }], smb: { minDialect: 0x0300, encryptionRequired: false, shares: ['open'], steer: false } },
  });
  for (const port of [2049, 111, 20048]) {
    t.strictSame(decide(d, g1, ip('198.18.0.100'), port), {
      allow: false,
      reason: 'port-not-allowed',
      detail: `port ${port} is not a share port of smb-open`,
    }, `NFS port ${port} stays closed: the NFS share has no matching rule`);
  }
});

t.test('decide() does not borrow a port granted on another backend', async (t) => {
  const g1 = guest('g1', ['198.19.0.5']);
  const d = domain('acme', '198.18.0.11', [g1], [
    share('nfs-a', 'NFS', ['198.18.0.100:/export/a'], [rule('ip', '198.19.0.0/24', 'rw')]),
    share('smb-b', 'CIFS', ['//198.18.0.101/b'], [rule('ip', '198.19.0.0/24', 'rw')]),
  ]);
  t.strictSame(decide(d, g1, ip('198.18.0.100'), 445), {
    allow: false,
    reason: 'port-not-allowed',
    detail: 'port 445 is not a share port of nfs-a',
  });
  t.strictSame(decide(d, g1, ip('198.18.0.101'), 2049), {
    allow: false,
    reason: 'port-not-allowed',
    detail: 'port 2049 is not a share port of smb-b',
  });
  t.equal(decide(d, g1, ip('198.18.0.101'), 445).allow, true);
});

t.test('decide() with IPv6 backends and guests', async (t) => {
  const g = guest('g6', ['198.19.0.5', '2001:db8:19::5']);
  const d = domain('v6', '198.18.0.11', [g], [
    share('nfs6', 'NFS', ['[2001:db8:18::100]:/export/v6'], [rule('ip', '2001:db8:19::/64', 'rw')]),
    share('smb6', 'CIFS', ['//[2001:db8:18::100]/v6'], [rule('ip', '2001:db8:20::/64', 'rw')]),
  ]);
  t.strictSame(decide(d, g, ip('2001:DB8:18:0:0:0:0:100'), 2049), {
    allow: true,
    grant: { backend: '2001:db8:18::100', port: 2049, service: 'nfs', proto: 'NFS', level: 'rw', shares: [{ id: 'nfs6', level: 'rw' }], nfs: { readOnly: false, identity: null, exports: ['/export/v6'], steer: false } },
  }, 'the destination is compared in canonical form');
  t.strictSame(decide(d, g, ip('2001:db8:18::100'), 445), {
    allow: false,
    reason: 'port-not-allowed',
    detail: 'port 445 is not a share port of nfs6',
  });
  t.strictSame(decide(d, g, ip('2001:db8:18::101'), 2049), {
    allow: false,
    reason: 'no-share-on-backend',
    detail: 'no share of domain v6 has an export location on 2001:db8:18::101',
  });
  const v4only = guest('g4', ['198.19.0.5']);
  t.strictSame(decide(d, v4only, ip('2001:db8:18::100'), 2049), {
    allow: false,
    reason: 'no-access-rule',
    detail: 'no access rule of nfs6, smb6 matches 198.19.0.5',
  }, 'an IPv4 guest address does not match IPv6 rules');
});

t.test('decide() and grantsFor() resolve rw/ro across several shares', async (t) => {
  const g1 = guest('g1', ['198.19.0.5']);
  const ro = share('a-ro', 'NFS', ['198.18.0.100:/export/a'], [rule('ip', '198.19.0.0/24', 'ro')], { nfsv3: true });
  const rw = share('b-rw', 'NFS', ['198.18.0.100:/export/b'], [rule('ip', '198.19.0.5', 'rw')]);
  for (const [name, shares] of [['ro first', [ro, rw]], ['rw first', [rw, ro]]] as const) {
    const d = domain('acme', '198.18.0.11', [g1], [...shares]);
    const nfs = decide(d, g1, ip('198.18.0.100'), 2049);
    t.strictSame(nfs, {
      allow: true,
      grant: {
        backend: '198.18.0.100',
        port: 2049,
        service: 'nfs',
        proto: 'NFS',
        level: 'rw',
        shares: name === 'ro first' ? [{ id: 'a-ro', level: 'ro' }, { id: 'b-rw', level: 'rw' }] : [{ id: 'b-rw', level: 'rw' }, { id: 'a-ro', level: 'ro' }],
        nfs: { readOnly: false, identity: null, exports: ['/export/a', '/export/b'], steer: false },
      },
    }, `${name}: 2049 is rw because one contributing share is rw`);
    t.strictSame(decide(d, g1, ip('198.18.0.100'), 111), {
      allow: true,
      grant: { backend: '198.18.0.100', port: 111, service: 'portmap', proto: 'NFS', level: 'ro', shares: [{ id: 'a-ro', level: 'ro' }] },
    }, `${name}: 111 comes from the ro NFSv3 share only`);
  }
});

t.test('SMB grants carry the domain floor, the shares by name, and encryption if any share requires it', async (t) => {
  const g1 = guest('g1', ['198.19.0.5']);
  const d = domain('acme', '198.18.0.11', [g1], [
    share('plain', 'CIFS', ['\\\\198.18.0.100\\Plain'], [rule('ip', '198.19.0.5', 'rw')]),
    share('secret', 'CIFS', ['//198.18.0.100/secret'], [rule('ip', '198.19.0.5', 'ro')], { encryptionRequired: true }),
    share('elsewhere', 'CIFS', ['//198.18.0.101/other'], [rule('ip', '198.19.0.5', 'rw')]),
    share('not-mine', 'CIFS', ['//198.18.0.100/hidden'], [rule('ip', '198.19.9.9', 'rw')]),
  ]);
  d.smb = { minDialect: 0x0311, explicit: true };
  const [a, b] = grantsFor(d, g1);
  t.strictSame(a?.smb, { minDialect: 0x0311, encryptionRequired: true, shares: ['plain', 'secret'], steer: true }, 'one grant per backend; an ungranted share is not listed');
  t.strictSame(b?.smb, { minDialect: 0x0311, encryptionRequired: false, shares: ['other'], steer: true });
  d.smb = { minDialect: 0x0300, explicit: false };
  const [c, e] = grantsFor(d, g1);
  t.equal(c?.smb?.steer, true, 'an encryption-required share steers its backend grant');
  t.equal(e?.smb?.steer, false, 'no domain policy, no encryption: the kernel plane keeps it');
  t.equal(grantPlane('kernel', c as Grant), 'proxy');
  t.equal(grantPlane('kernel', e as Grant), 'kernel');
  t.equal(grantPlane('proxy', e as Grant), 'proxy', 'the proxy plane carries everything');
});

t.test('grantsFor() merges, dedupes and sorts', async (t) => {
  const g1 = guest('g1', ['198.19.0.5']);
  const d = domain('acme', '198.18.0.11', [g1], [
    // Two export locations on one host must not list the share twice.
    share('multi', 'NFS', ['198.18.0.100:/export/m', '198.18.0.100:/export/m2', '198.18.0.99:/export/m'], [rule('ip', '198.19.0.0/24', 'ro')], { nfsv3: true }),
    share('smb', 'CIFS', ['//198.18.0.100/smb'], [rule('ip', '198.19.0.0/24', 'rw'), rule('ip', '198.19.0.5', 'ro')]),
    share('v6', 'NFS', ['[2001:db8::100]:/export/v6'], [rule('ip', '198.19.0.0/16', 'rw')]),
    share('denied', 'NFS', ['198.18.0.50:/export/d'], [rule('ip', '198.20.0.0/16', 'rw')]),
  ]);
  const m = (port: number, service: Grant['service'], exports = ['/export/m', '/export/m2']): Grant => ({
    backend: '',
    port,
    service,
    proto: 'NFS',
    level: 'ro',
    shares: [{ id: 'multi', level: 'ro' }],
    ...(service === 'portmap' ? {} : { nfs: { readOnly: true, identity: null, exports, steer: true } }),
  });
  t.strictSame(grantsFor(d, g1), [
    { ...m(111, 'portmap'), backend: '198.18.0.100' },
    { backend: '198.18.0.100', port: 445, service: 'smb', proto: 'CIFS', level: 'rw', shares: [{ id: 'smb', level: 'rw' }], smb: { minDialect: 0x0300, encryptionRequired: false, shares: ['smb'], steer: false } },
    { ...m(2049, 'nfs'), backend: '198.18.0.100' },
    { ...m(20048, 'mountd'), backend: '198.18.0.100' },
    { ...m(111, 'portmap'), backend: '198.18.0.99' },
    { ...m(2049, 'nfs', ['/export/m']), backend: '198.18.0.99' },
    { ...m(20048, 'mountd', ['/export/m']), backend: '198.18.0.99' },
    { backend: '2001:db8::100', port: 2049, service: 'nfs', proto: 'NFS', level: 'rw', shares: [{ id: 'v6', level: 'rw' }], nfs: { readOnly: false, identity: null, exports: ['/export/v6'], steer: false } },
  ]);
  t.strictSame(grantsFor(d, guest('nobody', ['203.0.113.1'])), [], 'a guest no rule matches gets no grants');
  t.strictSame(grantsFor(domain('empty', '198.18.0.11', [g1], []), g1), [], 'no shares, no grants');
});

const DAEMON: DaemonConfig = {
  file: '/etc/sharegw/sharegwd.yaml',
  node: 'hv-test',
  dataplane: 'proxy',
  manila: null,
  domainsDir: '/etc/sharegw/domains.d',
  stateDir: '/var/lib/sharegw',
  adminSocket: '/run/sharegw/admin.sock',
  metrics: null,
  egress: { tables: { from: 20000, to: 20999 }, rulePriority: 20000 },
  syncIntervalMs: 30000,
  logLevel: 'info',
  keepRulesOnExit: true,
  proxy: { portRange: { from: 40000, to: 40999 }, connectTimeoutMs: 5000, idleTimeoutMs: 0, keepAliveMs: 30000, userTimeoutMs: 20000, drainTimeoutMs: 10000, maxConnectionsPerGuest: 64, connectionBudget: 4194304, memoryBudget: 536870912 },
};

t.test('compileDesired() output shape', async (t) => {
  const gz = guest('z1', ['198.19.5.5'], 5);
  const gb = guest('b1', ['198.19.4.4'], 4);
  const ga = guest('a1', ['198.19.6.6'], 6);
  const config: SgwConfig = {
    daemon: DAEMON,
    domains: [
      domain('zeta', '198.18.0.13', [gz], [share('z-smb', 'CIFS', ['//198.18.0.103/z'], [rule('ip', '198.19.5.0/24', 'ro')])]),
      domain('alpha', '198.18.0.12', [gb, ga], [share('a-nfs', 'NFS', ['198.18.0.102:/export/a'], [rule('ip', '198.19.4.4', 'rw')])]),
    ],
    warnings: [],
  };
  t.strictSame(compileDesired(config), {
    dataplane: 'proxy',
    guests: [
      { key: 'alpha/a1', domain: 'alpha', instance: 'a1', iface: 'sgwt-a1', guestIp: '169.254.6.2', gatewayIp: '169.254.6.1', sourceIp: '198.18.0.12', grants: [] },
      {
        key: 'alpha/b1',
        domain: 'alpha',
        instance: 'b1',
        iface: 'sgwt-b1',
        guestIp: '169.254.4.2',
        gatewayIp: '169.254.4.1',
        sourceIp: '198.18.0.12',
        grants: [{ backend: '198.18.0.102', port: 2049, service: 'nfs', proto: 'NFS', level: 'rw', shares: [{ id: 'a-nfs', level: 'rw' }], nfs: { readOnly: false, identity: null, exports: ['/export/a'], steer: false } }],
      },
      {
        key: 'zeta/z1',
        domain: 'zeta',
        instance: 'z1',
        iface: 'sgwt-z1',
        guestIp: '169.254.5.2',
        gatewayIp: '169.254.5.1',
        sourceIp: '198.18.0.13',
        grants: [{ backend: '198.18.0.103', port: 445, service: 'smb', proto: 'CIFS', level: 'ro', shares: [{ id: 'z-smb', level: 'ro' }], smb: { minDialect: 0x0300, encryptionRequired: false, shares: ['z'], steer: false } }],
      },
    ],
  });
  t.strictSame(compileDesired({ ...config, daemon: { ...DAEMON, dataplane: 'kernel' }, domains: [] }), { dataplane: 'kernel', guests: [] });
});

t.test('compileDesired() on the lab configuration', async (t) => {
  const y = labYaml('kernel');
  const d = compileDesired(configFrom(y.daemon, y.domains));
  t.equal(d.dataplane, 'kernel');
  t.strictSame(d.guests.map((g) => g.key), ['acme/g1', 'beta/g2']);
  t.strictSame(
    d.guests.map((g) => g.grants.map((gr) => `${gr.backend}:${gr.port}/${gr.service}/${gr.level}/${gr.shares.map((s) => s.id).join('+')}`)),
    [
      ['198.18.0.100:111/portmap/rw/acme-nfs', '198.18.0.100:445/smb/rw/acme-smb', '198.18.0.100:2049/nfs/rw/acme-nfs', '198.18.0.100:20048/mountd/rw/acme-nfs'],
      ['198.18.0.101:2049/nfs/rw/beta-nfs'],
    ],
    'acme-private (rule for 198.19.0.99) and the other domain grant nothing',
  );
});
