/** Generated configuration of a large host, for the rule-programming bench and the scale tests. */
import { validateConfig } from '../../src/config/validate';

/** 169.254/16 in /30s for tunnels; 198.18/15 for sources, backends and tenants (the lab's ranges). */
const quad = (k: number): string => `${Math.floor(k / 256) % 256}.${k % 256}`;
const host = (k: number): string => `${Math.floor(k / 250)}.${(k % 250) + 1}`;

function domainYaml(d: number, perDomain: number, guests: number, ruleFor: (d: number) => string): string {
  const out: string[] = [];
  for (let i = 0; i < perDomain; i++) {
    const k = d * perDomain + i;
    if (k >= guests) {
      break;
    }
    out.push(
      `  - instance: vm-${d}-${i}\n    tunnel: { interface: sgwt-${k.toString(36)}, guestIp: 169.254.${quad(k * 4 + 2)}, gatewayIp: 169.254.${quad(k * 4 + 1)} }\n    addresses: [198.19.${host(k)}]`,
    );
  }
  const backend = `198.18.${16 + Math.floor(d / 250)}.${(d % 250) + 1}`;
  return `name: d${d}
project: "${d.toString(16).padStart(32, '0')}"
sourceIp: 198.18.${4 + Math.floor(d / 250)}.${(d % 250) + 1}
guests:
${out.join('\n')}
shares:
  - id: nfs-${d}
    proto: NFS
    nfsv3: true
    exportLocations: ["${backend}:/export/d${d}"]
    accessRules: [{ accessType: ip, accessTo: ${ruleFor(d)}, accessLevel: rw }]
  - id: smb-${d}
    proto: CIFS
    exportLocations: ['\\\\${backend}\\d${d}']
    accessRules: [{ accessType: ip, accessTo: 198.19.0.0/16, accessLevel: rw }]
`;
}

/**
 * A host with `domains` domains and `guests` guests spread over them, each
 * domain with an NFS (v3 too) and an SMB share, as validated configuration.
 * `ruleFor(d)` is the NFS share's access rule of domain d.
 */
export function largeHostConfig(domainCount: number, guests: number, ruleFor: (d: number) => string = () => '198.19.0.0/16'): ReturnType<typeof validateConfig> {
  const perDomain = Math.ceil(guests / domainCount);
  const daemon = { file: '/etc/sharegw/sharegwd.yaml', text: 'node: bench\ndataplane: kernel\ndomainsDir: domains.d\nstateDir: /tmp/sgwbench-state\nadminSocket: /tmp/sgwbench.sock\n' };
  const domains = Array.from({ length: domainCount }, (_, d) => ({ file: `/etc/sharegw/domains.d/d${d}.yaml`, text: domainYaml(d, perDomain, guests, ruleFor) }));
  return validateConfig(daemon, domains, '/etc/sharegw/domains.d');
}

