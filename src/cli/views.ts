import type { FlowRow, FlowsResult } from '../admin/commands';
import type { Explanation } from '../policy/explain';
import { safeText } from '../util/safe-text';

/**
 * Human output of `sharegw flows` and `sharegw explain`. Pure. Every cell
 * and line goes through safeText: ids come from tenants, and a terminal
 * must never get their control characters raw (issue 14).
 */

/** Bytes in binary units (`1.5 MiB`); `-` when unknown. */
export function formatBytes(n: number | null): string {
  if (n === null) {
    return '-';
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u] ?? ''}`;
}

/** A duration in seconds as `42s`, `3m07s`, `2h05m`, `3d04h`; `-` when unknown. */
export function formatAge(s: number | undefined): string {
  if (s === undefined) {
    return '-';
  }
  const two = (n: number): string => String(n).padStart(2, '0');
  if (s < 60) {
    return `${s}s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  }
  if (s < 86400) {
    return `${Math.floor(s / 3600)}h${two(Math.floor((s % 3600) / 60))}m`;
  }
  return `${Math.floor(s / 86400)}d${two(Math.floor((s % 86400) / 3600))}h`;
}

/** Left-aligned columns, two spaces apart, no trailing blanks. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)];
}

/** table() over cells made safe first, so widths count what is printed. */
function safeTable(headers: readonly string[], rows: readonly (readonly string[])[]): string[] {
  return table(headers, rows.map((r) => r.map(safeText)));
}

function target(backend: string, port: number): string {
  return backend.includes(':') ? `[${backend}]:${port}` : `${backend}:${port}`;
}

/** The `sharegw flows` table. */
export function formatFlows(r: FlowsResult): string {
  const rows = r.rows.map((f: FlowRow) => [
    f.guest,
    f.plane,
    target(f.backend, f.port),
    f.granted ? (f.service ?? '-') : 'NOT GRANTED',
    String(f.guestPort),
    f.state,
    formatBytes(f.bytesUp),
    formatBytes(f.bytesDown),
    formatAge(f.ageS),
  ]);
  const lines = safeTable(['GUEST', 'PLANE', 'BACKEND', 'SERVICE', 'GUEST PORT', 'STATE', 'UP', 'DOWN', 'AGE'], rows);
  lines.push(r.rows.length === 1 ? '1 flow' : `${r.rows.length} flows`);
  if (r.rows.some((f) => f.bytesUp === null || f.bytesDown === null)) {
    lines.push('kernel byte counts need conntrack accounting (sysctl net.netfilter.nf_conntrack_acct=1)');
  }
  return lines.join('\n');
}

/** The `sharegw explain` report: the reasoning lines, verdict first. */
export function formatExplanation(e: Explanation): string {
  return e.lines.map(safeText).join('\n');
}

/** The `native:` line of `sharegw status`: which implementation each shim uses. */
export function formatNative(n: { loaded: boolean; reason: string | null; shims: Record<string, string> }): string {
  const shims = Object.entries(n.shims)
    .map(([k, v]) => `${safeText(k)}=${safeText(v)}`)
    .join(' ');
  return n.loaded ? `native: ${shims}` : `native: ${shims} (${safeText(n.reason ?? 'addon not loaded')})`;
}
