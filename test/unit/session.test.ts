/**
 * A protocol-aware session relays through its transform with pipe()'s
 * backpressure, over real sockets on 127.0.0.1. The gateway's own answers go
 * to the guest from the guest's direction: when the guest is slow to read
 * them, reading from the guest pauses until the *guest's* buffer drains
 * (waiting for the backend's drain instead would stall the session).
 */
import * as net from 'node:net';
import t from 'tap';
import { sessionRig } from '../helpers/session-rig';
import type { Relay, StreamTransform } from '../../src/protocols/relay';

t.test('answers to a slow guest pause the guest side until the guest drains, then everything flows', async (t) => {
  const ANSWER = Buffer.alloc(256 * 1024, 1);
  // Every guest chunk goes on to the backend and draws a 256 KiB answer to the guest.
  const transform: StreamTransform = {
    proto: 'nfs',
    fromGuest: (c: Buffer): Relay => ({ toBackend: [c], toGuest: [ANSWER] }),
    fromBackend: (c: Buffer): Relay => ({ toBackend: [], toGuest: [c] }),
  };
  let backendGot = 0;
  const backend = net.createServer((s) => {
    s.on('data', (d: Buffer) => (backendGot += d.length));
    s.on('error', () => undefined); // the session resets its legs when it closes
  });
  const { guest } = await sessionRig(t, backend, { transform });
  guest.pause(); // a guest that does not read its answers yet
  const SENT = 200 * 64 * 1024;
  const chunk = Buffer.alloc(64 * 1024, 2);
  for (let i = 0; i < 200; i++) {
    guest.write(chunk);
  }
  await new Promise((r) => setTimeout(r, 500));
  t.ok(backendGot < SENT, `with the guest not reading, the gateway stops reading it (${backendGot} of ${SENT} bytes through)`);
  let answers = 0;
  guest.on('data', (d: Buffer) => (answers += d.length));
  guest.resume();
  const deadline = Date.now() + 10_000;
  while (backendGot < SENT && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  t.equal(backendGot, SENT, 'once the guest reads, every byte reaches the backend');
  t.ok(answers > 0, 'and the answers reach the guest');
  guest.destroy();
});
