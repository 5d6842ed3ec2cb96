/**
 * Integration-test helpers around the lab (test/lab/lab.sh): run commands in
 * the lab's namespaces, start the real daemon in the gateway namespace with a
 * config written to a temp dir, talk to it over its admin socket, and clean up
 * only what the test itself started (by pid) and created (its temp dir).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { adminRequest } from '../../src/admin/client';
import type { AdminCommand, AdminResponse } from '../../src/admin/protocol';
import { labYaml } from './configs';

export const ROOT = path.resolve(__dirname, '../../..');

/**
 * Every long-running child a test starts (daemons, background transfers).
 * If the test process is killed (tap's timeout sends SIGTERM), they must not
 * outlive it and disturb the next test file: kill them, by pid, on the way out.
 */
const children = new Set<ChildProcess>();
function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}
function killChildren(): void {
  for (const c of children) {
    c.kill('SIGKILL');
  }
}
process.on('exit', killChildren);
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.once(sig, () => {
    killChildren();
    process.kill(process.pid, sig);
  });
}
export const NS = { gw: 'sgwlab-gw', be: 'sgwlab-be', g1: 'sgwlab-g1', g2: 'sgwlab-g2' } as const;
export const DATA = '/var/lib/sgwlab/data';
/** smbclient options for guest 1's user on acme's share, SMB 3 only (the lab's credentials). */
export const SMB_ACME = ['-U', 'usera%labpass123', '--option=client min protocol=SMB3', '-m', 'SMB3'];
export const LAB_SH = path.join(ROOT, 'test/lab/lab.sh');
export const NFS41_SH = path.join(ROOT, 'test/lab/guest-nfs41.sh');
const SHAREGWD = path.join(ROOT, 'dist/src/cli/sharegwd.js');
const PROBE = path.join(ROOT, 'dist/test/helpers/probe.js');

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command (optionally inside a namespace) to completion, with a hard timeout. */
export function run(cmd: string, args: string[], opts: { ns?: string; timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  const [file, argv] = opts.ns !== undefined ? ['ip', ['netns', 'exec', opts.ns, cmd, ...args]] : [cmd, args];
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(file, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
    // A command that exits without reading its stdin makes this write fail
    // with EPIPE: that is not the test's concern.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

export interface ProbeResult {
  result: 'connected' | 'refused' | 'unreachable' | 'timeout' | 'error';
  ms: number;
  code?: string;
}

/** One TCP connection attempt from inside a guest namespace. */
export async function probe(ns: string, host: string, port: number, opts: { local?: string; timeoutMs?: number; holdMs?: number } = {}): Promise<ProbeResult> {
  const args = [PROBE, host, String(port), '--timeout', String(opts.timeoutMs ?? 3000)];
  if (opts.local !== undefined) {
    args.push('--local', opts.local);
  }
  if (opts.holdMs !== undefined) {
    args.push('--hold', String(opts.holdMs));
  }
  const r = await run(process.execPath, args, { ns, timeoutMs: (opts.timeoutMs ?? 3000) + (opts.holdMs ?? 0) + 10_000 });
  const line = r.stdout.trim().split('\n')[0] ?? '';
  try {
    return JSON.parse(line) as ProbeResult;
  } catch {
    return { result: 'error', ms: r.ms, code: `probe output: ${r.stdout} ${r.stderr}` };
  }
}

/**
 * Opens one TCP connection from a guest namespace and keeps it open until
 * `release()`: resolves once the probe reports its result, so callers can
 * inspect socket tables while the connection certainly exists.
 */
export function holdConnection(ns: string, host: string, port: number, lport?: number): Promise<{ result: ProbeResult; release: () => void; closed: Promise<void> }> {
  return new Promise((resolve) => {
    const extra = lport === undefined ? [] : ['--lport', String(lport)];
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, PROBE, host, String(port), '--hold', '60000', ...extra], { stdio: ['ignore', 'pipe', 'ignore'] });
    track(child);
    const closed = new Promise<void>((r) => child.on('close', () => r()));
    let buf = '';
    const release = (): void => void child.kill('SIGKILL');
    const timer = setTimeout(() => {
      release();
      resolve({ result: { result: 'error', ms: 10_000, code: 'probe did not report' }, release, closed });
    }, 10_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl !== -1) {
        clearTimeout(timer);
        resolve({ result: JSON.parse(buf.slice(0, nl)) as ProbeResult, release, closed });
      }
    });
  });
}

