import * as path from 'node:path';
import type { ConfigProblem } from '../../errors';
import { ID_WINDOW } from '../../protocols/nfs-ids';
import type { Checked } from './domain-file';

/** `file:line` of an earlier claim, for the message about the one that collides with it. */
function whereIs(prev: { c: Checked; path: (string | number)[] }): string {
  const line = prev.c.src.problem(prev.path, '', '').line;
  return `${path.basename(prev.c.src.file)}${line === undefined ? '' : `:${line}`}`;
}

/** Host-wide uniqueness: names, source IPs, tunnels, guest IPs, instances, share ids. */
export function crossDomainChecks(checked: readonly Checked[], out: ConfigProblem[]): void {
  const claims = new Map<string, { c: Checked; path: (string | number)[] }>();
  // Source IPs of domains with their own egress, with their links.
  const sources = new Map<string, { c: Checked; path: (string | number)[]; iface: string }[]>();
  const claim = (kind: string, value: string, c: Checked, p: (string | number)[], what: string): void => {
    const k = `${kind}\u0000${value}`;
    const prev = claims.get(k);
    if (prev === undefined) {
      claims.set(k, { c, path: p });
      return;
    }
    if (prev.c === c && (kind === 'instance' || kind === 'share')) {
      return; // a repeat within one file is already reported by dupes()
    }
    out.push(c.src.problem(p, 'SGW_ERR_CONFIG_DUPLICATE', `${what} "${value}" is already claimed by domain "${prev.c.domain.name}" (${whereIs(prev)})`));
  };
  for (const c of checked) {
    const d = c.domain;
    claim('name', d.name, c, ['name'], 'domain name');
    if (d.egress === null) {
      claim('addr', d.sourceIp.text, c, ['sourceIp'], 'source IP');
    } else {
      // Overlapping tenant address spaces (ADR 0011): domains on separate
      // egress links may have the same source IP, as two tenant networks
      // may give the gateway the same address. On one link, or against a
      // guest IP or a host-routed domain's source IP, it is still a clash.
      const ip = d.sourceIp.text;
      const list = sources.get(ip) ?? [];
      const sameLink = list.find((x) => x.iface === d.egress?.iface);
      if (sameLink !== undefined) {
        out.push(c.src.problem(['sourceIp'], 'SGW_ERR_CONFIG_DUPLICATE', `source IP "${ip}" is already used on egress ${sameLink.iface} by domain "${sameLink.c.domain.name}" (${whereIs(sameLink)})`));
      } else if (list.length === 0) {
        claim('addr', ip, c, ['sourceIp'], 'source IP');
      }
      list.push({ c, path: ['sourceIp'], iface: d.egress.iface });
      sources.set(ip, list);
    }
    d.guests.forEach((g, n) => {
      const i = c.guestIndex[n] ?? 0;
      claim('instance', g.instance, c, ['guests', i, 'instance'], 'instance');
      claim('iface', g.tunnel.iface, c, ['guests', i, 'tunnel', 'interface'], 'tunnel interface');
      // Guest and source addresses share one namespace: a tunnel address
      // must never double as another guest's or a domain's source address.
      claim('addr', g.tunnel.guestIp.text, c, ['guests', i, 'tunnel', 'guestIp'], 'guest IP');
    });
    d.shares.forEach((s, n) => {
      claim('share', s.id, c, ['shares', c.shareIndex[n] ?? 0, 'id'], 'share id');
    });
  }
  // Two domains on different share networks that use one backend address
  // mean two servers in two tenant networks (Manila puts a share server on
  // each share network): the host's routing reaches only one of them, so at
  // least one domain needs its own egress (issue 6). Domains without a
  // share network, or on the same one, may share a server through the host
  // routing as before (DHSS=False share servers serve every tenant; ADR 0011).
  const backends = new Map<string, { c: Checked; path: (string | number)[] }>();
  for (const c of checked) {
    const seen = new Set<string>();
    c.domain.shares.forEach((s, n) => {
      s.exportLocations.forEach((l, ei) => {
        const a = l.host.text;
        if (seen.has(a)) {
          return;
        }
        seen.add(a);
        const p = ['shares', c.shareIndex[n] ?? 0, 'exportLocations', ei];
        const prev = backends.get(a);
        if (prev === undefined) {
          backends.set(a, { c, path: p });
          return;
        }
        const n1 = prev.c.domain.shareNetwork;
        const n2 = c.domain.shareNetwork;
        const twoNetworks = n1 !== undefined && n2 !== undefined && n1 !== n2;
        if (twoNetworks && prev.c.domain.egress === null && c.domain.egress === null) {
          out.push(
            c.src.problem(p, 'SGW_ERR_CONFIG_SHARED_BACKEND', `backend address ${a} is also used by domain "${prev.c.domain.name}" (${whereIs(prev)}); ${path.basename(c.src.file)} and ${path.basename(prev.c.src.file)} are on different share networks and may share it only if at least one of them has its own egress`),
          );
        }
      });
    });
  }
  // Offset maps: each domain owns backend ids [idOffset, idOffset + 65536).
  // Two windows that overlap would give two domains one backend owner.
  const windows = checked.filter((c) => c.domain.nfs?.idOffset != null).sort((a, b) => (a.domain.nfs?.idOffset ?? 0) - (b.domain.nfs?.idOffset ?? 0));
  for (let i = 1; i < windows.length; i++) {
    const prev = windows[i - 1] as Checked;
    const c = windows[i] as Checked;
    const a = prev.domain.nfs?.idOffset ?? 0;
    const b = c.domain.nfs?.idOffset ?? 0;
    if (b < a + ID_WINDOW) {
      const where = path.basename(prev.src.file);
      out.push(c.src.problem(['nfs', 'idOffset'], 'SGW_ERR_CONFIG_DUPLICATE', `idOffset ${b} overlaps domain "${prev.domain.name}" (${where}, idOffset ${a}): backend ids ${b}-${a + ID_WINDOW - 1} would belong to both; offsets must be at least ${ID_WINDOW} apart`));
    }
  }
}
