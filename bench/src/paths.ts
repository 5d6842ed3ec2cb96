/**
 * The paths a guest's traffic can take to the backends, each set up in the
 * lab's gateway namespace: routed (no gateway, the limit), sharegw's kernel
 * and proxy planes, and the other proxies (haproxy with splice, socat with a
 * large buffer, a naive Node pipe) reached by a DNAT on the tunnel, each
 * connecting to the backend from the domain's source IP like sharegw does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LabDaemon, NS, ROOT, run, sleep } from '../../test/helpers/lab';
import { labYaml } from '../../test/helpers/configs';

export const TUNNEL = 'sgwt-g1';
const GW_IP = '169.254.1.1';
const GUEST_IP = '169.254.1.2';
const SOURCE_IP = '198.18.0.11';
export const ACME = '198.18.0.100';
/**
 * The bench's own servers live in a namespace of their own (sgwbench-srv,
 * 198.18.2.0/24 behind the gateway). They are granted to the guest as NFSv3
 * shares and listen on the portmapper port, 111: every path carries them
 * like share traffic, and the proxy relays that port as plain TCP. (On
 * 2049 the proxy now always reads ONC RPC records, for the NFSv4 mount
 * checks, and closes a connection that is not RPC, as iperf3's is not.)
 */
export const BENCH_NS = 'sgwbench-srv';
export const BENCH_PORT = 111;
/** An iperf3 server posing as an NFSv3 server (its portmapper port). */
export const IPERF = '198.18.2.10';
/** An echo/hold server, for the connection workloads. */
export const SINK = '198.18.2.11';

/** What the other proxies forward: everything the workloads use. */
const TARGETS: readonly { host: string; port: number }[] = [
  { host: ACME, port: 2049 },
  { host: ACME, port: 111 },
  { host: ACME, port: 20048 },
  { host: ACME, port: 445 },
  { host: IPERF, port: BENCH_PORT },
  { host: SINK, port: BENCH_PORT },
];

const SHAREGWD = path.join(ROOT, 'dist/src/cli/sharegwd.js');
const NAIVE = path.join(ROOT, 'dist/bench/src/peers/naive-pipe.js');
const BENCH_CHAIN = 'SGWBENCH';

export interface GatewayPath {
  id: string;
  title: string;
  setup(work: string): Promise<void>;
  teardown(): Promise<void>;
}

/**
 * acme's domain file with the two bench servers granted as NFS shares; with
 * `aware`, an NFS identity policy (root squash) and an SMB policy, so the
 * proxy decodes every RPC call and SMB message.
 */
/** Policies of the protocol-aware paths: root squash (in-place call patches), or with an id map too (replies held, mapped, re-framed). */
type Aware = false | 'aware' | 'idmap';

function benchDomains(aware: Aware = false): Record<string, string> {
  const base = labYaml('kernel').domains['acme.yaml'] ?? '';
  const nfs = aware === 'idmap' ? '{ rootSquash: true, idOffset: 131072 }' : '{ rootSquash: true }';
  const acme = aware !== false ? base.replace('sourceIp: 198.18.0.11\n', `sourceIp: 198.18.0.11\nnfs: ${nfs}\nsmb: { minDialect: "3.0" }\n`) : base;
  const extra = [IPERF, SINK]
    .map(
      (ip, i) => `  - id: bench-${i === 0 ? 'iperf' : 'sink'}
    proto: NFS
    nfsv3: true
    exportLocations: ["${ip}:/bench"]
    accessRules: [{ accessType: ip, accessTo: 198.19.0.0/24, accessLevel: rw }]
`,
    )
    .join('');
  return { 'acme.yaml': `${acme}${extra}` };
}

