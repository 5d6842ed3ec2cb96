import t from 'tap';
import { explainCommand, flowsCommand, flowsView } from '../../src/admin/commands';
import type { FlowRow } from '../../src/admin/commands';
import { parseConntrackList } from '../../src/dataplane/kernel/conntrack';
import type { KernelFlow } from '../../src/dataplane/kernel/conntrack';
import type { FlowInfo } from '../../src/dataplane/proxy/plane';
import { AdminProtocolError, KernelApplyError } from '../../src/errors';
import { explain } from '../../src/policy/explain';
import { compileDesired } from '../../src/policy/policy';
import { thrown } from '../helpers/errors';
import { configFrom, labYaml } from '../helpers/configs';

const y = labYaml('kernel');
const config = configFrom(y.daemon, y.domains);
const desired = compileDesired(config);

// acme/g1: tunnel IP 169.254.1.2, source 198.18.0.11, shares on .100 (NFSv3, SMB).
// beta/g2: tunnel IP 169.254.2.2, source 198.18.0.12, share on .101 (NFSv4).
const KERNEL = parseConntrackList(
  [
    // acme NFS, accounting on, with a timestamp.
    'tcp 6 431999 ESTABLISHED src=169.254.1.2 dst=198.18.0.100 sport=812 dport=2049 packets=10 bytes=1500 src=198.18.0.100 dst=198.18.0.11 sport=2049 dport=812 packets=20 bytes=900000 [ASSURED] mark=0 delta-time=75 use=1',
    // beta NFS, accounting off.
    'tcp 6 431990 ESTABLISHED src=169.254.2.2 dst=198.18.0.101 sport=700 dport=2049 src=198.18.0.101 dst=198.18.0.12 sport=2049 dport=700 [ASSURED] mark=0 use=1',
    // acme to a port it has no grant for (a revoked flow not yet cut).
    'tcp 6 100 ESTABLISHED src=169.254.1.2 dst=198.18.0.100 sport=40000 dport=22 packets=1 bytes=60 src=198.18.0.100 dst=198.18.0.11 sport=22 dport=40000 packets=1 bytes=60 [ASSURED] mark=0 use=1',
    // acme SMB, half open.
    'tcp 6 118 SYN_SENT src=169.254.1.2 dst=198.18.0.100 sport=40001 dport=445 packets=1 bytes=60 [UNREPLIED] src=198.18.0.100 dst=198.18.0.11 sport=445 dport=40001 packets=0 bytes=0 mark=0 use=1',
    // The guest leg of a proxied flow (DNATed to the listener): the proxy row stands for it.
    'tcp 6 431999 ESTABLISHED src=169.254.1.2 dst=198.18.0.100 sport=41000 dport=2049 src=169.254.1.1 dst=169.254.1.2 sport=40001 dport=41000 [ASSURED] mark=0 use=1',
    // The backend leg of a proxied flow starts at the source IP, not a guest.
    'tcp 6 431999 ESTABLISHED src=198.18.0.11 dst=198.18.0.100 sport=901 dport=2049 src=198.18.0.100 dst=198.18.0.11 sport=2049 dport=901 [ASSURED] mark=0 use=1',
    // Somebody else's traffic.
    'tcp 6 431999 ESTABLISHED src=10.0.0.9 dst=198.18.0.100 sport=5000 dport=2049 src=198.18.0.100 dst=10.0.0.9 sport=2049 dport=5000 [ASSURED] mark=0 use=1',
  ].join('\n'),
);

const PROXY: FlowInfo[] = [
  { guest: 'acme/g1', backend: '198.18.0.100', port: 2049, guestPort: 41000, up: 4096, down: 1048576, ageMs: 61_999 },
  { guest: 'beta/g2', backend: '198.18.0.101', port: 2049, guestPort: 702, up: 1, down: 2, ageMs: 10 },
  // A flow of a guest that is no longer configured, and one not yet attributed.
  { guest: 'gone/g9', backend: '198.18.0.100', port: 2049, guestPort: 1, up: 0, down: 0, ageMs: 0 },
  { guest: '?', backend: '?', port: 0, guestPort: 0, up: 0, down: 0, ageMs: 0 },
];

