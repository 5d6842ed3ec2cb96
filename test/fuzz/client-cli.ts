/**
 * The socket-path fuzz client as a command, for running inside a lab guest
 * namespace (`ip netns exec sgwlab-g1 node client-cli.js ...`), where the
 * guest's routes lead through the gateway. Prints one JSON line: the
 * SocketFuzzStats.
 *   client-cli.js --endpoints 198.18.0.100:2049:nfs,198.18.0.100:445:smb
 *     --seeds N[,N...] [--inputs N] [--seconds N] [--concurrency N] [--linger MS]
 */
import { loadCorpus } from './corpus';
import { fuzzSockets } from './socket';
import type { Endpoint, SocketFuzzStats } from './socket';

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
  // Each seed in turn, for --seconds each; the totals are summed.
  const seeds = arg('seeds', arg('seed', '1')).split(',').map(Number);
  const corpus = await loadCorpus();
  let total: SocketFuzzStats | null = null;
  for (const seed of seeds) {
    const st = await fuzzSockets(corpus, {
      endpoints,
      seed,
      maxInputs: Number(arg('inputs', '1000000')),
      maxMs: Number(arg('seconds', '30')) * 1000,
      concurrency: Number(arg('concurrency', '8')),
      lingerMs: Number(arg('linger', '500')),
    });
    const prev: SocketFuzzStats | null = total;
    total = prev === null ? st : (Object.fromEntries(Object.entries(st).map(([k, v]) => [k, v + prev[k as keyof SocketFuzzStats]])) as unknown as SocketFuzzStats);
  }
  process.stdout.write(`${JSON.stringify(total)}\n`);
}

void main();
