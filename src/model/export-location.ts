import { parseIp } from '../util/ip';
import type { Ip } from '../util/ip';

/** Share protocols the gateway carries. */
export type ShareProto = 'NFS' | 'CIFS';

/** An export location reduced to what the gateway needs. */
export interface ExportLocation {
  /** Exactly as Manila reports it; guests mount this string. */
  raw: string;
  host: Ip;
  /** NFS export path (`/export/acme`) or CIFS share name (`acme`). */
  path: string;
}

/**
 * Parses a Manila export location. NFS: `198.18.0.100:/export/x` or
 * `[2001:db8::1]:/export/x`; CIFS: `\\198.18.0.100\share` or
 * `//198.18.0.100/share`. Host names are refused on purpose: policy is
 * rendered into address rules and must not depend on DNS answers.
 */
export function parseExportLocation(proto: ShareProto, raw: string): ExportLocation | string {
  if (proto === 'NFS') {
    const m = /^(\[[^\]]+\]|[^:[\]]+):(\/.*)$/.exec(raw);
    if (m === null) {
      return 'expected HOST:/path (IPv6 as [addr]:/path)';
    }
    const hostText = (m[1] ?? '').replace(/^\[|\]$/g, '');
    const host = parseIp(hostText);
    if (host === null) {
      return `host "${hostText}" is not an IP address (names are not resolved)`;
    }
    return { raw, host, path: m[2] ?? '/' };
  }
  const m = /^(?:\\\\|\/\/)([^\\/]+)[\\/]([^\\/]+)[\\/]?$/.exec(raw);
  if (m === null) {
    return 'expected \\\\HOST\\share or //HOST/share';
  }
  // Strip brackets only as a pair: `[2001:db8::1` is not a host.
  const hostText = (m[1] ?? '').replace(/^\[(.*)\]$/, '$1');
  const host = parseIp(hostText);
  if (host === null) {
    return `host "${hostText}" is not an IP address (names are not resolved)`;
  }
  return { raw, host, path: m[2] ?? '' };
}
