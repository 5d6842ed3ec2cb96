import t from 'tap';
import { diffEgress, parseEgress, renderEgress, renderEgressCleanup, rpFilterWarnings } from '../../src/dataplane/kernel/egress';
import { renderRules } from '../../src/dataplane/kernel/render';
import { parseSave } from '../../src/dataplane/kernel/save-parse';
import { compileDesired } from '../../src/policy/policy';
import { configFrom, labYaml } from '../helpers/configs';

/** Per-domain egress rendering (ADR 0011): routes, policy rules, conntrack zones, diffs. */

function twoDomains(dataplane: 'kernel' | 'proxy' = 'kernel'): ReturnType<typeof compileDesired> {
  const y = labYaml(dataplane);
  const domains = {
    'acme.yaml': y.domains['acme.yaml']?.replace('sourceIp: 198.18.0.11\n', 'sourceIp: 198.18.9.1\negress: { interface: sgwe-a, table: 20001 }\n').replace(/198\.18\.0\.10[02]/g, '198.18.8.10') ?? '',
    'beta.yaml': y.domains['beta.yaml']?.replace('sourceIp: 198.18.0.12\n', 'sourceIp: 198.18.9.2\negress: { interface: sgwe-b, via: 198.18.7.1, table: 20002 }\n').replace('198.18.0.101', '198.18.8.10') ?? '',
  };
  return compileDesired(configFrom(y.daemon, domains));
}

t.test('renderEgress() gives each domain a table, routes to its backends and rules for its tunnels, guests and source IP', async (t) => {
  const spec = renderEgress(twoDomains());
  t.same(spec.routes, [
    { table: 20001, dst: '198.18.8.10', type: 'unicast', dev: 'sgwe-a' },
    { table: 20002, dst: '198.18.8.10', type: 'unicast', dev: 'sgwe-b', via: '198.18.7.1' },
    { table: 20001, dst: 'default', type: 'unreachable' },
    { table: 20002, dst: 'default', type: 'unreachable' },
  ]);
  t.same(spec.rules, [
    { priority: 20000, table: 20001, from: '169.254.1.2' },
    { priority: 20000, table: 20002, from: '169.254.2.2' },
    { priority: 20000, table: 20001, from: '198.18.9.1' },
    { priority: 20000, table: 20002, from: '198.18.9.2' },
    { priority: 20000, table: 20001, iif: 'sgwt-g1' },
    { priority: 20000, table: 20002, iif: 'sgwt-g2' },
    { priority: 20000, table: 20001, oif: 'sgwe-a' },
    { priority: 20000, table: 20002, oif: 'sgwe-b' },
  ]);
  t.same(renderEgress(compileDesired(configFrom(labYaml('kernel').daemon, labYaml('kernel').domains))), { routes: [], rules: [] }, 'no egress, nothing');
});

t.test('renderEgress() with one source IP on two egress links: device rules only, no ambiguous from rules', async (t) => {
  const d = twoDomains();
  const shared = { ...d, egress: (d.egress ?? []).map((e) => ({ ...e, sourceIp: '198.18.9.1' })) };
  const spec = renderEgress(shared);
  t.same(
    spec.rules.filter((r) => r.from === '198.18.9.1'),
    [],
    'two `from 198.18.9.1` rules at one priority would send both domains to the first table',
  );
  t.same(
    spec.rules.filter((r) => r.oif !== undefined),
    [
      { priority: 20000, table: 20001, oif: 'sgwe-a' },
      { priority: 20000, table: 20002, oif: 'sgwe-b' },
    ],
  );
  t.ok(spec.rules.some((r) => r.iif === 'sgwt-g2' && r.table === 20002), 'the kernel plane still routes by tunnel');
  const zones = renderRules({ desired: { ...shared, dataplane: 'proxy' }, existing: parseSave('') })
    .split('\n')
    .filter((l) => l.startsWith('-A SGW-OUTPUT -s 198.18.9.1/32'));
  t.same(zones, [
    '-A SGW-OUTPUT -s 198.18.9.1/32 -o sgwe-a -m comment --comment "sharegw acme egress" -j CT --zone 20001',
    '-A SGW-OUTPUT -s 198.18.9.1/32 -o sgwe-b -m comment --comment "sharegw beta egress" -j CT --zone 20002',
  ], 'the proxy\'s own packets get their zone by device too');
});

