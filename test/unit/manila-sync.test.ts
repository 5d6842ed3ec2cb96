import t from 'tap';
import { mergeSynced, parseManilaLocation, syncDomain } from '../../src/control/manila/sync';
import type { FetchedDomain, SyncedDomain } from '../../src/control/manila/sync';
import type { ManilaShare } from '../../src/control/manila/schemas';
import { compileDesired } from '../../src/policy/policy';
import { configFrom, labYaml } from '../helpers/configs';

const SN = 'sn-1';
const AT = '2026-11-23T18:00:00.000Z';

function share(id: string, over: Partial<ManilaShare> = {}): ManilaShare {
  return { id, name: id, status: 'available', share_proto: 'NFS', share_network_id: SN, project_id: 'p', updated_at: null, created_at: null, access_rules_status: 'active', encryption_key_ref: null, ...over };
}

function fetched(over: Partial<FetchedDomain> = {}): FetchedDomain {
  return {
    domain: 'acme',
    shareNetworkId: SN,
    network: { id: SN, name: 'net', project_id: 'p', updated_at: null, status: 'active', security_service_update_support: true, share_network_subnets: [{ id: 'sub', cidr: '198.18.0.0/24', availability_zone: null }] },
    securityServices: [{ id: 'ss1', type: 'ldap', name: 'l', status: 'new', dns_ip: null, server: '198.18.0.60', domain: 'x', user: 'cn=m', ou: null, updated_at: null }],
    shares: [
      {
        share: share('s-nfs', { name: 'acme' }),
        exportLocations: [
          { id: 'e0', path: '198.18.0.202:/path/to/fake', preferred: false, is_admin_only: true },
          { id: 'e1', path: '198.18.0.100:/export/acme', preferred: true, is_admin_only: false },
          { id: 'e2', path: '198.18.0.102:/export/acme', preferred: false, is_admin_only: false },
        ],
        accessRules: [
          { id: 'r1', access_type: 'ip', access_to: '198.19.0.5', access_level: 'rw', state: 'active' },
          { id: 'r2', access_type: 'ip', access_to: '198.19.0.6', access_level: 'rw', state: 'queued_to_deny' },
          { id: 'r3', access_type: 'ip', access_to: '198.19.0.7', access_level: 'ro', state: 'denying' },
          { id: 'r4', access_type: 'ip', access_to: '198.19.0.8', access_level: 'rw', state: 'error' },
          { id: 'r5', access_type: 'ip', access_to: '198.19.0.9', access_level: 'rw', state: 'queued_to_apply' },
          { id: 'r6', access_type: 'ip', access_to: '198.19.0.1/16', access_level: 'rw', state: 'active' },
        ],
      },
      { share: share('s-creating', { status: 'creating' }), exportLocations: [], accessRules: [] },
      {
        share: share('s-cifs', { share_proto: 'CIFS', encryption_key_ref: 'barbican://k1' }),
        exportLocations: [{ id: 'c1', path: '198.18.0.100:/acme', preferred: true }],
        accessRules: [{ id: 'r7', access_type: 'ip', access_to: '198.19.0.0/24', access_level: 'ro', state: 'active' }],
      },
    ],
    fetchedAt: AT,
    ...over,
  };
}

t.test('syncDomain() keeps available shares, visible preferred locations and active rules only', async (t) => {
  const d = syncDomain(fetched(), null);
  t.same(d.flags, { frozen: false, networkError: false, missing: false });
  t.same(
    d.shares.map((s) => s.id),
    ['s-cifs', 's-nfs'],
  );
  const nfs = d.shares.find((s) => s.id === 's-nfs');
  t.same(nfs?.exportLocations, ['198.18.0.100:/export/acme'], 'admin-only and non-preferred locations left out');
  t.same(nfs?.accessRules, [{ accessType: 'ip', accessTo: '198.19.0.5', accessLevel: 'rw' }], 'only the active, well-formed rule grants');
  t.same(
    d.skipped.filter((s) => s.share === 's-nfs').map((s) => s.reason),
    ['state queued_to_deny', 'state denying', 'state error', 'state queued_to_apply', '"198.19.0.1/16" is not an address or a prefix without host bits'],
  );
  t.match(d.skipped.find((s) => s.share === 's-creating')?.reason, /status creating/);
  const cifs = d.shares.find((s) => s.id === 's-cifs');
  t.same(cifs?.exportLocations, ['\\\\198.18.0.100\\acme'], 'host:/share CIFS locations are normalised');
  t.equal(cifs?.encryption, 'required', 'encryption_key_ref requires SMB3 encryption');
  t.same(d.network?.securityServices[0], { id: 'ss1', type: 'ldap', name: 'l', server: '198.18.0.60', domain: 'x', dnsIp: null, ou: null, user: 'cn=m' });
});

t.test('syncDomain() uses every visible location when none is preferred', async (t) => {
  const f = fetched();
  const first = f.shares[0];
  if (first !== undefined) {
    first.exportLocations = [
      { id: 'a', path: '198.18.0.100:/export/acme' },
      { id: 'b', path: '198.18.0.102:/export/acme' },
    ];
  }
  t.same(syncDomain(f, null).shares.find((s) => s.id === 's-nfs')?.exportLocations, ['198.18.0.100:/export/acme', '198.18.0.102:/export/acme']);
});

