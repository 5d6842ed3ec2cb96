/**
 * Properties of every codec, checked with fast-check over generated inputs
 * (the mutation fuzzers in rpc.test.ts and smb.test.ts start from the real
 * captures instead):
 *
 * - decoders never throw, whatever the bytes: a value or a ProtocolError;
 * - framers and streams give the same result however the bytes are chunked;
 * - well-formed generated records pass a stream without a policy unchanged;
 * - the id map is a bijection on its window and never shows a foreign id.
 *
 * Runs: SGW_PROP_RUNS (default 300 per property).
 */
import fc from 'fast-check';
import t from 'tap';
import { ProtocolError } from '../../src/errors';
import { Framer } from '../../src/protocols/framer';
import { ID_WINDOW, mapCompound4, mapReply3, sattrIds, toBackend, toGuest } from '../../src/protocols/nfs-ids';
import { judgeCall, leavesExports } from '../../src/protocols/nfs-policy';
import type { NfsPolicy } from '../../src/protocols/nfs-policy';
import { walkCompound } from '../../src/protocols/nfs4';
import { decodeCall, decodeReply, decodeString, LAST_FRAGMENT } from '../../src/protocols/rpc';
import { RpcStream } from '../../src/protocols/rpc-stream';
import type { Relay, StreamTransform } from '../../src/protocols/relay';
import { compoundOffsets, decodeHeader, kindOf, negotiateRequestDialects, negotiateResponseDialect, smbFramerSpec, treeConnectShare } from '../../src/protocols/smb2';
import { SmbStream } from '../../src/protocols/smb-stream';

const runs = Number(process.env['SGW_PROP_RUNS'] ?? 300);
const opts = { numRuns: runs, seed: 20261123 };

