/**
 * The socket-path fuzzer: many connections to a proxy over real sockets,
 * each carrying a stream of records from the corpus, some mutated, framed
 * with (sometimes corrupted) record marks or direct-TCP headers, and
 * written in random chunks. It counts what the proxy did with them (read
 * replies, closed the connection, reset it, or left it hanging after the
 * client's FIN), and checks that a well-formed client is still served.
 *
 * Connection i of seed s is always the same bytes (Rng(mix(s, i))), so a
 * crash is replayed from the recent connections the caller keeps.
 * Used by main.ts (loopback, against proxy-host.ts), by client-cli.ts
 * (inside a lab guest namespace, against the real sharegwd), and by the
 * integration test.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { decodeReply, LAST_FRAGMENT, PROG_NFS } from '../../src/protocols/rpc';
import { ProtocolError } from '../../src/errors';
import type { Corpus } from './corpus';
import { rpcCall, smbNegotiateRequest } from './corpus';
import { chunk, mutate, recordSequence, rpcStream, smbStream } from './mutator';
import { mix, Rng } from './rng';

export interface Endpoint {
  host: string;
  port: number;
  proto: 'nfs' | 'smb';
}

export interface SocketFuzzOptions {
  endpoints: readonly Endpoint[];
  seed: number;
  /** Stop after this many records (inputs) sent... */
  maxInputs: number;
  /** ...or after this long. */
  maxMs: number;
  /** Connections in flight. */
  concurrency: number;
  /** How long to wait for the proxy to close after the client's FIN; longer is counted as stuck. */
  lingerMs: number;
  /** Source address for the connections (the lab's guests have one). */
  localAddress?: string;
  /** Called with each connection's bytes before it is sent (for crash reports). */
  onConnection?: (c: FuzzConnection) => void;
  /** Called every ~1000 connections. */
  onProgress?: (s: SocketFuzzStats) => void;
  /** Polled between connections: true stops the run early (the process under test died). */
  stop?: () => boolean;
}

/** One connection's input. */
export interface FuzzConnection {
  index: number;
  endpoint: Endpoint;
  records: number;
  chunks: Buffer[];
}

export interface SocketFuzzStats {
  connections: number;
  inputs: number;
  bytesSent: number;
  bytesReceived: number;
  /** The proxy closed the connection (FIN) after or while the client sent. */
  closed: number;
  /** The proxy reset the connection (ECONNRESET, EPIPE). */
  reset: number;
  /** Still open lingerMs after the client's FIN. */
  stuck: number;
  /** The connection could not be made. */
  connectFailed: number;
  ms: number;
}

/** Connection `index` of `seed`: which endpoint, and its bytes in chunks. */
export function connectionAt(c: Corpus, endpoints: readonly Endpoint[], seed: number, index: number): FuzzConnection {
  const rng = new Rng(mix(seed, index));
  const endpoint = rng.pick(endpoints);
  let records: Buffer[];
  let stream: Buffer;
  if (endpoint.proto === 'nfs') {
    records = recordSequence(rng, c.rpcCalls, 1 + rng.size(63), 0.3);
    stream = rpcStream(rng, records, 0.02);
    if (rng.chance(0.1)) {
      stream = mutate(stream, rng, c.rpcCalls);
    }
  } else {
    records = recordSequence(rng, c.smbUp, 1 + rng.size(31), 0.3);
    if (rng.chance(0.8)) {
      records.unshift(smbNegotiateRequest([0x0202, 0x0210, 0x0300, 0x0302, 0x0311]));
    }
    stream = smbStream(rng, records, 0.02);
    if (rng.chance(0.1)) {
      stream = mutate(stream, rng, c.smbUp);
    }
  }
  return { index, endpoint, records: records.length, chunks: chunk(rng, stream) };
}

/** Sends one connection's chunks, then FIN; resolves with what happened. */
function runConnection(fc: FuzzConnection, opts: SocketFuzzOptions): Promise<{ outcome: 'closed' | 'reset' | 'stuck' | 'connect-failed'; sent: number; received: number }> {
  return new Promise((resolve) => {
    const s = net.connect({ host: fc.endpoint.host, port: fc.endpoint.port, allowHalfOpen: true, noDelay: true, ...(opts.localAddress !== undefined ? { localAddress: opts.localAddress } : {}) });
    let connected = false;
    let failed: string | null = null;
    let sent = 0;
    let received = 0;
    let timer: NodeJS.Timeout | null = null;
    let done = false;
    const finish = (outcome: 'closed' | 'reset' | 'stuck' | 'connect-failed'): void => {
      if (done) {
        return;
      }
      done = true;
      if (timer !== null) {
        clearTimeout(timer);
      }
      s.destroy();
      resolve({ outcome, sent, received });
    };
    s.on('data', (d: Buffer) => (received += d.length));
    s.on('error', (e: NodeJS.ErrnoException) => (failed = e.code ?? 'ERR'));
    s.on('close', () => finish(!connected ? 'connect-failed' : failed !== null ? 'reset' : 'closed'));
    s.on('end', () => {
      // The proxy ended its side: the client ends too (it may still be writing).
      s.end();
    });
    s.once('connect', () => {
      connected = true;
      void (async () => {
        for (const c of fc.chunks) {
          if (s.destroyed || s.writableEnded) {
            break;
          }
          sent += c.length;
          if (!s.write(c)) {
            await new Promise<void>((r) => {
              s.once('drain', r);
              s.once('close', r);
            });
          }
        }
        if (!s.destroyed && !s.writableEnded) {
          s.end();
        }
        timer = setTimeout(() => finish('stuck'), opts.lingerMs);
      })();
    });
  });
}

