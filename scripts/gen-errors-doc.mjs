// Writes docs/errors.md from the error catalogue (src/errors/catalogue.ts),
// through the compiled renderer in dist/. Run after `tsc` (npm run
// docs:errors builds first). With --check it only compares and exits 1 when
// the file is out of date; test/unit/errors-catalogue.test.ts makes the same
// comparison, so a catalogue change without this run fails the suite.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const { CATALOGUE } = require(path.join(root, 'dist/src/errors/catalogue.js'));
const { renderErrorsDoc } = require(path.join(root, 'dist/src/errors/doc.js'));

const file = path.join(root, 'docs/errors.md');
const text = renderErrorsDoc(CATALOGUE);
if (process.argv.includes('--check')) {
  let have = '';
  try {
    have = readFileSync(file, 'utf8');
  } catch {
    // A missing file is out of date like any other.
  }
  if (have !== text) {
    process.stderr.write('docs/errors.md is out of date: run npm run docs:errors\n');
    process.exitCode = 1;
  }
} else {
  writeFileSync(file, text);
}
