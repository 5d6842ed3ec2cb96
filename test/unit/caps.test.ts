import t from 'tap';
import { CAP_BACKEND_CHAIN, chainName } from '../../src/dataplane/kernel/chains';
import { countersOf } from '../../src/dataplane/kernel/plane';
import { capRules, renderRules } from '../../src/dataplane/kernel/render';
import { parseSave } from '../../src/dataplane/kernel/save-parse';
import type { DesiredState } from '../../src/model/desired';
import { capsView, formatCaps } from '../../src/policy/caps';
import { compileDesired } from '../../src/policy/policy';
import { validateConfig } from '../../src/config/validate';
import { safeText } from '../../src/util/safe-text';
import { configFrom } from '../helpers/configs';
import { Ruleset } from '../helpers/tracer';

const EMPTY = parseSave('*raw\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\nCOMMIT\n');
const LOCAL = ['169.254.1.1', '169.254.2.1', '169.254.3.1', '198.18.0.11', '198.18.0.12'];

/** Two domains on one backend (no share networks: allowed), acme with two guests. */
function twoDomains(plane: 'kernel' | 'proxy', limits = 'limits: { maxConnectionsPerBackend: 5, maxConnectionsPerDomainPerBackend: 3 }\n'): DesiredState {
  const share = (id: string, net: string): string => `shares:\n  - id: ${id}\n    proto: NFS\n    exportLocations: ["198.18.0.100:/export/${id}"]\n    accessRules: [{ accessType: ip, accessTo: ${net}, accessLevel: rw }]\n`;
  return compileDesired(
    configFrom(`node: n\ndataplane: ${plane}\n${limits}`, {
      'acme.yaml': `name: acme\nproject: p\nsourceIp: 198.18.0.11\nguests:\n  - instance: g1\n    tunnel: { interface: t1, guestIp: 169.254.1.2, gatewayIp: 169.254.1.1 }\n    addresses: [198.19.0.5]\n  - instance: g3\n    tunnel: { interface: t3, guestIp: 169.254.3.2, gatewayIp: 169.254.3.1 }\n    addresses: [198.19.0.6]\n${share('acme-nfs', '198.19.0.0/24')}`,
      'beta.yaml': `name: beta\nproject: q\nsourceIp: 198.18.0.12\nguests:\n  - instance: g2\n    tunnel: { interface: t2, guestIp: 169.254.2.2, gatewayIp: 169.254.2.1 }\n    addresses: [198.19.1.5]\n${share('beta-nfs', '198.19.1.0/24')}`,
    }),
  );
}

const syn = (iif: string, src: string, sport: number) => ({ iif, src, dst: '198.18.0.100', proto: 'tcp' as const, sport, dport: 2049, state: 'NEW' as const });

t.test('validateConfig() takes limits with defaults below common server limits, and refuses bad ones', async (t) => {
  const d = twoDomains('kernel', '');
  t.same(d.limits, { perBackend: 896, perDomainPerBackend: 256 }, 'defaults');
  t.same(twoDomains('kernel').limits, { perBackend: 5, perDomainPerBackend: 3 });
  const r = validateConfig({ file: '/e/d.yaml', text: 'node: n\nlimits: { maxConnectionsPerBackend: 0, perGuest: 3 }\n' }, [], '/e/domains.d');
  t.same(r.problems.map((p) => [p.pointer, p.code]).sort(), [['/limits/maxConnectionsPerBackend', 'SGW_ERR_CONFIG_SCHEMA'], ['/limits/perGuest', 'SGW_ERR_CONFIG_UNKNOWN_KEY']]);
  const old = validateConfig({ file: '/e/d.yaml', text: 'node: n\nproxy: { maxConnectionsPerGuest: 7 }\n' }, [], '/e/domains.d');
  t.equal(old.config?.daemon.proxy.maxConnectionsPerGuest, 7, 'the per-guest key keeps working');
});

