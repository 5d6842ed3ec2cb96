import type { CatalogueEntry } from './catalogue';

/** Areas in the order docs/errors.md lists them, with their headings. */
const AREAS: readonly { prefix: string; title: string }[] = [
  { prefix: 'SGW_ERR_CONFIG_', title: 'Configuration' },
  { prefix: 'SGW_WARN_CONFIG_', title: 'Configuration warnings' },
  { prefix: 'SGW_ERR_DAEMON_', title: 'Daemon lock' },
  { prefix: 'SGW_ERR_NOTIFY_', title: 'systemd notification' },
  { prefix: 'SGW_ERR_STATE_', title: 'Last-known-good state' },
  { prefix: 'SGW_ERR_KERNEL_', title: 'Kernel data plane' },
  { prefix: 'SGW_ERR_CONNTRACK_', title: 'Connection tracking' },
  { prefix: 'SGW_WARN_EGRESS_', title: 'Egress warnings' },
  { prefix: 'SGW_ERR_HOSTNET_', title: 'Host networking' },
  { prefix: 'SGW_ERR_TUNNEL_', title: 'Tunnels' },
  { prefix: 'SGW_ERR_PROTO_', title: 'Wire protocols (proxy plane)' },
  { prefix: 'SGW_ERR_PROXY_', title: 'Proxy plane' },
  { prefix: 'SGW_ERR_NATIVE_', title: 'Native shims' },
  { prefix: 'SGW_ERR_MANILA_', title: 'Manila and Keystone' },
  { prefix: 'SGW_ERR_ADMIN_', title: 'Admin socket and CLI' },
];

/** Keeps a table cell on one line and its pipes literal. */
function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/**
 * Renders docs/errors.md from the catalogue: one table per area, codes
 * sorted. Pure, so the unit test can compare it with the file on disk;
 * scripts/gen-errors-doc.mjs writes it.
 */
export function renderErrorsDoc(catalogue: Readonly<Record<string, CatalogueEntry>>): string {
  const codes = Object.keys(catalogue).sort();
  const out: string[] = [
    '# Error and warning codes',
    '',
    '<!-- Generated from src/errors/catalogue.ts by `npm run docs:errors`; do not edit by hand. -->',
    '',
    'Every code sharegw logs, counts or returns is listed here. Codes are stable API:',
    'metric labels (`code=`), log fields (`code`), `sharegw` answers and tests use the',
    'code, never the message text. `SGW_ERR_*` codes are errors, `SGW_WARN_*` codes are',
    'warnings (the configuration is accepted). Codes outside this list in a `code` label',
    'are errno names from the operating system (`ECONNREFUSED`, `ETIMEDOUT`, ...).',
    '',
  ];
  const placed = new Set<string>();
  const section = (title: string, members: readonly string[]): void => {
    if (members.length === 0) {
      return;
    }
    out.push(`## ${title}`, '', '| Code | Carried by | Meaning | What to do |', '| --- | --- | --- | --- |');
    for (const code of members) {
      const e = catalogue[code];
      if (e === undefined) {
        continue;
      }
      placed.add(code);
      out.push(`| \`${code}\` | ${e.surfaces.map(cell).join(', ')} | ${cell(e.meaning)} | ${cell(e.action)} |`);
    }
    out.push('');
  };
  for (const a of AREAS) {
    section(a.title, codes.filter((c) => c.startsWith(a.prefix)));
  }
  // A code of an area not in AREAS still gets documented.
  section('Other', codes.filter((c) => !placed.has(c)));
  return out.join('\n');
}
