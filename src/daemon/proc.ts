import * as fs from 'node:fs';

/**
 * net.ipv4.conf.<name>.rp_filter of this network namespace; null when there
 * is no such link. The one /proc read of the daemon (egress host checks).
 */
export function readRpFilter(name: string): number | null {
  try {
    const v = Number(fs.readFileSync(`/proc/sys/net/ipv4/conf/${name}/rp_filter`, 'utf8').trim());
    return Number.isInteger(v) ? v : null;
  } catch {
    return null;
  }
}
