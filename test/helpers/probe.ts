/**
 * TCP probe run inside a guest namespace by the integration tests:
 *   node probe.js HOST PORT [--local ADDR] [--lport PORT] [--timeout MS] [--hold MS]
 * Prints one JSON line: {"result":"connected"|"refused"|"unreachable"|"timeout"|"error","ms":N,"code":..}
 * With --hold, a connected socket is kept open that long (so the backend's
 * socket table can be inspected) and the line is printed right after connecting.
 */
import * as net from 'node:net';

const [host, portText, ...rest] = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = rest.indexOf(name);
  return i === -1 ? undefined : rest[i + 1];
};
const localAddress = opt('--local');
const localPort = opt('--lport');
const timeoutMs = Number(opt('--timeout') ?? '3000');
const holdMs = Number(opt('--hold') ?? '0');

const started = process.hrtime.bigint();
const elapsed = (): number => Number(process.hrtime.bigint() - started) / 1e6;
const report = (result: string, code?: string): void => {
  process.stdout.write(`${JSON.stringify({ result, ms: Math.round(elapsed()), code })}\n`);
};

const sock = net.connect({
  host: host ?? '',
  port: Number(portText),
  ...(localAddress !== undefined ? { localAddress } : {}),
  ...(localPort !== undefined ? { localPort: Number(localPort) } : {}),
});
const timer = setTimeout(() => {
  report('timeout');
  sock.destroy();
}, timeoutMs);
let hold: NodeJS.Timeout | null = null;
sock.on('connect', () => {
  clearTimeout(timer);
  report('connected');
  hold = setTimeout(() => sock.destroy(), holdMs);
});
// A held connection that the other side ends finishes the probe at once.
sock.on('close', () => {
  if (hold !== null) {
    clearTimeout(hold);
  }
});
sock.on('error', (err: NodeJS.ErrnoException) => {
  clearTimeout(timer);
  const map: Record<string, string> = { ECONNREFUSED: 'refused', EHOSTUNREACH: 'unreachable', ENETUNREACH: 'unreachable', ECONNRESET: 'refused' };
  report(map[err.code ?? ''] ?? 'error', err.code);
});
