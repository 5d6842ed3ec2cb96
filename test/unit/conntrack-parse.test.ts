import t from 'tap';
import { parseConntrackList } from '../../src/dataplane/kernel/conntrack';
import type { ConntrackTuple, KernelFlow } from '../../src/dataplane/kernel/conntrack';

// Lines as conntrack-tools 1.4.x prints them (`conntrack -L -p tcp`, and
// `-o extended`), with accounting (nf_conntrack_acct) on and off.

const PLAIN =
  'tcp      6 431998 ESTABLISHED src=169.254.1.2 dst=198.18.0.100 sport=41234 dport=2049 src=198.18.0.100 dst=198.18.0.11 sport=2049 dport=41234 [ASSURED] mark=0 use=1';
const ACCT =
  'tcp      6 431999 ESTABLISHED src=169.254.1.2 dst=198.18.0.100 sport=812 dport=2049 packets=1200 bytes=1563412 src=198.18.0.100 dst=198.18.0.11 sport=2049 dport=812 packets=98304 bytes=1073741824 [ASSURED] mark=0 zone=0 use=1';
const UNREPLIED =
  'tcp      6 118 SYN_SENT src=169.254.2.2 dst=198.18.0.101 sport=50000 dport=2049 [UNREPLIED] src=198.18.0.101 dst=198.18.0.12 sport=2049 dport=50000 mark=0 use=1';
const UNREPLIED_ACCT =
  'tcp      6 117 SYN_SENT src=169.254.2.2 dst=198.18.0.101 sport=50001 dport=2049 packets=1 bytes=60 [UNREPLIED] src=198.18.0.101 dst=198.18.0.12 sport=2049 dport=50001 packets=0 bytes=0 mark=16 zone=7 use=1';
const EXTENDED =
  'ipv4     2 tcp      6 86 TIME_WAIT src=169.254.1.2 dst=198.18.0.100 sport=41000 dport=445 src=198.18.0.100 dst=198.18.0.11 sport=445 dport=41000 [ASSURED] mark=0 secctx=system_u:object_r:unlabeled_t:s0 use=1 id=2928374';
const IPV6 =
  'tcp      6 299 ESTABLISHED src=2001:db8:19::5 dst=2001:db8:18::100 sport=40000 dport=2049 src=2001:db8:18::100 dst=2001:db8:19::5 sport=2049 dport=40000 [ASSURED] mark=0 use=1';
const TIMESTAMP =
  'tcp      6 431970 ESTABLISHED src=169.254.1.2 dst=198.18.0.100 sport=41001 dport=2049 src=198.18.0.100 dst=198.18.0.11 sport=2049 dport=41001 [ASSURED] [OFFLOAD] mark=0 delta-time=73 use=2';
const ZONES =
  'tcp      6 100 CLOSE_WAIT src=169.254.1.2 dst=198.18.0.100 sport=41002 dport=2049 zone-orig=3 src=198.18.0.100 dst=198.18.0.11 sport=2049 dport=41002 zone-reply=4 [ASSURED] mark=0 helper=ftp use=1';

function tuple(src: string, dst: string, sport: number, dport: number, packets: number | null = null, bytes: number | null = null): ConntrackTuple {
  return { src, dst, sport, dport, packets, bytes };
}

function flow(state: string, timeoutS: number, orig: ConntrackTuple, reply: ConntrackTuple, extra: Partial<KernelFlow> = {}): KernelFlow {
  return { proto: 'tcp', state, timeoutS, orig, reply, assured: false, unreplied: false, mark: null, zone: null, ageS: null, ...extra };
}

t.test('parseConntrackList() reads an established flow without accounting', async (t) => {
  t.strictSame(parseConntrackList(PLAIN), [
    flow('ESTABLISHED', 431998, tuple('169.254.1.2', '198.18.0.100', 41234, 2049), tuple('198.18.0.100', '198.18.0.11', 2049, 41234), { assured: true, mark: 0 }),
  ]);
});

t.test('parseConntrackList() reads packets and bytes each way when accounting is on', async (t) => {
  t.strictSame(parseConntrackList(ACCT), [
    flow('ESTABLISHED', 431999, tuple('169.254.1.2', '198.18.0.100', 812, 2049, 1200, 1563412), tuple('198.18.0.100', '198.18.0.11', 2049, 812, 98304, 1073741824), { assured: true, mark: 0, zone: 0 }),
  ]);
});

t.test('parseConntrackList() reads [UNREPLIED], mark= and zone=', async (t) => {
  t.strictSame(parseConntrackList(`${UNREPLIED}\n${UNREPLIED_ACCT}\n`), [
    flow('SYN_SENT', 118, tuple('169.254.2.2', '198.18.0.101', 50000, 2049), tuple('198.18.0.101', '198.18.0.12', 2049, 50000), { unreplied: true, mark: 0 }),
    flow('SYN_SENT', 117, tuple('169.254.2.2', '198.18.0.101', 50001, 2049, 1, 60), tuple('198.18.0.101', '198.18.0.12', 2049, 50001, 0, 0), { unreplied: true, mark: 16, zone: 7 }),
  ]);
});