t.test('syncDomain() freezes the last applied shares during network_change and keeps them on error', async (t) => {
  const before = syncDomain(fetched(), null);
  const changing = fetched({ shares: [], securityServices: [] });
  if (changing.network !== null) {
    changing.network.status = 'network_change';
  }
  const frozen = syncDomain(changing, before);
  t.same(frozen.flags, { frozen: true, networkError: false, missing: false });
  t.same(frozen.shares, before.shares, 'nothing new is taken, nothing is taken away');
  t.same(frozen.network?.securityServices, [], 'the network facts still show');
  t.same(syncDomain(changing, null).shares, [], 'no previous state: nothing applied');
  const broken = fetched({ shares: [] });
  if (broken.network !== null) {
    broken.network.status = 'error';
  }
  const e = syncDomain(broken, before);
  t.same(e.flags, { frozen: false, networkError: true, missing: false });
  t.same(e.shares, before.shares);
  const odd = fetched({ shares: [] });
  if (odd.network !== null) {
    odd.network.status = 'rebuilding';
  }
  t.same(syncDomain(odd, before).flags.networkError, true, 'an unknown status keeps the last-known-good state, flagged');
  t.same(syncDomain(odd, before).shares, before.shares);
  const old = fetched();
  if (old.network !== null) {
    delete old.network.status;
  }
  t.equal(syncDomain(old, null).shares.length, 2, 'no status (below 2.63): applied');
  const missing = syncDomain(fetched({ network: null }), before);
  t.same(missing.flags.missing, true);
  t.same(missing.shares, []);
});

t.test('parseManilaLocation() accepts the forms Manila drivers report', async (t) => {
  t.same(parseManilaLocation('CIFS', '\\\\198.18.0.100\\acme').valueOf().constructor, Object);
  t.equal(typeof parseManilaLocation('NFS', 'fileserver:/x'), 'string', 'host names are refused');
  t.equal(typeof parseManilaLocation('CIFS', 'nope'), 'string');
});

t.test('mergeSynced() adds synced shares to the domain files\' shares; static ids win', async (t) => {
  const { daemon, domains } = labYaml('kernel');
  const acme = (domains['acme.yaml'] ?? '').replace('sourceIp: 198.18.0.11', `sourceIp: 198.18.0.11\nshareNetwork: ${SN}`);
  const cfg = configFrom(daemon, { ...domains, 'acme.yaml': acme });
  const d: SyncedDomain = syncDomain(fetched(), null);
  d.shares.push({ id: 'acme-nfs', proto: 'NFS', exportLocations: ['198.18.0.101:/export/x'], accessRules: [] });
  const merged = mergeSynced(cfg, new Map([['acme', d]]));
  t.same(merged.collisions, [{ domain: 'acme', share: 'acme-nfs' }]);
  const ids = merged.config.domains.find((x) => x.name === 'acme')?.shares.map((s) => s.id);
  t.same(ids, ['acme-nfs', 'acme-smb', 'acme-private', 's-cifs', 's-nfs']);
  const g = compileDesired(merged.config).guests.find((x) => x.key === 'acme/g1');
  t.ok(g?.grants.some((gr) => gr.backend === '198.18.0.100' && gr.port === 2049 && gr.shares.some((s) => s.id === 's-nfs')), 'the synced NFS share grants g1 (198.19.0.5) 2049');
  const other = mergeSynced(cfg, new Map([['acme', { ...d, shareNetworkId: 'another' }]]));
  t.equal(other.config.domains.find((x) => x.name === 'acme')?.shares.length, 3, 'a state for another share network is not applied');
});

t.test('syncDomain() never throws and never grants a rule that is not active, on random input', async (t) => {
  // A small seeded generator: the same cases on every run.
  let seed = 0x5eed;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const states = ['active', 'queued_to_apply', 'applying', 'queued_to_deny', 'denying', 'error', 'weird'];
  const paths = ['198.18.0.100:/export/acme', '\\\\198.18.0.100\\acme', '198.18.0.100:/acme', 'host:/x', '[2001:db8::1]:/e', '', '::::', '10.0.0.10:/path/to/fake'];
  const tos = ['198.19.0.5', '198.19.0.0/24', '198.19.0.1/24', 'not-an-ip', '2001:db8::/64', 'user1'];
  let granted = 0;
  for (let i = 0; i < 2000; i++) {
    const f = fetched({
      shares: Array.from({ length: Math.floor(rnd() * 4) }, (_, k) => ({
        share: share(`s${k}`, { status: pick(['available', 'creating', 'error', 'deleting']), share_proto: pick(['NFS', 'CIFS', 'CEPHFS', 'nfs']), encryption_key_ref: pick([null, 'k']) }),
        exportLocations: Array.from({ length: Math.floor(rnd() * 3) }, (_, j) => ({ id: `e${j}`, path: pick(paths), preferred: rnd() < 0.5, is_admin_only: rnd() < 0.2 })),
        accessRules: Array.from({ length: Math.floor(rnd() * 3) }, (_, j) => ({ id: `r${j}`, access_type: pick(['ip', 'user', 'cephx', 'x']), access_to: pick(tos), access_level: pick(['rw', 'ro', 'admin']), state: pick(states) })),
      })),
    });
    if (f.network !== null) {
      f.network.status = pick(['active', 'active', 'network_change', 'error', 'odd']);
    }
    const d = syncDomain(f, null);
    for (const s of d.shares) {
      const src = f.shares.find((x) => x.share.id === s.id);
      t.equal(src?.share.status, 'available');
      for (const r of s.accessRules) {
        const from = src?.accessRules.find((x) => x.access_to === r.accessTo && x.state === 'active');
        if (from === undefined) {
          t.fail(`granted ${r.accessTo} without an active rule`);
        }
        granted++;
      }
      t.ok(s.exportLocations.length > 0);
    }
  }
  t.ok(granted > 0, `${granted} grants checked`);
});
