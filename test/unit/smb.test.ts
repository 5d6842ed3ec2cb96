/**
 * SMB 2/3 codecs and the gateway's SMB policy, over a real capture
 * (smbclient against samba, test/fixtures/pcaps/smb3-session.pcap) and
 * crafted messages: framing at every byte boundary, header and body
 * decoding, each refusal, and mutation fuzzing that must never throw.
 */
import * as crypto from 'node:crypto';
import t from 'tap';
import { ProtocolError } from '../../src/errors';
import { Framer } from '../../src/protocols/framer';
import type { FrameHead } from '../../src/protocols/framer';
import { DEFAULT_MIN_DIALECT, SmbInspector } from '../../src/protocols/smb-policy';
import type { SmbPolicy } from '../../src/protocols/smb-policy';
import { SmbStream } from '../../src/protocols/smb-stream';
import { Command, compoundOffsets, decodeHeader, kindOf, negotiateRequestDialects, negotiateResponseDialect, smbFramerSpec, treeConnectShare } from '../../src/protocols/smb2';
import { tcpStreams } from '../helpers/pcap';

const OPEN: SmbPolicy = { minDialect: DEFAULT_MIN_DIALECT, encryptionRequired: false, shares: null };

function frames(stream: Buffer): FrameHead[] {
  const out: FrameHead[] = [];
  const f = new Framer({ ...smbFramerSpec(), headMax: 1 << 20 });
  const err = f.push(stream, (h) => {
    out.push(h);
    return null;
  });
  if (err !== null) {
    throw err;
  }
  return out;
}

/** A direct-TCP frame around an SMB2 message. */
function frame(msg: Buffer): Buffer {
  const p = Buffer.alloc(4);
  p.writeUIntBE(msg.length, 1, 3);
  return Buffer.concat([p, msg]);
}

function header(command: number, opts: { response?: boolean; status?: number; next?: number } = {}): Buffer {
  const h = Buffer.alloc(64);
  h.writeUInt32BE(0xfe534d42, 0);
  h.writeUInt16LE(64, 4);
  h.writeUInt32LE(opts.status ?? 0, 8);
  h.writeUInt16LE(command, 12);
  h.writeUInt32LE(opts.response === true ? 1 : 0, 16);
  h.writeUInt32LE(opts.next ?? 0, 20);
  return h;
}

function negotiateRequest(dialects: number[]): Buffer {
  const body = Buffer.alloc(36 + 2 * dialects.length);
  body.writeUInt16LE(36, 0);
  body.writeUInt16LE(dialects.length, 2);
  dialects.forEach((d, i) => body.writeUInt16LE(d, 36 + 2 * i));
  return Buffer.concat([header(Command.NEGOTIATE), body]);
}

function negotiateResponse(dialect: number): Buffer {
  const body = Buffer.alloc(65);
  body.writeUInt16LE(65, 0);
  body.writeUInt16LE(dialect, 4);
  return Buffer.concat([header(Command.NEGOTIATE, { response: true }), body]);
}

function treeConnect(path: string): Buffer {
  const p = Buffer.from(path, 'utf16le');
  const body = Buffer.alloc(8);
  body.writeUInt16LE(9, 0);
  body.writeUInt16LE(72, 4);
  body.writeUInt16LE(p.length, 6);
  return Buffer.concat([header(Command.TREE_CONNECT), body, p]);
}

const sessionOk = (): Buffer => Buffer.concat([header(Command.SESSION_SETUP, { response: true }), Buffer.alloc(8)]);
const transform = (): Buffer => Buffer.concat([Buffer.from([0xfd, 0x53, 0x4d, 0x42]), crypto.randomBytes(60)]);

