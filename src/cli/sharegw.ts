#!/usr/bin/env node
import { adminCall, adminRequest } from '../admin/client';
import type { FlowsResult } from '../admin/commands';
import { checkBackend, checkDestination, checkGuestRef } from '../admin/protocol';
import type { AdminCommand, AdminRequest, AdminResponse, FlowsRequest } from '../admin/protocol';
import { loadConfig } from '../config/load';
import { ConfigError, describeError, formatProblem } from '../errors';
import { explain } from '../policy/explain';
import type { Explanation } from '../policy/explain';
import { compileDesired } from '../policy/policy';
import { parseArgs, DEFAULT_CONFIG } from './args';
import { checkConfig } from './check';
import { formatExplanation, formatFlows, formatNative } from './views';
import { safeLines, safeText as t } from '../util/safe-text';
import { formatCaps } from '../policy/caps';
import type { CapsView } from '../policy/caps';

const USAGE = `usage: sharegw COMMAND [options]
commands:
  status      domains, guests, grants, sync state and counters of the running daemon
  reload      ask the daemon to re-read its configuration (like SIGHUP), print problems
  validate    check a configuration without a daemon (same as sharegwd --check-config)
  flows       live flows of the configured guests, both planes [--guest G] [--backend ADDR]
  explain     whether a guest may connect to ADDR:PORT, and why: --guest G --to ADDR:PORT
              (--offline: decide from --config, no daemon needed)
options:
  --config FILE     daemon file (default ${DEFAULT_CONFIG}); its adminSocket is used
  --socket PATH     admin socket (overrides the config)
  --guest G         a guest: domain/instance, instance id or tunnel interface
  --backend ADDR    flows: only flows to this backend address
  --to ADDR:PORT    explain: the destination (IPv6 as [ADDR]:PORT)
  --offline         explain: load the configuration instead of asking the daemon
  --json            machine-readable output
exit codes:
  status, reload, validate, flows: 0 ok, 1 the daemon or config reported a problem
    (flows: also 1 when kernel flows could not be listed; the rows shown are then incomplete)
  explain: 0 allowed, 1 denied, 3 no decision (daemon unreachable or failed; with
    --offline, the configuration could not be loaded)
  all: 2 usage, 3 daemon unreachable`;

/** Options that only some commands take; any other command refuses them. */
const COMMAND_OPTIONS: Record<string, readonly string[]> = {
  guest: ['flows', 'explain'],
  backend: ['flows'],
  to: ['explain'],
  offline: ['explain'],
};

// Human text goes through safeLines as a last pass (each field is escaped
// where it is formatted too): a daemon's answer or a config file may hold
// tenant ids with control characters. JSON output is JSON-escaped already.
const print = (s: string): void => void process.stdout.write(`${safeLines(s)}\n`);
const printJson = (v: unknown): void => void process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
const printErr = (s: string): void => void process.stderr.write(`${safeLines(s)}\n`);

function socketOf(values: Map<string, string>): string {
  const explicit = values.get('socket');
  if (explicit !== undefined) {
    return explicit;
  }
  try {
    return loadConfig(values.get('config') ?? DEFAULT_CONFIG).daemon.adminSocket;
  } catch {
    return '/run/sharegw/admin.sock';
  }
}

interface StatusView {
  node: string;
  dataplane: string;
  generation: number;
  lastSync: { ok: boolean; at: string; error?: { message: string } } | null;
  domains: { name: string; sourceIp: string; egress?: { interface: string; via: string | null; table: number } | null; guests: { instance: string; tunnel: string; guestIp: string; tunnelState: string; grants: { backend: string; service: string; level: string }[] }[] }[];
  kernel: { byGuest?: Record<string, Record<string, number>> } | null;
  proxy: { listeners: number; flows: unknown[] } | null;
  manila?: {
    endpoint: string | null;
    microversion: string | null;
    lastSuccess: string | null;
    lastError: { code: string; message: string; at: string } | null;
    notifications: { connected: boolean } | null;
    domains: { domain: string; shareNetwork: string; status: string; frozen: boolean; networkError: boolean; missing: boolean; stale: boolean; shares: number; skipped?: { share: string; what: string; reason: string; code?: string }[] }[];
  } | null;
  native?: { loaded: boolean; reason: string | null; shims: Record<string, string> };
  egressError?: { message: string; at: string } | null;
  egressWarnings?: { domain: string; code: string; message: string }[];
  caps?: (CapsView & { kernelUseError?: { message: string } }) | null;
}

