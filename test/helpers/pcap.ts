/**
 * Real captures as byte streams: reads a pcap (pcap-parser), decodes
 * Ethernet/IPv4/TCP, and returns each direction of each TCP connection as
 * the segments' payloads in sequence order (retransmissions dropped). The
 * codecs' tests and fuzzers feed these to framers exactly as sockets would.
 */
import * as path from 'node:path';
import * as pcap from 'pcap-parser';
import type { Packet } from 'pcap-parser';

export const PCAPS = path.resolve(__dirname, '../../../test/fixtures/pcaps');

export interface TcpStream {
  /** `client:port>server:port`; the client is the side that sent the SYN. */
  key: string;
  serverPort: number;
  /** Payloads client->server and server->client, as captured segments. */
  up: Buffer[];
  down: Buffer[];
}

export function readPcap(file: string): Promise<Packet[]> {
  return new Promise((resolve, reject) => {
    const out: Packet[] = [];
    const p = pcap.parse(path.isAbsolute(file) ? file : path.join(PCAPS, file));
    p.on('packet', (pkt: Packet) => out.push(pkt));
    p.on('end', () => resolve(out));
    p.on('error', reject);
  });
}

export async function tcpStreams(file: string): Promise<TcpStream[]> {
  const flows = new Map<string, { s: TcpStream; client: string; seen: Set<string> }>();
  for (const pkt of await readPcap(file)) {
    const d = pkt.data;
    if (d.length < 14 + 20 || d.readUInt16BE(12) !== 0x0800) {
      continue;
    }
    const ip = 14;
    const ihl = (d[ip] ?? 0) & 0x0f;
    if (d[ip + 9] !== 6) {
      continue;
    }
    const total = d.readUInt16BE(ip + 2);
    const src = `${d[ip + 12]}.${d[ip + 13]}.${d[ip + 14]}.${d[ip + 15]}`;
    const dst = `${d[ip + 16]}.${d[ip + 17]}.${d[ip + 18]}.${d[ip + 19]}`;
    const tcp = ip + ihl * 4;
    const sport = d.readUInt16BE(tcp);
    const dport = d.readUInt16BE(tcp + 2);
    const seq = d.readUInt32BE(tcp + 4);
    const flags = d[tcp + 13] ?? 0;
    const dataOff = ((d[tcp + 12] ?? 0) >> 4) * 4;
    const payload = d.subarray(tcp + dataOff, ip + total);
    const a = `${src}:${sport}`;
    const b = `${dst}:${dport}`;
    const key = [a, b].sort().join('|');
    let f = flows.get(key);
    if (f === undefined) {
      // SYN without ACK: the sender is the client. A capture that starts
      // mid-connection: a well-known share port is the server's, else the lower port.
      const known = new Set([111, 445, 2049, 20048]);
      const client = (flags & 0x12) === 0x02 ? a : known.has(dport) ? a : known.has(sport) ? b : sport > dport ? a : b;
      const server = client === a ? b : a;
      f = { s: { key: `${client}>${server}`, serverPort: Number(server.split(':')[1]), up: [], down: [] }, client, seen: new Set() };
      flows.set(key, f);
    }
    if (payload.length === 0) {
      continue;
    }
    const id = `${a} ${seq} ${payload.length}`;
    if (f.seen.has(id)) {
      continue; // retransmission
    }
    f.seen.add(id);
    (a === f.client ? f.s.up : f.s.down).push(Buffer.from(payload));
  }
  return [...flows.values()].map((f) => f.s);
}