const ROWS: Record<string, FlowRow> = {
  acmeKernelNfs: {
    guest: 'acme/g1',
    domain: 'acme',
    plane: 'kernel',
    backend: '198.18.0.100',
    port: 2049,
    guestPort: 812,
    service: 'nfs',
    granted: true,
    state: 'ESTABLISHED',
    bytesUp: 1500,
    bytesDown: 900000,
    ageS: 75,
    natSource: '198.18.0.11',
  },
  acmeKernelSsh: {
    guest: 'acme/g1',
    domain: 'acme',
    plane: 'kernel',
    backend: '198.18.0.100',
    port: 22,
    guestPort: 40000,
    service: null,
    granted: false,
    state: 'ESTABLISHED',
    bytesUp: 60,
    bytesDown: 60,
    natSource: '198.18.0.11',
  },
  acmeKernelSmb: {
    guest: 'acme/g1',
    domain: 'acme',
    plane: 'kernel',
    backend: '198.18.0.100',
    port: 445,
    guestPort: 40001,
    service: 'smb',
    granted: true,
    state: 'SYN_SENT',
    bytesUp: 60,
    bytesDown: 0,
    natSource: '198.18.0.11',
  },
  acmeProxy: {
    guest: 'acme/g1',
    domain: 'acme',
    plane: 'proxy',
    backend: '198.18.0.100',
    port: 2049,
    guestPort: 41000,
    service: 'nfs',
    granted: true,
    state: 'ESTABLISHED',
    bytesUp: 4096,
    bytesDown: 1048576,
    ageS: 61,
    natSource: null,
  },
  betaKernel: {
    guest: 'beta/g2',
    domain: 'beta',
    plane: 'kernel',
    backend: '198.18.0.101',
    port: 2049,
    guestPort: 700,
    service: 'nfs',
    granted: true,
    state: 'ESTABLISHED',
    bytesUp: null,
    bytesDown: null,
    natSource: '198.18.0.12',
  },
  betaProxy: {
    guest: 'beta/g2',
    domain: 'beta',
    plane: 'proxy',
    backend: '198.18.0.101',
    port: 2049,
    guestPort: 702,
    service: 'nfs',
    granted: true,
    state: 'ESTABLISHED',
    bytesUp: 1,
    bytesDown: 2,
    ageS: 0,
    natSource: null,
  },
};

function rows(...names: string[]): FlowRow[] {
  return names.map((n) => {
    const r = ROWS[n];
    if (r === undefined) {
      throw new Error(n);
    }
    return r;
  });
}

function adminThrown(fn: () => unknown): { isAdminError: boolean; code: string; message: string } {
  const err = thrown(fn);
  return { isAdminError: err instanceof AdminProtocolError, code: (err as AdminProtocolError).code, message: (err as Error).message };
}

t.test('flowsView() joins both planes with the desired state, sorted', async (t) => {
  t.strictSame(flowsView(desired, PROXY, KERNEL, {}), rows('acmeKernelSsh', 'acmeKernelSmb', 'acmeKernelNfs', 'acmeProxy', 'betaKernel', 'betaProxy'));
});

t.test('flowsView() leaves out DNATed legs, source-IP legs and other hosts', async (t) => {
  const shown = flowsView(desired, [], KERNEL, {});
  t.equal(KERNEL.length, 7, 'all seven fixture lines parse');
  t.strictSame(
    shown.map((r) => r.guestPort),
    [40000, 40001, 812, 700],
  );
});

t.test('flowsView() filters by guest (key, instance, tunnel) and backend', async (t) => {
  for (const ref of ['acme/g1', 'g1', 'sgwt-g1']) {
    t.strictSame(flowsView(desired, PROXY, KERNEL, { guest: ref }), rows('acmeKernelSsh', 'acmeKernelSmb', 'acmeKernelNfs', 'acmeProxy'), ref);
  }
  t.strictSame(flowsView(desired, PROXY, KERNEL, { backend: '198.18.0.101' }), rows('betaKernel', 'betaProxy'));
  t.strictSame(flowsView(desired, PROXY, KERNEL, { guest: 'g2', backend: '198.18.0.101' }), rows('betaKernel', 'betaProxy'));
  t.strictSame(flowsView(desired, PROXY, KERNEL, { guest: 'g2', backend: '198.18.0.100' }), [], 'a guest with no flow to that backend');
  t.strictSame(flowsView(desired, PROXY, KERNEL, { backend: '198.18.0.102' }), []);
});

t.test('flowsView() refuses a guest filter that names no guest', async (t) => {
  t.strictSame(adminThrown(() => flowsView(desired, PROXY, KERNEL, { guest: 'gone/g9' })), {
    isAdminError: true,
    code: 'SGW_ERR_ADMIN_UNKNOWN_GUEST',
    message: 'guest "gone/g9" names no configured guest',
  });
  t.strictSame(adminThrown(() => flowsView(desired, [], [], { guest: 'acme' })).code, 'SGW_ERR_ADMIN_UNKNOWN_GUEST');
});

