import { Address4, Address6 } from 'ip-address';

/** An IP family as the kernel names it. */
export type Family = 4 | 6;

/** A parsed single address in canonical text form. */
export interface Ip {
  family: Family;
  /** Canonical text (IPv4 dotted quad, IPv6 RFC 5952 compressed). */
  text: string;
  value: bigint;
}

/** A parsed network prefix. */
export interface Cidr {
  family: Family;
  /** Canonical network address (host bits cleared). */
  network: string;
  prefix: number;
  /** True when the input had host bits set (e.g. 198.19.0.5/24). */
  hostBitsSet: boolean;
  value: bigint;
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };

/** Parses a single IPv4 or IPv6 address (no prefix); null when invalid. */
export function parseIp(text: string): Ip | null {
  if (text.includes('/')) {
    return null;
  }
  if (Address4.isValid(text)) {
    const a = new Address4(text);
    // ip-address accepts leading zeros ("010.0.0.1"); inet_pton does not.
    if (a.correctForm() !== text) {
      return null;
    }
    return { family: 4, text: a.correctForm(), value: a.bigInt() };
  }
  if (Address6.isValid(text) && !text.includes('%')) {
    const a = new Address6(text);
    return { family: 6, text: a.correctForm(), value: a.bigInt() };
  }
  return null;
}

/** Parses `addr` or `addr/len`; a bare address is a host prefix. Null when invalid. */
export function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf('/');
  const addrText = slash === -1 ? text : text.slice(0, slash);
  const ip = parseIp(addrText);
  if (ip === null) {
    return null;
  }
  const bits = BITS[ip.family];
  let prefix = bits;
  if (slash !== -1) {
    const lenText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(lenText)) {
      return null;
    }
    prefix = Number(lenText);
    if (prefix > bits) {
      return null;
    }
  }
  const mask = prefixMask(ip.family, prefix);
  const value = ip.value & mask;
  return {
    family: ip.family,
    network: formatIp(ip.family, value),
    prefix,
    hostBitsSet: value !== ip.value,
    value,
  };
}

/** True when `ip` lies inside `cidr` (families must match). */
export function cidrContains(cidr: Cidr, ip: Ip): boolean {
  return cidr.family === ip.family && (ip.value & prefixMask(ip.family, cidr.prefix)) === cidr.value;
}

/** Canonical `network/prefix` text. */
export function formatCidr(c: Cidr): string {
  return `${c.network}/${c.prefix}`;
}

function prefixMask(family: Family, prefix: number): bigint {
  const bits = BITS[family];
  const all = (1n << BigInt(bits)) - 1n;
  return prefix === 0 ? 0n : (all >> BigInt(bits - prefix)) << BigInt(bits - prefix);
}

function formatIp(family: Family, value: bigint): string {
  if (family === 4) {
    return Address4.fromBigInt(value).correctForm();
  }
  return Address6.fromBigInt(value).correctForm();
}

/** A destination as operators write it: an address and a TCP port. */
export interface AddrPort {
  /** Canonical address text (as parseIp gives it). */
  addr: string;
  port: number;
}

/**
 * Parses `ADDR:PORT` (IPv6 as `[ADDR]:PORT`); null when invalid. The port is
 * decimal 1-65535 without leading zeros or sign, so `2049` and `02049` are
 * never two spellings of one destination.
 */
export function parseAddrPort(text: string): AddrPort | null {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):([1-9][0-9]{0,4})$/.exec(text);
  if (m === null) {
    return null;
  }
  const ip = parseIp(m[1] ?? m[2] ?? '');
  const port = Number(m[3]);
  if (ip === null || port > 65535) {
    return null;
  }
  // Brackets are for IPv6 only (an unbracketed IPv6 address never matches:
  // the second alternative has no colon), so each destination has one form.
  if (m[1] !== undefined && ip.family !== 6) {
    return null;
  }
  return { addr: ip.text, port };
}

/** Formats an AddrPort the way parseAddrPort reads it. */
export function formatAddrPort(a: AddrPort): string {
  return a.addr.includes(':') ? `[${a.addr}]:${a.port}` : `${a.addr}:${a.port}`;
}