t.test('renderRules() kernel plane: a domain beyond its cap per backend is reset, another domain still connects', async (t) => {
  const rs = new Ruleset(renderRules({ desired: twoDomains('kernel'), existing: EMPTY }));
  const acme = [syn('t1', '169.254.1.2', 700), syn('t3', '169.254.3.2', 701), syn('t1', '169.254.1.2', 702)];
  for (const p of acme) {
    t.equal(rs.trace(p, LOCAL).verdict, 'ACCEPT', `acme ${p.iif}:${p.sport} within the cap (two tunnels count together)`);
  }
  const over = rs.trace(syn('t3', '169.254.3.2', 703), LOCAL);
  t.same([over.verdict, over.rejectWith, over.comment], ['REJECT', 'tcp-reset', 'sharegw acme cap-domain 198.18.0.100:2049'], 'the 4th of acme is reset');
  t.equal(rs.trace(syn('t2', '169.254.2.2', 800), LOCAL).verdict, 'ACCEPT', 'beta still connects');
  t.equal(rs.trace(syn('t2', '169.254.2.2', 801), LOCAL).verdict, 'ACCEPT');
  const full = rs.trace(syn('t2', '169.254.2.2', 802), LOCAL);
  t.same([full.verdict, full.comment], ['REJECT', 'sharegw - cap-backend 198.18.0.100:2049'], 'the backend cap (5) holds across domains');
  rs.close(acme[0]!);
  t.equal(rs.trace(syn('t2', '169.254.2.2', 803), LOCAL).verdict, 'ACCEPT', 'a closed connection frees its place');
  t.equal(rs.trace({ ...syn('t1', '169.254.1.2', 704), state: 'ESTABLISHED' }, LOCAL).verdict, 'ACCEPT', 'established packets never meet a cap');
});

t.test('renderRules() proxy plane renders no kernel caps (the proxy counts its sessions)', async (t) => {
  t.equal(capRules(twoDomains('proxy')).size, 0);
  t.notMatch(renderRules({ desired: twoDomains('proxy'), existing: EMPTY }), /connlimit|SGW-CAP/);
  const without: DesiredState = { ...twoDomains('kernel') };
  delete without.limits;
  t.equal(capRules(without).size, 0, 'no limits in the state (an old state file): no caps');
});

t.test('renderRules() leaves an unchanged cap chain alone (its counts live in it) and rewrites a changed one', async (t) => {
  const d = twoDomains('kernel');
  const first = renderRules({ desired: d, existing: EMPTY });
  // What iptables-save gives back after the first apply (with counters).
  const saved = (text: string): string =>
    text
      .split('\n')
      .map((l) => (l.startsWith('-A ') ? `[0:0] ${l}` : l.startsWith('-I ') ? `[0:0] ${l.replace(/^-I (\S+) 1 /, '-A $1 ')}` : l))
      .filter((l) => !l.startsWith('-X '))
      .join('\n');
  const existing = parseSave(saved(first).replace(':INPUT', ':INPUT ACCEPT [0:0]\n:X - [0:0]').replace(/^\*filter$/m, '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]'));
  const again = renderRules({ desired: d, existing });
  const capd = chainName('CAPD', 'acme');
  t.notMatch(again, new RegExp(`^:${capd} `, 'm'), 'the domain cap chain is not declared (not flushed)');
  t.notMatch(again, /^:SGW-CAPB /m);
  t.notMatch(again, /^-A SGW-CAP/m, 'nor are its rules written again');
  t.notMatch(again, /^-X SGW-CAP/m, 'nor deleted as stale');
  t.match(again, new RegExp(`-j ${capd}$`, 'm'), 'guests still jump to it');
  const changed = renderRules({ desired: { ...d, limits: { perBackend: 5, perDomainPerBackend: 2 } }, existing });
  t.match(changed, new RegExp(`^:${capd} `, 'm'), 'a changed cap is rewritten');
  t.match(changed, /--connlimit-above 2 /);
  t.notMatch(changed, /^:SGW-CAPB /m, 'the unchanged backend chain stays');
  const noLimits: DesiredState = { ...d };
  delete noLimits.limits;
  const gone = renderRules({ desired: noLimits, existing });
  t.match(gone, /^-X SGW-CAPB$/m, 'caps no longer wanted are deleted');
  t.match(gone, new RegExp(`^-X ${capd}$`, 'm'));
});

