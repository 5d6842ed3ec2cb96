/**
 * Overlapping tenant address spaces (issue 6), both data planes, in the lab:
 * two domains each have a backend at the SAME address 198.18.8.10, each on
 * its own egress link (two backend namespaces this test creates, veth links
 * sgwe-a / sgwe-b into the gateway; domain beta's through a next hop). A
 * marker server in each answers with its name and the peer it sees.
 * Run under the lab lock: flock /tmp/sgwlab.lock npx tap dist/test/integration/egress.test.js
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { LabDaemon, NS, ROOT, background, rmTemp, run, tempDir, until } from '../helpers/lab';
import type { Background } from '../helpers/lab';
import { loadNative } from '../../src/native';

const BACKEND = '198.18.8.10';
const PORT = 111; // a portmap grant: relayed as plain TCP by the proxy, forwarded by the kernel plane
const MARKER = path.join(ROOT, 'dist/test/helpers/egress-marker.js');
const BE = { a: 'sgwegr-a', b: 'sgwegr-b' } as const;
const TABLE = { a: 20001, b: 20002 } as const;
/**
 * Source IPs. Two tenant networks may give the gateway the same address:
 * both domains use 198.18.9.1 on their own links, so the backends see
 * identical tuples (198.18.9.1:700 -> 198.18.8.10:111) from two domains.
 * The proxy plane without the addon (its egressSocket shim binds the
 * backend leg to the link) needs distinct source IPs; that variant uses them.
 */
const SHARED_SRC = { a: '198.18.9.1', b: '198.18.9.1' } as const;
const DISTINCT_SRC = { a: '198.18.9.1', b: '198.18.9.2' } as const;
type Src = { readonly a: string; readonly b: string };

function domain(name: string, guest: 1 | 2, src: string, egress: string): string {
  return `name: ${name}
project: p-${name}
shareNetwork: net-${name}
sourceIp: ${src}
egress: ${egress}
guests:
  - instance: g${guest}
    tunnel: { interface: sgwt-g${guest}, guestIp: 169.254.${guest}.2, gatewayIp: 169.254.${guest}.1 }
    addresses: [198.19.${guest - 1}.5]
shares:
  - id: ${name}-nfs
    proto: NFS
    nfsv3: true
    exportLocations: ["${BACKEND}:/export/${name}"]
    accessRules: [{ accessType: ip, accessTo: 198.19.${guest - 1}.0/24, accessLevel: rw }]
`;
}

function domains(src: Src): Record<string, string> {
  return {
    'acme.yaml': domain('acme', 1, src.a, `{ interface: sgwe-a, table: ${TABLE.a} }`),
    'beta.yaml': domain('beta', 2, src.b, `{ interface: sgwe-b, via: 198.18.7.1, table: ${TABLE.b} }`),
  };
}

async function sh(cmd: string, args: string[], ns?: string): Promise<string> {
  const r = await run(cmd, args, ns === undefined ? {} : { ns });
  if (r.code !== 0) {
    throw new Error(`${ns ?? ''} ${cmd} ${args.join(' ')}: ${r.stderr}`);
  }
  return r.stdout;
}

/**
 * A real NFSv4 server (nfs-ganesha, no rpcbind: v4 needs none) in backend
 * namespace `ns`, exporting a directory with a marker file to the domain's
 * source IP only. Its /run is private (bound per exec), so it never meets
 * the lab's rpcbind or ganesha.
 */
function ganesha(dir: string, ns: string, name: string, src: string): Background {
  for (const d of ['run', 'rec', 'data']) {
    fs.mkdirSync(path.join(dir, d), { recursive: true });
  }
  fs.writeFileSync(path.join(dir, 'data', 'marker.txt'), `nfs ${ns}\n`);
  const conf = path.join(dir, 'ganesha.conf');
  fs.writeFileSync(
    conf,
    `NFS_CORE_PARAM { Protocols = 4; NFS_Port = 2049; Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false; }
NFSV4 { Graceless = true; Lease_Lifetime = 20; RecoveryBackend = fs; RecoveryRoot = ${dir}/rec; }
NFS_KRB5 { Active_krb5 = false; }
EXPORT { Export_Id = 1; Path = ${dir}/data; Pseudo = /export/${name}; Protocols = 4; Transports = TCP; SecType = sys;
  Squash = No_Root_Squash; Access_Type = None; FSAL { Name = VFS; } CLIENT { Clients = ${src}; Access_Type = RW; } }
`,
  );
  // `ip netns exec` execs sh, which execs ganesha: the child is ganesha itself.
  return background(ns, 'sh', ['-c', `mount --bind "$0" /run && exec ganesha.nfsd -F -f ${conf} -L ${dir}/ganesha.log -p ${dir}/ganesha.pid -N NIV_EVENT`, path.join(dir, 'run')]);
}

