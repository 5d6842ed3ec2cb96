/**
 * The socket-path fuzz client as a command, for running inside a lab guest
 * namespace (`ip netns exec sgwlab-g1 node client-cli.js ...`), where the
 * guest's routes lead through the gateway. Prints one JSON line: the
 * SocketFuzzStats.
 *   client-cli.js --endpoints 198.18.0.100:2049:nfs,198.18.0.100:445:smb
 *     --seed N [--inputs N] [--seconds N] [--concurrency N] [--linger MS]
 */
import { loadCorpus } from './corpus';
import { fuzzSockets } from './socket';
import type { Endpoint } from './socket';

function arg(name: string, d: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? d : (process.argv[i + 1] ?? d);
}

async function main(): Promise<void> {
  const endpoints: Endpoint[] = arg('endpoints', '')
    .split(',')
    .filter((x) => x !== '')
    .map((e) => {
      const [host, port, proto] = e.split(':');
      return { host: host ?? '', port: Number(port), proto: proto === 'smb' ? 'smb' : 'nfs' };
    });
  const st = await fuzzSockets(await loadCorpus(), {
    endpoints,
    seed: Number(arg('seed', '1')),
    maxInputs: Number(arg('inputs', '1000000')),
    maxMs: Number(arg('seconds', '30')) * 1000,
    concurrency: Number(arg('concurrency', '8')),
    lingerMs: Number(arg('linger', '500')),
  });
  process.stdout.write(`${JSON.stringify(st)}\n`);
}

void main();
