#!/usr/bin/env node
import { loadConfig } from '../config/load';
import { Daemon } from '../daemon';
import { KernelRules } from '../dataplane/kernel/plane';
import { ConfigError, describeError, formatProblem } from '../errors';
import { Counters } from '../observability/counters';
import { createLogger } from '../observability/logger';
import { compileDesired } from '../policy/policy';
import { releaseTunnel } from '../tunnels/host';
import { parseArgs, DEFAULT_CONFIG } from './args';
import { checkConfig } from './check';

const USAGE = `usage: sharegwd [--config FILE] [--check-config | --cleanup]
  --config FILE    daemon file (default ${DEFAULT_CONFIG})
  --check-config   validate the daemon file and every domain file, print all problems, exit 1 if any
  --cleanup        remove every iptables chain and jump sharegw owns, then exit;
                   with --config also take the gateway address off every configured tunnel
  --version        print the version
Signals: SIGHUP reloads the configuration; SIGTERM/SIGINT stop (kernel rules are kept by default).`;

const print = (s: string): void => void process.stdout.write(`${s}\n`);
const printErr = (s: string): void => void process.stderr.write(`${s}\n`);

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['check-config', 'cleanup', 'help', 'version'], ['config']);
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
  if (args.flags.has('check-config')) {
    return checkConfig(file, print, printErr);
  }
  if (args.flags.has('cleanup')) {
    try {
      const removed = await new KernelRules().cleanup();
      print(removed ? 'sharegwd: removed all sharegw chains and jumps' : 'sharegwd: nothing to clean up');
      if (args.values.has('config')) {
        // With the config we also know which tunnels we adopted: release them,
        // or they would route guests into the storage network unfiltered.
        let guests: { iface: string; gatewayIp: string; guestIp: string }[] = [];
        try {
          guests = compileDesired(loadConfig(file)).guests;
        } catch (err) {
          printErr(`sharegwd: tunnels not released, config unreadable: ${describeError(err).message}`);
          return 1;
        }
        for (const g of guests) {
          await releaseTunnel(g.iface, g.gatewayIp, g.guestIp);
        }
        print(`sharegwd: released ${guests.length} tunnel address(es)`);
      }
      return 0;
    } catch (err) {
      printErr(`sharegwd: cleanup failed: ${describeError(err).message}`);
      return 1;
    }
  }
  return run(file);
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

  try {
    await daemon.start();
  } catch (err) {
    log.fatal({ ...describeError(err) }, 'start failed');
    log.flush();
    return 1;
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (sig: string): void => {
      if (stopping) {
        return;
      }
      stopping = true;
      log.info({ signal: sig }, 'stopping');
      void daemon.stop().then(() => {
        log.flush();
        resolve(0);
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      log.info('SIGHUP: reloading configuration');
      void daemon.reload();
    });
  });
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