/** The two backend namespaces and links; returns the teardown. */
async function topology(SRC: Src): Promise<{ servers: Background[]; down: () => Promise<void> }> {
  const tmp = tempDir('egress-nfs');
  const clear = async (): Promise<void> => {
    // The links first, synchronously: a deleted namespace takes its end of
    // a veth pair with it only later (the kernel cleans namespaces up in
    // the background), and the next topology() would find it still there.
    for (const k of Object.keys(BE)) {
      await run('ip', ['-n', NS.gw, 'link', 'del', `sgwe-${k}`]);
    }
    for (const ns of Object.values(BE)) {
      await run('ip', ['netns', 'del', ns]);
    }
    for (const g of [NS.g1, NS.g2]) {
      await run('ip', ['route', 'del', `${BACKEND}/32`], { ns: g });
    }
  };
  const down = async (): Promise<void> => {
    await clear();
    rmTemp(tmp);
  };
  await clear();
  for (const [k, ns] of Object.entries(BE) as ['a' | 'b', string][]) {
    await sh('ip', ['netns', 'add', ns]);
    await sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    // The gateway end is the domain's egress interface; deleting the
    // namespace deletes the pair.
    await sh('ip', ['link', 'add', `sgwe-${k}`, 'netns', NS.gw, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    await sh('ip', ['-n', NS.gw, 'link', 'set', `sgwe-${k}`, 'up']);
    await sh('ip', ['-n', ns, 'addr', 'add', `${BACKEND}/32`, 'dev', 'eth0']);
    await sh('ip', ['-n', NS.gw, 'addr', 'add', `${SRC[k]}/32`, 'dev', `sgwe-${k}`]);
    await sh('ip', ['-n', ns, 'route', 'add', `${SRC[k]}/32`, 'dev', 'eth0']);
  }
  // Domain beta reaches its backend through a next hop on its link.
  await sh('ip', ['-n', BE.b, 'addr', 'add', '198.18.7.1/24', 'dev', 'eth0']);
  await sh('ip', ['-n', NS.gw, 'addr', 'add', '198.18.7.2/24', 'dev', 'sgwe-b']);
  for (const [g, n] of [[NS.g1, 1], [NS.g2, 2]] as const) {
    await sh('ip', ['route', 'replace', `${BACKEND}/32`, 'via', `169.254.${n}.1`], g);
  }
  const servers = (Object.entries(BE) as ['a' | 'b', string][]).map(([k, ns]) => background(ns, process.execPath, [MARKER, 'serve', BACKEND, String(PORT), `backend-${k}`]));
  servers.push(ganesha(path.join(tmp, 'a'), BE.a, 'acme', SRC.a), ganesha(path.join(tmp, 'b'), BE.b, 'beta', SRC.b));
  for (const ns of Object.values(BE)) {
    await until(`marker server in ${ns}`, async () => (await run('ss', ['-Hltn', `sport = :${PORT}`], { ns })).stdout.includes(String(PORT)));
    await until(`nfs-ganesha in ${ns}`, async () => (await run('ss', ['-Hltn', 'sport = :2049'], { ns })).stdout.includes('2049'), 20_000);
  }
  return { servers, down };
}

interface Fetch {
  marker: string | null;
  received: number;
  bytes: number;
  ok: boolean;
  error: string | null;
}

async function fetch(ns: string, bytes: number, lport = 0, seed = ns): Promise<Fetch> {
  const r = await run(process.execPath, [MARKER, 'fetch', BACKEND, String(PORT), String(lport), String(bytes), seed], { ns, timeoutMs: 120_000 });
  try {
    return JSON.parse(r.stdout.trim()) as Fetch;
  } catch {
    return { marker: null, received: 0, bytes, ok: false, error: `${r.stdout} ${r.stderr}` };
  }
}

async function gw(args: string[]): Promise<string> {
  return (await run(args[0] ?? '', args.slice(1), { ns: NS.gw })).stdout;
}

const NATIVE = loadNative().status.loaded;
const VARIANTS = [
  { name: 'kernel plane', plane: 'kernel', src: SHARED_SRC, env: {} },
  // With the addon the proxy binds each backend leg to its domain's link.
  { name: `proxy plane${NATIVE ? '' : ' (addon not built)'}`, plane: 'proxy', src: NATIVE ? SHARED_SRC : DISTINCT_SRC, env: {} },
  // Without it, net.connect from the source IP, routed by the `from` rule.
  { name: 'proxy plane, SGW_NATIVE=off', plane: 'proxy', src: DISTINCT_SRC, env: { SGW_NATIVE: 'off' } },
] as const;

for (const [vi, v] of VARIANTS.entries()) {
  const { plane, src: SRC } = v;
  // Guest ports of their own per variant: the previous variant's flows
  // linger in TIME_WAIT (sockets and conntrack) and would move them.
  const P1 = 700 + vi * 10;
  const P2 = P1 + 1;
  const shared = SRC.a === SRC.b;
  const esc = (ip: string): string => ip.replace(/\./g, '\\.');
  t.test(`${v.name}: two domains, one backend address, two egress links${shared ? ', one source IP' : ''}`, async (t) => {
    const topo = await topology(SRC);
    // No earlier run's entries in the zones this test reads.
    for (const z of Object.values(TABLE)) {
      await run('conntrack', ['-D', '-w', String(z), '-d', BACKEND], { ns: NS.gw });
      await run('conntrack', ['-D', '-w', String(z), '-s', BACKEND], { ns: NS.gw });
    }
    const d = new LabDaemon({ plane, domains: domains(SRC), env: v.env });
    t.teardown(async () => {
      await d.dispose();
      for (const s of topo.servers) {
        s.kill();
      }
      await Promise.all(topo.servers.map((s) => s.done));
      await topo.down();
    });
    // The lab's own domain files are replaced by ours.
    await d.start();

    t.test('each guest reaches its own backend, from its domain\'s source IP', async (t) => {
      const a = await fetch(NS.g1, 1024);
      const b = await fetch(NS.g2, 1024);
      t.ok(a.ok && b.ok, `both echoed: ${JSON.stringify([a, b])}`);
      t.match(a.marker, new RegExp(`^backend-a ${esc(SRC.a)}:\\d+$`), 'acme answered by backend a, seen from acme\'s source IP');
      t.match(b.marker, new RegExp(`^backend-b ${esc(SRC.b)}:\\d+$`), 'beta answered by backend b, seen from beta\'s source IP');
    });

    t.test('a real NFSv4 read reaches each domain\'s own server, and the other domain\'s export is not reachable', async (t) => {
      for (const [ns, name, other, be] of [[NS.g1, 'acme', 'beta', BE.a], [NS.g2, 'beta', 'acme', BE.b]] as const) {
        const r = await run('nfs-cat', [`nfs://${BACKEND}/export/${name}/marker.txt?version=4`], { ns, timeoutMs: 20_000 });
        t.equal(r.stdout, `nfs ${be}\n`, `${name}'s guest reads its marker from ${be} (${r.stderr.trim()})`);
        const x = await run('nfs-cat', [`nfs://${BACKEND}/export/${other}/marker.txt?version=4`], { ns, timeoutMs: 20_000 });
        t.not(x.stdout, `nfs ${other === 'acme' ? BE.a : BE.b}\n`, `${name}'s guest never reads ${other}'s marker`);
      }
    });

    t.test('the kernel holds a table, rules and a zone per domain', async (t) => {
      const rules = await gw(['ip', 'rule', 'show']);
      t.match(rules, new RegExp(`iif sgwt-g1 lookup ${TABLE.a} proto 213`));
      t.match(rules, new RegExp(`oif sgwe-b lookup ${TABLE.b} proto 213`), 'sockets bound to beta\'s link use beta\'s table');
      if (shared) {
        t.notMatch(rules, new RegExp(`from ${esc(SRC.a)} lookup`), 'no from rule for a source IP two domains share');
      } else {
        t.match(rules, new RegExp(`from ${esc(SRC.b)} lookup ${TABLE.b} proto 213`));
      }
      t.match(await gw(['ip', 'route', 'show', 'table', String(TABLE.b)]), /198\.18\.8\.10 via 198\.18\.7\.1 dev sgwe-b/);
      t.match(await gw(['ip', 'route', 'show', 'table', String(TABLE.a)]), /unreachable default/);
      const raw = await gw(['iptables-save', '-t', 'raw']);
      t.match(raw, new RegExp(`-A SGW-PREROUTING (-d ${esc(SRC.a)}/32 -i sgwe-a|-i sgwe-a -d ${esc(SRC.a)}/32) .*-j CT --zone ${TABLE.a}`));
      t.match(raw, new RegExp(`-A SGW-OUTPUT -s ${esc(SRC.b)}/32 -o sgwe-b .*-j CT --zone ${TABLE.b}`));
      t.match(raw, new RegExp(`-i sgwt-g2 .*-j CT --zone ${TABLE.b}`));
    });

    t.test(`concurrent transfers with the same guest port to the same address complete byte-exact in both domains${shared ? ', with identical tuples on both links' : ''}`, async (t) => {
      const MIB = 16 * 1024 * 1024;
      const [a, b] = await Promise.all([fetch(NS.g1, MIB, P1, 'same'), fetch(NS.g2, MIB, P1, 'same')]);
      t.ok(a.ok, `acme: ${JSON.stringify(a)}`);
      t.ok(b.ok, `beta: ${JSON.stringify(b)}`);
      // The marker names the peer each backend saw: the same source IP and
      // port (the guests' port, kept by SNAT and by the proxy's bind) means
      // the two flows had the same 5-tuple at the same time.
      t.match(a.marker, new RegExp(`^backend-a ${esc(SRC.a)}:${P1}$`));
      t.match(b.marker, new RegExp(`^backend-b ${esc(SRC.b)}:${P1}$`));
    });

    t.test('each domain\'s flows live in its own conntrack zone', async (t) => {
      const held = [fetch(NS.g1, 64 * 1024 * 1024, P2, 'z'), fetch(NS.g2, 64 * 1024 * 1024, P2, 'z')];
      // Both transfers' entries, once their guests' clients are running
      // (an entry stays, in TIME_WAIT, after its flow ends).
      const list = (z: number): Promise<string> => gw(['conntrack', '-L', '-w', String(z), '-p', 'tcp', '--dport', String(PORT)]);
      const mine = new RegExp(`sport=${P2} dport=${PORT}`);
      await until('both transfers in conntrack', async () => mine.test(await list(TABLE.a)) && mine.test(await list(TABLE.b)), 20_000);
      const za = await list(TABLE.a);
      const zb = await list(TABLE.b);
      await Promise.all(held);
      t.match(za, new RegExp(`dst=${BACKEND.replace(/\./g, '\\.')}`), `zone ${TABLE.a} has acme's flow`);
      t.match(zb, new RegExp(`dst=${BACKEND.replace(/\./g, '\\.')}`), `zone ${TABLE.b} has beta's flow`);
      t.notMatch(za, shared ? /169\.254\.2\.2/ : /169\.254\.2\.2|198\.18\.9\.2/, 'no beta flow in acme\'s zone');
      t.notMatch(zb, shared ? /169\.254\.1\.2/ : /169\.254\.1\.2|198\.18\.9\.1/, 'no acme flow in beta\'s zone');
      if (shared) {
        // The reply direction, as the backend link carries it (after SNAT in
        // the kernel plane; the proxy's own connection in the proxy plane).
        const tuple = new RegExp(`src=${esc(BACKEND)} dst=${esc(SRC.a)} sport=${PORT} dport=${P2}`);
        t.match(za, tuple, `acme's zone holds backend:111 -> 198.18.9.1:${P2}`);
        t.match(zb, tuple, 'and beta\'s zone the same tuple, at the same time');
      }
    });

    if (shared) {
      t.test('strict rp_filter on a link with a shared source IP is reported in status; proxied flows over it fail, as the warning says', async (t) => {
        type St = { egressWarnings: { domain: string; code: string; message: string }[] };
        const warned = async (): Promise<boolean> => ((await d.status()) as St).egressWarnings.some((w) => w.domain === 'beta' && w.code === 'SGW_WARN_EGRESS_RP_FILTER');
        await gw(['sysctl', '-qw', 'net.ipv4.conf.sgwe-b.rp_filter=1']);
        try {
          await until('the rp_filter warning in status', warned);
          const st = (await d.status()) as St;
          t.same(st.egressWarnings.map((w) => w.domain), ['beta'], 'only beta\'s link is strict');
          const human = await run(process.execPath, [path.join(ROOT, 'dist/src/cli/sharegw.js'), 'status', '--socket', d.socket]);
          t.match(human.stdout, /egress warning \(beta\): SGW_WARN_EGRESS_RP_FILTER: strict rp_filter on sgwe-b/, 'and in the human status');
          const b = await fetch(NS.g2, 1024);
          if (plane === 'proxy') {
            t.notOk(b.ok, `the proxy's connection from the shared source IP gets no reply through strict rp_filter: ${JSON.stringify(b)}`);
          } else {
            t.ok(b.ok, 'forwarded flows are unaffected (the reply\'s reverse path is the guest\'s rule)');
          }
          t.ok((await fetch(NS.g1, 1024)).ok, 'acme is unaffected');
        } finally {
          await gw(['sysctl', '-qw', 'net.ipv4.conf.sgwe-b.rp_filter=0']);
        }
        await until('the warning cleared', async () => !(await warned()));
        const again = await fetch(NS.g2, 1024);
        t.ok(again.ok, `beta works again with rp_filter off: ${JSON.stringify(again)}`);
      });
    }

    t.test('sharegw explain and status show the egress and table a grant uses', async (t) => {
      const cli = path.join(ROOT, 'dist/src/cli/sharegw.js');
      const r = await run(process.execPath, [cli, 'explain', '--socket', d.socket, '--guest', 'beta/g2', '--to', `${BACKEND}:${PORT}`, '--json']);
      const e = JSON.parse(r.stdout) as { allowed: boolean; guest: { egress: unknown }; lines: string[] };
      t.equal(e.allowed, true);
      t.same(e.guest.egress, { interface: 'sgwe-b', via: '198.18.7.1', table: TABLE.b, conntrackZone: TABLE.b });
      t.match(e.lines.join('\n'), `egress sgwe-b via 198.18.7.1, routing table ${TABLE.b}, conntrack zone ${TABLE.b}`);
      const st = (await d.status()) as { domains: { name: string; egress: unknown }[] };
      t.same(st.domains.find((x) => x.name === 'acme')?.egress, { interface: 'sgwe-a', via: null, table: TABLE.a, conntrackZone: TABLE.a });
      const human = await run(process.execPath, [cli, 'status', '--socket', d.socket]);
      t.match(human.stdout, /acme\s+198\.18\.9\.1\s+sgwe-a\s+-\s+20001/);
    });

    t.test('the periodic sync repairs a deleted rule and route and counts it', async (t) => {
      await run('ip', ['rule', 'del', 'iif', 'sgwt-g1', 'lookup', String(TABLE.a), 'pref', '20000'], { ns: NS.gw });
      await run('ip', ['route', 'del', `${BACKEND}/32`, 'table', String(TABLE.a)], { ns: NS.gw });
      await until('rule and route restored', async () => (await gw(['ip', 'rule', 'show'])).includes(`iif sgwt-g1 lookup ${TABLE.a}`) && (await gw(['ip', 'route', 'show', 'table', String(TABLE.a)])).includes(BACKEND));
      const st = (await d.status()) as { counters: Record<string, number> };
      t.ok((st.counters['sharegw_egress_drift_repairs_total'] ?? 0) >= 1, 'drift repair counted');
      const a = await fetch(NS.g1, 1024);
      t.ok(a.ok, 'acme works again');
    });

    t.test('a domain whose egress interface is missing fails closed; the others keep working', async (t) => {
      d.writeDomain('gamma.yaml', `name: gamma\nproject: p-gamma\nshareNetwork: net-gamma\nsourceIp: 198.18.9.3\negress: { interface: sgwe-none, table: 20003 }\nshares:\n  - id: gamma-nfs\n    proto: NFS\n    exportLocations: ["${BACKEND}:/export/gamma"]\n    accessRules: [{ accessType: ip, accessTo: 198.19.9.0/24, accessLevel: rw }]\n`);
      t.equal((await d.sighup()).ok, true);
      await until('egress error reported', async () => ((await d.status()) as { egressError: unknown }).egressError !== null);
      const st = (await d.status()) as { egressError: { message: string }; lastSync: { ok: boolean } };
      t.equal(st.lastSync.ok, true, 'the sync itself succeeds');
      t.match(st.egressError.message, /sgwe-none|Cannot find device/);
      const human = await run(process.execPath, [path.join(ROOT, 'dist/src/cli/sharegw.js'), 'status', '--socket', d.socket]);
      t.match(human.stdout, /egress: PARTLY APPLIED since .*\(affected domains fail closed\)/, 'the human status says so too');
      t.match(await gw(['ip', 'route', 'show', 'table', '20003']), /unreachable default/, 'gamma\'s table ends in unreachable');
      t.match(await gw(['ip', 'rule', 'show']), /from 198\.18\.9\.3 lookup 20003/, 'gamma\'s rule is in place');
      const a = await fetch(NS.g1, 1024);
      t.ok(a.ok, 'acme unaffected');
      d.writeDomain('gamma.yaml', null);
      t.equal((await d.sighup()).ok, true);
      await until('gamma gone', async () => !(await gw(['ip', 'rule', 'show'])).includes('lookup 20003'));
      await until('egress error cleared', async () => ((await d.status()) as { egressError: unknown }).egressError === null);
    });

    t.test('a domain\'s traffic never falls back to host routing', async (t) => {
      // Other backend addresses are unreachable in the domain's table, and
      // the lab's host-routed backends are not the domain's anyway.
      const k = await run('ip', ['route', 'get', '198.18.0.100', 'from', '169.254.1.2', 'iif', 'sgwt-g1'], { ns: NS.gw });
      t.not(k.code, 0, `a packet from acme's tunnel to a host-routed backend has no route: ${k.stdout}${k.stderr}`);
      // A socket bound to acme's link (the proxy's backend leg) finds the
      // unreachable default in acme's table; Linux then assumes the address
      // is on that link (route.c: "routing tables are wrong"), so it can only
      // ever leave through acme's own egress, never the host's routes.
      const r = await run('ip', ['route', 'get', '198.18.0.100', 'from', SRC.a, 'oif', 'sgwe-a'], { ns: NS.gw });
      t.ok(r.code !== 0 || /\bdev sgwe-a\b/.test(r.stdout), `a socket bound to acme's link stays on it: ${r.stdout}${r.stderr}`);
      if (!shared) {
        const f = await run('ip', ['route', 'get', '198.18.0.100', 'from', SRC.a], { ns: NS.gw });
        t.not(f.code, 0, `and from the source IP alone (the fallback's route): ${f.stdout}${f.stderr}`);
      }
    });

    t.test('removing a domain removes its table, rules and zone; the other keeps working', async (t) => {
      d.writeDomain('beta.yaml', null);
      const rel = await d.sighup();
      t.equal(rel.ok, true, `reload accepted: ${JSON.stringify(rel.problems ?? [])}`);
      // The reload is reported before its sync has run: wait for the sync.
      await until('beta\'s rules gone', async () => !(await gw(['ip', 'rule', 'show'])).includes(`lookup ${TABLE.b}`));
      const rules = await gw(['ip', 'rule', 'show']);
      t.notMatch(rules, new RegExp(`lookup ${TABLE.b}`), 'beta\'s rules gone');
      t.match(rules, new RegExp(`lookup ${TABLE.a}`), 'acme\'s rules kept');
      t.equal((await gw(['ip', 'route', 'show', 'table', String(TABLE.b)])).trim(), '', 'beta\'s table empty');
      t.notMatch(await gw(['iptables-save', '-t', 'raw']), new RegExp(`--zone ${TABLE.b}`), 'beta\'s zone rules gone');
      const a = await fetch(NS.g1, 1024 * 1024);
      t.ok(a.ok, `acme still works: ${JSON.stringify(a)}`);
      t.match(a.marker, /^backend-a /);
    });

    t.test('sharegwd --cleanup removes every egress route and rule', async (t) => {
      await d.stop();
      await run('ip', ['netns', 'exec', NS.gw, process.execPath, path.join(ROOT, 'dist/src/cli/sharegwd.js'), '--cleanup']);
      t.notMatch(await gw(['ip', 'rule', 'show']), /proto 213/, 'no rules of ours');
      t.equal((await gw(['ip', 'route', 'show', 'table', 'all', 'proto', '213'])).trim(), '', 'no routes of ours');
      t.notMatch(await gw(['iptables-save']), /SGW-/, 'no chains of ours');
    });
  });
}