t.test('parseConntrackList() reads the extended format, IPv6, timestamps and directional zones', async (t) => {
  const [ext, v6, ts, zones, ...rest] = parseConntrackList([EXTENDED, IPV6, TIMESTAMP, ZONES].join('\n'));
  t.strictSame(rest, []);
  t.strictSame(ext, flow('TIME_WAIT', 86, tuple('169.254.1.2', '198.18.0.100', 41000, 445), tuple('198.18.0.100', '198.18.0.11', 445, 41000), { assured: true, mark: 0 }));
  t.strictSame(v6, flow('ESTABLISHED', 299, tuple('2001:db8:19::5', '2001:db8:18::100', 40000, 2049), tuple('2001:db8:18::100', '2001:db8:19::5', 2049, 40000), { assured: true, mark: 0 }));
  t.strictSame(ts, flow('ESTABLISHED', 431970, tuple('169.254.1.2', '198.18.0.100', 41001, 2049), tuple('198.18.0.100', '198.18.0.11', 2049, 41001), { assured: true, mark: 0, ageS: 73 }));
  t.strictSame(zones, flow('CLOSE_WAIT', 100, tuple('169.254.1.2', '198.18.0.100', 41002, 2049), tuple('198.18.0.100', '198.18.0.11', 2049, 41002), { assured: true, mark: 0 }), 'zone-orig/zone-reply are not the zone');
});

t.test('parseConntrackList() reads a DNATed flow as it is (the reply comes from the listener)', async (t) => {
  const line = 'tcp      6 431999 ESTABLISHED src=169.254.1.2 dst=198.18.0.100 sport=41000 dport=2049 src=169.254.1.1 dst=169.254.1.2 sport=40001 dport=41000 [ASSURED] mark=0 use=1';
  t.strictSame(parseConntrackList(line), [flow('ESTABLISHED', 431999, tuple('169.254.1.2', '198.18.0.100', 41000, 2049), tuple('169.254.1.1', '169.254.1.2', 40001, 41000), { assured: true, mark: 0 })]);
});

t.test('parseConntrackList() reads a stateless protocol with state null', async (t) => {
  const udp = 'udp      17 29 src=169.254.1.2 dst=198.18.0.100 sport=53000 dport=111 [UNREPLIED] src=198.18.0.100 dst=198.18.0.11 sport=111 dport=53000 mark=0 use=1';
  t.strictSame(parseConntrackList(udp), [
    { proto: 'udp', state: null, timeoutS: 29, orig: tuple('169.254.1.2', '198.18.0.100', 53000, 111), reply: tuple('198.18.0.100', '198.18.0.11', 111, 53000), assured: false, unreplied: true, mark: 0, zone: null, ageS: null },
  ]);
});

t.test('parseConntrackList() canonicalizes addresses and tolerates CRLF and extra blanks', async (t) => {
  const line = '  tcp 6 10 ESTABLISHED\tsrc=2001:DB8:19:0:0:0:0:5 dst=2001:db8:18::100 sport=1 dport=2049 src=2001:db8:18::100 dst=2001:db8:19::5 sport=2049 dport=1\r';
  t.strictSame(parseConntrackList(line).map((f) => [f.orig.src, f.state, f.timeoutS]), [['2001:db8:19::5', 'ESTABLISHED', 10]]);
});

