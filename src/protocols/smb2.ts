/**
 * SMB 2/3 over direct TCP (MS-SMB2 2.1, 2.2): the transport framing, the
 * protocol magic of each message, the SMB2 sync/async header, and the few
 * bodies the gateway's policy reads: NEGOTIATE request and response,
 * SESSION_SETUP's outcome and TREE_CONNECT's share path. Pure decoders over
 * a frame's head; they return a ProtocolError, never throw.
 */
import { ProtocolError } from '../errors';
import type { FramerSpec } from './framer';

/** Direct TCP: a zero byte, then a 24-bit big-endian length (MS-SMB2 2.1). */
export const SMB_MAX_FRAME = 0xffffff;

/**
 * Bytes of each message the policy sees: enough for the header, a
 * TREE_CONNECT path, and the headers of compounded requests (NextCommand
 * chains) behind a CREATE with a long name and contexts. Larger messages
 * (reads, writes) are inspected by their head only; the rest is not copied.
 */
export const SMB_HEAD_MAX = 8192;

export function smbFramerSpec(maxFrame = SMB_MAX_FRAME): FramerSpec {
  return {
    prefixBytes: 4,
    maxFrame,
    headMax: SMB_HEAD_MAX,
    lengthOf(p) {
      if (p[0] !== 0) {
        return new ProtocolError('SGW_ERR_PROTO_FRAMING', `direct-TCP header byte 0 is 0x${(p[0] ?? 0).toString(16)}, not 0`);
      }
      return p.readUIntBE(1, 3);
    },
  };
}

export type SmbKind = 'smb1' | 'smb2' | 'transform' | 'compressed';

const MAGIC: Record<number, SmbKind> = {
  0xff534d42: 'smb1',
  0xfe534d42: 'smb2',
  0xfd534d42: 'transform',
  0xfc534d42: 'compressed',
};

/** The kind of message by its 4-byte protocol id. */
export function kindOf(head: Buffer): SmbKind | ProtocolError {
  if (head.length < 4) {
    return new ProtocolError('SGW_ERR_PROTO_MALFORMED', `message of ${head.length} bytes has no protocol id`);
  }
  return MAGIC[head.readUInt32BE(0)] ?? new ProtocolError('SGW_ERR_PROTO_UNEXPECTED', `protocol id 0x${head.readUInt32BE(0).toString(16)} is not SMB`);
}

export const Command = {
  NEGOTIATE: 0x0000,
  SESSION_SETUP: 0x0001,
  LOGOFF: 0x0002,
  TREE_CONNECT: 0x0003,
  TREE_DISCONNECT: 0x0004,
  CREATE: 0x0005,
  CLOSE: 0x0006,
  FLUSH: 0x0007,
  READ: 0x0008,
  WRITE: 0x0009,
  LOCK: 0x000a,
  IOCTL: 0x000b,
  CANCEL: 0x000c,
  ECHO: 0x000d,
  QUERY_DIRECTORY: 0x000e,
  CHANGE_NOTIFY: 0x000f,
  QUERY_INFO: 0x0010,
  SET_INFO: 0x0011,
  OPLOCK_BREAK: 0x0012,
} as const;

/** Commands 0x0000..0x0012 exist (MS-SMB2 2.2.1.2); anything above is not SMB2. */
export const COMMAND_MAX = 0x0012;

/** Size of the SMB2 header (MS-SMB2 2.2.1). */
export const SMB2_HEADER = 64;

export const FLAG_RESPONSE = 0x00000001;
export const STATUS_SUCCESS = 0;
export const STATUS_MORE_PROCESSING_REQUIRED = 0xc0000016;

export interface Smb2Header {
  command: number;
  status: number;
  flags: number;
  response: boolean;
  nextCommand: number;
  messageId: bigint;
  sessionId: bigint;
}

/** The 64-byte SMB2 header (MS-SMB2 2.2.1), sync or async. */
export function decodeHeader(head: Buffer): Smb2Header | ProtocolError {
  if (head.length < 64) {
    return new ProtocolError('SGW_ERR_PROTO_MALFORMED', `SMB2 message of ${head.length} bytes is shorter than its header`);
  }
  if (head.readUInt16LE(4) !== 64) {
    return new ProtocolError('SGW_ERR_PROTO_MALFORMED', `SMB2 header StructureSize ${head.readUInt16LE(4)}, not 64`);
  }
  const flags = head.readUInt32LE(16);
  return {
    command: head.readUInt16LE(12),
    status: head.readUInt32LE(8),
    flags,
    response: (flags & FLAG_RESPONSE) !== 0,
    nextCommand: head.readUInt32LE(20),
    messageId: head.readBigUInt64LE(24),
    sessionId: head.readBigUInt64LE(40),
  };
}

/**
 * The offsets of the headers of a compounded message (MS-SMB2 3.2.4.1.4:
 * each NextCommand is relative to its own header, 8-byte aligned), as far
 * as `head` reaches; `truncated` when the chain continues past it.
 */