t.test('the real capture frames into SMB2 messages both ways', async (t) => {
  const [s] = await tcpStreams('smb3-session.pcap');
  if (s === undefined) {
    t.fail('no stream');
    return;
  }
  const up = frames(Buffer.concat(s.up));
  const down = frames(Buffer.concat(s.down));
  t.equal(up.length, down.length, 'one response per request');
  t.ok(up.length >= 10, `${up.length} requests`);
  for (const f of [...up, ...down]) {
    t.equal(kindOf(f.head), 'smb2');
  }
  const cmds = up.map((f) => (decodeHeader(f.head) as { command: number }).command);
  t.same(cmds.slice(0, 4), [Command.NEGOTIATE, Command.SESSION_SETUP, Command.SESSION_SETUP, Command.TREE_CONNECT]);
  const offered = negotiateRequestDialects(up[0]?.head ?? Buffer.alloc(0));
  t.ok(Array.isArray(offered) && offered.includes(0x0311), 'smbclient offers 3.1.1');
  t.equal(negotiateResponseDialect(down[0]?.head ?? Buffer.alloc(0)), 0x0311, 'samba selects 3.1.1');
  const trees = up.filter((f) => (decodeHeader(f.head) as { command: number }).command === Command.TREE_CONNECT).map((f) => treeConnectShare(f.head));
  t.same(trees, ['ipc$', 'a'], 'tree connects: IPC$ then the share');
  const status = down.map((f) => (decodeHeader(f.head) as { status: number }).status);
  t.equal(status[1], 0xc0000016, 'first session setup: more processing required');
  t.equal(status[2], 0, 'second: success');
});

t.test('the framer finds the same messages at every split of the capture', async (t) => {
  const [s] = await tcpStreams('smb3-session.pcap');
  const stream = Buffer.concat(s?.up ?? []);
  const whole = frames(stream).map((f) => `${f.length}:${f.head.subarray(0, 80).toString('hex')}`);
  let bad = 0;
  for (let cut = 0; cut <= stream.length; cut++) {
    for (const cut2 of [cut, Math.min(stream.length, cut + 1), Math.min(stream.length, cut + 67)]) {
      const got: string[] = [];
      const f = new Framer({ ...smbFramerSpec(), headMax: 1 << 20 });
      const on = (h: FrameHead): null => {
        got.push(`${h.length}:${h.head.subarray(0, 80).toString('hex')}`);
        return null;
      };
      f.push(stream.subarray(0, cut), on);
      f.push(stream.subarray(cut, cut2), on);
      f.push(stream.subarray(cut2), on);
      if (got.join() !== whole.join() || !f.atBoundary) {
        bad++;
      }
    }
  }
  t.equal(bad, 0, `${stream.length * 3} three-way splits agree with the whole stream`);
  // byte by byte
  const got: number[] = [];
  const f = new Framer(smbFramerSpec());
  for (let i = 0; i < stream.length; i++) {
    f.push(stream.subarray(i, i + 1), (h) => (got.push(h.length), null));
  }
  t.same(got, frames(stream).map((x) => x.length), 'one byte at a time');
});

t.test('framing limits are checked on the prefix, before buffering', async (t) => {
  const f = new Framer(smbFramerSpec(1024));
  const big = Buffer.from([0, 0, 0x10, 0]);
  const err = f.push(big, () => null);
  t.ok(err instanceof ProtocolError);
  t.equal(err?.code, 'SGW_ERR_PROTO_TOO_LARGE');
  t.equal(f.push(Buffer.alloc(10), () => null), err, 'stays failed');
  const g = new Framer(smbFramerSpec());
  t.equal(g.push(Buffer.from([0x85, 0, 0, 0]), () => null)?.code, 'SGW_ERR_PROTO_FRAMING', 'non-zero first byte (NetBIOS keepalive on direct TCP)');
  const z = new Framer(smbFramerSpec());
  const seen: number[] = [];
  t.equal(z.push(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]), (h) => (seen.push(h.length), null)), null);
  t.same(seen, [0, 0], 'empty frames are frames');
});

t.test('the policy passes the real session and refuses what it must', async (t) => {
  const [s] = await tcpStreams('smb3-session.pcap');
  const st = new SmbStream({ ...OPEN, shares: new Set(['a']) });
  // interleave as on the wire: request i, then response i
  const up = frames(Buffer.concat(s?.up ?? []));
  const down = frames(Buffer.concat(s?.down ?? []));
  const wire = (h: FrameHead): Buffer => Buffer.concat([h.prefix, h.head]);
  let refused = 0;
  up.forEach((u, i) => {
    refused += st.up(wire(u)) === null ? 0 : 1;
    const d = down[i];
    refused += d !== undefined && st.down(wire(d)) === null ? 0 : 1;
  });
  t.equal(refused, 0, 'smbclient session to a granted share passes');

  const only = new SmbStream({ ...OPEN, shares: new Set(['b']) });
  const results = up.map((u, i) => {
    const r = only.up(wire(u));
    const d = down[i];
    if (d !== undefined) {
      only.down(wire(d));
    }
    return r?.reason ?? 'ok';
  });
  t.ok(results.includes('share'), 'tree connect to a share not granted is refused');
  t.equal(results.indexOf('share'), up.findIndex((u) => treeConnectShare(u.head) === 'a'), 'at the tree connect to it, not before (IPC$ passes)');
});

