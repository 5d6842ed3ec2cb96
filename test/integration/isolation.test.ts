/**
 * The isolation matrix, in both data planes, against the real lab: every
 * path a guest is not granted is denied and counted; policy denials of a
 * guest's own traffic are refused at once (RST), spoofed packets vanish
 * silently. Positive controls in the same run prove the paths themselves work.
 */
import t from 'tap';
import { LabDaemon, NS, probe, run } from '../helpers/lab';

const ACME = '198.18.0.100';
const BETA = '198.18.0.101';
const ACME_PRIVATE = '198.18.0.102';
const FAST_MS = 1000;

for (const plane of ['kernel', 'proxy'] as const) {
  t.test(`${plane} plane`, async (t) => {
    const d = new LabDaemon({ plane });
    t.teardown(async () => {
      await run('ip', ['addr', 'del', '169.254.1.2/32', 'dev', 'tun0'], { ns: NS.g2 });
      await d.dispose();
    });
    await d.start();

    t.test('granted paths connect (controls)', async (t) => {
      for (const [ns, host, port] of [
        [NS.g1, ACME, 2049],
        [NS.g1, ACME, 445],
        [NS.g1, ACME, 111],
        [NS.g1, ACME, 20048],
        [NS.g2, BETA, 2049],
      ] as const) {
        const r = await probe(ns, host, port);
        t.equal(r.result, 'connected', `${ns} -> ${host}:${port}`);
      }
    });

    const denied: [string, string, string, string, number][] = [
      ['guest of domain B to domain A\'s backend (NFS)', NS.g2, 'beta/g2', ACME, 2049],
      ['guest of domain B to domain A\'s backend (SMB)', NS.g2, 'beta/g2', ACME, 445],
      ['guest to a share of its domain it has no access rule for', NS.g1, 'acme/g1', ACME_PRIVATE, 2049],
      ['guest to a non-share port of an allowed backend (iperf3 listens there)', NS.g1, 'acme/g1', ACME, 5201],
      ['guest to the NFSv3 ports of a v4-only share', NS.g2, 'beta/g2', BETA, 111],
      ['guest to a backend address no share uses', NS.g1, 'acme/g1', '198.18.0.1', 2049],
    ];
    for (const [what, ns, guest, host, port] of denied) {
      t.test(`denied fast and counted: ${what}`, async (t) => {
        const before = await d.kernelCounters(guest);
        const r = await probe(ns, host, port, { timeoutMs: 3000 });
        t.equal(r.result, 'refused', `${host}:${port} refused (${r.code ?? ''})`);
        t.ok(r.ms < FAST_MS, `refused in ${r.ms} ms (< ${FAST_MS})`);
        const after = await d.kernelCounters(guest);
        t.ok(after.deny > before.deny, `deny counter of ${guest}: ${before.deny} -> ${after.deny}`);
      });
    }

    t.test('guest to the gateway itself (listener ports, other ports) is refused', async (t) => {
      const before = await d.kernelCounters('acme/g1');
      for (const port of [22, 40000, 40001]) {
        const r = await probe(NS.g1, '169.254.1.1', port);
        t.equal(r.result, 'refused', `169.254.1.1:${port}`);
        t.ok(r.ms < FAST_MS, `in ${r.ms} ms`);
      }
      const after = await d.kernelCounters('acme/g1');
      t.ok(after.deny >= before.deny + 3, `counted (${before.deny} -> ${after.deny})`);
    });

    t.test('guest sending from its tunnel with a foreign source is dropped silently', async (t) => {
      const before = await d.kernelCounters('acme/g1');
      // 198.19.0.5 is the guest's own tenant address, but not its tunnel address.
      const r = await probe(NS.g1, ACME, 2049, { local: '198.19.0.5', timeoutMs: 1500 });
      t.equal(r.result, 'timeout', 'no answer at all');
      const after = await d.kernelCounters('acme/g1');
      t.ok(after.antispoof > before.antispoof, `antispoof counter: ${before.antispoof} -> ${after.antispoof}`);
    });

    t.test('guest spoofing another guest\'s tunnel IP is dropped silently', async (t) => {
      const add = await run('ip', ['addr', 'add', '169.254.1.2/32', 'dev', 'tun0'], { ns: NS.g2 });
      t.equal(add.code, 0, add.stderr);
      const before = await d.kernelCounters('beta/g2');
      const victim = await d.kernelCounters('acme/g1');
      // g2 pretends to be g1, towards g1's granted backend and port.
      const r = await probe(NS.g2, ACME, 2049, { local: '169.254.1.2', timeoutMs: 1500 });
      t.equal(r.result, 'timeout', 'no answer at all');
      const after = await d.kernelCounters('beta/g2');
      t.ok(after.antispoof > before.antispoof, `antispoof counter of the spoofer's tunnel: ${before.antispoof} -> ${after.antispoof}`);
      const victimAfter = await d.kernelCounters('acme/g1');
      t.equal(victimAfter.deny, victim.deny, 'nothing was attributed to the guest whose address was forged');
      await run('ip', ['addr', 'del', '169.254.1.2/32', 'dev', 'tun0'], { ns: NS.g2 });
    });

    t.test('status shows both guests adopted with their grants', async (t) => {
       
      const s = await d.status();
       
      const guests = (s.domains as { name: string; guests: { instance: string; tunnelState: string; grants: { backend: string }[] }[] }[]).flatMap((dm) =>
        dm.guests.map((g) => ({ key: `${dm.name}/${g.instance}`, state: g.tunnelState, grants: g.grants.map((x) => x.backend) })),
      );
      t.same(guests, [
        { key: 'acme/g1', state: 'adopted', grants: [`${ACME}:111`, `${ACME}:445`, `${ACME}:2049`, `${ACME}:20048`] },
        { key: 'beta/g2', state: 'adopted', grants: [`${BETA}:2049`] },
      ]);
    });
  });
}
