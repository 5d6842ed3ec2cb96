// pcap-parser ships no types; the part the tests use.
declare module 'pcap-parser' {
  import type { EventEmitter } from 'node:events';
  export interface Packet {
    header: { timestampSeconds: number; timestampMicroseconds: number; capturedLength: number; originalLength: number };
    data: Buffer;
  }
  export function parse(input: string | NodeJS.ReadableStream): EventEmitter;
}
