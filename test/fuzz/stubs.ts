/**
 * Loopback backends for the socket-path fuzzer: just enough RPC and SMB2
 * to answer what the proxy forwards, so the gateway's reply path runs too.
 * The RPC stub answers each whole call record with an accepted reply (a
 * COMPOUND with SEQUENCE's 36-byte result, for NFSv4); the SMB stub
 * answers NEGOTIATE with 3.1.1, SESSION_SETUP and TREE_CONNECT with
 * success (BAD_NETWORK_NAME for a neutered '*' share), anything else with
 * NOT_SUPPORTED. A few replies are mutated (seeded), some are split into
 * fragments or written byte by byte, so the backend-to-guest direction is
 * fuzzed as well. Each stub keeps at most a bounded buffer per connection
 * and closes it beyond; it ends its side when the proxy does.
 */
import * as net from 'node:net';
import { ProtocolError } from '../../src/errors';
import { decodeCall, LAST_FRAGMENT, PROG_NFS } from '../../src/protocols/rpc';
import { rpcReply, smbHeader, Xdr } from './corpus';
import { mutate } from './mutator';
import { Rng } from './rng';

/** The most a stub holds for one connection before it gives up on it. */
const STUB_MAX = 8 * 1024 * 1024;

/** Writes `b` as the stub chooses: whole, in a few pieces, or (short) byte by byte. */
function write(sock: net.Socket, b: Buffer, rng: Rng): void {
  if (rng.chance(0.9) || b.length < 2) {
    sock.write(b);
    return;
  }
  const cut = 1 + rng.int(b.length - 1);
  sock.write(b.subarray(0, cut));
  sock.write(b.subarray(cut));
}

/** An RPC reply for one call record (payload), or null for a record that is not a call. */
function rpcAnswer(rec: Buffer, rng: Rng): Buffer | null {
  const c = decodeCall(rec);
  if (c instanceof ProtocolError) {
    return null;
  }
  let res: Buffer;
  if (c.prog === PROG_NFS && c.vers === 4 && c.proc === 1) {
    // COMPOUND4res: status, empty tag, one SEQUENCE result (op, status, 36 bytes).
    res = new Xdr().u32(0, 0, 1, 53, 0).raw(Buffer.alloc(36, 1)).buf;
  } else {
    res = new Xdr().u32(0, 1, 1, 0o644, 1, 131072 + 1000, 131072 + 1000).raw(Buffer.alloc(56)).buf;
  }
  let body: Buffer = rpcReply(c.xid, res);
  if (rng.chance(0.05)) {
    body = mutate(body, rng);
  }
  if (rng.chance(0.1) && body.length > 8) {
    // Two fragments.
    const cut = 1 + rng.int(body.length - 1);
    const a = Buffer.alloc(4);
    a.writeUInt32BE(cut, 0);
    const b = Buffer.alloc(4);
    b.writeUInt32BE((LAST_FRAGMENT | (body.length - cut)) >>> 0, 0);
    return Buffer.concat([a, body.subarray(0, cut), b, body.subarray(cut)]);
  }
  const m = Buffer.alloc(4);
  m.writeUInt32BE((LAST_FRAGMENT | body.length) >>> 0, 0);
  return Buffer.concat([m, body]);
}

/** A stub ONC RPC server (record marking, RFC 5531 section 11). */
export function rpcStub(seed: number): net.Server {
  let n = 0;
  return net.createServer({ allowHalfOpen: true }, (sock) => {
    const rng = new Rng(seed + n++);
    let buf = Buffer.alloc(0);
    let frags: Buffer[] = [];
    sock.on('error', () => undefined);
    sock.on('end', () => sock.end());
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (buf.length < 4) {
          break;
        }
        const w = buf.readUInt32BE(0);
        const len = (w & ~LAST_FRAGMENT) >>> 0;
        if (len > STUB_MAX || frags.reduce((x, f) => x + f.length, 0) + len > STUB_MAX) {
          sock.destroy();
          return;
        }
        if (buf.length < 4 + len) {
          break;
        }
        frags.push(buf.subarray(4, 4 + len));
        buf = buf.subarray(4 + len);
        if ((w & LAST_FRAGMENT) !== 0) {
          const a = rpcAnswer(Buffer.concat(frags), rng);
          frags = [];
          if (a !== null && !sock.destroyed) {
            write(sock, a, rng);
          }
        }
      }
    });
  });
}

/** The stub's answer to one SMB2 message, or null. */
function smbAnswer(msg: Buffer, rng: Rng): Buffer | null {
  if (msg.length < 64 || msg.readUInt32BE(0) !== 0xfe534d42) {
    return null;
  }
  const command = msg.readUInt16LE(12);
  const mid = Number(msg.readBigUInt64LE(24) & 0xffffffffn);
  let body: Buffer;
  let status = 0;
  if (command === 0) {
    body = Buffer.alloc(65);
    body.writeUInt16LE(65, 0);
    body.writeUInt16LE(0x0311, 4);
  } else if (command === 1) {
    body = Buffer.alloc(8);
    body.writeUInt16LE(9, 0);
  } else if (command === 3) {
    body = Buffer.alloc(16);
    body.writeUInt16LE(16, 0);
    if (msg.includes(Buffer.from('*', 'utf16le'), 72)) {
      status = 0xc00000cc; // STATUS_BAD_NETWORK_NAME
    }
  } else {
    body = Buffer.alloc(9);
    body.writeUInt16LE(9, 0);
    status = 0xc00000bb; // STATUS_NOT_SUPPORTED
  }
  let out: Buffer = Buffer.concat([smbHeader(command, { response: true, status, mid }), body]);
  if (rng.chance(0.05)) {
    out = mutate(out, rng);
  }
  const h = Buffer.alloc(4);
  h.writeUIntBE(Math.min(out.length, 0xffffff), 1, 3);
  return Buffer.concat([h, out]);
}

/** A stub SMB2 server over direct TCP (MS-SMB2 2.1), compounds answered by their first command. */
export function smbStub(seed: number): net.Server {
  let n = 0;
  return net.createServer({ allowHalfOpen: true }, (sock) => {
    const rng = new Rng(seed + n++);
    let buf = Buffer.alloc(0);
    sock.on('error', () => undefined);
    sock.on('end', () => sock.end());
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4) {
        const len = buf.readUIntBE(1, 3);
        if (buf[0] !== 0 || len > STUB_MAX) {
          sock.destroy();
          return;
        }
        if (buf.length < 4 + len) {
          break;
        }
        const a = smbAnswer(buf.subarray(4, 4 + len), rng);
        buf = buf.subarray(4 + len);
        if (a !== null && !sock.destroyed) {
          write(sock, a, rng);
        }
      }
    });
  });
}