function human(s: StatusView): string {
  const lines = [`node ${t(s.node)}  dataplane ${t(s.dataplane)}  generation ${s.generation}`];
  const sync = s.lastSync;
  lines.push(sync === null ? 'last sync: never' : `last sync: ${sync.ok ? 'ok' : `FAILED (${t(sync.error?.message ?? '?')})`} at ${t(sync.at)}`);
  if (s.proxy !== null) {
    lines.push(`proxy: ${s.proxy.listeners} listeners, ${s.proxy.flows.length} flows`);
  }
  const m = s.manila;
  if (m !== undefined && m !== null) {
    const notif = m.notifications === null ? 'off' : m.notifications.connected ? 'connected' : 'DISCONNECTED';
    lines.push(`manila: ${t(m.endpoint ?? 'catalog')} (${t(m.microversion ?? 'not negotiated')}), last good sync ${t(m.lastSuccess ?? 'never')}${m.lastError === null ? '' : `, FAILING since ${t(m.lastError.at)}: ${t(m.lastError.code)}: ${t(m.lastError.message)}`}, notifications ${notif}`);
    for (const d of m.domains) {
      const flags = [d.frozen ? 'FROZEN (network_change)' : '', d.networkError ? 'NETWORK ERROR (last-known-good)' : '', d.missing ? 'SHARE NETWORK MISSING' : '', d.stale ? 'STALE (fetch failed)' : ''].filter((x) => x !== '');
      lines.push(`  ${t(d.domain)}: share network ${t(d.shareNetwork)} ${t(d.status)}, ${d.shares} synced shares${flags.length > 0 ? `  ${flags.join(', ')}` : ''}`);
      for (const x of d.skipped ?? []) {
        if (x.code !== undefined) {
          lines.push(`    skipped ${t(x.share)}: ${t(x.what)} ${t(x.reason)} [${t(x.code)}]`);
        }
      }
    }
  }
  if (s.native !== undefined) {
    lines.push(formatNative(s.native));
  }
  const withEgress = s.domains.filter((d) => d.egress !== undefined && d.egress !== null);
  if (withEgress.length > 0) {
    lines.push('', 'DOMAIN       SOURCE IP        EGRESS           VIA              TABLE/ZONE');
    for (const d of withEgress) {
      const e = d.egress as { interface: string; via: string | null; table: number };
      lines.push(`${t(d.name).padEnd(12)} ${t(d.sourceIp).padEnd(16)} ${t(e.interface).padEnd(16)} ${t(e.via ?? '-').padEnd(16)} ${e.table}`);
    }
    if (s.egressError !== undefined && s.egressError !== null) {
      lines.push(`egress: PARTLY APPLIED since ${t(s.egressError.at)} (affected domains fail closed): ${t(s.egressError.message)}`);
    }
    for (const w of s.egressWarnings ?? []) {
      lines.push(`egress warning (${t(w.domain)}): ${t(w.code)}: ${t(w.message)}`);
    }
  }
  if (s.caps !== undefined && s.caps !== null && Array.isArray(s.caps.backends)) {
    lines.push('', ...formatCaps(s.caps, t));
    if (s.caps.kernelUseError !== undefined) {
      lines.push(`  kernel use unknown: ${t(s.caps.kernelUseError.message)}`);
    }
  }
  lines.push('', 'DOMAIN       GUEST                                  TUNNEL      STATE     GRANTS  DENIED  SPOOFED');
  for (const d of s.domains) {
    for (const g of d.guests) {
      const c = s.kernel?.byGuest?.[`${d.name}/${g.instance}`] ?? {};
      const denied = (c['deny'] ?? 0) + (c['deny-local'] ?? 0);
      lines.push(
        `${t(d.name).padEnd(12)} ${t(g.instance).padEnd(38)} ${t(g.tunnel).padEnd(11)} ${t(g.tunnelState.slice(0, 9)).padEnd(9)} ${String(g.grants.length).padStart(6)}  ${String(denied).padStart(6)}  ${String(c['antispoof'] ?? 0).padStart(7)}`,
      );
    }
  }
  return lines.join('\n');
}

/** Runs an argument check; prints its message and gives null when it fails. */
function checked<T>(fn: () => T): T | null {
  try {
    return fn();
  } catch (err) {
    printErr(`sharegw: ${describeError(err).message}`);
    return null;
  }
}

/** Asks the daemon; null (after printing why) when it cannot be reached. */
async function ask(values: Map<string, string>, req: AdminRequest): Promise<AdminResponse | null> {
  try {
    return await adminCall(socketOf(values), req);
  } catch (err) {
    printErr(`sharegw: ${describeError(err).message}`);
    return null;
  }
}

