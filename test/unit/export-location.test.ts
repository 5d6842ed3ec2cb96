import t from 'tap';
import { parseExportLocation } from '../../src/model/export-location';
import type { ExportLocation, ShareProto } from '../../src/model/export-location';

const V4 = { family: 4, text: '198.18.0.100', value: 0xc6120064n } as const;
const V6 = { family: 6, text: '2001:db8::100', value: (0x20010db8n << 96n) + 0x100n } as const;

/** Each raw location must parse to exactly { raw, host, path }. */
function parsesTo(t: { strictSame: (a: unknown, b: unknown, msg: string) => boolean }, proto: ShareProto, cases: [string, ExportLocation['host'], string][]): void {
  for (const [raw, host, path] of cases) {
    const want: ExportLocation = { raw, host, path };
    t.strictSame(parseExportLocation(proto, raw), want, `${proto} ${raw}`);
  }
}

const NFS_SHAPE = 'expected HOST:/path (IPv6 as [addr]:/path)';
const CIFS_SHAPE = 'expected \\\\HOST\\share or //HOST/share';

t.test('NFS export locations', async (t) => {
  parsesTo(t, 'NFS', [
    ['198.18.0.100:/export/acme', V4, '/export/acme'],
    ['198.18.0.100:/', V4, '/'],
    ['198.18.0.100:/share-1/with:colon', V4, '/share-1/with:colon'],
    ['[2001:db8::100]:/export/v6', V6, '/export/v6'],
    ['[2001:DB8:0:0::100]:/export/v6', V6, '/export/v6'],
  ]);
});

t.test('NFS: bad export locations', async (t) => {
  const shape = ['', '198.18.0.100', '198.18.0.100:', '198.18.0.100:export', ':/export', '2001:db8::100:/export', '[2001:db8::100:/export', '2001:db8::100]:/export', '[]:/export', '//198.18.0.100/acme', '\\\\198.18.0.100\\acme'];
  for (const raw of shape) {
    t.equal(parseExportLocation('NFS', raw), NFS_SHAPE, JSON.stringify(raw));
  }
  t.equal(parseExportLocation('NFS', 'nfs.example.com:/export'), 'host "nfs.example.com" is not an IP address (names are not resolved)');
  t.equal(parseExportLocation('NFS', '198.18.0.256:/export'), 'host "198.18.0.256" is not an IP address (names are not resolved)');
  t.equal(parseExportLocation('NFS', '[nfs.example.com]:/export'), 'host "nfs.example.com" is not an IP address (names are not resolved)');
  t.equal(parseExportLocation('NFS', '[fe80::1%eth0]:/export'), 'host "fe80::1%eth0" is not an IP address (names are not resolved)');
});

t.test('CIFS export locations', async (t) => {
  parsesTo(t, 'CIFS', [
    ['\\\\198.18.0.100\\acme', V4, 'acme'],
    ['//198.18.0.100/acme', V4, 'acme'],
    ['//198.18.0.100/acme/', V4, 'acme'],
    ['\\\\198.18.0.100\\acme\\', V4, 'acme'],
    ['//[2001:db8::100]/v6', V6, 'v6'],
    ['\\\\[2001:db8:0::100]\\v6', V6, 'v6'],
    ['//198.18.0.100/share_with-odd.chars$', V4, 'share_with-odd.chars$'],
  ]);
});

t.test('CIFS: bad export locations', async (t) => {
  const shape = ['', 'acme', '198.18.0.100\\acme', '198.18.0.100/acme', '\\198.18.0.100\\acme', '/198.18.0.100/acme', '//198.18.0.100', '//198.18.0.100/', '\\\\198.18.0.100\\', '///acme', '//198.18.0.100/acme/sub', '\\\\198.18.0.100\\acme\\sub', '198.18.0.100:/export'];
  for (const raw of shape) {
    t.equal(parseExportLocation('CIFS', raw), CIFS_SHAPE, JSON.stringify(raw));
  }
  t.equal(parseExportLocation('CIFS', '//fileserver/acme'), 'host "fileserver" is not an IP address (names are not resolved)');
  t.equal(parseExportLocation('CIFS', '\\\\fs.example.com\\acme'), 'host "fs.example.com" is not an IP address (names are not resolved)');
  t.equal(parseExportLocation('CIFS', '//[2001:db8::100/v6'), 'host "[2001:db8::100" is not an IP address (names are not resolved)', 'an unbalanced [ is refused');
  t.equal(parseExportLocation('CIFS', '//2001:db8::100]/v6'), 'host "2001:db8::100]" is not an IP address (names are not resolved)', 'an unbalanced ] is refused');
  t.equal(parseExportLocation('CIFS', '//[]/v6'), 'host "" is not an IP address (names are not resolved)');
});