/** Runs connections until maxInputs records were sent or maxMs passed. */
export async function fuzzSockets(c: Corpus, opts: SocketFuzzOptions): Promise<SocketFuzzStats> {
  const started = Date.now();
  const st: SocketFuzzStats = { connections: 0, inputs: 0, bytesSent: 0, bytesReceived: 0, closed: 0, reset: 0, stuck: 0, connectFailed: 0, ms: 0 };
  let next = 0;
  const more = (): boolean => st.inputs < opts.maxInputs && Date.now() - started < opts.maxMs && opts.stop?.() !== true;
  const worker = async (): Promise<void> => {
    while (more()) {
      const fc = connectionAt(c, opts.endpoints, opts.seed, next++);
      opts.onConnection?.(fc);
      st.inputs += fc.records;
      const r = await runConnection(fc, opts);
      st.connections++;
      st.bytesSent += r.sent;
      st.bytesReceived += r.received;
      if (r.outcome === 'closed') {
        st.closed++;
      } else if (r.outcome === 'reset') {
        st.reset++;
      } else if (r.outcome === 'stuck') {
        st.stuck++;
      } else {
        st.connectFailed++;
      }
      if (st.connections % 1000 === 0) {
        opts.onProgress?.({ ...st, ms: Date.now() - started });
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, () => worker()));
  st.ms = Date.now() - started;
  return st;
}

/** A well-formed client: an NFSv3 NULL call gets its reply (same xid). */
export function legitNfs(host: string, port: number, localAddress?: string): Promise<boolean> {
  const xid = 0x600d0001;
  const body = rpcCall(xid, PROG_NFS, 3, 0, Buffer.alloc(0));
  const mark = Buffer.alloc(4);
  mark.writeUInt32BE((LAST_FRAGMENT | body.length) >>> 0, 0);
  return exchange(host, port, Buffer.concat([mark, body]), localAddress, (b) => {
    if (b.length < 4) {
      return null;
    }
    const len = b.readUInt32BE(0) & 0x7fffffff;
    if (b.length < 4 + len) {
      return null;
    }
    const r = decodeReply(b.subarray(4, 4 + len));
    return !(r instanceof ProtocolError) && r.xid === xid && r.accepted;
  });
}

/** A well-formed client: an SMB2 NEGOTIATE gets a NEGOTIATE response. */
export function legitSmb(host: string, port: number, localAddress?: string): Promise<boolean> {
  const msg = smbNegotiateRequest([0x0300, 0x0302, 0x0311]);
  const h = Buffer.alloc(4);
  h.writeUIntBE(msg.length, 1, 3);
  return exchange(host, port, Buffer.concat([h, msg]), localAddress, (b) => {
    if (b.length < 4 + 64) {
      return null;
    }
    return b[0] === 0 && b.readUInt32BE(4) === 0xfe534d42 && b.readUInt16LE(4 + 12) === 0 && (b.readUInt32LE(4 + 16) & 1) === 1;
  });
}

/** Sends `req`, feeds what comes back to `judge` until it decides (true/false) or 5 s pass. */
function exchange(host: string, port: number, req: Buffer, localAddress: string | undefined, judge: (b: Buffer) => boolean | null): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port, ...(localAddress !== undefined ? { localAddress } : {}) });
    let buf = Buffer.alloc(0);
    let done = false;
    const end = (ok: boolean): void => {
      if (!done) {
        done = true;
        clearTimeout(timer);
        s.destroy();
        resolve(ok);
      }
    };
    const timer = setTimeout(() => end(false), 5000);
    s.on('error', () => end(false));
    s.on('close', () => end(false));
    s.on('connect', () => s.write(req));
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const v = judge(buf);
      if (v !== null) {
        end(v);
      }
    });
  });
}

/** VmRSS (or another /proc/<pid>/status field) in bytes; null when the process is gone. */
export function procStatus(pid: number, field = 'VmRSS'): number | null {
  try {
    const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return m === null ? null : Number(m[1]) * 1024;
  } catch {
    return null;
  }
}