async function flows(values: Map<string, string>, json: boolean): Promise<number> {
  const req: FlowsRequest = { cmd: 'flows' };
  const guest = values.get('guest');
  const backend = values.get('backend');
  if (guest !== undefined) {
    const g = checked(() => checkGuestRef(guest));
    if (g === null) {
      return 2;
    }
    req.guest = g;
  }
  if (backend !== undefined) {
    const b = checked(() => checkBackend(backend));
    if (b === null) {
      return 2;
    }
    req.backend = b;
  }
  const resp = await ask(values, req);
  if (resp === null) {
    return 3;
  }
  if (!resp.ok) {
    printErr(`sharegw: ${resp.error.code}: ${resp.error.message}`);
    return 1;
  }
  const r = resp.result as FlowsResult;
  if (r === null || typeof r !== 'object' || !Array.isArray(r.rows)) {
    printErr('sharegw: the daemon does not answer flows (older version?)');
    return 1;
  }
  if (json) {
    printJson(r);
  } else {
    print(formatFlows(r));
  }
  const k: unknown = r.kernel;
  if (typeof k === 'object' && k !== null && r.kernel?.ok === false) {
    printErr(`sharegw: kernel flows could not be listed: ${r.kernel.error.code}: ${r.kernel.error.message}`);
    return 1;
  }
  return 0;
}

/** Decides from the configuration file alone; null (after printing why) when it cannot be loaded. */
function offlineExplain(file: string, guest: string, to: { addr: string; port: number }): Explanation | null {
  try {
    const cfg = loadConfig(file);
    return explain(cfg, compileDesired(cfg), guest, to);
  } catch (e) {
    if (e instanceof ConfigError) {
      for (const p of e.problems) {
        printErr(formatProblem(p));
      }
    }
    printErr(`sharegw: cannot decide from ${file}: ${describeError(e).message}`);
    return null;
  }
}

async function explainCmd(values: Map<string, string>, flags: Set<string>): Promise<number> {
  const guestArg = values.get('guest');
  const toArg = values.get('to');
  if (guestArg === undefined || toArg === undefined) {
    printErr('sharegw: explain needs --guest G and --to ADDR:PORT');
    return 2;
  }
  const guest = checked(() => checkGuestRef(guestArg));
  const to = checked(() => checkDestination(toArg));
  if (guest === null || to === null) {
    return 2;
  }
  let e: Explanation | null;
  if (flags.has('offline')) {
    e = offlineExplain(values.get('config') ?? DEFAULT_CONFIG, guest, to);
  } else {
    const resp = await ask(values, { cmd: 'explain', guest, to });
    if (resp !== null && !resp.ok) {
      printErr(`sharegw: ${resp.error.code}: ${resp.error.message}`);
    }
    e = resp?.ok === true ? (resp.result as Explanation) : null;
    if (e !== null && (typeof e !== 'object' || typeof e.allowed !== 'boolean' || !Array.isArray(e.lines))) {
      printErr('sharegw: the daemon does not answer explain (older version?)');
      e = null;
    }
  }
  if (e === null) {
    return 3;
  }
  if (flags.has('json')) {
    printJson(e);
  } else {
    print(formatExplanation(e));
  }
  return e.allowed ? 0 : 1;
}

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['json', 'help', 'offline'], ['config', 'socket', 'guest', 'backend', 'to']);
  const cmd = args.positionals[0];
  if (args.flags.has('help') || cmd === undefined) {
    print(USAGE);
    return cmd === undefined && !args.flags.has('help') ? 2 : 0;
  }
  if (args.unknown.length > 0 || args.positionals.length > 1) {
    printErr(`sharegw: unexpected arguments: ${[...args.unknown, ...args.positionals.slice(1)].join(' ')}`);
    return 2;
  }
  for (const [opt, cmds] of Object.entries(COMMAND_OPTIONS)) {
    if ((args.values.has(opt) || args.flags.has(opt)) && !cmds.includes(cmd)) {
      printErr(`sharegw: --${opt} is not an option of ${cmd}`);
      return 2;
    }
  }
  if (cmd === 'validate') {
    return checkConfig(args.values.get('config') ?? DEFAULT_CONFIG, print, printErr);
  }
  if (cmd === 'flows' || cmd === 'explain') {
    return cmd === 'flows' ? flows(args.values, args.flags.has('json')) : explainCmd(args.values, args.flags);
  }
  if (cmd !== 'status' && cmd !== 'reload') {
    printErr(`sharegw: unknown command "${cmd}"\n${USAGE}`);
    return 2;
  }
  let resp;
  try {
    resp = await adminRequest(socketOf(args.values), cmd as AdminCommand);
  } catch (err) {
    printErr(`sharegw: ${describeError(err).message}`);
    return 3;
  }
  if (!resp.ok) {
    printErr(`sharegw: ${resp.error.code}: ${resp.error.message}`);
    return 1;
  }
  if (args.flags.has('json')) {
    printJson(resp.result);
  } else if (cmd === 'status') {
    print(human(resp.result as StatusView));
  } else {
    const r = resp.result as { ok: boolean; problems: string[] };
    print(r.ok ? 'reloaded' : `reload rejected; still running the previous configuration:\n${r.problems.join('\n')}`);
  }
  if (cmd === 'reload') {
    return (resp.result as { ok: boolean }).ok ? 0 : 1;
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    printErr(`sharegw: ${describeError(err).message}`);
    process.exitCode = 1;
  },
);
