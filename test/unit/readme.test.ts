/**
 * The README's configuration example is a contract: it must validate as is,
 * and match the example files shipped in config/.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { validateConfig } from '../../src/config/validate';

const ROOT = path.resolve(__dirname, '../../..');
const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');

t.test('README has the daemon file and a domain file example', async (t) => {
  t.equal(blocks.filter((b) => b.startsWith('# sharegwd.yaml')).length, 1);
  t.equal(blocks.filter((b) => b.startsWith('# domains.d/acme.yaml')).length, 1);
});

t.test('the README example validates without problems or warnings', async (t) => {
  const daemon = blocks.find((b) => b.startsWith('# sharegwd.yaml')) ?? '';
  const domain = blocks.find((b) => b.startsWith('# domains.d/acme.yaml')) ?? '';
  const r = validateConfig({ file: '/etc/sharegw/sharegwd.yaml', text: daemon }, [{ file: '/etc/sharegw/domains.d/acme.yaml', text: domain }], '/etc/sharegw/domains.d');
  t.same(r.problems, []);
  t.not(r.config, null);
  t.equal(r.config?.domains[0]?.name, 'acme');
  t.equal(r.config?.daemon.dataplane, 'kernel');
});

t.test('config/ holds the same example as the README (comments aside)', async (t) => {
  const strip = (s: string): string =>
    s
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .map((l) => l.replace(/\s+#.*$/, '').trimEnd())
      .filter((l) => l !== '')
      .join('\n');
  const domain = blocks.find((b) => b.startsWith('# domains.d/acme.yaml')) ?? '';
  t.equal(strip(fs.readFileSync(path.join(ROOT, 'config/domains.d/acme.yaml'), 'utf8')), strip(domain));
  const daemon = blocks.find((b) => b.startsWith('# sharegwd.yaml')) ?? '';
  t.equal(strip(fs.readFileSync(path.join(ROOT, 'config/sharegwd.yaml'), 'utf8')), strip(daemon));
});
