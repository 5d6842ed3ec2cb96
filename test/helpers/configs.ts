import { validateConfig } from '../../src/config/validate';
import type { SgwConfig } from '../../src/model/config';

/** The lab's two domains as YAML, parameterised by data plane. */
export function labYaml(dataplane: 'kernel' | 'proxy'): { daemon: string; domains: Record<string, string> } {
  return {
    daemon: `node: hv-test\ndataplane: ${dataplane}\ndomainsDir: domains.d\nstateDir: /tmp/sgw-state\nadminSocket: /tmp/sgw.sock\n`,
    domains: {
      'acme.yaml': `name: acme
project: 9f2c1d6e5b4a43c7a8e1f0d2c3b4a596
sourceIp: 198.18.0.11
guests:
  - instance: g1
    tunnel: { interface: sgwt-g1, guestIp: 169.254.1.2, gatewayIp: 169.254.1.1 }
    addresses: [198.19.0.5]
shares:
  - id: acme-nfs
    proto: NFS
    nfsv3: true
    exportLocations: ["198.18.0.100:/export/acme"]
    accessRules: [{ accessType: ip, accessTo: 198.19.0.0/24, accessLevel: rw }]
  - id: acme-smb
    proto: CIFS
    exportLocations: ['\\\\198.18.0.100\\acme']
    accessRules: [{ accessType: ip, accessTo: 198.19.0.5, accessLevel: rw }]
  - id: acme-private
    proto: NFS
    exportLocations: ["198.18.0.102:/export/acme-private"]
    accessRules: [{ accessType: ip, accessTo: 198.19.0.99, accessLevel: rw }]
`,
      'beta.yaml': `name: beta
project: 0a1b2c3d4e5f46a7b8c9d0e1f2a3b4c5
sourceIp: 198.18.0.12
guests:
  - instance: g2
    tunnel: { interface: sgwt-g2, guestIp: 169.254.2.2, gatewayIp: 169.254.2.1 }
    addresses: [198.19.1.5]
shares:
  - id: beta-nfs
    proto: NFS
    exportLocations: ["198.18.0.101:/export/beta"]
    accessRules: [{ accessType: ip, accessTo: 198.19.1.0/24, accessLevel: rw }]
`,
    },
  };
}

/** Validates YAML texts into a config, failing loudly on problems. */
export function configFrom(daemon: string, domains: Record<string, string>): SgwConfig {
  const r = validateConfig(
    { file: '/etc/sharegw/sharegwd.yaml', text: daemon },
    Object.entries(domains).map(([name, text]) => ({ file: `/etc/sharegw/domains.d/${name}`, text })),
    '/etc/sharegw/domains.d',
  );
  if (r.config === null) {
    throw new Error(`test config invalid: ${JSON.stringify(r.problems)}`);
  }
  return r.config;
}
