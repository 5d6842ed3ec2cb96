import t from 'tap';
import { chainName, hashKey, PREFIX } from '../../src/dataplane/kernel/chains';
import { countersOf } from '../../src/dataplane/kernel/plane';
import { proxyKey, renderCleanup, renderRules } from '../../src/dataplane/kernel/render';
import { failureContext } from '../../src/host/iptables';
import { parseSave } from '../../src/dataplane/kernel/save-parse';
import type { DesiredState } from '../../src/model/desired';
import { compileDesired } from '../../src/policy/policy';
import { configFrom, labYaml } from '../helpers/configs';
import { Ruleset } from '../helpers/tracer';

const EMPTY = parseSave('*raw\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\nCOMMIT\n');
const BUILTIN_TARGETS = new Set(['ACCEPT', 'DROP', 'REJECT', 'DNAT', 'SNAT', 'RETURN']);
const BUILTIN_CHAINS = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);

function desired(plane: 'kernel' | 'proxy'): DesiredState {
  const y = labYaml(plane);
  return compileDesired(configFrom(y.daemon, y.domains));
}

function proxyPorts(d: DesiredState): Map<string, number> {
  const ports = new Map<string, number>();
  let next = 40000;
  for (const g of d.guests) {
    for (const gr of g.grants) {
      ports.set(proxyKey(g.key, gr.backend, gr.port), next++);
    }
  }
  return ports;
}

/** Lines of each table, sorted, for an order-insensitive comparison. */
function byTable(text: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  let cur = '';
  for (const l of text.split('\n')) {
    if (l.startsWith('*')) {
      cur = l.slice(1);
      out[cur] = [];
    } else if (l !== '' && l !== 'COMMIT') {
      out[cur]?.push(l);
    }
  }
  for (const k of Object.keys(out)) {
    out[k]?.sort();
  }
  return out;
}

t.test('renderRules() matches the golden text for one guest with one grant', async (t) => {
  const cfg = configFrom(
    'node: n\n',
    {
      'a.yaml': `name: a\nproject: p\nsourceIp: 198.18.0.11\nguests:\n  - instance: i1\n    tunnel: { interface: t1, guestIp: 169.254.9.2, gatewayIp: 169.254.9.1 }\n    addresses: [198.19.0.5]\nshares:\n  - id: s1\n    proto: CIFS\n    exportLocations: ['//198.18.0.100/s1']\n    accessRules: [{ accessType: ip, accessTo: 198.19.0.0/24, accessLevel: rw }]\n`,
    },
  );
  const text = renderRules({ desired: compileDesired(cfg), existing: EMPTY });
  const h = hashKey('a/i1');
  const d = hashKey('a');
  const capd = [`-A SGW-CAPD-${d} -d 198.18.0.100/32 -p tcp -m tcp --dport 445 -m connlimit --connlimit-above 256 --connlimit-mask 32 --connlimit-daddr -m comment --comment "sharegw a cap-domain 198.18.0.100:445" -j REJECT --reject-with tcp-reset`];
  const capb = ['-A SGW-CAPB -d 198.18.0.100/32 -p tcp -m tcp --dport 445 -m connlimit --connlimit-above 896 --connlimit-mask 32 --connlimit-daddr -m comment --comment "sharegw - cap-backend 198.18.0.100:445" -j REJECT --reject-with tcp-reset'];
  const golden = `*raw
:SGW-PREROUTING - [0:0]
-I PREROUTING 1 -m comment --comment "sharegw" -j SGW-PREROUTING
-A SGW-PREROUTING -i t1 ! -s 169.254.9.2/32 -m comment --comment "sharegw a/i1 antispoof" -j DROP
COMMIT
*nat
:SGW-PREROUTING - [0:0]
:SGW-POSTROUTING - [0:0]
-I PREROUTING 1 -m comment --comment "sharegw" -j SGW-PREROUTING
-I POSTROUTING 1 -m comment --comment "sharegw" -j SGW-POSTROUTING
-A SGW-POSTROUTING -s 169.254.9.2/32 -p tcp -m tcp --sport 1:1023 -m comment --comment "sharegw a/i1 snat" -j SNAT --to-source 198.18.0.11:1-1023
-A SGW-POSTROUTING -s 169.254.9.2/32 -m comment --comment "sharegw a/i1 snat" -j SNAT --to-source 198.18.0.11
COMMIT
*filter
:SGW-INPUT - [0:0]
:SGW-FORWARD - [0:0]
:SGW-FWD-${h} - [0:0]
:SGW-IN-${h} - [0:0]
:SGW-CAPD-${d} - [0:0]
:SGW-CAPB - [0:0]
-A SGW-CAPD-${d} -m comment --comment "sharegw caps ${hashKey(capd.join('\n'), 12)}"
${capd.join('\n')}
-A SGW-CAPB -m comment --comment "sharegw caps ${hashKey(capb.join('\n'), 12)}"
${capb.join('\n')}
-A SGW-FWD-${h} -p tcp -m conntrack --ctstate NEW -j SGW-CAPD-${d}
-A SGW-FWD-${h} -p tcp -m conntrack --ctstate NEW -j SGW-CAPB
-I INPUT 1 -m comment --comment "sharegw" -j SGW-INPUT
-I FORWARD 1 -m comment --comment "sharegw" -j SGW-FORWARD
-A SGW-FORWARD -i t1 -m comment --comment "sharegw a/i1" -j SGW-FWD-${h}
-A SGW-FORWARD -o t1 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A SGW-FORWARD -o t1 -m comment --comment "sharegw a/i1 inbound" -j DROP
-A SGW-INPUT -i t1 -m comment --comment "sharegw a/i1" -j SGW-IN-${h}
-A SGW-FWD-${h} -m conntrack --ctstate RELATED -j ACCEPT
-A SGW-IN-${h} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A SGW-IN-${h} -p icmp -m icmp --icmp-type 8 -m limit --limit 10/sec -j ACCEPT
-A SGW-FWD-${h} -d 198.18.0.100/32 -p tcp -m tcp --dport 445 -m comment --comment "sharegw a/i1 smb rw share=s1" -j ACCEPT
-A SGW-FWD-${h} -p tcp -m comment --comment "sharegw a/i1 deny" -j REJECT --reject-with tcp-reset
-A SGW-FWD-${h} -m comment --comment "sharegw a/i1 deny" -j REJECT --reject-with icmp-admin-prohibited
-A SGW-IN-${h} -p tcp -m comment --comment "sharegw a/i1 deny-local" -j REJECT --reject-with tcp-reset
-A SGW-IN-${h} -m comment --comment "sharegw a/i1 deny-local" -j REJECT --reject-with icmp-admin-prohibited
COMMIT
`;
  t.same(byTable(text), byTable(golden));
});