t.test('rpFilterWarnings(): strict rp_filter (max of all and the link) on a link whose source IP is shared', async (t) => {
  const e = (domain: string, iface: string, sourceIp: string): { domain: string; iface: string; via: null; table: number; sourceIp: string; backends: string[] } => ({ domain, iface, via: null, table: 1, sourceIp, backends: [] });
  const egress = [e('a', 'e0', '198.18.9.1'), e('b', 'e1', '198.18.9.1'), e('c', 'e2', '198.18.9.3')];
  const sysctl = (v: Record<string, number>) => (name: string): number | null => v[name] ?? null;
  t.same(rpFilterWarnings(egress, sysctl({ all: 0, e0: 0, e1: 2, e2: 1 })), [], 'loose or off on the shared links; strict only where the address is unique');
  const w = rpFilterWarnings(egress, sysctl({ all: 0, e0: 1, e1: 0, e2: 1 }));
  t.same(w.map((x) => [x.domain, x.iface, x.code]), [['a', 'e0', 'SGW_WARN_EGRESS_RP_FILTER']]);
  t.match(w[0]?.message, /net\.ipv4\.conf\.e0\.rp_filter .* to 0 or 2/);
  t.same(rpFilterWarnings(egress, sysctl({ all: 1, e0: 0, e1: 0 })).map((x) => x.domain), ['a', 'b'], 'conf/all = 1 makes every link strict');
  t.same(rpFilterWarnings(egress, sysctl({ all: 1, e0: 2, e1: 2 })), [], 'the larger value wins: loose');
  t.same(rpFilterWarnings(egress, sysctl({ all: 1 })), [], 'a link that does not exist (yet) is left to the egress apply');
});

t.test('diffEgress() fills tables first, then adds rules, then removes stale rules and routes', async (t) => {
  const want = renderEgress(twoDomains());
  const all = diffEgress(want, { routes: [], rules: [] });
  t.equal(
    all,
    `route replace 198.18.8.10 dev sgwe-a table 20001 proto 213
route replace 198.18.8.10 via 198.18.7.1 dev sgwe-b table 20002 proto 213
route replace unreachable default table 20001 proto 213
route replace unreachable default table 20002 proto 213
rule add from 169.254.1.2/32 lookup 20001 pref 20000 protocol 213
rule add from 169.254.2.2/32 lookup 20002 pref 20000 protocol 213
rule add from 198.18.9.1/32 lookup 20001 pref 20000 protocol 213
rule add from 198.18.9.2/32 lookup 20002 pref 20000 protocol 213
rule add iif sgwt-g1 lookup 20001 pref 20000 protocol 213
rule add iif sgwt-g2 lookup 20002 pref 20000 protocol 213
rule add oif sgwe-a lookup 20001 pref 20000 protocol 213
rule add oif sgwe-b lookup 20002 pref 20000 protocol 213
`,
  );
  t.equal(diffEgress(want, want), '', 'nothing to do when the kernel holds it');
  // Domain beta removed: only its rules and routes go.
  const onlyAcme = { routes: want.routes.filter((r) => r.table === 20001), rules: want.rules.filter((r) => r.table === 20001) };
  t.equal(
    diffEgress(onlyAcme, want),
    `rule del from 169.254.2.2/32 lookup 20002 pref 20000 protocol 213
rule del from 198.18.9.2/32 lookup 20002 pref 20000 protocol 213
rule del iif sgwt-g2 lookup 20002 pref 20000 protocol 213
rule del oif sgwe-b lookup 20002 pref 20000 protocol 213
route del 198.18.8.10 via 198.18.7.1 dev sgwe-b table 20002 proto 213
route del unreachable default table 20002 proto 213
`,
  );
  // A changed next hop is replaced in place, never deleted after.
  const moved = { routes: want.routes.map((r) => (r.via === undefined ? r : { ...r, via: '198.18.7.2' })), rules: want.rules };
  t.equal(diffEgress(moved, want), 'route replace 198.18.8.10 via 198.18.7.2 dev sgwe-b table 20002 proto 213\n');
  t.equal(renderEgressCleanup(want).split('\n').filter((l) => l !== '').length, 12, 'cleanup removes all 12');
});

t.test('parseEgress() keeps only entries with our protocol and reads them back equal to the render', async (t) => {
  const rules = JSON.stringify([
    { priority: 0, src: 'all', table: 'local' },
    { priority: 20000, src: '169.254.1.2', table: '20001', protocol: '213' },
    { priority: 20000, src: '198.18.9.1', table: '20001', protocol: '213' },
    { priority: 20000, src: 'all', iif: 'sgwt-g1', table: '20001', protocol: '213' },
    { priority: 20000, src: 'all', oif: 'sgwe-a', table: '20001', protocol: '213' },
    { priority: 100, src: 'all', iif: 'eth0', table: '7' },
    { priority: 32766, src: 'all', table: 'main' },
  ]);
  const routes = JSON.stringify([
    { type: 'unreachable', dst: 'default', table: '20001', flags: [] },
    { dst: '198.18.8.10', dev: 'sgwe-a', table: '20001', scope: 'link', flags: [] },
    { dst: '10.0.0.0/8', dev: 'eth0', table: '7', protocol: 'static', flags: [] },
  ]);
  const have = parseEgress(rules, routes);
  const d = twoDomains();
  const want = renderEgress({ ...d, egress: d.egress?.filter((e) => e.domain === 'acme') ?? [], guests: d.guests.filter((g) => g.domain === 'acme') });
  t.same(have, want);
  t.equal(diffEgress(want, have), '');
  t.same(parseEgress('', ''), { routes: [], rules: [] });
});