/** A command running in the background in a namespace; `done` resolves at its exit, with the time. */
export interface Background {
  done: Promise<{ code: number | null; at: number; stderr: string }>;
  kill: () => void;
  running: () => boolean;
}

export function background(ns: string, cmd: string, args: string[]): Background {
  const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  track(child);
  let stderr = '';
  let exited = false;
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<{ code: number | null; at: number; stderr: string }>((resolve) =>
    child.on('close', (code) => {
      exited = true;
      resolve({ code, at: Date.now(), stderr });
    }),
  );
  return { done, kill: () => void child.kill('SIGKILL'), running: () => !exited };
}

/** Writes a file of `mib` MiB quickly (a random MiB repeated with a counter), returns its sha256. */
export function bigFile(file: string, mib: number): string {
  const block = crypto.randomBytes(1024 * 1024);
  const h = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'w');
  try {
    for (let i = 0; i < mib; i++) {
      block.writeUInt32BE(i, 0);
      fs.writeSync(fd, block);
      h.update(block);
    }
  } finally {
    fs.closeSync(fd);
  }
  fs.chmodSync(file, 0o666);
  return h.digest('hex');
}

/** Limits gateway->guest throughput on a tunnel so transfers last long enough to act on. */
export async function shape(iface: string, rate: string | null): Promise<void> {
  await run('tc', ['qdisc', 'del', 'dev', iface, 'root'], { ns: NS.gw });
  if (rate !== null) {
    const r = await run('tc', ['qdisc', 'add', 'dev', iface, 'root', 'tbf', 'rate', rate, 'burst', '256k', 'latency', '200ms'], { ns: NS.gw });
    if (r.code !== 0) {
      throw new Error(`tc: ${r.stderr}`);
    }
  }
}

export function sha256File(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Writes `bytes` of random data to a new file and returns its sha256. */
export function randomFile(file: string, bytes: number): string {
  const buf = crypto.randomBytes(bytes);
  fs.writeFileSync(file, buf);
  return crypto.createHash('sha256').update(buf).digest('hex');
}

/** A test's own temp dir; callers remove it with `rmTemp`. */
export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `sgw-${prefix}-`));
}

