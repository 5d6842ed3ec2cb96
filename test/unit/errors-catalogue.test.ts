// The error catalogue is the one list of codes: every SGW_ERR_/SGW_WARN_
// code written anywhere in src/ is in it, every entry is still used, and
// docs/errors.md is what the generator makes of it.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { CATALOGUE, isErrorCode } from '../../src/errors';
import { renderErrorsDoc } from '../../src/errors/doc';

const REPO = path.resolve(__dirname, '../../..');
const CATALOGUE_FILE = 'src/errors/catalogue.ts';
// A token ending in `_` is an area prefix (CodeOf<'SGW_ERR_PROTO_'>), not a code.
const CODE = /SGW_(?:ERR|WARN)_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_])/g;

/** Every .ts file under src/, as repo-relative paths. */
function sources(dir = 'src'): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(REPO, dir), { withFileTypes: true })) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) {
      out.push(...sources(rel));
    } else if (e.name.endsWith('.ts')) {
      out.push(rel);
    }
  }
  return out;
}

/** Code → the files that mention it (text scan: call sites, log fields, labels, comments). */
function usedCodes(): Map<string, string[]> {
  const used = new Map<string, string[]>();
  for (const f of sources()) {
    // The catalogue names every code; it does not use them.
    if (f === CATALOGUE_FILE) {
      continue;
    }
    for (const m of fs.readFileSync(path.join(REPO, f), 'utf8').matchAll(CODE)) {
      used.set(m[0], [...(used.get(m[0]) ?? []), f]);
    }
  }
  return used;
}

t.test('catalogue lists every code used in src/', async (t) => {
  const used = usedCodes();
  t.ok(used.size > 50, `the scan finds the codes (${used.size})`);
  const missing = [...used].filter(([c]) => !isErrorCode(c)).map(([c, files]) => `${c} (${[...new Set(files)].join(', ')})`);
  t.strictSame(missing, [], 'codes used in src/ but not in src/errors/catalogue.ts');
});

t.test('catalogue has no entry that src/ no longer uses', async (t) => {
  const used = usedCodes();
  const stale = Object.keys(CATALOGUE).filter((c) => !used.has(c));
  t.strictSame(stale, [], 'entries of src/errors/catalogue.ts that no file in src/ uses');
});

t.test('catalogue entries name a meaning, an action and a surface', async (t) => {
  for (const [code, e] of Object.entries(CATALOGUE)) {
    // SGW_ERR_INTERNAL predates the <AREA>_<WHAT> rule; codes are API, so it stays.
    t.match(code, /^SGW_(ERR|WARN)_[A-Z0-9]+(_[A-Z0-9]+)*$/, `${code}: SGW_ERR_<AREA>[_<WHAT>]`);
    t.ok(e.meaning.length > 10 && e.action.length > 3 && e.surfaces.length > 0, `${code}: meaning, action, surfaces`);
  }
});

t.test('renderErrorsDoc() matches docs/errors.md', async (t) => {
  const have = fs.readFileSync(path.join(REPO, 'docs/errors.md'), 'utf8');
  t.equal(have, renderErrorsDoc(CATALOGUE), 'docs/errors.md is up to date (npm run docs:errors)');
  for (const code of Object.keys(CATALOGUE)) {
    t.ok(have.includes(`\`${code}\``), `${code} is documented`);
  }
});

t.test('gen-errors-doc.mjs --check passes on the committed docs/errors.md', async (t) => {
  // The script is what operators and CI run; check it agrees with the test.
  t.doesNotThrow(() => execFileSync(process.execPath, [path.join(REPO, 'scripts/gen-errors-doc.mjs'), '--check'], { stdio: 'pipe' }));
});
