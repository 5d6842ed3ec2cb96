/**
 * Issue 14, SMB side: a TREE_CONNECT to a share that is not granted fails
 * that one request (the backend's STATUS_ACCESS_DENIED or
 * STATUS_BAD_NETWORK_NAME), counted, while the connection and its granted
 * tree keep working. Before the fix the gateway reset the TCP connection,
 * killing every session and open file on it.
 */
import { spawn } from 'node:child_process';
import t from 'tap';
import { LabDaemon, NS, metricValue } from '../helpers/lab';
import { labYaml } from '../helpers/configs';

const ACME = '198.18.0.100';
const PORT = 9614;

/**
 * One interactive smbclient session in guest 1: `send` writes command
 * lines, `until` waits for a pattern in the output so far.
 */
function smbclientSession(share: string): { send: (l: string) => Promise<void>; until: (re: RegExp, ms?: number) => Promise<string>; out: () => string; done: Promise<number | null> } {
  // stdbuf: smbclient's stdout is a pipe here, block-buffered by default.
  const child = spawn('ip', ['netns', 'exec', NS.g1, 'stdbuf', '-oL', 'smbclient', `//${ACME}/${share}`, '-U', 'usera%labpass123', '-m', 'SMB3'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let buf = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (buf += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (buf += d));
  const done = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
  const kill = setTimeout(() => child.kill('SIGKILL'), 60_000);
  void done.then(() => clearTimeout(kill));
  return {
    send: async (l) => {
      child.stdin.write(`${l}\n`);
      await new Promise((r) => setTimeout(r, 400));
    },
    out: () => buf,
    done,
    async until(re, ms = 15_000) {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        const m = re.exec(buf);
        if (m !== null) {
          return m[1] ?? m[0];
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`smbclient: no ${String(re)} in: ${buf}`);
    },
  };
}

t.test('proxy: a tree connect to a share not granted fails that request; the granted tree keeps working on the same connection', async (t) => {
  const acme = labYaml('proxy').domains['acme.yaml'] ?? '';
  const d = new LabDaemon({ plane: 'proxy', domains: { 'acme.yaml': acme }, extra: `metrics: 127.0.0.1:${PORT}\nproxy: { drainTimeout: 2s }\n` });
  t.teardown(() => d.dispose());
  await d.start();
  const s = smbclientSession('acme');
  // One line at a time: smbclient without a tty select()s on stdin, then
  // fgets() one line; a second line that arrived with it stays in stdio's
  // buffer until more input comes. send() paces lines for that.
  await s.send('tid');
  const tid = await s.until(/current tid is (-?\d+)/);
  await s.send('tcon beta');
  const status = await s.until(/tcon failed: (NT_STATUS_\w+)/);
  t.match(status, /^NT_STATUS_(ACCESS_DENIED|BAD_NETWORK_NAME)$/, `the one request fails: ${status}`);
  // smbclient forgets its tree id after a failed tcon: give it back the
  // first tree's, which must still be valid on this same connection.
  await s.send(`tid ${tid}`);
  await s.send('tid');
  await s.until(new RegExp(`tcon failed[\\s\\S]*current tid is ${tid}`));
  await s.send('get hello.txt -');
  await s.until(/hello from acme/);
  t.pass('the granted tree still reads a file after the refused tree connect');
  await s.send('tcon nosuch');
  await s.until(/tcon failed: NT_STATUS_\w+[\s\S]*tcon failed: NT_STATUS_\w+/);
  await s.send('tcon acme');
  await s.send('ls hello.txt');
  await s.until(/hello\.txt\s+N\s+16/);
  t.pass('and a new tree connect to the granted share on the same connection works');
  await s.send('quit');
  t.equal(await s.done, 0, `smbclient ends cleanly: ${s.out()}`);
  t.notMatch(s.out(), /NT_STATUS_(CONNECTION_RESET|CONNECTION_DISCONNECTED|END_OF_FILE|INVALID_NETWORK_RESPONSE)/, 'the connection was never cut');

  t.equal(await metricValue(PORT, 'sharegw_protocol_answers_total', 'proto="smb",reason="share"'), 2, 'both refusals are the gateway\'s, counted by reason');
  t.equal(await metricValue(PORT, 'sharegw_protocol_refusals_total', 'proto="smb",reason="share"'), 0, 'no session was refused for it');
  await d.stop();
  const log = d.log();
  t.match(log, /"answered":\{"share":2\}/, 'the flow\'s close record counts them');
  t.match(log, /"reason":"share".*request refused by protocol policy/, 'and a log line says why');
  t.match(log, /"reason":"done"/, 'the flow ended normally, not refused');
});