export function rmTemp(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

export interface DaemonOptions {
  plane: 'kernel' | 'proxy';
  /** Extra lines appended to the daemon file. */
  extra?: string;
  /** Replaces or adds domain files (name → YAML text). */
  domains?: Record<string, string>;
  /** syncInterval (default here: 1s, so tests see changes quickly). */
  syncInterval?: string;
  /** Extra environment for the daemon (e.g. SGW_IPTABLES_RESTORE). */
  env?: Record<string, string>;
  /** kernel.keepRulesOnExit (default here: false, so tests leave nothing behind). */
  keepRules?: boolean;
}

/** The real sharegwd running in the gateway namespace. */
export class LabDaemon {
  readonly dir: string;
  readonly configFile: string;
  readonly socket: string;
  readonly logFile: string;
  private child: ChildProcess | null = null;
  private exit: Promise<number | null> | null = null;

  constructor(private readonly opts: DaemonOptions) {
    this.dir = tempDir(`daemon-${opts.plane}`);
    this.configFile = path.join(this.dir, 'sharegwd.yaml');
    this.socket = path.join(this.dir, 'admin.sock');
    this.logFile = path.join(this.dir, 'sharegwd.log');
    const y = labYaml(opts.plane);
    fs.mkdirSync(path.join(this.dir, 'domains.d'));
    const daemon = y.daemon
      .replace('/tmp/sgw-state', path.join(this.dir, 'state'))
      .replace('/tmp/sgw.sock', this.socket);
    fs.writeFileSync(this.configFile, `${daemon}syncInterval: ${opts.syncInterval ?? '1s'}\nkernel: { keepRulesOnExit: ${opts.keepRules === true} }\n${opts.extra ?? 'proxy: { drainTimeout: 2s }\n'}`);
    for (const [name, text] of Object.entries({ ...y.domains, ...(opts.domains ?? {}) })) {
      this.writeDomain(name, text);
    }
  }

  writeDomain(name: string, text: string | null): void {
    const file = path.join(this.dir, 'domains.d', name);
    if (text === null) {
      fs.rmSync(file, { force: true });
    } else {
      fs.writeFileSync(file, text);
    }
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /**
   * Starts the daemon and waits until its admin socket answers and a sync has
   * succeeded (or, with `untilSynced: false`, until any sync has finished).
   */
  async start(untilSynced = true): Promise<void> {
    const out = fs.openSync(this.logFile, 'a');
    // `ip netns exec` execs the command in place: the child's pid is sharegwd's pid.
    const child = track(
      spawn('ip', ['netns', 'exec', NS.gw, process.execPath, SHAREGWD, '--config', this.configFile], {
        stdio: ['ignore', out, out],
        env: { ...process.env, ...(this.opts.env ?? {}) },
      }),
    );
    fs.closeSync(out);
    this.child = child;
    this.exit = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) {
        throw new Error(`sharegwd exited with ${child.exitCode}: ${this.log()}`);
      }
      try {
        const r = await adminRequest(this.socket, 'status', 2000);
        const last = r.ok ? (r.result as { lastSync?: { ok?: boolean } | null }).lastSync : null;
        if (last !== null && last !== undefined && (last.ok === true || !untilSynced)) {
          return;
        }
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    throw new Error(`sharegwd did not become ready: ${this.log()}`);
  }

  request(cmd: AdminCommand): Promise<AdminResponse> {
    return adminRequest(this.socket, cmd);
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  async status(): Promise<any> {
    const r = await this.request('status');
    if (!r.ok) {
      throw new Error(`status failed: ${r.error.message}`);
    }
    return r.result;
  }

  /** Denied-packet counters of one guest (kernel chains), e.g. `acme/g1`. */
  async kernelCounters(guest: string): Promise<{ deny: number; antispoof: number }> {
     
    const s = await this.status();
     
    const c = s.kernel?.byGuest?.[guest] as { deny?: number; antispoof?: number } | undefined;
    return { deny: c?.deny ?? 0, antispoof: c?.antispoof ?? 0 };
  }

  /** Sends SIGHUP and waits until the daemon reports a reload newer than before. */
  async sighup(): Promise<{ ok: boolean; problems?: string[] }> {
     
    const before: string | undefined = (await this.status()).lastReload?.at;
    this.child?.kill('SIGHUP');
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
       
      const s = await this.status();
       
      if (s.lastReload !== null && s.lastReload?.at !== before) {
         
        return s.lastReload;
      }
      await sleep(50);
    }
    throw new Error('no reload observed after SIGHUP');
  }

  /** SIGTERM and wait for the exit code (SIGKILL after the timeout). */
  /**
   * Waits for the daemon to exit on its own (after a signal the test sent);
   * stop() if it has not within `timeoutMs`. A second signal sent while the
   * process is already exiting can kill it after its handlers are gone.
   */
  async exited(timeoutMs = 15_000): Promise<number | null> {
    if (this.exit === null) {
      return null;
    }
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), timeoutMs)));
    const code = await Promise.race([this.exit, late]);
    clearTimeout(timer);
    return code === 'late' ? this.stop() : code;
  }

  async stop(timeoutMs = 15_000): Promise<number | null> {
    if (this.child === null || this.exit === null) {
      return null;
    }
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
    }
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), timeoutMs);
    const code = await this.exit;
    clearTimeout(timer);
    return code;
  }

  log(): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /** Stops the daemon if running, removes its rules and its temp dir. */
  async dispose(): Promise<void> {
    await this.stop();
    await run('ip', ['netns', 'exec', NS.gw, process.execPath, SHAREGWD, '--cleanup', '--config', this.configFile]);
    rmTemp(this.dir);
  }
}

/**
 * What the transfer tests share: a temp dir, one big file per share (written
 * before the daemon starts; `files[i]` is `<DATA>/<share>/<tag>.bin` of
 * `mib` MiB with its sha256) and the daemon. The teardown runs in the order
 * they need: unshape the tunnels, stop the daemon and remove its rules, then
 * the files and the temp dir.
 */