for (const plane of ['kernel', 'proxy'] as const) {
  t.test(`renderRules() output is self-consistent in the ${plane} plane`, async (t) => {
    const d = desired(plane);
    const text = renderRules({ desired: d, existing: EMPTY, proxyPorts: proxyPorts(d) });
    let table = '';
    const declared = new Map<string, Set<string>>();
    for (const line of text.split('\n')) {
      if (line.startsWith('*')) {
        table = line.slice(1);
        declared.set(table, new Set());
      } else if (line.startsWith(':')) {
        const name = line.slice(1).split(' ')[0] ?? '';
        t.ok(name.startsWith(PREFIX), `declared chain ${name} has our prefix`);
        t.ok(name.length <= 28, `chain ${name} fits iptables' 28 characters`);
        declared.get(table)?.add(name);
      }
    }
    table = '';
    for (const line of text.split('\n')) {
      if (line.startsWith('*')) {
        table = line.slice(1);
      }
      const m = /^-[AI] (\S+) .*-j (\S+)/.exec(line);
      if (m === null) {
        continue;
      }
      const [, chain = '', target = ''] = m;
      if (BUILTIN_CHAINS.has(chain)) {
        t.ok(target.startsWith(PREFIX), `a built-in chain only jumps into ours: ${line}`);
        t.ok(line.startsWith('-I '), 'jumps are inserted, not appended');
      } else {
        t.ok(chain.startsWith(PREFIX), `rules are only written into our chains: ${line}`);
      }
      t.ok(BUILTIN_TARGETS.has(target) || declared.get(table)?.has(target), `target ${target} is built in or declared in ${table}`);
    }
  });
}

const LOCAL = ['169.254.1.1', '169.254.2.1', '198.18.0.11', '198.18.0.12'];