t.test('parseConntrackList() skips garbage and keeps the good lines around it', async (t) => {
  const garbage = [
    '',
    '   ',
    'conntrack v1.4.7 (conntrack-tools): 5 flow entries have been shown.',
    'conntrack v1.4.7 (conntrack-tools): Operation failed: Permission denied',
    // ICMP has no ports.
    'icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=1 src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=1 mark=0 use=1',
    // Truncated (a read cut short).
    'tcp      6 431998 ESTABLISHED src=169.254.1.2 dst=198.18.0.100 sport=41234',
    'tcp      6 431998 ESTABLISHED src=169.254.1.2 dst=198.18.0.100 sport=41234 dport=2049 src=198.18.0.100 dst=198.18.0.11 sport=2049',
    // No timeout, bad protocol number, bad timeout.
    'tcp      6 ESTABLISHED src=169.254.1.2 dst=198.18.0.100 sport=1 dport=2 src=198.18.0.100 dst=198.18.0.11 sport=2 dport=1',
    'tcp      x 10 ESTABLISHED src=169.254.1.2 dst=198.18.0.100 sport=1 dport=2 src=198.18.0.100 dst=198.18.0.11 sport=2 dport=1',
    'tcp      6 -10 ESTABLISHED src=169.254.1.2 dst=198.18.0.100 sport=1 dport=2 src=198.18.0.100 dst=198.18.0.11 sport=2 dport=1',
    // Bad values.
    'tcp      6 10 ESTABLISHED src=169.254.1.2 dst=198.18.0.100 sport=99999 dport=2049 src=198.18.0.100 dst=198.18.0.11 sport=2049 dport=99999',
    'tcp      6 10 ESTABLISHED src=999.254.1.2 dst=198.18.0.100 sport=1 dport=2049 src=198.18.0.100 dst=198.18.0.11 sport=2049 dport=1',
    'tcp      6 10 ESTABLISHED src=169.254.1.2 dst=nas sport=1 dport=2049 src=198.18.0.100 dst=198.18.0.11 sport=2049 dport=1',
    'tcp      6 10 ESTABLISHED src=169.254.1.2 dst=198.18.0.100 sport=1 dport=2049 packets=abc bytes=1 src=198.18.0.100 dst=198.18.0.11 sport=2049 dport=1',
    'tcp      6 10 ESTABLISHED src=169.254.1.2 dst=198.18.0.100 sport=1 dport=2049 packets=1 bytes=99999999999999999 src=198.18.0.100 dst=198.18.0.11 sport=2049 dport=1',
    'tcp      6 10 ESTABLISHED src=169.254.1.2 dst=198.18.0.100 sport=1 dport=2049 src=198.18.0.100 dst=198.18.0.11 sport=2049 dport=1 mark=0x10',
    'tcp      6 10 ESTABLISHED src=169.254.1.2 dst=198.18.0.100 sport=1 dport=2049 src=198.18.0.100 dst=198.18.0.11 sport=2049 dport=1 zone=',
    // Structure: a third direction, a repeated key, a token without '=', a key before any src=.
    'tcp      6 10 ESTABLISHED src=169.254.1.2 dst=198.18.0.100 sport=1 dport=2049 src=198.18.0.100 dst=198.18.0.11 sport=2049 dport=1 src=1.1.1.1',
    'tcp      6 10 ESTABLISHED src=169.254.1.2 dst=198.18.0.100 dst=198.18.0.101 sport=1 dport=2049 src=198.18.0.100 dst=198.18.0.11 sport=2049 dport=1',
    'tcp      6 10 ESTABLISHED src=169.254.1.2 dst=198.18.0.100 sport=1 dport=2049 garbage src=198.18.0.100 dst=198.18.0.11 sport=2049 dport=1',
    'tcp      6 10 ESTABLISHED dport=2049 src=169.254.1.2 dst=198.18.0.100 sport=1 src=198.18.0.100 dst=198.18.0.11 sport=2049 dport=1',
    'tcp      6 10 ESTABLISHED =1 src=169.254.1.2 dst=198.18.0.100 sport=1 dport=2049 src=198.18.0.100 dst=198.18.0.11 sport=2049 dport=1',
    '\u0000\u0001\u00ff tcp 6',
    'ipv4 2',
    'ipv4',
    '[ASSURED]',
  ];
  for (const g of garbage) {
    t.strictSame(parseConntrackList(g), [], JSON.stringify(g.slice(0, 80)));
  }
  const mixed = [garbage[2], PLAIN, ...garbage, ACCT, garbage[5]].join('\n');
  t.strictSame(
    parseConntrackList(mixed).map((f) => f.orig.sport),
    [41234, 812],
    'good lines survive in order among garbage',
  );
});

t.test('parseConntrackList() never throws on cut or corrupted lines', async (t) => {
  const full = parseConntrackList(ACCT)[0];
  let parsed = 0;
  // Every prefix: either nothing or a flow with the same original tuple
  // (a prefix that ends after the reply tuple is still a whole entry).
  for (let i = 0; i <= ACCT.length; i++) {
    const got = parseConntrackList(ACCT.slice(0, i));
    if (got.length > 0) {
      parsed++;
      t.strictSame(got[0]?.orig.src, full?.orig.src);
    }
  }
  t.ok(parsed > 0 && parsed < ACCT.length / 2, `${parsed} prefixes parse`);
  // Deterministic byte corruption (xorshift), for crashes only.
  let x = 0x9e3779b9;
  const rnd = (n: number): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
  const alphabet = ' =[]:.0123456789abcdefsrcdtport\n\t-';
  for (let k = 0; k < 2000; k++) {
    const chars = [...ACCT];
    for (let m = 1 + rnd(4); m > 0; m--) {
      chars[rnd(chars.length)] = alphabet[rnd(alphabet.length)] ?? ' ';
    }
    const out = parseConntrackList(chars.join(''));
    if (out.some((f) => f.orig.sport > 65535 || f.reply.dport > 65535 || !Number.isInteger(f.timeoutS))) {
      t.fail(`out of range from ${chars.join('')}`);
    }
  }
  t.pass('2000 corrupted lines parsed without a throw');
});
