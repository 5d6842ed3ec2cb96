/**
 * ONC RPC record marking for tests over the captures: split a direction's
 * bytes into records, frame a record, and run a captured connection through
 * a stream transform call by call, chunked as the test asks.
 */
import type { Relay, StreamTransform } from '../../src/protocols/relay';
import { LAST_FRAGMENT } from '../../src/protocols/rpc';
import type { TcpStream } from './pcap';

/** Whole records of one direction (each a single fragment in the captures). */
export function records(stream: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off + 4 <= stream.length; ) {
    const len = stream.readUInt32BE(off) & 0x7fffffff;
    out.push(stream.subarray(off + 4, off + 4 + len));
    off += 4 + len;
  }
  return out;
}

/** One record as a single last fragment. */
export function frame(body: Buffer): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE((LAST_FRAGMENT | body.length) >>> 0, 0);
  return Buffer.concat([p, body]);
}

/**
 * Runs a connection through a stream, call i then reply i as on the wire,
 * each chunked by `split`; returns what each side received, what the
 * gateway answered, and the first refusal.
 */
export function relay(st: StreamTransform, s: TcpStream, split: (b: Buffer) => Buffer[]): { backend: Buffer; guest: Buffer; answered: string[]; refusal: Relay['refusal'] } {
  const backend: Buffer[] = [];
  const guest: Buffer[] = [];
  const answered: string[] = [];
  let refusal: Relay['refusal'];
  const take = (r: Relay): void => {
    backend.push(...r.toBackend);
    guest.push(...r.toGuest);
    answered.push(...(r.answered ?? []).map((a) => a.reason));
    refusal ??= r.refusal;
  };
  const ups = records(Buffer.concat(s.up));
  const downs = records(Buffer.concat(s.down));
  ups.forEach((u, i) => {
    for (const c of split(frame(u))) {
      take(st.fromGuest(c));
    }
    const d = downs[i];
    if (d !== undefined) {
      for (const c of split(frame(d))) {
        take(st.fromBackend(c));
      }
    }
  });
  return { backend: Buffer.concat(backend), guest: Buffer.concat(guest), answered, refusal };
}