t.test('renderRules() kernel plane: packets are forwarded with SNAT or refused', async (t) => {
  const rs = new Ruleset(renderRules({ desired: desired('kernel'), existing: EMPTY }));
  const g1 = { iif: 'sgwt-g1', oif: 'vb', src: '169.254.1.2', proto: 'tcp' as const, sport: 876 };
  const g2 = { iif: 'sgwt-g2', oif: 'vb', src: '169.254.2.2', proto: 'tcp' as const, sport: 50000 };

  const nfs = rs.trace({ ...g1, dst: '198.18.0.100', dport: 2049 }, LOCAL);
  t.match(nfs, { verdict: 'ACCEPT', path: 'forward', dst: '198.18.0.100', dport: 2049, src: '198.18.0.11', snatPorts: '1-1023' });
  t.match(rs.trace({ ...g1, sport: 40000, dst: '198.18.0.100', dport: 445 }, LOCAL), { verdict: 'ACCEPT', src: '198.18.0.11' });
  t.notOk(rs.trace({ ...g1, sport: 40000, dst: '198.18.0.100', dport: 445 }, LOCAL).snatPorts, 'unprivileged source ports are not forced low');
  for (const port of [111, 20048]) {
    t.match(rs.trace({ ...g1, dst: '198.18.0.100', dport: port }, LOCAL), { verdict: 'ACCEPT' }, `nfsv3 port ${port}`);
  }
  t.match(rs.trace({ ...g2, dst: '198.18.0.101', dport: 2049 }, LOCAL), { verdict: 'ACCEPT', src: '198.18.0.12' });

  // The isolation matrix.
  t.match(rs.trace({ ...g2, dst: '198.18.0.100', dport: 2049 }, LOCAL), { verdict: 'REJECT', rejectWith: 'tcp-reset', comment: 'sharegw beta/g2 deny' }, 'other domain backend');
  t.match(rs.trace({ ...g1, dst: '198.18.0.102', dport: 2049 }, LOCAL), { verdict: 'REJECT', rejectWith: 'tcp-reset' }, 'share without a matching rule');
  t.match(rs.trace({ ...g1, dst: '198.18.0.100', dport: 5201 }, LOCAL), { verdict: 'REJECT' }, 'non-share port');
  t.match(rs.trace({ ...g1, dst: '198.18.0.101', dport: 2049 }, LOCAL), { verdict: 'REJECT' }, 'another domain backend from g1');
  t.match(rs.trace({ ...g1, proto: 'udp', dst: '198.18.0.100', dport: 2049 }, LOCAL), { verdict: 'REJECT', rejectWith: 'icmp-admin-prohibited' }, 'UDP');
  t.match(rs.trace({ ...g2, src: '169.254.1.2', dst: '198.18.0.101', dport: 2049 }, LOCAL), { verdict: 'DROP', path: 'dropped-early', comment: 'sharegw beta/g2 antispoof' }, 'spoofing another guest');
  t.match(rs.trace({ ...g1, src: '198.19.0.5', dst: '198.18.0.100', dport: 2049 }, LOCAL), { verdict: 'DROP', path: 'dropped-early' }, 'foreign source on own tunnel');
  t.match(rs.trace({ ...g1, dst: '169.254.1.1', dport: 22 }, LOCAL), { verdict: 'REJECT', path: 'local', comment: 'sharegw acme/g1 deny-local' }, 'host services');
  t.match(rs.trace({ ...g1, proto: 'icmp', icmpType: 8, dst: '169.254.1.1' }, LOCAL), { verdict: 'ACCEPT', path: 'local' }, 'ping the gateway');
  t.match(rs.trace({ iif: 'vb', oif: 'sgwt-g1', src: '198.18.0.100', dst: '169.254.1.2', proto: 'tcp', sport: 2049, dport: 876 }, LOCAL), { verdict: 'DROP' }, 'nobody opens connections into a tunnel');
  t.match(rs.trace({ iif: 'vb', oif: 'sgwt-g1', src: '198.18.0.100', dst: '169.254.1.2', proto: 'tcp', sport: 2049, dport: 876, state: 'ESTABLISHED' }, LOCAL), { verdict: 'ACCEPT' }, 'replies reach the guest');
  t.match(rs.trace({ iif: 'eth0', oif: 'eth1', src: '203.0.113.1', dst: '203.0.113.2', proto: 'tcp', dport: 80 }, LOCAL), { verdict: 'ACCEPT', where: 'filter/FORWARD (policy)' }, 'traffic of other interfaces is left to the host');
});

