/**
 * The configuration examples of README.md and docs/*.md are a contract: each
 * must validate as is, and the README's must match the example files shipped
 * in config/.
 *
 * Every YAML block says what it is in its first line:
 * - `# sharegwd.yaml`: a whole daemon file (checked with the README's domain);
 * - `# domains.d/<name>.yaml`: a whole domain file (with the README's daemon);
 * - `# in sharegwd.yaml` or `# in domains.d/acme.yaml`: a fragment, added to
 *   the README's example of that file.
 * A block without such a line fails, so no example escapes the check.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { validateConfig } from '../../src/config/validate';

const ROOT = path.resolve(__dirname, '../../..');
const yamlBlocks = (text: string): string[] => [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const blocks = yamlBlocks(readme);

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

// The `cloud: mycloud` of the Manila example names this entry.
const CLOUDS = {
  file: '/etc/sharegw/clouds.yaml',
  text: 'clouds:\n  mycloud:\n    auth:\n      auth_url: https://keystone.example:5000/v3\n      username: sharegw\n      password: secret-of-the-example\n      project_name: service\n',
};

t.test('every YAML example in docs/*.md validates without problems or warnings', async (t) => {
  const baseDaemon = blocks.find((b) => b.startsWith('# sharegwd.yaml')) ?? '';
  const baseDomain = blocks.find((b) => b.startsWith('# domains.d/acme.yaml')) ?? '';
  const dir = path.join(ROOT, 'docs');
  const pages = fs.readdirSync(dir).filter((f) => f.endsWith('.md')).sort();
  let checked = 0;
  for (const page of pages) {
    for (const [i, block] of yamlBlocks(fs.readFileSync(path.join(dir, page), 'utf8')).entries()) {
      const name = `docs/${page}, YAML block ${i + 1}`;
      const head = block.split('\n', 1)[0] ?? '';
      let daemon = baseDaemon;
      let domain = baseDomain;
      let domainFile = 'acme.yaml';
      const whole = /^# (sharegwd\.yaml|domains\.d\/([a-z0-9_.-]+\.yaml))(\s|$)/.exec(head);
      const part = /^# in (sharegwd\.yaml|domains\.d\/acme\.yaml)$/.exec(head.trimEnd());
      if (whole !== null) {
        if (whole[2] === undefined) {
          daemon = block;
        } else {
          domain = block;
          domainFile = whole[2];
        }
      } else if (part !== null) {
        if (part[1] === 'sharegwd.yaml') {
          daemon = `${baseDaemon}${block}`;
        } else {
          domain = `${baseDomain}${block}`;
        }
      } else {
        t.fail(`${name}: the first line must name its file ("# sharegwd.yaml", "# domains.d/<name>.yaml", "# in sharegwd.yaml", "# in domains.d/acme.yaml"), not ${JSON.stringify(head)}`);
        continue;
      }
      const r = validateConfig({ file: '/etc/sharegw/sharegwd.yaml', text: daemon }, [{ file: `/etc/sharegw/domains.d/${domainFile}`, text: domain }], '/etc/sharegw/domains.d', CLOUDS);
      t.same(r.problems, [], name);
      t.not(r.config, null, name);
      checked++;
    }
  }
  // docs/configuration.md holds both files and the egress and Manila fragments.
  t.ok(checked >= 4, `${checked} examples checked`);
});
