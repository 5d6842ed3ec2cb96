#!/usr/bin/env node
import { loadConfig } from '../config/load';
import { Daemon } from '../daemon';
import { KernelRules } from '../dataplane/kernel/plane';
import { ConfigError, describeError, formatProblem } from '../errors';
import { Counters } from '../observability/counters';
import { createLogger } from '../observability/logger';
import { compileDesired } from '../policy/policy';
import { releaseTunnelPeer } from '../tunnels/host';
import { parseArgs, DEFAULT_CONFIG } from './args';
import { EgressRoutes } from '../dataplane/kernel/egress-apply';
import { checkConfig } from './check';
import { acquireInstanceLock, EXIT_ALREADY_RUNNING } from '../daemon/instance-lock';
import type { InstanceLock } from '../daemon/instance-lock';
import { safeLines } from '../util/safe-text';

const USAGE = `usage: sharegwd [--config FILE] [--check-config | --cleanup [--force]]
  --config FILE    daemon file (default ${DEFAULT_CONFIG})
  --check-config   validate the daemon file and every domain file, print all problems, exit 1 if any
  --cleanup        remove every iptables chain and jump sharegw owns and take the
                   gateway address off every tunnel they guarded (and, with --config,
                   every configured tunnel), remove sharegw's egress routes and
                   policy rules (protocol 213), then exit; refused (exit ${EXIT_ALREADY_RUNNING}) while
                   a sharegwd runs in this network namespace
  --force          with --cleanup: clean up even while a sharegwd runs
  --version        print the version
Exit status ${EXIT_ALREADY_RUNNING} (SGW_ERR_DAEMON_ALREADY_RUNNING): another sharegwd holds the
  single-instance lock of this network namespace.
Signals: SIGHUP reloads the configuration; SIGTERM/SIGINT stop (kernel rules are kept by default).`;

// Config problems quote values from the files (tenant ids): escaped.
const print = (s: string): void => void process.stdout.write(`${safeLines(s)}\n`);
const printErr = (s: string): void => void process.stderr.write(`${safeLines(s)}\n`);

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['check-config', 'cleanup', 'force', 'help', 'version'], ['config']);
  if (args.flags.has('help')) {
    print(USAGE);
    return 0;
  }
  if (args.flags.has('version')) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    print((require('../../../package.json') as { version: string }).version);
    return 0;
  }
  if (args.unknown.length > 0 || args.positionals.length > 0) {
    printErr(`sharegwd: unexpected arguments: ${[...args.unknown, ...args.positionals].join(' ')}\n${USAGE}`);
    return 2;
  }
  const file = args.values.get('config') ?? DEFAULT_CONFIG;
  if (args.flags.has('force') && !args.flags.has('cleanup')) {
    printErr(`sharegwd: --force is an option of --cleanup only\n${USAGE}`);
    return 2;
  }
  if (args.flags.has('check-config')) {
    return checkConfig(file, print, printErr);
  }
  if (args.flags.has('cleanup')) {
    return cleanup(args.values.has('config') ? file : null, args.flags.has('force'));
  }
  return run(file);
}

/**
 * Removes every chain and jump we own and takes the gateway address off every
 * tunnel they guarded (found in the anti-spoof rules, plus the config's
 * tunnels when --config is given): without our rules an addressed tunnel
 * would be a plain routed link into the storage network. The config is read
 * first, but a broken config does not stop the cleanup.
 */
async function cleanup(configFile: string | null, force: boolean): Promise<number> {
  // Cleanup removes what a running daemon enforces (and it would put it
  // back at its next sync): refuse unless forced. Holding the lock meanwhile
  // also keeps a daemon from starting half-way through.
  let lock: InstanceLock | null = null;
  try {
    lock = await acquireInstanceLock();
  } catch (err) {
    const e = describeError(err);
    if (!force) {
      printErr(`sharegwd: refusing to clean up: ${e.code}: ${e.message} (--force cleans up anyway)`);
      return e.code === 'SGW_ERR_DAEMON_ALREADY_RUNNING' ? EXIT_ALREADY_RUNNING : 1;
    }
    printErr(`sharegwd: --force: cleaning up although ${e.code}: ${e.message}`);
  }
  try {
    return await cleanupLocked(configFile);
  } finally {
    await lock?.release();
  }
}