t.test('renderRules() proxy plane: grants are redirected to their own listener, the rest refused', async (t) => {
  const d = desired('proxy');
  const ports = proxyPorts(d);
  const rs = new Ruleset(renderRules({ desired: d, existing: EMPTY, proxyPorts: ports }));
  const g1 = { iif: 'sgwt-g1', oif: 'vb', src: '169.254.1.2', proto: 'tcp' as const, sport: 876 };
  const lp = ports.get(proxyKey('acme/g1', '198.18.0.100', 2049));
  t.ok(lp !== undefined);
  t.match(rs.trace({ ...g1, dst: '198.18.0.100', dport: 2049 }, LOCAL), { verdict: 'ACCEPT', path: 'local', dst: '169.254.1.1', dport: lp, src: '169.254.1.2' });
  t.match(rs.trace({ ...g1, dst: '198.18.0.100', dport: 445 }, LOCAL), { verdict: 'ACCEPT', path: 'local', dport: ports.get(proxyKey('acme/g1', '198.18.0.100', 445)) });
  t.match(rs.trace({ ...g1, dst: '198.18.0.102', dport: 2049 }, LOCAL), { verdict: 'REJECT', path: 'forward', rejectWith: 'tcp-reset' }, 'no grant: not redirected, refused');
  t.match(rs.trace({ ...g1, dst: '169.254.1.1', dport: lp ?? 0 }, LOCAL), { verdict: 'REJECT', path: 'local' }, 'listener ports are not reachable without the redirect');
  const g2 = { iif: 'sgwt-g2', oif: 'vb', src: '169.254.2.2', proto: 'tcp' as const, sport: 876 };
  t.match(rs.trace({ ...g2, dst: '169.254.1.1', dport: lp ?? 0 }, LOCAL), { verdict: 'REJECT' }, "another guest cannot reach g1's listener");
  t.match(rs.trace({ ...g2, dst: '198.18.0.100', dport: 2049 }, LOCAL), { verdict: 'REJECT', path: 'forward' });
  t.notOk(renderRules({ desired: d, existing: EMPTY, proxyPorts: ports }).includes('SNAT'), 'the proxy binds the source IP itself: no SNAT');
});

t.test('renderRules() kernel plane steers SMB grants with a domain policy through the proxy, the rest stay forwarded', async (t) => {
  const y = labYaml('kernel');
  const acme = (y.domains['acme.yaml'] ?? '').replace('sourceIp: 198.18.0.11\n', 'sourceIp: 198.18.0.11\nsmb: { minDialect: "3.1.1" }\n');
  const d = compileDesired(configFrom(y.daemon, { ...y.domains, 'acme.yaml': acme }));
  const smbKey = proxyKey('acme/g1', '198.18.0.100', 445);
  const ports = new Map([[smbKey, 40100]]);
  const text = renderRules({ desired: d, existing: EMPTY, proxyPorts: ports });
  const rs = new Ruleset(text);
  const g1 = { iif: 'sgwt-g1', oif: 'vb', src: '169.254.1.2', proto: 'tcp' as const, sport: 40000 };
  t.match(rs.trace({ ...g1, dst: '198.18.0.100', dport: 445 }, LOCAL), { verdict: 'ACCEPT', path: 'local', dst: '169.254.1.1', dport: 40100 }, 'SMB: to the proxy listener');
  t.match(rs.trace({ ...g1, dst: '198.18.0.100', dport: 2049 }, LOCAL), { verdict: 'ACCEPT', path: 'forward', src: '198.18.0.11' }, 'NFS: kernel fast path with SNAT');
  t.notOk(/--dport 445 .*-j ACCEPT/.test(text.split('\n').filter((l) => l.startsWith('-A SGW-FWD-')).join('\n')), 'no forward accept for the steered grant');
  const unopened = new Ruleset(renderRules({ desired: d, existing: EMPTY, proxyPorts: new Map() }));
  t.match(unopened.trace({ ...g1, dst: '198.18.0.100', dport: 445 }, LOCAL), { verdict: 'REJECT' }, 'a steered grant whose listener is not open is refused, never forwarded unchecked');
  const plain = compileDesired(configFrom(y.daemon, y.domains));
  t.notOk(renderRules({ desired: plain, existing: EMPTY, proxyPorts: new Map() }).includes('DNAT'), 'without a domain SMB policy nothing is steered');
});