export function transferFixture(
  t: { teardown(fn: () => unknown): void },
  tag: string,
  daemon: DaemonOptions,
  files: { share: string; mib: number }[],
  shaped: string[] = ['sgwt-g1'],
): { work: string; d: LabDaemon; files: { path: string; sum: string }[] } {
  const work = tempDir(tag);
  const d = new LabDaemon(daemon);
  const made = files.map((f) => ({ path: path.join(DATA, f.share, `${tag}.bin`), mib: f.mib }));
  t.teardown(async () => {
    for (const iface of shaped) {
      await shape(iface, null);
    }
    await d.dispose();
    for (const f of made) {
      fs.rmSync(f.path, { force: true });
    }
    rmTemp(work);
  });
  return { work, d, files: made.map((f) => ({ path: f.path, sum: bigFile(f.path, f.mib) })) };
}

/** Polls `cond` every 100 ms until it holds; throws after `ms`. */
export async function until(what: string, cond: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) {
      return;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/*
 * A stand-in for systemd's NOTIFY_SOCKET: Node cannot bind AF_UNIX datagram
 * sockets, so python3 does, printing each datagram as one line and closing
 * the fds systemd-notify sends with its BARRIER=1 (it waits for that).
 */
const NOTIFY_RECEIVER = `
import socket, sys, os
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    data, anc, _f, _a = s.recvmsg(65536, socket.CMSG_SPACE(64))
    for level, kind, cdata in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            for i in range(0, len(cdata) - len(cdata) % 4, 4):
                os.close(int.from_bytes(cdata[i:i+4], "little"))
    print(data.decode().replace("\\n", " "), flush=True)
`;

/** Starts a fake NOTIFY_SOCKET at `<dir>/notify`; resolves once it listens. `lines` fills as datagrams arrive. */
export async function notifyReceiver(dir: string): Promise<{ socket: string; lines: string[]; stop: () => void }> {
  const socket = path.join(dir, 'notify');
  const rx = spawn('python3', ['-u', '-c', NOTIFY_RECEIVER, socket], { stdio: ['ignore', 'pipe', 'inherit'] });
  track(rx);
  const lines: string[] = [];
  rx.stdout.setEncoding('utf8').on('data', (x: string) => lines.push(...x.split('\n').filter((l) => l !== '')));
  await until('notify receiver', () => lines.includes('listening'), 5000);
  return { socket, lines, stop: () => void rx.kill() };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** GET from an HTTP endpoint on 127.0.0.1 inside the gateway namespace (the daemon's metrics address is there). */
export async function gatewayGet(port: number, urlPath: string): Promise<{ status: number; body: string }> {
  const code = `require('http').get({host:'127.0.0.1',port:${port},path:${JSON.stringify(urlPath)}},(r)=>{let b='';r.on('data',(d)=>b+=d);r.on('end',()=>process.stdout.write(JSON.stringify({status:r.statusCode,body:b})))}).on('error',(e)=>process.stdout.write(JSON.stringify({status:0,body:e.message})))`;
  const r = await run(process.execPath, ['-e', code], { ns: NS.gw });
  return JSON.parse(r.stdout) as { status: number; body: string };
}

/** One sample of a metric from the daemon's /metrics (`labels` as printed, e.g. `proto="smb"`); 0 when absent. */
export async function metricValue(port: number, name: string, labels: string): Promise<number> {
  const m = await gatewayGet(port, '/metrics');
  const line = m.body.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return Number(line?.split(' ').pop() ?? 0);
}

/** Lines of `iptables-save` in the gateway namespace that belong to sharegw. */
export async function sgwRules(): Promise<string[]> {
  const r = await run('iptables-save', [], { ns: NS.gw });
  return r.stdout.split('\n').filter((l) => l.includes('SGW-'));
}

/** Established TCP peers seen by the backend on a local port, e.g. ['198.18.0.11:1001']. */
export async function backendPeers(localPort: number): Promise<string[]> {
  const r = await run('ss', ['-Htn', 'state', 'established', `( sport = :${localPort} )`], { ns: NS.be });
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 4)
    .map((f) => f[f.length - 1] ?? '');
}
