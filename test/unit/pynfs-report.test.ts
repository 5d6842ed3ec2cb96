/**
 * The pynfs conformance report (test/conformance/pynfs-report.ts) on real
 * pynfs output captured in the lab (test/fixtures/pynfs): the `lookup` flag
 * of the NFSv4.0 suite direct and through the proxy plane, and a run cut by
 * its time box.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { outcomeClass, parsePynfs, pynfsDifferences, pynfsMessageChanges, pynfsReport, pynfsTable } from '../conformance/pynfs-report';
import type { PlaneRun } from '../conformance/pynfs-report';

const FIX = path.resolve(__dirname, '../../../test/fixtures/pynfs');
const read = (f: string): string => fs.readFileSync(path.join(FIX, f), 'utf8');

t.test('parsePynfs() reads every test once with its result and message', async (t) => {
  const o = parsePynfs(read('proxy-lookup-4.0.txt'), '4.0');
  t.equal(Object.keys(o).length, 29, 'the 29 tests of the lookup flag');
  t.same(o['4.0/LOOK3'], {
    name: 'st_lookup.testZeroLength',
    result: 'FAILURE',
    msg: 'LOOKUP with no zero-length component should return NFS4ERR_INVAL, instead got NFS4ERR_ACCESS',
  });
  t.equal(o['4.0/LOOK1']?.result, 'PASS');
  t.equal(o['4.0/LOOK9']?.result, 'OMIT');
  t.notOk(Object.values(o).some((x) => x.result === 'RUNNING' || x.result === 'HUNG'), 'the summary settles every RUNNING line');
});

t.test('parsePynfs() marks a test cut by the time box HUNG and keeps what finished', async (t) => {
  const o = parsePynfs(read('cut-run-4.0.txt'), '4.0');
  t.equal(o['4.0/RPLY8']?.result, 'PASS', 'chatter between RUNNING and the result is not a message');
  t.equal(o['4.0/RPLY8']?.msg, '');
  t.same(o['4.0/ACL0'], { name: 'st_acl.testACLsupport', result: 'UNSUPPORTED', msg: 'FATTR4_ACL not supported' });
  t.equal(o['4.0/RPLY7']?.result, 'HUNG');
  t.equal(o['4.0/LOOK3']?.result, 'HUNG');
  t.equal(outcomeClass('UNSUPPORTED'), 'warn');
  t.equal(outcomeClass('HUNG'), 'other');
});

t.test('pynfsDifferences() lists exactly the tests whose result changed', async (t) => {
  const direct = parsePynfs(read('direct-lookup-4.0.txt'), '4.0');
  const proxy = parsePynfs(read('proxy-lookup-4.0.txt'), '4.0');
  t.same(
    pynfsDifferences(direct, proxy).map((d) => [d.key, d.direct?.result, d.other?.result]),
    [
      ['4.0/LOOK3', 'PASS', 'FAILURE'],
      ['4.0/LOOK4', 'PASS', 'FAILURE'],
    ],
  );
  t.same(pynfsDifferences(direct, direct), [], 'a run equals itself');
  const less = { ...direct };
  delete less['4.0/LOOK1'];
  t.same(
    pynfsDifferences(direct, less).map((d) => [d.key, d.other]),
    [['4.0/LOOK1', null]],
    'a test missing on one side is a difference',
  );
});

t.test('pynfsTable() and pynfsReport() total per plane and suite and explain each difference', async (t) => {
  const runs: PlaneRun[] = [
    { plane: 'direct', suites: { '4.0': { secs: 1, rc: 0, timedOut: false } }, outcomes: parsePynfs(read('direct-lookup-4.0.txt'), '4.0') },
    { plane: 'proxy', suites: { '4.0': { secs: 2, rc: null, timedOut: true } }, outcomes: parsePynfs(read('proxy-lookup-4.0.txt'), '4.0') },
  ];
  const table = pynfsTable(runs).split('\n');
  t.equal(table[2], '| direct | 4.0 | 29 | 25 | 0 | 1 | 3 | 0 | 1 s |');
  t.equal(table[3], '| proxy | 4.0 | 29 | 23 | 0 | 3 | 3 | 0 | 2 s (cut) |');
  const report = pynfsReport(runs);
  t.match(report, /### proxy vs direct: 2 differences/);
  t.match(report, /`4\.0\/LOOK4` st_lookup\.testLongName: direct PASS; proxy FAILURE \(LOOKUP with very long component should return NFS4ERR_NAMETOOLONG, instead got NFS4ERR_ACCESS\)/);
  t.match(pynfsReport(runs.slice(1)), /No direct run/);
  t.notMatch(report, /Same result, other message/, 'no message changed');
});

t.test('pynfsMessageChanges() lists same-result tests whose message changed, ignoring the run directory', async (t) => {
  const a = { '4.1/SEQ6': { name: 'st_sequence.testRequestTooBig', result: 'FAILURE', msg: 'OP_LOOKUP should return NFS4ERR_REQ_TOO_BIG, instead got NFS4ERR_NAMETOOLONG' }, '4.0/RD5a': { name: 'st_read.testVeryLargeOffset', result: 'FAILURE', msg: "Reading file /b'export/acme/pynfs-direct-4.0-3139/tree/file' failed" } };
  const b = { '4.1/SEQ6': { ...a['4.1/SEQ6'], msg: 'OP_PUTROOTFH should return NFS4ERR_REQ_TOO_BIG, instead got NFS4ERR_ACCESS' }, '4.0/RD5a': { ...a['4.0/RD5a'], msg: "Reading file /b'export/acme/pynfs-proxy-4.0-3286/tree/file' failed" } };
  t.same(pynfsMessageChanges(a, b).map((x) => x.key), ['4.1/SEQ6']);
});