t.test('renderRules() proxy plane leaves out grants whose listener is not open', async (t) => {
  const d = desired('proxy');
  const text = renderRules({ desired: d, existing: EMPTY, proxyPorts: new Map() });
  t.notOk(text.includes('DNAT'));
  const rs = new Ruleset(text);
  t.match(rs.trace({ iif: 'sgwt-g1', oif: 'vb', src: '169.254.1.2', proto: 'tcp', dst: '198.18.0.100', dport: 2049 }, LOCAL), { verdict: 'REJECT' });
});

t.test('renderRules() flushes and deletes chains of removed guests', async (t) => {
  const existing = parseSave(`*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:SGW-FORWARD - [0:0]
:SGW-FWD-OLDGUESTAAAAAAAA - [0:0]
:OTHER-CHAIN - [0:0]
-A FORWARD -m comment --comment sharegw -j SGW-FORWARD
-A SGW-FORWARD -i old -j SGW-FWD-OLDGUESTAAAAAAAA
COMMIT
`);
  const text = renderRules({ desired: desired('kernel'), existing });
  const filter = text.slice(text.indexOf('*filter'));
  t.ok(filter.includes(':SGW-FWD-OLDGUESTAAAAAAAA - [0:0]'), 'stale chain flushed');
  t.ok(filter.indexOf('-X SGW-FWD-OLDGUESTAAAAAAAA') > filter.indexOf('-A SGW-FORWARD'), 'deleted after the rules that referenced it are replaced');
  t.notOk(text.includes('OTHER-CHAIN'), "other programs' chains are not touched");
  t.notOk(filter.includes('-I FORWARD'), 'an existing jump is not duplicated');
  t.ok(filter.includes('-I INPUT 1'), 'a missing jump is inserted');
});

t.test('renderRules() deletes duplicated jumps', async (t) => {
  const existing = parseSave(`*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -m comment --comment sharegw -j SGW-FORWARD
-A FORWARD -j ACCEPT
-A FORWARD -m comment --comment sharegw -j SGW-FORWARD
COMMIT
`);
  const text = renderRules({ desired: desired('kernel'), existing });
  t.equal(text.split('\n').filter((l) => l === '-D FORWARD -m comment --comment sharegw -j SGW-FORWARD').length, 1);
  t.notOk(text.includes('-I FORWARD'));
});

t.test('renderCleanup() removes every SGW chain and jump and nothing else', async (t) => {
  const existing = parseSave(`*nat
:PREROUTING ACCEPT [0:0]
:SGW-PREROUTING - [0:0]
-A PREROUTING -m comment --comment sharegw -j SGW-PREROUTING
-A PREROUTING -j OTHER
COMMIT
*filter
:FORWARD ACCEPT [0:0]
:SGW-FORWARD - [0:0]
:SGW-FWD-X - [0:0]
-A FORWARD -m comment --comment sharegw -j SGW-FORWARD
-A SGW-FORWARD -j SGW-FWD-X
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
COMMIT
`);
  t.equal(
    renderCleanup(existing),
    `*nat
:SGW-PREROUTING - [0:0]
-D PREROUTING -m comment --comment sharegw -j SGW-PREROUTING
-X SGW-PREROUTING
COMMIT
*filter
:SGW-FORWARD - [0:0]
:SGW-FWD-X - [0:0]
-D FORWARD -m comment --comment sharegw -j SGW-FORWARD
-X SGW-FORWARD
-X SGW-FWD-X
COMMIT
`,
  );
  t.equal(renderCleanup(parseSave('*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n')), null, 'nothing to do');
});