t.test('SMB1, dialect floor, encryption and shares', async (t) => {
  const smb1 = Buffer.concat([Buffer.from([0xff, 0x53, 0x4d, 0x42]), Buffer.alloc(40)]);
  t.same(new SmbStream(OPEN).up(frame(smb1))?.reason, 'smb1', 'SMB1 negotiate');
  t.same(new SmbStream(OPEN).up(frame(negotiateRequest([0x0202, 0x0210])))?.reason, 'dialect', 'offers only 2.x');
  t.equal(new SmbStream(OPEN).up(frame(negotiateRequest([0x0202, 0x0210, 0x0300]))), null, 'offers 3.0 among others');
  t.equal(new SmbStream({ ...OPEN, minDialect: 0x0210 }).up(frame(negotiateRequest([0x0210]))), null, 'a lower floor admits 2.1');
  const low = new SmbStream(OPEN);
  low.up(frame(negotiateRequest([0x0210, 0x0300])));
  t.same(low.down(frame(negotiateResponse(0x0210)))?.reason, 'dialect', 'backend selecting 2.1 is refused too');
  const wild = new SmbStream(OPEN);
  wild.up(frame(negotiateRequest([0x0300])));
  t.same(wild.down(frame(negotiateResponse(0x02ff)))?.reason, 'dialect', 'wildcard response');

  const enc = new SmbStream({ ...OPEN, encryptionRequired: true });
  t.equal(enc.up(frame(negotiateRequest([0x0311]))), null);
  t.equal(enc.down(frame(negotiateResponse(0x0311))), null);
  t.equal(enc.up(frame(Buffer.concat([header(Command.SESSION_SETUP), Buffer.alloc(24)]))), null, 'session setup is plain by design');
  t.notOk(enc.downDone, 'still watching for the session');
  t.equal(enc.down(frame(sessionOk())), null);
  t.ok(enc.downDone, 'session up: nothing more to learn from the backend');
  t.equal(enc.up(frame(transform())), null, 'encrypted traffic passes');
  t.same(enc.up(frame(treeConnect('\\\\198.18.0.100\\acme')))?.reason, 'unencrypted', 'a plain tree connect after session setup is refused');

  const plain = new SmbStream({ ...OPEN, shares: new Set(['acme']) });
  plain.up(frame(negotiateRequest([0x0311])));
  plain.down(frame(negotiateResponse(0x0311)));
  t.equal(plain.up(frame(treeConnect('\\\\198.18.0.100\\ACME'))), null, 'share names compare case-insensitively');
  t.equal(plain.up(frame(treeConnect('\\\\198.18.0.100\\IPC$'))), null, 'IPC$ is allowed');
  t.same(plain.up(frame(treeConnect('\\\\198.18.0.100\\beta')))?.reason, 'share');

  const compound = new SmbStream({ ...OPEN, shares: new Set(['acme']) });
  compound.up(frame(negotiateRequest([0x0311])));
  compound.down(frame(negotiateResponse(0x0311)));
  const first = Buffer.concat([header(Command.SESSION_SETUP, { next: 80 }), Buffer.alloc(16)]);
  t.same(compound.up(frame(Buffer.concat([first, treeConnect('\\\\h\\beta')])))?.reason, 'share', 'a tree connect compounded behind another command is seen');

  const before = new SmbStream(OPEN);
  t.same(before.up(frame(treeConnect('\\\\h\\acme')))?.reason, 'malformed', 'anything before NEGOTIATE');
  t.same(new SmbStream(OPEN).up(frame(Buffer.from('GET / HTTP/1.1\r\n\r\n')))?.code, 'SGW_ERR_PROTO_UNEXPECTED', 'not SMB at all');
  t.same(new SmbStream(OPEN).up(Buffer.from('GET / HTTP/1.1\r\n\r\n'))?.code, 'SGW_ERR_PROTO_FRAMING', 'not even framed');
});

