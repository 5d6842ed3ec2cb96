import t from 'tap';
import { cidrContains, formatAddrPort, formatCidr, parseAddrPort, parseCidr, parseIp } from '../../src/util/ip';
import type { Cidr, Ip } from '../../src/util/ip';

function ip(text: string): Ip {
  const v = parseIp(text);
  if (v === null) {
    throw new Error(`bad test address ${text}`);
  }
  return v;
}

function cidr(text: string): Cidr {
  const v = parseCidr(text);
  if (v === null) {
    throw new Error(`bad test prefix ${text}`);
  }
  return v;
}

const DB8_1 = (0x20010db8n << 96n) + 1n;

t.test('parseIp() parses IPv4 addresses', async (t) => {
  t.strictSame(parseIp('198.19.0.5'), { family: 4, text: '198.19.0.5', value: 0xc6130005n });
  t.strictSame(parseIp('0.0.0.0'), { family: 4, text: '0.0.0.0', value: 0n });
  t.strictSame(parseIp('255.255.255.255'), { family: 4, text: '255.255.255.255', value: 0xffffffffn });
  t.strictSame(parseIp('1.2.3.4'), { family: 4, text: '1.2.3.4', value: 16909060n });
});

t.test('parseIp() parses IPv6 addresses into RFC 5952 text', async (t) => {
  t.strictSame(parseIp('2001:db8::1'), { family: 6, text: '2001:db8::1', value: DB8_1 });
  t.strictSame(parseIp('2001:DB8::1'), { family: 6, text: '2001:db8::1', value: DB8_1 }, 'lower case');
  t.strictSame(parseIp('2001:0db8:0000:0000:0000:0000:0000:0001'), { family: 6, text: '2001:db8::1', value: DB8_1 }, 'compressed, no leading zeros');
  t.strictSame(parseIp('2001:db8:0:0:1:0:0:1'), { family: 6, text: '2001:db8::1:0:0:1', value: (0x20010db8n << 96n) + (1n << 48n) + 1n }, 'first longest zero run');
  t.strictSame(parseIp('::'), { family: 6, text: '::', value: 0n });
  t.strictSame(parseIp('::1'), { family: 6, text: '::1', value: 1n });
  t.strictSame(parseIp('fe80::1'), { family: 6, text: 'fe80::1', value: (0xfe80n << 112n) + 1n });
});

t.test('parseIp() refuses what inet_pton refuses', async (t) => {
  const bad = [
    '',
    'localhost',
    'nfs.example.com',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '1.2.3.-1',
    '010.0.0.1',
    '1.2.3.04',
    '0x1.2.3.4',
    ' 1.2.3.4',
    '1.2.3.4 ',
    '1.2.3.4/32',
    '2001:db8::1/128',
    'fe80::1%eth0',
    '::1::2',
    '2001:db8::g',
    '[2001:db8::1]',
    '1:2:3:4:5:6:7:8:9',
  ];
  for (const s of bad) {
    t.equal(parseIp(s), null, JSON.stringify(s));
  }
});

t.test('parseCidr() parses prefixes', async (t) => {
  t.strictSame(parseCidr('198.19.0.0/24'), { family: 4, network: '198.19.0.0', prefix: 24, hostBitsSet: false, value: 0xc6130000n });
  t.strictSame(parseCidr('198.19.0.5/24'), { family: 4, network: '198.19.0.0', prefix: 24, hostBitsSet: true, value: 0xc6130000n }, 'host bits are cleared and reported');
  t.strictSame(parseCidr('198.19.0.5'), { family: 4, network: '198.19.0.5', prefix: 32, hostBitsSet: false, value: 0xc6130005n }, 'a bare address is a /32');
  t.strictSame(parseCidr('198.19.0.5/32'), { family: 4, network: '198.19.0.5', prefix: 32, hostBitsSet: false, value: 0xc6130005n });
  t.strictSame(parseCidr('0.0.0.0/0'), { family: 4, network: '0.0.0.0', prefix: 0, hostBitsSet: false, value: 0n });
  t.strictSame(parseCidr('10.1.2.3/0'), { family: 4, network: '0.0.0.0', prefix: 0, hostBitsSet: true, value: 0n });
  t.strictSame(parseCidr('198.19.1.255/23'), { family: 4, network: '198.19.0.0', prefix: 23, hostBitsSet: true, value: 0xc6130000n });
  t.strictSame(parseCidr('2001:db8::/32'), { family: 6, network: '2001:db8::', prefix: 32, hostBitsSet: false, value: 0x20010db8n << 96n });
  t.strictSame(parseCidr('2001:0DB8:0000::1/64'), { family: 6, network: '2001:db8::', prefix: 64, hostBitsSet: true, value: 0x20010db8n << 96n });
  t.strictSame(parseCidr('2001:db8::1'), { family: 6, network: '2001:db8::1', prefix: 128, hostBitsSet: false, value: DB8_1 }, 'a bare address is a /128');
  t.strictSame(parseCidr('::/0'), { family: 6, network: '::', prefix: 0, hostBitsSet: false, value: 0n });
  t.strictSame(parseCidr('2001:db8:1:2::/63'), { family: 6, network: '2001:db8:1:2::', prefix: 63, hostBitsSet: false, value: (0x20010db8n << 96n) + (1n << 80n) + (2n << 64n) });
});