t.test('renderRules() puts each egress domain in its own conntrack zone, both directions, and hooks raw OUTPUT only then', async (t) => {
  const text = renderRules({ desired: twoDomains('proxy'), existing: parseSave('') });
  const zone = text.split('\n').filter((l) => l.includes('CT --zone'));
  t.same(zone, [
    '-A SGW-PREROUTING -i sgwt-g1 -m comment --comment "sharegw acme/g1 zone" -j CT --zone 20001',
    '-A SGW-OUTPUT -o sgwt-g1 -m comment --comment "sharegw acme/g1 zone" -j CT --zone 20001',
    '-A SGW-PREROUTING -i sgwt-g2 -m comment --comment "sharegw beta/g2 zone" -j CT --zone 20002',
    '-A SGW-OUTPUT -o sgwt-g2 -m comment --comment "sharegw beta/g2 zone" -j CT --zone 20002',
    '-A SGW-PREROUTING -i sgwe-a -d 198.18.9.1/32 -m comment --comment "sharegw acme egress" -j CT --zone 20001',
    '-A SGW-OUTPUT -s 198.18.9.1/32 -o sgwe-a -m comment --comment "sharegw acme egress" -j CT --zone 20001',
    '-A SGW-PREROUTING -i sgwe-b -d 198.18.9.2/32 -m comment --comment "sharegw beta egress" -j CT --zone 20002',
    '-A SGW-OUTPUT -s 198.18.9.2/32 -o sgwe-b -m comment --comment "sharegw beta egress" -j CT --zone 20002',
  ]);
  t.match(text, /^-I OUTPUT 1 -m comment --comment "sharegw" -j SGW-OUTPUT$/m);
  // Anti-spoof stays first for every tunnel.
  const raw = text.split('\n');
  t.ok(raw.findIndex((l) => l.includes('sgwt-g1') && l.includes('antispoof')) < raw.findIndex((l) => l.includes('sgwt-g1') && l.includes('zone')));

  const plain = compileDesired(configFrom(labYaml('proxy').daemon, labYaml('proxy').domains));
  const without = renderRules({ desired: plain, existing: parseSave('') });
  t.notMatch(without, /SGW-OUTPUT|CT --zone/, 'no egress: the layout of ADR 0002 unchanged');
  // Egress removed while its entry chain is hooked: the jump goes, then the chain.
  const hooked = parseSave('*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:SGW-OUTPUT - [0:0]\n:SGW-PREROUTING - [0:0]\n-A OUTPUT -m comment --comment sharegw -j SGW-OUTPUT\n-A PREROUTING -m comment --comment sharegw -j SGW-PREROUTING\nCOMMIT\n');
  const removal = renderRules({ desired: plain, existing: hooked }).split('\n');
  const del = removal.indexOf('-D OUTPUT -m comment --comment sharegw -j SGW-OUTPUT');
  t.ok(del > 0 && del < removal.indexOf('-X SGW-OUTPUT'), 'jump deleted before the chain');
});

t.test('renderEgress() rule and route counts grow linearly: 1,000 domains x 10 guests x 3 backends', async (t) => {
  const guests = [];
  const egress = [];
  for (let d = 0; d < 1000; d++) {
    egress.push({ domain: `d${d}`, iface: `vlan${d}`, via: null, table: 20000 + d, sourceIp: `198.18.${d >> 8}.${d & 255}`, backends: ['198.18.8.10', '198.18.8.11', '198.18.8.12'] });
    for (let g = 0; g < 10; g++) {
      const n = d * 10 + g;
      guests.push({ key: `d${d}/g${g}`, domain: `d${d}`, instance: `g${g}`, iface: `t${n}`, guestIp: `169.254.${n >> 8}.${n & 255}`, gatewayIp: '169.254.255.1', sourceIp: '', grants: [] });
    }
  }
  const t0 = performance.now();
  const spec = renderEgress({ dataplane: 'kernel', guests, egress, rulePriority: 20000 });
  t.equal(spec.routes.length, 1000 * 4, 'a default and 3 backends per domain');
  t.equal(spec.rules.length, 1000 * (2 + 10 * 2), 'source IP and egress device, and iif + from per guest');
  t.equal(diffEgress(spec, spec), '');
  t.comment(`rendered and diffed in ${Math.round(performance.now() - t0)} ms`);
});
