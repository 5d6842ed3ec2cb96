/**
 * A protocol-aware session relays through its transform with pipe()'s
 * backpressure, over real sockets on 127.0.0.1. The gateway's own answers go
 * to the guest from the guest's direction: when the guest is slow to read
 * them, reading from the guest pauses until the *guest's* buffer drains
 * (waiting for the backend's drain instead would stall the session).
 */
import * as net from 'node:net';
import t from 'tap';
import { frontRig, sessionRig } from '../helpers/session-rig';
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

t.test('two guests on the same privileged port to one backend: the second session picks another privileged port', { skip: process.getuid?.() === 0 ? false : 'privileged ports need root' }, async (t) => {
  // The session binds the guest's privileged port on the source IP (so
  // `secure` exports accept it); a second guest with the same port finds
  // that 4-tuple taken (EADDRNOTAVAIL, since libuv sets SO_REUSEADDR).
  const ports: number[] = [];
  const backend = net.createServer((c) => {
    ports.push(c.remotePort ?? 0);
    c.on('error', () => undefined);
    c.pipe(c);
  });
  const rig = await frontRig(t, backend);
  const P = 700 + (process.pid % 250);
  const echo = async (from: string): Promise<string> => {
    const g = await rig.guest({ address: from, port: P });
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve('(no answer)'), 5000);
      g.once('data', (d: Buffer) => {
        clearTimeout(timer);
        resolve(d.toString());
      });
      g.once('close', () => {
        clearTimeout(timer);
        resolve('(closed)');
      });
      g.write(`hello from ${from}`);
    });
  };
  t.equal(await echo('127.0.0.2'), 'hello from 127.0.0.2');
  t.equal(await echo('127.0.0.3'), 'hello from 127.0.0.3', 'the second guest is relayed too');
  t.equal(ports[0], P, 'the first keeps its port');
  t.ok(ports[1] !== undefined && ports[1] !== P && ports[1] >= 600 && ports[1] < 1024, `the second got another privileged port (${String(ports[1])})`);
});
