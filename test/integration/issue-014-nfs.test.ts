/**
 * Issue 14, NFS side, against the real lab (nfs-ganesha on 198.18.0.100,
 * the proxy plane): a raw NFSv4 client in guest 1 (test/helpers/nfs4-client.ts)
 * tries to read /export/acme-private/hello.txt, which the backend exports to
 * acme's source IP but the gateway grants only to another tenant address
 * (198.19.0.99), with COMPOUNDs the old gateway forwarded unchecked: split
 * over two fragments, padded past its look-ahead, after an operation it
 * could not skip, and longer than its look-ahead. Each must fail at the
 * LOOKUP with NFS4ERR_ACCESS, counted, and leak nothing. Then: "Refuse
 * precisely" (INVAL and NAMETOOLONG names, the error on the right
 * operation after SEQUENCE, OP_ILLEGAL), a 5 MiB write that follows the
 * (now clamped) maxwrite without a reset, and libnfs reading and writing
 * through the same proxy.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { DATA, LabDaemon, NS, ROOT, metricValue, run } from '../helpers/lab';
import { labYaml } from '../helpers/configs';

const ACME = '198.18.0.100';
const PORT = 9615;
const CLIENT = path.join(ROOT, 'dist/test/helpers/nfs4-client.js');
const ACCESS = 13;
const SECRET = fs.existsSync(path.join(DATA, 'acme-private', 'hello.txt')) ? fs.readFileSync(path.join(DATA, 'acme-private', 'hello.txt'), 'utf8') : '';

interface Summary {
  status: number;
  ops: number[];
  statuses: number[];
  data?: string | null;
}

async function client<T>(scenario: string, ...args: string[]): Promise<T & { error?: string }> {
  const r = await run(process.execPath, [CLIENT, ACME, scenario, ...args], { ns: NS.g1, timeoutMs: 60_000 });
  try {
    return JSON.parse(r.stdout.trim().split('\n')[0] ?? '') as T & { error?: string };
  } catch {
    throw new Error(`nfs4-client ${scenario}: ${r.stdout} ${r.stderr}`);
  }
}

const answers = (reason: string): Promise<number> => metricValue(PORT, 'sharegw_protocol_answers_total', `proto="nfs",reason="${reason}"`);

t.test('proxy plane: COMPOUNDs the old look-ahead missed are refused at the LOOKUP, and the gateway answers as a server would', async (t) => {
  t.ok(SECRET.length > 0, 'the other export has a file to steal (lab.sh up)');
  const acme = labYaml('proxy').domains['acme.yaml'] ?? '';
  const d = new LabDaemon({ plane: 'proxy', domains: { 'acme.yaml': acme }, extra: `metrics: 127.0.0.1:${PORT}\nproxy: { drainTimeout: 2s }\n` });
  t.teardown(() => d.dispose());
  const scratch = `scratch-${process.pid}`;
  const big = `big-${process.pid}`;
  for (const f of [scratch, big]) {
    fs.writeFileSync(path.join(DATA, 'acme', f), '');
    fs.chmodSync(path.join(DATA, 'acme', f), 0o666);
    t.teardown(() => fs.rmSync(path.join(DATA, 'acme', f), { force: true }));
  }
  await d.start();

  // (a), (b), (c): what leaked before, now refused at the LOOKUP of acme-private.
  const cases: [string, string[], number][] = [
    ['split', [], 2],
    ['padded', [], 92],
    ['unskippable', [], 3],
    ['long', [scratch], 7],
  ];
  for (const [name, args, at] of cases) {
    const before = await answers('mount-denied');
    const r = await client<Summary>(name, ...args);
    t.equal(r.error, undefined, `${name}: the connection answered`);
    t.not(r.data, SECRET, `${name}: the other export's file did not leak`);
    t.equal(r.data ?? null, null, `${name}: no READ result at all`);
    t.equal(r.status, ACCESS, `${name}: NFS4ERR_ACCESS (${JSON.stringify({ ...r, ops: r.ops.slice(-3), statuses: r.statuses.slice(-3), n: r.ops.length })})`);
    t.same([r.statuses.length - 1, r.statuses[r.statuses.length - 1], r.ops[r.ops.length - 1]], [at, ACCESS, 15], `${name}: on the LOOKUP (operation ${at}), the ones before it executed`);
    t.equal(await answers('mount-denied'), before + 1, `${name}: counted`);
  }
  t.equal(fs.readFileSync(path.join(DATA, 'acme', scratch), 'utf8'), 'a'.repeat(3000), "the long compound's WRITE to the guest's own export ran (the operations before the refused one did)");

  // Names a server rejects, answered as it would, on a connection that stays up.
  const names = await client<{ empty: Summary; long: Summary; after: Summary; closed: string | null }>('names');
  t.same([names.empty.status, names.empty.statuses], [22, [0, 0, 22]], 'LOOKUP "" in /export gets NFS4ERR_INVAL on that operation, not ACCESS');
  t.same([names.long.status, names.long.statuses], [63, [0, 0, 63]], 'a 256-byte name gets NFS4ERR_NAMETOOLONG');
  t.equal(names.after.data, 'hello from acme\n', 'and the same connection reads on');
  t.equal(await answers('bad-name'), 2, 'both counted');

  // NFSv4.1: the error lands on the refused operation, after SEQUENCE; the slot stays in step.
  const s = await client<{ denied: Summary; next: Summary; illegal: Summary; after: Summary }>('session');
  t.equal(s.error, undefined, s.error ?? 'a v4.1 session');
  t.same([s.denied.ops, s.denied.statuses], [[53, 24, 15, 15], [0, 0, 0, ACCESS]], 'SEQUENCE, PUTROOTFH and LOOKUP export executed; LOOKUP acme-private failed with ACCESS');
  t.equal(s.denied.data ?? null, null, 'nothing of acme-private read');
  t.same([s.next.status, s.next.data], [0, 'hello from acme\n'], "the slot's next sequence id works (the server saw the refused compound's SEQUENCE)");
  t.same([s.illegal.ops, s.illegal.statuses], [[53, 24, 10044], [0, 0, 10044]], 'an unknown operation code gets OP_ILLEGAL / NFS4ERR_OP_ILLEGAL on its own index');
  t.equal(s.after.data, 'hello from acme\n', 'and the session works on');
  t.equal(await answers('op-illegal'), 1, 'counted');

  // A 5 MiB write the way a client does it: in pieces of the advertised maxwrite.
  const w = await client<{ maxread: number; maxwrite: number; chunk: number; written: number }>('bigwrite', big, '5');
  t.equal(w.error, undefined, `no error: ${w.error ?? ''}`);
  t.ok(w.maxwrite > 0 && w.maxwrite <= 1024 * 1024 && w.maxread > 0 && w.maxread <= 1024 * 1024, `maxread ${w.maxread} and maxwrite ${w.maxwrite} as the gateway accepts them (nfs-ganesha advertises 64 MiB)`);
  t.equal(w.written, 5 * 1024 * 1024, 'all 5 MiB written, no reset');
  t.equal(fs.statSync(path.join(DATA, 'acme', big)).size, 5 * 1024 * 1024, 'and on the backend');

  // libnfs (a real client) through the same proxy.
  const src = path.join('/dev/shm', `sgw-issue14-nfs-${process.pid}`);
  fs.writeFileSync(src, crypto.randomBytes(300_000));
  const name = `libnfs-${process.pid}.bin`;
  t.teardown(() => {
    fs.rmSync(src, { force: true });
    fs.rmSync(path.join(DATA, 'acme', name), { force: true });
  });
  const cp = await run('nfs-cp', [src, `nfs://${ACME}/export/acme/${name}?version=3`], { ns: NS.g1 });
  t.equal(cp.code, 0, `nfs-cp writes: ${cp.stderr}`);
  t.ok(fs.readFileSync(path.join(DATA, 'acme', name)).equals(fs.readFileSync(src)), 'byte-exact on the backend');
  const ls = await run('nfs-ls', [`nfs://${ACME}/export/acme?version=4`], { ns: NS.g1 });
  t.match(ls.stdout, new RegExp(name.replace('.', '\\.')), 'nfs-ls (v4) lists it');
  const back = path.join('/dev/shm', `sgw-issue14-nfs-back-${process.pid}`);
  t.teardown(() => fs.rmSync(back, { force: true }));
  const cp4 = await run('nfs-cp', [`nfs://${ACME}/export/acme/${name}?version=4`, back], { ns: NS.g1 });
  t.equal(cp4.code, 0, `nfs-cp (v4) reads it back: ${cp4.stderr}`);
  t.ok(fs.existsSync(back) && fs.readFileSync(back).equals(fs.readFileSync(src)), 'byte-exact');

  t.equal(await metricValue(PORT, 'sharegw_protocol_refusals_total', 'proto="nfs",reason="malformed"'), 0, 'no connection was closed as malformed');
  await d.stop();
  t.match(d.log(), /"answered":\{[^}]*"mount-denied":1/, 'the flows close records count the answers');
});