t.test('countersOf() reads cap refusals per scope, domain and backend', async (t) => {
  const saved = parseSave(`*filter
:${CAP_BACKEND_CHAIN} - [0:0]
:SGW-CAPD-X - [0:0]
[1:60] -A SGW-CAPD-X -m comment --comment "sharegw caps ABC"
[4:240] -A SGW-CAPD-X -d 198.18.0.100/32 -p tcp -m tcp --dport 2049 -m connlimit --connlimit-above 3 --connlimit-mask 32 --connlimit-daddr -m comment --comment "sharegw acme cap-domain 198.18.0.100:2049" -j REJECT --reject-with tcp-reset
[2:120] -A SGW-CAPB -d 198.18.0.100/32 -p tcp -m tcp --dport 2049 -m connlimit --connlimit-above 5 --connlimit-mask 32 --connlimit-daddr -m comment --comment "sharegw - cap-backend 198.18.0.100:2049" -j REJECT --reject-with tcp-reset
COMMIT
`);
  t.same(countersOf(saved).caps, { 'domain acme 198.18.0.100:2049': 4, 'backend - 198.18.0.100:2049': 2 });
  t.same(countersOf(saved, (c) => c !== 'SGW-CAPB').caps, { 'domain acme 198.18.0.100:2049': 4 }, 'kept chains can be left out (no double carry)');
});

t.test('capsView() shows every granted backend with caps, use per domain and refusals; formatCaps() escapes', async (t) => {
  const d = twoDomains('kernel');
  const v = capsView(
    d,
    [
      { plane: 'kernel', backend: '198.18.0.100:2049', domain: 'acme', inUse: 3 },
      { plane: 'kernel', backend: '198.18.0.100:2049', domain: 'beta', inUse: 1 },
    ],
    [{ plane: 'kernel', scope: 'domain', domain: 'acme', backend: '198.18.0.100:2049', refused: 2 }],
  );
  t.same(v, {
    maxConnectionsPerBackend: 5,
    maxConnectionsPerDomainPerBackend: 3,
    backends: [
      {
        backend: '198.18.0.100:2049',
        plane: 'kernel',
        inUse: 4,
        refused: 0,
        domains: [
          { domain: 'acme', inUse: 3, refused: 2 },
          { domain: 'beta', inUse: 1, refused: 0 },
        ],
      },
    ],
  });
  t.same(formatCaps(v!, safeText), ['connection caps: 5 per backend, 3 per domain per backend', '  198.18.0.100:2049 kernel: 4/5 (acme 3/3 refused 2, beta 1/3)']);
  t.equal(capsView({ dataplane: 'kernel', guests: [] }, [], []), null, 'no limits, no view');
});

t.test('renderRules() rewrites a kept cap chain that another program edited', async (t) => {
  const d = twoDomains('kernel');
  const lines = capRules(d).get(CAP_BACKEND_CHAIN) ?? [];
  const saved = (rules: string[]): ReturnType<typeof parseSave> => parseSave(`*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:${CAP_BACKEND_CHAIN} - [0:0]\n${rules.join('\n')}\nCOMMIT\n`);
  t.notMatch(renderRules({ desired: d, existing: saved(lines) }), /^:SGW-CAPB /m, 'as rendered: kept');
  const edited = lines.map((l) => l.replace('--connlimit-above 5 ', '--connlimit-above 5000 '));
  t.match(renderRules({ desired: d, existing: saved(edited) }), /^:SGW-CAPB /m, 'a raised cap: rewritten');
  const accepted = lines.map((l) => l.replace('-j REJECT --reject-with tcp-reset', '-j ACCEPT'));
  t.match(renderRules({ desired: d, existing: saved(accepted) }), /^:SGW-CAPB /m, 'a cap turned into ACCEPT: rewritten');
  t.match(renderRules({ desired: d, existing: saved(lines.slice(0, 1)) }), /^:SGW-CAPB /m, 'a deleted rule: rewritten');
});
