#!/usr/bin/env node
import { adminRequest } from '../admin/client';
import type { AdminCommand } from '../admin/protocol';
import { loadConfig } from '../config/load';
import { describeError } from '../errors';
import { parseArgs, DEFAULT_CONFIG } from './args';
import { checkConfig } from './check';

const USAGE = `usage: sharegw COMMAND [options]
commands:
  status      domains, guests, grants, sync state and counters of the running daemon
  reload      ask the daemon to re-read its configuration (like SIGHUP), print problems
  validate    check a configuration without a daemon (same as sharegwd --check-config)
options:
  --config FILE   daemon file (default ${DEFAULT_CONFIG}); its adminSocket is used
  --socket PATH   admin socket (overrides the config)
  --json          machine-readable output
exit codes: 0 ok, 1 the daemon or config reported a problem, 2 usage, 3 daemon unreachable`;

const print = (s: string): void => void process.stdout.write(`${s}\n`);
const printErr = (s: string): void => void process.stderr.write(`${s}\n`);

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
  domains: { name: string; sourceIp: string; guests: { instance: string; tunnel: string; guestIp: string; tunnelState: string; grants: { backend: string; service: string; level: string }[] }[] }[];
  kernel: { byGuest?: Record<string, Record<string, number>> } | null;
  proxy: { listeners: number; flows: unknown[] } | null;
}

function human(s: StatusView): string {
  const lines = [`node ${s.node}  dataplane ${s.dataplane}  generation ${s.generation}`];
  const sync = s.lastSync;
  lines.push(sync === null ? 'last sync: never' : `last sync: ${sync.ok ? 'ok' : `FAILED (${sync.error?.message ?? '?'})`} at ${sync.at}`);
  if (s.proxy !== null) {
    lines.push(`proxy: ${s.proxy.listeners} listeners, ${s.proxy.flows.length} flows`);
  }
  lines.push('', 'DOMAIN       GUEST                                  TUNNEL      STATE     GRANTS  DENIED  SPOOFED');
  for (const d of s.domains) {
    for (const g of d.guests) {
      const c = s.kernel?.byGuest?.[`${d.name}/${g.instance}`] ?? {};
      const denied = (c['deny'] ?? 0) + (c['deny-local'] ?? 0);
      lines.push(
        `${d.name.padEnd(12)} ${g.instance.padEnd(38)} ${g.tunnel.padEnd(11)} ${g.tunnelState.slice(0, 9).padEnd(9)} ${String(g.grants.length).padStart(6)}  ${String(denied).padStart(6)}  ${String(c['antispoof'] ?? 0).padStart(7)}`,
      );
    }
  }
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['json', 'help'], ['config', 'socket']);
  const cmd = args.positionals[0];
  if (args.flags.has('help') || cmd === undefined) {
    print(USAGE);
    return cmd === undefined && !args.flags.has('help') ? 2 : 0;
  }
  if (args.unknown.length > 0 || args.positionals.length > 1) {
    printErr(`sharegw: unexpected arguments: ${[...args.unknown, ...args.positionals.slice(1)].join(' ')}`);
    return 2;
  }
  if (cmd === 'validate') {
    return checkConfig(args.values.get('config') ?? DEFAULT_CONFIG, print, printErr);
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
    print(JSON.stringify(resp.result, null, 2));
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