const bytes = fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a));
/** Cut points for one buffer: a chunking of it. */
const chunked = (b: Buffer, cuts: number[]): Buffer[] => {
  const at = [...new Set(cuts.map((c) => c % (b.length + 1)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let from = 0;
  for (const c of at) {
    if (c > from) {
      out.push(b.subarray(from, c));
      from = c;
    }
  }
  if (from < b.length) {
    out.push(b.subarray(from));
  }
  return out;
};

const noThrow = (f: () => unknown): boolean => {
  const v = f();
  return v === null || v instanceof ProtocolError || typeof v === 'object' || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
};

t.test('decoders return a value or a ProtocolError for any bytes, and never throw', async (t) => {
  const m = { offset: 131072, anonUid: 65534, anonGid: 65534 };
  fc.assert(
    fc.property(bytes, fc.nat(64), fc.nat(30), (b, at, proc) => {
      return (
        noThrow(() => decodeCall(b)) &&
        noThrow(() => decodeReply(b)) &&
        noThrow(() => decodeString(b, at, 1024, 'x')) &&
        noThrow(() => walkCompound(b, at)) &&
        noThrow(() => mapReply3(proc, Buffer.from(b), m)) &&
        noThrow(() => mapCompound4(b, m)) &&
        noThrow(() => sattrIds(proc, b, at)) &&
        noThrow(() => kindOf(b)) &&
        noThrow(() => decodeHeader(b)) &&
        noThrow(() => compoundOffsets(b)) &&
        noThrow(() => negotiateRequestDialects(b)) &&
        noThrow(() => negotiateResponseDialect(b)) &&
        noThrow(() => treeConnectShare(b))
      );
    }),
    opts,
  );
  // Calls that decode are judged without a throw under every policy.
  const policies: NfsPolicy[] = [
    { readOnly: true, identity: null, exports: ['/a'] },
    { readOnly: false, identity: { rootSquash: true, anonUid: 65534, anonGid: 65534, uids: [{ from: 0, to: 9 }], gids: null, idOffset: 131072 }, exports: null },
  ];
  const rpcCall = fc.tuple(fc.nat(), fc.constantFrom(100003, 100005, 100000), fc.constantFrom(3, 4), fc.nat(25), bytes).map(([xid, prog, vers, proc, args]) => {
    const h = Buffer.alloc(40);
    [xid, 0, 2, prog, vers, proc, 0, 0, 0, 0].forEach((v, i) => h.writeUInt32BE(v >>> 0, 4 * i));
    return Buffer.concat([h, args]);
  });
  fc.assert(
    fc.property(rpcCall, (rec) => {
      const c = decodeCall(rec);
      return c instanceof ProtocolError || policies.every((p) => ['forward', 'answer', 'refuse'].includes(judgeCall(c, rec, p).action));
    }),
    opts,
  );
  t.pass(`${runs} inputs per property`);
});

/** Record-marked stream of generated records, some in several fragments. */
const rpcStream = fc.array(fc.tuple(bytes, fc.nat(3)), { maxLength: 8 }).map((recs) =>
  Buffer.concat(
    recs.flatMap(([body, frags]) => {
      const parts = chunked(body, Array.from({ length: frags }, (_, i) => Math.floor(((i + 1) * body.length) / (frags + 1))));
      const list = parts.length === 0 ? [Buffer.alloc(0)] : parts;
      return list.flatMap((p, i) => {
        const pre = Buffer.alloc(4);
        pre.writeUInt32BE(((i === list.length - 1 ? LAST_FRAGMENT : 0) | p.length) >>> 0, 0);
        return [pre, p];
      });
    }),
  ),
);

function feed(tf: () => StreamTransform, side: 'guest' | 'backend', chunks: Buffer[]): { out: Buffer; refusal: string | null } {
  const st = tf();
  const out: Buffer[] = [];
  for (const c of chunks) {
    const r: Relay = side === 'guest' ? st.fromGuest(c) : st.fromBackend(c);
    out.push(...(side === 'guest' ? r.toBackend : r.toGuest));
    if (r.refusal !== undefined) {
      return { out: Buffer.concat(out), refusal: r.refusal.code ?? r.refusal.reason };
    }
  }
  return { out: Buffer.concat(out), refusal: null };
}

t.test('RPC stream: the outcome does not depend on how the bytes are chunked', async (t) => {
  const mapped: NfsPolicy = { readOnly: true, identity: { rootSquash: true, anonUid: 65534, anonGid: 65534, uids: null, gids: null, idOffset: 131072 }, exports: ['/export/a'] };
  const open: NfsPolicy = { readOnly: false, identity: null, exports: null };
  fc.assert(
    fc.property(rpcStream, fc.array(fc.nat(), { maxLength: 12 }), (s, cuts) => {
      for (const policy of [open, mapped]) {
        for (const side of ['guest', 'backend'] as const) {
          const whole = feed(() => new RpcStream(policy), side, [s]);
          const parts = feed(() => new RpcStream(policy), side, chunked(s, cuts));
          if (whole.refusal !== parts.refusal) {
            return false;
          }
          // Bytes already sent before a refusal may differ with the chunking; without one they may not.
          if (whole.refusal === null && !whole.out.equals(parts.out)) {
            return false;
          }
        }
      }
      return true;
    }),
    opts,
  );
  t.pass(`${runs} generated streams, each chunked at random`);
});

t.test('RPC stream without a policy: replies pass byte for byte', async (t) => {
  fc.assert(
    fc.property(rpcStream, fc.array(fc.nat(), { maxLength: 12 }), (s, cuts) => {
      const r = feed(() => new RpcStream({ readOnly: false, identity: null, exports: null }), 'backend', chunked(s, cuts));
      return r.refusal !== null || r.out.equals(s);
    }),
    opts,
  );
  t.pass('backend bytes are never changed without a map');
});

t.test('framers and the SMB stream: same frames and same verdict at any chunking', async (t) => {
  const smbFrames = fc.array(bytes, { maxLength: 6 }).map((frames) =>
    Buffer.concat(
      frames.flatMap((f) => {
        const p = Buffer.alloc(4);
        p.writeUInt32BE(f.length, 0);
        return [p, f];
      }),
    ),
  );
  fc.assert(
    fc.property(smbFrames, fc.array(fc.nat(), { maxLength: 12 }), (s, cuts) => {
      const heads = (chunks: Buffer[]): string => {
        const fr = new Framer(smbFramerSpec());
        const seen: string[] = [];
        for (const c of chunks) {
          const e = fr.push(c, (h) => {
            seen.push(`${h.length}:${h.head.toString('hex')}`);
            return null;
          });
          if (e !== null) {
            return `error ${e.code}`;
          }
        }
        return seen.join(',');
      };
      if (heads([s]) !== heads(chunked(s, cuts))) {
        return false;
      }
      const policy = { minDialect: 0x0300, encryptionRequired: true, shares: new Set(['acme']) };
      for (const side of ['guest', 'backend'] as const) {
        const a = feed(() => new SmbStream(policy), side, [s]);
        const b = feed(() => new SmbStream(policy), side, chunked(s, cuts));
        if (a.refusal !== b.refusal || (a.refusal === null && !a.out.equals(b.out))) {
          return false;
        }
        if (a.refusal === null && !a.out.equals(s)) {
          return false; // SMB is never rewritten
        }
      }
      return true;
    }),
    opts,
  );
  t.pass('frames, verdicts and bytes agree');
});

t.test('id map: a bijection on the window; anything outside shows as nobody', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 65000 }), fc.integer({ min: 0, max: ID_WINDOW - 1 }), fc.nat(), (k, id, other) => {
      const m = { offset: k * ID_WINDOW, anonUid: 65534, anonGid: 65533 };
      const back = toBackend(m, id);
      const inWindow = other >= m.offset && other < m.offset + ID_WINDOW;
      return toGuest(m, back, 'uid') === id && back >= m.offset && (inWindow || (toGuest(m, other, 'uid') === 65534 && toGuest(m, other, 'gid') === 65533));
    }),
    opts,
  );
  t.pass('round trip and anonymous ids');
});

t.test('NFSv4 paths: only the granted exports and the directories above them are reachable', async (t) => {
  const name = fc.constantFrom('export', 'acme', 'beta', 'x', '..', 'a/b');
  fc.assert(
    fc.property(fc.array(name, { maxLength: 6 }), (names) => {
      const w = { tag: Buffer.alloc(4), minorVersion: 0, ops: [24, ...names.map(() => 15)], names: [null, ...names], setsOwner: false, countAt: 0, firstOpEnd: null, mutating: null, incomplete: false };
      const out = leavesExports(w, ['/export/acme']);
      // Reference model: the first prefix of the walk that is neither above
      // nor inside /export/acme, compared component by component.
      const e = ['export', 'acme'];
      const visible = (p: string[]): boolean => p.every((x, i) => i >= e.length || x === e[i]);
      const firstOut = names.findIndex((_, i) => !visible(names.slice(0, i + 1)));
      return out === (firstOut === -1 ? null : `/${names.slice(0, firstOut + 1).join('/')}`);
    }),
    opts,
  );
  t.pass('LOOKUP walks');
});