t.test('decoders reject short and inconsistent bodies with typed errors', async (t) => {
  t.equal((decodeHeader(Buffer.alloc(10)) as ProtocolError).code, 'SGW_ERR_PROTO_MALFORMED');
  const badSize = header(0);
  badSize.writeUInt16LE(63, 4);
  t.ok(decodeHeader(badSize) instanceof ProtocolError);
  t.ok(negotiateRequestDialects(header(0)) instanceof ProtocolError, 'no body');
  const lying = negotiateRequest([0x0300]);
  lying.writeUInt16LE(50, 66);
  t.ok(negotiateRequestDialects(lying) instanceof ProtocolError, 'dialect count past the end');
  const tc = treeConnect('\\\\h\\s');
  tc.writeUInt16LE(4000, 70);
  t.ok(treeConnectShare(tc) instanceof ProtocolError, 'path outside the message');
  t.ok(treeConnectShare(treeConnect('no-backslashes')) instanceof ProtocolError, 'path not \\\\server\\share');
  t.ok(compoundOffsets(header(0, { next: 12 })) instanceof ProtocolError, 'NextCommand not 8-aligned');
  t.same(compoundOffsets(header(0, { next: 4096 })), { offsets: [0], truncated: true }, 'chain past the head');
});

t.test('fuzz: mutated real messages never throw, and refusals are typed', async (t) => {
  const [s] = await tcpStreams('smb3-session.pcap');
  const up = Buffer.concat(s?.up ?? []);
  const down = Buffer.concat(s?.down ?? []);
  const n = Number(process.env['SGW_FUZZ_RUNS'] ?? 5000);
  let seed = 1;
  const next = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  const reasons = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const u = Buffer.from(up);
    const d = Buffer.from(down);
    for (let k = 0; k < 1 + (next() % 8); k++) {
      const target = next() % 2 === 0 ? u : d;
      target[next() % target.length] = next() & 0xff;
    }
    const st = new SmbStream({ minDialect: 0x0300, encryptionRequired: next() % 2 === 0, shares: next() % 2 === 0 ? new Set(['a']) : null });
    let r = null;
    // random chunking too
    for (let off = 0, doff = 0; r === null && (off < u.length || doff < d.length); ) {
      const a = 1 + (next() % 300);
      r = st.up(u.subarray(off, off + a)) ?? st.down(d.subarray(doff, doff + a));
      off += a;
      doff += a;
    }
    const key = r === null ? 'passed' : `${r.reason}${r.code !== undefined ? `/${r.code}` : ''}`;
    reasons.set(key, (reasons.get(key) ?? 0) + 1);
  }
  t.ok(reasons.size > 2, `outcomes: ${JSON.stringify(Object.fromEntries(reasons))}`);
  t.pass(`${n} mutated sessions, no exception`);
});

t.test('the inspector alone: a response from the guest is refused', async (t) => {
  const i = new SmbInspector(OPEN);
  const v = i.up(negotiateResponse(0x0311));
  t.equal(v.ok, false);
});

/** A stream past NEGOTIATE (3.1.1) with a share check on `acme`. */
function negotiated(): SmbStream {
  const st = new SmbStream({ ...OPEN, shares: new Set(['acme']) });
  st.fromGuest(frame(negotiateRequest([0x0311])));
  st.fromBackend(frame(negotiateResponse(0x0311)));
  return st;
}

/** Pads a command to a multiple of 8 bytes and sets its NextCommand. */
function chained(cmds: Buffer[]): Buffer {
  const padded = cmds.map((c, i) => {
    const p = i === cmds.length - 1 ? c : Buffer.concat([c, Buffer.alloc((8 - (c.length % 8)) % 8)]);
    if (i < cmds.length - 1) {
      p.writeUInt32LE(p.length, 20);
    }
    return p;
  });
  return Buffer.concat(padded);
}