t.test('renderRules() rule count grows linearly with guests and grants', async (t) => {
  const count = (domains: number, guestsPer: number, shares: number): number => {
    const files: Record<string, string> = {};
    for (let d = 0; d < domains; d++) {
      const guests = Array.from({ length: guestsPer }, (_, g) => `  - instance: d${d}g${g}\n    tunnel: { interface: t${d}x${g}, guestIp: 169.254.${d}.${g * 4 + 2}, gatewayIp: 169.254.${d}.${g * 4 + 1} }\n    addresses: [198.19.${d}.${g + 10}]\n`).join('');
      const sh = Array.from({ length: shares }, (_, s) => `  - id: d${d}s${s}\n    proto: NFS\n    exportLocations: ["198.18.${d}.${s + 100}:/e"]\n    accessRules: [{ accessType: ip, accessTo: 198.19.${d}.0/24, accessLevel: rw }]\n`).join('');
      files[`d${d}.yaml`] = `name: d${d}\nproject: p\nsourceIp: 198.18.200.${d + 1}\nguests:\n${guests}shares:\n${sh}`;
    }
    const text = renderRules({ desired: compileDesired(configFrom('node: n\n', files)), existing: EMPTY });
    return text.split('\n').filter((l) => l.startsWith('-A ') || l.startsWith('-I ')).length;
  };
  // 5 jumps; per guest 14 fixed rules (raw: antispoof; nat: PREROUTING jump +
  // POSTROUTING SNAT jump; filter: FORWARD 3, INPUT 1, established 2, ping 1,
  // deny 2, deny-local 2); one per grant. Caps: per guest 2 jumps; per
  // domain a marker and one per backend:port it uses; the backend chain a
  // marker and one per backend:port in use (here each share its own backend).
  const caps = (domains: number, guestsPer: number, shares: number): number => 2 * domains * guestsPer + domains * (1 + shares) + 1 + domains * shares;
  t.equal(count(1, 1, 1), 5 + 14 + 1 + caps(1, 1, 1));
  t.equal(count(10, 10, 10), 5 + 100 * 14 + 100 * 10 + caps(10, 10, 10));
  t.equal(count(20, 5, 3), 5 + 100 * 14 + 100 * 3 + caps(20, 5, 3));
});

t.test('chainName() is stable, prefixed and at most 28 characters', async (t) => {
  t.equal(chainName('FWD', 'acme/g1'), chainName('FWD', 'acme/g1'));
  t.not(chainName('FWD', 'acme/g1'), chainName('FWD', 'acme/g2'));
  t.match(chainName('IN', 'x'.repeat(500)), /^SGW-IN-[A-Z2-7]{16}$/);
  t.ok(chainName('FWD', 'k').length <= 28);
  t.equal(hashKey('abc', 8), hashKey('abc', 16).slice(0, 8));
});

t.test('renderRules() keeps comments safe for restore input', async (t) => {
  const cfg = configFrom('node: n\n', {
    'a.yaml': `name: a\nproject: p\nsourceIp: 198.18.0.11\nguests:\n  - instance: 'evil" -j ACCEPT'\n    tunnel: { interface: t1, guestIp: 169.254.9.2, gatewayIp: 169.254.9.1 }\n    addresses: [198.19.0.5]\n`,
  });
  const text = renderRules({ desired: compileDesired(cfg), existing: EMPTY });
  t.notOk(text.includes('evil"'), 'a quote cannot end the comment early');
  t.ok(text.includes('"sharegw a/evil_ -j ACCEPT antispoof"'));
});

t.test('failureContext() shows the failing restore line with three lines around it', async (t) => {
  const text = Array.from({ length: 10 }, (_, i) => `line${i + 1}`).join('\n');
  t.equal(failureContext(text, 'iptables-restore: line 5 failed'), '     2: line2\n     3: line3\n     4: line4\n>    5: line5\n     6: line6\n     7: line7\n     8: line8');
  t.equal(failureContext(text, 'Error occurred at line: 1'), '>    1: line1\n     2: line2\n     3: line3\n     4: line4');
  t.equal(failureContext(text, 'something else'), '');
});

t.test('countersOf() sums packets per guest and reason from our rules only', async (t) => {
  const saved = parseSave(`*raw
:SGW-PREROUTING - [0:0]
[7:420] -A SGW-PREROUTING -i t1 ! -s 169.254.9.2/32 -m comment --comment "sharegw a/i1 antispoof" -j DROP
COMMIT
*filter
:FORWARD ACCEPT [0:0]
:SGW-FWD-X - [0:0]
[3:180] -A SGW-FWD-X -p tcp -m comment --comment "sharegw a/i1 deny" -j REJECT --reject-with tcp-reset
[2:120] -A SGW-FWD-X -m comment --comment "sharegw a/i1 deny" -j REJECT --reject-with icmp-admin-prohibited
[9:999] -A FORWARD -m comment --comment "sharegw a/i1 deny" -j DROP
COMMIT
`);
  t.same(countersOf(saved), { byGuest: { 'a/i1': { antispoof: 7, deny: 5 } }, caps: {} });
});
