/**
 * The backend end of the connection workloads: echoes what it gets and keeps
 * every connection open until the client closes it.
 *   node sink.js HOST PORT
 */
import * as net from 'node:net';

const [host = '0.0.0.0', port = '2049'] = process.argv.slice(2);
let open = 0;
net
  .createServer((c) => {
    open++;
    c.on('data', (d) => c.write(d));
    c.on('error', () => undefined);
    c.on('close', () => open--);
  })
  .listen({ host, port: Number(port), backlog: 8192 }, () => process.stdout.write(`listening ${host}:${port}\n`));
process.on('SIGUSR2', () => process.stdout.write(`open ${open}\n`));