async function cleanupLocked(configFile: string | null): Promise<number> {
  let rc = 0;
  const tunnels = new Map<string, { iface: string; guestIp: string }>();
  if (configFile !== null) {
    try {
      for (const g of compileDesired(loadConfig(configFile)).guests) {
        tunnels.set(`${g.iface} ${g.guestIp}`, { iface: g.iface, guestIp: g.guestIp });
      }
    } catch (err) {
      printErr(`sharegwd: config unreadable, releasing only the tunnels found in the rules: ${describeError(err).message}`);
      rc = 1;
    }
  }
  const kernel = new KernelRules();
  try {
    for (const t of await kernel.ownedTunnels()) {
      tunnels.set(`${t.iface} ${t.guestIp}`, t);
    }
  } catch (err) {
    printErr(`sharegwd: cannot read the rules: ${describeError(err).message}`);
    return 1;
  }
  // Addresses first: a tunnel must never keep its address without its rules.
  let released = 0;
  let failed = 0;
  for (const t of tunnels.values()) {
    try {
      released += await releaseTunnelPeer(t.iface, t.guestIp);
    } catch (err) {
      printErr(`sharegwd: cannot release tunnel ${t.iface}: ${describeError(err).message}`);
      failed++;
    }
  }
  print(`sharegwd: released ${released} tunnel address(es)`);
  if (failed > 0) {
    printErr(`sharegwd: rules kept because ${failed} tunnel(s) still have their addresses`);
    return 1;
  }
  try {
    const removed = await kernel.cleanup();
    print(removed ? 'sharegwd: removed all sharegw chains and jumps' : 'sharegwd: nothing to clean up');
  } catch (err) {
    printErr(`sharegwd: cleanup failed: ${describeError(err).message}`);
    return 1;
  }
  // Routes after chains: with the tunnels released nothing of a guest's
  // reaches them, and while chains remain a domain's traffic must never
  // fall back to host routing (another tenant's network).
  try {
    const removed = await new EgressRoutes().cleanup();
    print(removed ? 'sharegwd: removed all sharegw egress routes and rules' : 'sharegwd: no egress routes or rules to clean up');
  } catch (err) {
    printErr(`sharegwd: egress cleanup failed: ${describeError(err).message}`);
    return 1;
  }
  return rc;
}

async function run(file: string): Promise<number> {
  let config;
  try {
    config = loadConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const p of err.problems) {
        printErr(formatProblem(p));
      }
      printErr(`sharegwd: refusing to start: ${err.problems.length} configuration problem(s)`);
    } else {
      printErr(`sharegwd: refusing to start: ${describeError(err).message}`);
    }
    return 1;
  }
  // Before anything is programmed or written (state dir, rules, sockets):
  // a second daemon must change nothing the first one owns.
  try {
    await acquireInstanceLock();
  } catch (err) {
    const e = describeError(err);
    printErr(`sharegwd: refusing to start: ${e.code}: ${e.message}`);
    return e.code === 'SGW_ERR_DAEMON_ALREADY_RUNNING' ? EXIT_ALREADY_RUNNING : 1;
  }
  const log = createLogger(config.daemon.logLevel);
  const counters = new Counters();
  const daemon = new Daemon(config, log, counters);

  process.on('uncaughtException', (err) => {
    log.fatal({ err: err.message, stack: err.stack }, 'uncaught exception; exiting (kernel rules stay in force)');
    log.flush();
    process.exitCode = 70;
    setImmediate(() => process.kill(process.pid, 'SIGKILL'));
  });
  process.on('unhandledRejection', (reason) => {
    log.error({ err: describeError(reason) }, 'unhandled rejection');
  });

  // Signal handlers go in before start(): Node's default action for SIGHUP
  // is to exit, and a reload or stop asked for during the first sync must
  // wait for it, not interrupt it.
  let started = false;
  let stopping = false;
  let reloadQueued = false;
  let resolveExit: (code: number) => void = () => undefined;
  const exited = new Promise<number>((r) => (resolveExit = r));
  const stop = (sig: string): void => {
    if (stopping) {
      return;
    }
    stopping = true;
    if (!started) {
      return; // handled once start() returns
    }
    log.info({ signal: sig }, 'stopping');
    void daemon.stop().then(() => {
      log.flush();
      resolveExit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    if (stopping) {
      return; // a reload would change what stop() cleans up
    }
    if (!started) {
      reloadQueued = true;
      return;
    }
    log.info('SIGHUP: reloading configuration');
    void daemon.reload();
  });

  try {
    await daemon.start();
  } catch (err) {
    log.fatal({ ...describeError(err) }, 'start failed');
    // Close whatever start() opened (listeners, admin socket) so the
    // process can exit.
    await daemon.stop().catch(() => undefined);
    log.flush();
    return 1;
  }
  started = true;
  if (stopping) {
    stopping = false;
    stop('SIGTERM');
  } else if (reloadQueued) {
    log.info('SIGHUP during start: reloading configuration');
    void daemon.reload();
  }
  return exited;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    printErr(`sharegwd: ${describeError(err).message}`);
    process.exitCode = 1;
  },
);