export function compoundOffsets(head: Buffer): { offsets: number[]; truncated: boolean } | ProtocolError {
  const offsets: number[] = [];
  let off = 0;
  for (;;) {
    offsets.push(off);
    if (off + 64 > head.length) {
      return { offsets: offsets.slice(0, -1), truncated: true };
    }
    const next = head.readUInt32LE(off + 20);
    if (next === 0) {
      return { offsets, truncated: false };
    }
    if (next < 64 || next % 8 !== 0 || offsets.length > 512) {
      return new ProtocolError('SGW_ERR_PROTO_MALFORMED', `NextCommand ${next} is not a valid offset`);
    }
    off += next;
  }
}

/** Dialect revisions by name (MS-SMB2 2.2.3); 0x02FF is the SMB1-upgrade wildcard. */
export const DIALECTS: Readonly<Record<string, number>> = { '2.0.2': 0x0202, '2.1': 0x0210, '3.0': 0x0300, '3.0.2': 0x0302, '3.1.1': 0x0311 };

export function dialectName(d: number): string {
  return Object.entries(DIALECTS).find(([, v]) => v === d)?.[0] ?? `0x${d.toString(16).padStart(4, '0')}`;
}

/** The dialects a NEGOTIATE request offers (MS-SMB2 2.2.3). */
export function negotiateRequestDialects(head: Buffer): number[] | ProtocolError {
  const b = 64;
  if (head.length < b + 36) {
    return new ProtocolError('SGW_ERR_PROTO_MALFORMED', 'NEGOTIATE request body too short');
  }
  if (head.readUInt16LE(b) !== 36) {
    return new ProtocolError('SGW_ERR_PROTO_MALFORMED', `NEGOTIATE request StructureSize ${head.readUInt16LE(b)}, not 36`);
  }
  const count = head.readUInt16LE(b + 2);
  if (count === 0) {
    return new ProtocolError('SGW_ERR_PROTO_MALFORMED', 'NEGOTIATE request offers no dialect');
  }
  if (head.length < b + 36 + 2 * count) {
    return new ProtocolError('SGW_ERR_PROTO_MALFORMED', `NEGOTIATE request lists ${count} dialects past its end`);
  }
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    out.push(head.readUInt16LE(b + 36 + 2 * i));
  }
  return out;
}

/** The dialect a NEGOTIATE response selected (MS-SMB2 2.2.4). */
export function negotiateResponseDialect(head: Buffer): number | ProtocolError {
  const b = 64;
  if (head.length < b + 6) {
    return new ProtocolError('SGW_ERR_PROTO_MALFORMED', 'NEGOTIATE response body too short');
  }
  if (head.readUInt16LE(b) !== 65) {
    return new ProtocolError('SGW_ERR_PROTO_MALFORMED', `NEGOTIATE response StructureSize ${head.readUInt16LE(b)}, not 65`);
  }
  return head.readUInt16LE(b + 4);
}

/**
 * The share name of a TREE_CONNECT request's path `\\server\share`
 * (MS-SMB2 2.2.9), lower-cased. PathOffset counts from the header's start.
 */
export function treeConnectShare(head: Buffer): string | ProtocolError {
  const p = treeConnectPath(head);
  return p instanceof ProtocolError ? p : p.share;
}

/** Where a TREE_CONNECT names its share: the name, and its UTF-16LE bytes in the message. */
export interface TreeConnectPath {
  /** Lower-cased share name. */
  share: string;
  /** Byte offset of the share name from the header's start. */
  offset: number;
  /** Its length in bytes (UTF-16LE). */
  length: number;
}

/**
 * The share name of a TREE_CONNECT and where its bytes are, so that a
 * refused tree connect can be neutered in place (see smb-stream.ts).
 */
export function treeConnectPath(head: Buffer): TreeConnectPath | ProtocolError {
  const b = 64;
  if (head.length < b + 8) {
    return new ProtocolError('SGW_ERR_PROTO_MALFORMED', 'TREE_CONNECT request body too short');
  }
  if (head.readUInt16LE(b) !== 9) {
    return new ProtocolError('SGW_ERR_PROTO_MALFORMED', `TREE_CONNECT StructureSize ${head.readUInt16LE(b)}, not 9`);
  }
  const off = head.readUInt16LE(b + 4);
  const len = head.readUInt16LE(b + 6);
  if (len % 2 !== 0 || off < b + 8 || off + len > head.length) {
    return new ProtocolError('SGW_ERR_PROTO_MALFORMED', `TREE_CONNECT path (offset ${off}, ${len} bytes) outside the message`);
  }
  const path = head.toString('utf16le', off, off + len);
  const m = /^\\\\[^\\]+\\([^\\]+)$/.exec(path);
  if (m === null) {
    return new ProtocolError('SGW_ERR_PROTO_MALFORMED', 'TREE_CONNECT path is not \\\\server\\share');
  }
  const name = m[1] ?? '';
  // UTF-16 code units are 2 bytes each: the name ends the path.
  return { share: name.toLowerCase(), offset: off + len - 2 * name.length, length: 2 * name.length };
}
