import * as net from 'node:net';
import { AdminProtocolError } from '../errors';
import { encodeRequest } from './protocol';
import type { AdminCommand, AdminRequest, AdminResponse } from './protocol';

/**
 * Sends one argument-less command to the daemon's admin socket and returns
 * its response (explain without arguments gets an error response).
 */
export function adminRequest(socketPath: string, cmd: AdminCommand, timeoutMs = 10_000): Promise<AdminResponse> {
  return send(socketPath, JSON.stringify({ cmd }), timeoutMs);
}

/** Sends one request, with its arguments, and returns the daemon's response. */
export function adminCall(socketPath: string, request: AdminRequest, timeoutMs = 10_000): Promise<AdminResponse> {
  return send(socketPath, encodeRequest(request), timeoutMs);
}

function send(socketPath: string, line: string, timeoutMs: number): Promise<AdminResponse> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new AdminProtocolError('SGW_ERR_ADMIN_TIMEOUT', `no answer from ${socketPath} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${line}\n`));
    sock.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl === -1) {
        return;
      }
      clearTimeout(timer);
      sock.end();
      try {
        resolve(JSON.parse(buf.slice(0, nl)) as AdminResponse);
      } catch {
        reject(new AdminProtocolError('SGW_ERR_ADMIN_BAD_JSON', 'daemon sent a malformed response'));
      }
    });
    sock.on('close', () => {
      clearTimeout(timer);
      // No-op if a response or an error already settled the promise.
      reject(new AdminProtocolError('SGW_ERR_ADMIN_CLOSED', `sharegwd at ${socketPath} closed the connection without an answer`));
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new AdminProtocolError('SGW_ERR_ADMIN_UNREACHABLE', `cannot reach sharegwd at ${socketPath}: ${err.code ?? err.message}`));
    });
  });
}