async function must(what: string, cmd: string, args: string[], ns?: string): Promise<string> {
  const r = await run(cmd, args, { ...(ns !== undefined ? { ns } : {}), timeoutMs: 120_000 });
  if (r.code !== 0) {
    throw new Error(`${what} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
  }
  return r.stdout;
}

/** Back to a bare gateway namespace: no sharegw rules, no tunnel address, no bench DNAT. */
export async function resetGateway(): Promise<void> {
  await run('ip', ['netns', 'exec', NS.gw, process.execPath, SHAREGWD, '--cleanup']);
  await run('ip', ['-4', 'addr', 'flush', 'dev', TUNNEL], { ns: NS.gw });
  await run('iptables', ['-t', 'nat', '-D', 'PREROUTING', '-j', BENCH_CHAIN], { ns: NS.gw });
  await run('iptables', ['-t', 'nat', '-F', BENCH_CHAIN], { ns: NS.gw });
  await run('iptables', ['-t', 'nat', '-X', BENCH_CHAIN], { ns: NS.gw });
}

async function tunnelAddress(): Promise<void> {
  await must('tunnel address', 'ip', ['addr', 'add', GW_IP, 'peer', `${GUEST_IP}/32`, 'dev', TUNNEL], NS.gw);
}

/** DNATs the guest's connections to each target to a local listener port (base + index). */
async function redirect(base: number): Promise<void> {
  const lines = ['*nat', `:${BENCH_CHAIN} - [0:0]`, `-A PREROUTING -j ${BENCH_CHAIN}`];
  TARGETS.forEach((t, i) => lines.push(`-A ${BENCH_CHAIN} -i ${TUNNEL} -d ${t.host}/32 -p tcp --dport ${t.port} -j DNAT --to-destination ${GW_IP}:${base + i}`));
  lines.push('COMMIT', '');
  const r = await run('iptables-restore', ['--noflush'], { ns: NS.gw, input: lines.join('\n') });
  if (r.code !== 0) {
    throw new Error(`bench DNAT: ${r.stderr}`);
  }
}

/** Starts a process in the gateway namespace (pid = the process: `ip netns exec` execs). */
function startIn(cmd: string, args: string[], log: string): ChildProcess {
  const out = fs.openSync(log, 'a');
  const child = spawn('ip', ['netns', 'exec', NS.gw, cmd, ...args], { stdio: ['ignore', out, out] });
  fs.closeSync(out);
  return child;
}

async function listening(ports: number[]): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const r = await run('ss', ['-Hltn'], { ns: NS.gw });
    if (ports.every((p) => r.stdout.includes(`${GW_IP}:${p} `))) {
      return;
    }
    await sleep(100);
  }
  throw new Error(`listeners on ${ports.join(',')} did not come up`);
}

async function stopAll(children: ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) {
            resolve();
            return;
          }
          c.once('exit', () => resolve());
          c.kill('SIGTERM');
          setTimeout(() => c.kill('SIGKILL'), 3000).unref();
        }),
    ),
  );
}

/** A user-space peer proxy: tunnel address, DNAT to its listeners, its processes. */
function peer(id: string, title: string, base: number, start: (work: string) => ChildProcess[]): GatewayPath {
  let children: ChildProcess[] = [];
  return {
    id,
    title,
    async setup(work) {
      await resetGateway();
      await tunnelAddress();
      children = start(work);
      await listening(TARGETS.map((_, i) => base + i));
      await redirect(base);
    },
    async teardown() {
      await stopAll(children);
      children = [];
      await resetGateway();
    },
  };
}

/** The open-files limit every process here inherits (run.sh raises it where the host lets it). */
export function fileLimit(): number {
  const m = /^Max open files\s+(\d+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
  return m === null ? 1024 : Number(m[1]);
}

function haproxyConfig(base: number): string {
  // haproxy refuses to start if maxconn (two sockets each) and maxpipes (two
  // descriptors per splice pipe) need more descriptors than it may have.
  const maxconn = Math.min(40_000, Math.floor((fileLimit() - 1500) / 2));
  const out = [
    'global',
    `  maxconn ${maxconn}`,
    '  maxpipes 500',
    'defaults',
    '  mode tcp',
    `  maxconn ${maxconn}`,
    '  timeout connect 5s',
    '  timeout client 1h',
    '  timeout server 1h',
    '  option splice-auto',
  ];
  TARGETS.forEach((t, i) => out.push(`listen p${i}`, `  bind ${GW_IP}:${base + i}`, `  source ${SOURCE_IP}`, `  server s ${t.host}:${t.port}`));
  return `${out.join('\n')}\n`;
}

/**
 * sharegwd in the gateway namespace. `aware`: with the NFS and SMB policies
 * that make the proxy inspect every call; `idmap`: those and an NFS id offset
 * map (replies held, mapped, re-framed). `js`: without the native addon
 * (SGW_NATIVE=off), so plain flows go through the JavaScript relay instead
 * of the splice relay (`proxy` uses the addon when it is built).
 */
function sharegw(plane: 'kernel' | 'proxy', opts: { aware?: boolean; idmap?: boolean; js?: boolean } = {}): GatewayPath {
  let daemon: LabDaemon | null = null;
  const aware: Aware = opts.idmap === true ? 'idmap' : opts.aware === true ? 'aware' : false;
  const js = opts.js === true;
  return {
    id: aware === 'idmap' ? 'proxy-idmap' : aware === 'aware' ? (js ? 'proxy-aware-js' : 'proxy-aware') : js ? 'proxy-js' : plane,
    title:
      aware === 'idmap'
        ? 'sharegw protocol-aware proxy with an id map'
        : aware === 'aware'
          ? js
            ? 'sharegw protocol-aware proxy, JavaScript relay (no addon)'
            : 'sharegw protocol-aware proxy'
          : js
            ? 'sharegw proxy plane, JavaScript relay (no addon)'
            : `sharegw ${plane} plane`,
    async setup() {
      await resetGateway();
      // The production sync interval: the tests' 1 s loop would spend the
      // measured CPU on iptables-save. Room for the 10,000 idle connections.
      daemon = new LabDaemon({ plane, syncInterval: '10s', domains: benchDomains(aware), extra: 'proxy: { maxConnectionsPerGuest: 30000, drainTimeout: 2s }\n', ...(js ? { env: { SGW_NATIVE: 'off' } } : {}) });
      await daemon.start();
    },
    async teardown() {
      await daemon?.dispose();
      daemon = null;
      await resetGateway();
    },
  };
}

export function allPaths(): GatewayPath[] {
  return [
    {
      id: 'routed',
      title: 'routed, no gateway',
      async setup() {
        await resetGateway();
        // No gateway: a plain routed link; the backends see the guest's
        // tunnel address (the lab's exports allow it for this baseline only).
        await tunnelAddress();
      },
      teardown: resetGateway,
    },
    sharegw('kernel'),
    sharegw('proxy'),
    sharegw('proxy', { js: true }),
    sharegw('proxy', { aware: true }),
    sharegw('proxy', { aware: true, js: true }),
    sharegw('proxy', { idmap: true }),
    peer('haproxy', 'haproxy tcp, splice', 21000, (work) => {
      const cfg = path.join(work, 'haproxy.cfg');
      fs.writeFileSync(cfg, haproxyConfig(21000));
      return [startIn('haproxy', ['-db', '-f', cfg], path.join(work, 'haproxy.log'))];
    }),
    peer('socat', 'socat, 1 MiB buffer', 22000, (work) =>
      TARGETS.map((t, i) =>
        startIn('socat', ['-b', '1048576', `TCP-LISTEN:${22000 + i},bind=${GW_IP},reuseaddr,fork,backlog=4096`, `TCP:${t.host}:${t.port},bind=${SOURCE_IP}`], path.join(work, `socat-${i}.log`)),
      ),
    ),
    peer('naive', 'naive Node pipe', 23000, (work) => [
      startIn(process.execPath, [NAIVE, ...TARGETS.map((t, i) => `${GW_IP}:${23000 + i}=${t.host}:${t.port}@${SOURCE_IP}`)], path.join(work, 'naive.log')),
    ]),
  ];
}

/** Paths that are not built yet; listed so their absence shows in every report. */
export const NOT_BUILT: readonly { id: string; title: string; why: string }[] = [];

/**
 * The bench's servers: a namespace of their own behind the gateway (a veth
 * from the gateway, 198.18.2.1 there), iperf3 and the sink in it, and a route
 * to them in guest 1. Returns the teardown, which removes all of it.
 */
export async function startBackends(work: string): Promise<() => Promise<void>> {
  const children: ChildProcess[] = [];
  const stop = async (): Promise<void> => {
    await stopAll(children);
    await run('ip', ['route', 'del', '198.18.2.0/24'], { ns: NS.g1 });
    await run('ip', ['link', 'del', 'sgwbv'], { ns: NS.gw });
    await run('ip', ['netns', 'del', BENCH_NS]);
  };
  await stop();
  const must = async (args: string[], ns?: string): Promise<void> => {
    const r = await run('ip', args, ns === undefined ? {} : { ns });
    if (r.code !== 0) {
      throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
    }
  };
  try {
    await must(['netns', 'add', BENCH_NS]);
    await must(['link', 'set', 'lo', 'up'], BENCH_NS);
    await must(['link', 'add', 'sgwbv', 'netns', NS.gw, 'type', 'veth', 'peer', 'name', 'srv0', 'netns', BENCH_NS]);
    await must(['addr', 'add', '198.18.2.1/24', 'dev', 'sgwbv'], NS.gw);
    await must(['link', 'set', 'sgwbv', 'up'], NS.gw);
    for (const ip of [IPERF, SINK]) {
      await must(['addr', 'add', `${ip}/24`, 'dev', 'srv0'], BENCH_NS);
    }
    await must(['link', 'set', 'srv0', 'up'], BENCH_NS);
    await must(['route', 'add', 'default', 'via', '198.18.2.1'], BENCH_NS);
    await must(['route', 'add', '198.18.2.0/24', 'via', GW_IP, 'dev', 'tun0'], NS.g1);
  } catch (err) {
    await stop();
    throw err;
  }
  const spawnIn = (cmd: string, args: string[], log: string): void => {
    const out = fs.openSync(path.join(work, log), 'a');
    children.push(spawn('ip', ['netns', 'exec', BENCH_NS, cmd, ...args], { stdio: ['ignore', out, out] }));
    fs.closeSync(out);
  };
  spawnIn('iperf3', ['-s', '-B', IPERF, '-p', String(BENCH_PORT)], 'iperf3.log');
  spawnIn(process.execPath, [path.join(ROOT, 'dist/bench/src/peers/sink.js'), SINK, String(BENCH_PORT)], 'sink.log');
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await run('ss', ['-Hltn'], { ns: BENCH_NS });
    if (r.stdout.includes(`${IPERF}:${BENCH_PORT} `) && r.stdout.includes(`${SINK}:${BENCH_PORT} `)) {
      break;
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`bench servers did not come up (logs in ${work})`);
    }
    await sleep(100);
  }
  return stop;
}
