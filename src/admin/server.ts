import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { heldSecrets } from '../config/secret';
import { describeError } from '../errors';
import { redact, redactDeep } from '../util/redact';
import type { Counters } from '../observability/counters';
import type { Logger } from '../observability/logger';
import { MAX_LINE, parseRequest } from './protocol';
import type { AdminCommand, AdminRequest, AdminResponse } from './protocol';

/**
 * Answers one admin command. `req` is the whole validated request (with
 * the arguments of flows and explain); `req.cmd === cmd`.
 */
export type AdminHandler = (cmd: AdminCommand, req: AdminRequest) => Promise<unknown>;

/**
 * The admin socket: a unix stream socket, mode 0600 (root only), one JSON
 * request per line. A malformed request gets an error response; an
 * oversized one closes that connection. Nothing here can throw into the
 * event loop.
 */
export class AdminServer {
  private server: net.Server | null = null;
  private readonly conns = new Set<net.Socket>();

  constructor(
    private readonly socketPath: string,
    private readonly handler: AdminHandler,
    private readonly log: Logger,
    private readonly counters: Counters,
  ) {}

  async listen(): Promise<void> {
    fs.mkdirSync(path.dirname(this.socketPath), { recursive: true, mode: 0o755 });
    try {
      fs.unlinkSync(this.socketPath); // A stale socket from a killed daemon.
    } catch {
      // Not there: fine.
    }
    const server = net.createServer((sock) => this.serve(sock));
    this.server = server;
    // The socket file is created with the umask's mode: make that 0600 from
    // the start instead of chmod-ing after listen (no window where another
    // local user could connect).
    const oldMask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.socketPath, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(oldMask);
    }
    fs.chmodSync(this.socketPath, 0o600);
    server.on('error', (err) => this.log.error({ err: err.message }, 'admin socket error'));
  }

  private serve(sock: net.Socket): void {
    this.conns.add(sock);
    sock.on('close', () => this.conns.delete(sock));
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', () => undefined);
    const tooLarge = (): void => {
      this.counters.inc('sharegw_admin_errors_total', { code: 'SGW_ERR_ADMIN_TOO_LARGE' });
      sock.destroy();
    };
    sock.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        // A line can be completed by the chunk that makes it too long.
        if (line.length > MAX_LINE) {
          tooLarge();
          return;
        }
        void this.answer(line).then((resp) => {
          if (!sock.destroyed) {
            sock.write(`${JSON.stringify(resp)}\n`);
          }
        });
      }
      if (buf.length > MAX_LINE) {
        tooLarge();
      }
    });
  }

  private async answer(line: string): Promise<AdminResponse> {
    try {
      const req = parseRequest(line);
      // The safety net for every answer (status, reload problems, explain,
      // flows): the credentials the process holds and known secret shapes
      // are stripped from every string, whatever code built it (issue 14).
      return { ok: true, result: redactDeep(await this.handler(req.cmd, req), heldSecrets()) };
    } catch (err) {
      const e = describeError(err);
      this.counters.inc('sharegw_admin_errors_total', { code: e.code });
      // The message may quote an upstream answer: same safety net as status.
      return { ok: false, error: { code: e.code, message: redact(e.message, heldSecrets()) } };
    }
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s !== null) {
      // server.close() waits for open connections: an idle `sharegw` client
      // must not hold up the daemon's shutdown.
      const closed = new Promise<void>((resolve) => s.close(() => resolve()));
      for (const c of this.conns) {
        c.destroy();
      }
      await closed;
      try {
        fs.unlinkSync(this.socketPath);
      } catch {
        // Already removed.
      }
    }
  }
}