t.test('parseCidr() refuses bad prefixes', async (t) => {
  const bad = ['', '/24', '198.19.0.0/', '198.19.0.0/33', '198.19.0.0/-1', '198.19.0.0/ 24', '198.19.0.0/24 ', '198.19.0.0/2a', '198.19.0.0/1e1', '198.19.0.0/1000', '198.19.0.0/24/24', '2001:db8::/129', 'fe80::/10%eth0', '010.0.0.0/8', 'example.com/24'];
  for (const s of bad) {
    t.equal(parseCidr(s), null, JSON.stringify(s));
  }
});

t.test('cidrContains()', async (t) => {
  const cases: [string, string, boolean][] = [
    ['198.19.0.0/24', '198.19.0.0', true],
    ['198.19.0.0/24', '198.19.0.255', true],
    ['198.19.0.0/24', '198.19.1.0', false],
    ['198.19.0.0/24', '198.18.255.255', false],
    ['198.19.0.5/24', '198.19.0.77', true],
    ['198.19.0.5', '198.19.0.5', true],
    ['198.19.0.5', '198.19.0.4', false],
    ['128.0.0.0/1', '127.255.255.255', false],
    ['128.0.0.0/1', '255.0.0.1', true],
    ['0.0.0.0/0', '255.255.255.255', true],
    ['0.0.0.0/0', '::', false],
    ['::/0', '0.0.0.0', false],
    ['::/0', 'ffff::1', true],
    ['2001:db8::/32', '2001:db8:ffff::1', true],
    ['2001:db8::/32', '2001:db9::1', false],
    ['2001:db8::1', '2001:db8::1', true],
    ['2001:db8::1', '2001:db8::2', false],
    ['::ffff:0:0/96', '198.19.0.5', false],
    ['198.19.0.0/24', '::ffff:198.19.0.5', false],
  ];
  for (const [c, a, want] of cases) {
    t.equal(cidrContains(cidr(c), ip(a)), want, `${c} contains ${a}: ${want}`);
  }
});

t.test('formatCidr()', async (t) => {
  t.equal(formatCidr(cidr('198.19.0.5/24')), '198.19.0.0/24');
  t.equal(formatCidr(cidr('198.19.0.5')), '198.19.0.5/32');
  t.equal(formatCidr(cidr('2001:0db8:0:0::5/64')), '2001:db8::/64');
  t.equal(formatCidr(cidr('2001:db8::5')), '2001:db8::5/128');
  t.equal(formatCidr(cidr('::/0')), '::/0');
});

t.test('parseAddrPort() reads ADDR:PORT and [ADDR6]:PORT in canonical form', async (t) => {
  const ok: [string, string, number][] = [
    ['198.18.0.100:2049', '198.18.0.100', 2049],
    ['198.18.0.100:1', '198.18.0.100', 1],
    ['198.18.0.100:65535', '198.18.0.100', 65535],
    ['[2001:db8::100]:445', '2001:db8::100', 445],
    ['[2001:DB8:0:0::100]:445', '2001:db8::100', 445],
    ['[::1]:111', '::1', 111],
  ];
  for (const [text, addr, port] of ok) {
    t.strictSame(parseAddrPort(text), { addr, port }, text);
    t.equal(formatAddrPort({ addr, port }), text.replace('DB8:0:0::', 'db8::'), `${text} formats back`);
  }
  const bad = [
    '',
    '198.18.0.100',
    '198.18.0.100:',
    ':2049',
    '198.18.0.100:0',
    '198.18.0.100:65536',
    '198.18.0.100:99999',
    '198.18.0.100:123456',
    '198.18.0.100:02049',
    '198.18.0.100:-1',
    '198.18.0.100:+80',
    '198.18.0.100:2049 ',
    ' 198.18.0.100:2049',
    '198.18.0.100:20x9',
    '198.018.0.100:2049',
    '198.18.0.100/32:2049',
    'nas.example:2049',
    '2001:db8::100:2049',
    '[2001:db8::100]',
    '[2001:db8::100:2049',
    '2001:db8::100]:2049',
    '[198.18.0.100]:2049',
    '[fe80::1%eth0]:2049',
    '[]:2049',
  ];
  for (const text of bad) {
    t.equal(parseAddrPort(text), null, JSON.stringify(text));
  }
});