t.test('flowsView() counts a flow as ungranted when the grant is gone', async (t) => {
  const revoked = { ...desired, guests: desired.guests.map((g) => ({ ...g, grants: [] })) };
  const shown = flowsView(revoked, PROXY, KERNEL, { guest: 'g1' });
  t.strictSame(
    shown.map((r) => [r.plane, r.port, r.granted, r.service]),
    [
      ['kernel', 22, false, null],
      ['kernel', 445, false, null],
      ['kernel', 2049, false, null],
      ['proxy', 2049, false, null],
    ],
  );
});

t.test('flowsCommand() reads the kernel with a filter on the selected guests', async (t) => {
  const asked: KernelFlow[][] = [];
  const lister = async (keep: (f: KernelFlow) => boolean): Promise<KernelFlow[]> => {
    const kept = KERNEL.filter(keep);
    asked.push(kept);
    return kept;
  };
  const all = await flowsCommand({ cmd: 'flows' }, { desired, proxyFlows: PROXY, kernelFlows: lister });
  t.strictSame(all, { rows: rows('acmeKernelSsh', 'acmeKernelSmb', 'acmeKernelNfs', 'acmeProxy', 'betaKernel', 'betaProxy'), kernel: { ok: true } });
  t.strictSame(
    asked[0]?.map((f) => f.orig.src),
    ['169.254.1.2', '169.254.2.2', '169.254.1.2', '169.254.1.2', '169.254.1.2'],
    'only flows from guest tunnel IPs are kept while reading',
  );
  const beta = await flowsCommand({ cmd: 'flows', guest: 'sgwt-g2' }, { desired, proxyFlows: PROXY, kernelFlows: lister });
  t.strictSame(beta.rows, rows('betaKernel', 'betaProxy'));
  t.strictSame(asked[1]?.map((f) => f.orig.sport), [700], 'a guest filter narrows the read');
  const onlyBackend = await flowsCommand({ cmd: 'flows', backend: '198.18.0.100' }, { desired, proxyFlows: [], kernelFlows: lister });
  t.strictSame(onlyBackend.rows, rows('acmeKernelSsh', 'acmeKernelSmb', 'acmeKernelNfs'));
});

t.test('flowsCommand() without a kernel lister (proxy plane) and with a failing one', async (t) => {
  t.strictSame(await flowsCommand({ cmd: 'flows' }, { desired, proxyFlows: PROXY, kernelFlows: null }), {
    rows: rows('acmeProxy', 'betaProxy'),
    kernel: null,
  });
  const failing = async (): Promise<KernelFlow[]> => {
    throw new KernelApplyError('SGW_ERR_CONNTRACK_FAILED', 'conntrack -L exited 1: Operation failed: Permission denied', { exitCode: 1, stderr: '' });
  };
  t.strictSame(await flowsCommand({ cmd: 'flows' }, { desired, proxyFlows: PROXY, kernelFlows: failing }), {
    rows: rows('acmeProxy', 'betaProxy'),
    kernel: { ok: false, error: { code: 'SGW_ERR_CONNTRACK_FAILED', message: 'conntrack -L exited 1: Operation failed: Permission denied' } },
  }, 'proxy rows still come back; the kernel error is reported');
});

t.test('flowsCommand() rejects an unknown guest before reading the kernel', async (t) => {
  let called = 0;
  const lister = async (): Promise<KernelFlow[]> => {
    called++;
    return [];
  };
  await t.rejects(flowsCommand({ cmd: 'flows', guest: 'nobody' }, { desired, proxyFlows: [], kernelFlows: lister }), { code: 'SGW_ERR_ADMIN_UNKNOWN_GUEST' });
  t.equal(called, 0);
});

t.test('explainCommand() is explain() on the request', async (t) => {
  const to = { addr: '198.18.0.100', port: 445 };
  t.strictSame(explainCommand({ cmd: 'explain', guest: 'sgwt-g1', to }, config, desired), explain(config, desired, 'sgwt-g1', to));
  t.equal(explainCommand({ cmd: 'explain', guest: 'sgwt-g1', to }, config, desired).allowed, true);
  t.equal(explainCommand({ cmd: 'explain', guest: 'g2', to }, config, desired).reason, 'no-share-on-backend');
});