t.test('SmbStream.fromGuest() neuters a refused tree connect in a compound, identically at every split', async (t) => {
  const c = frame(chained([Buffer.concat([header(Command.CREATE), Buffer.alloc(57)]), treeConnect('\\\\h\\beta'), Buffer.concat([header(Command.CLOSE), Buffer.alloc(24)])]));
  const whole = negotiated().fromGuest(c);
  t.equal(whole.refusal, undefined, 'the connection is not refused');
  t.same(whole.answered?.map((a) => a.reason), ['share'], 'one request refused, by reason');
  const out = Buffer.concat(whole.toBackend);
  t.equal(out.length, c.length, 'every byte goes on, in place');
  t.match(out.toString('utf16le'), /\\\\h\\\*\*\*\*/, 'the share name is overwritten with *');
  t.notMatch(out.toString('utf16le'), /beta/);
  for (let cut = 1; cut < c.length; cut++) {
    const st = negotiated();
    const a = st.fromGuest(c.subarray(0, cut));
    const b = st.fromGuest(c.subarray(cut));
    const got = Buffer.concat([...a.toBackend, ...b.toBackend]);
    if (!got.equals(out) || (a.answered?.length ?? 0) + (b.answered?.length ?? 0) !== 1) {
      t.fail(`split at ${cut} differs`);
      return;
    }
  }
  t.pass(`the same bytes and one answer at all ${c.length - 1} splits`);
  const granted = negotiated().fromGuest(frame(chained([Buffer.concat([header(Command.CREATE), Buffer.alloc(57)]), treeConnect('\\\\h\\acme')])));
  t.same(Buffer.concat(granted.toBackend), frame(chained([Buffer.concat([header(Command.CREATE), Buffer.alloc(57)]), treeConnect('\\\\h\\acme')])), 'a granted compound passes unchanged');
});

t.test('SmbStream.fromGuest() holds nothing of a command before its head is decided', async (t) => {
  const tc = frame(treeConnect('\\\\h\\beta'));
  const st = negotiated();
  const early = st.fromGuest(tc.subarray(0, tc.length - 1));
  t.same(early.toBackend, [], 'a tree connect one byte short of its path: nothing forwarded yet');
  const rest = st.fromGuest(tc.subarray(tc.length - 1));
  t.equal(Buffer.concat(rest.toBackend).length, tc.length, 'then all of it, neutered');
  t.same(rest.answered?.[0]?.reason, 'share');
});

t.test('SmbStream.fromGuest() streams a 16 MiB frame holding only its head', async (t) => {
  const st = negotiated();
  const len = 0xffffff;
  const w = Buffer.concat([header(Command.WRITE), Buffer.alloc(48)]);
  const p = Buffer.alloc(4);
  p.writeUIntBE(len, 1, 3);
  let sent = 0;
  let forwarded = 0;
  const first = st.fromGuest(Buffer.concat([p, w]));
  forwarded += first.toBackend.reduce((n, x) => n + x.length, 0);
  sent += 4 + w.length;
  const chunk = Buffer.alloc(65536);
  while (sent < len + 4) {
    const c = chunk.subarray(0, Math.min(chunk.length, len + 4 - sent));
    const r = st.fromGuest(c);
    t.equal(r.refusal, undefined);
    forwarded += r.toBackend.reduce((n, x) => n + x.length, 0);
    sent += c.length;
    if (sent - forwarded > 8192) {
      t.fail(`${sent - forwarded} bytes held`);
      return;
    }
  }
  t.equal(forwarded, sent, 'every byte forwarded; never more than one head held');
  t.ok(st.fromGuest(frame(treeConnect('\\\\h\\acme'))).toBackend.length > 0, 'and the next frame is walked from its start');
});

t.test('SmbStream.fromGuest() fails closed on a compound it cannot walk to its end', async (t) => {
  const bad = header(Command.CREATE, { next: 4096 });
  const r = negotiated().fromGuest(frame(Buffer.concat([bad, Buffer.alloc(64)])));
  t.same(r.refusal?.reason, 'malformed', 'NextCommand past the frame');
  t.same(r.toBackend, [], 'nothing of it forwarded');
  const odd = negotiated().fromGuest(frame(Buffer.concat([header(Command.CREATE, { next: 68 }), Buffer.alloc(128)])));
  t.same(odd.refusal?.code, 'SGW_ERR_PROTO_MALFORMED', 'NextCommand not 8-aligned');
  const far = Buffer.alloc(8192);
  const tcFar = treeConnect('\\\\h\\acme');
  tcFar.writeUInt16LE(8000, 68);
  const farOut = negotiated().fromGuest(frame(Buffer.concat([tcFar, far])));
  t.same(farOut.refusal?.reason, 'malformed', 'a tree connect path past the 8 KiB head cannot be checked: refused');
  const comp = negotiated();
  comp.fromBackend(frame(sessionOk()));
  t.same(comp.fromGuest(frame(Buffer.concat([Buffer.from([0xfc, 0x53, 0x4d, 0x42]), Buffer.alloc(60)]))).refusal?.reason, 'uninspectable', 'a compressed message under a share check');
});
