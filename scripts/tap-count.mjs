// Counts test cases in TAP streams written by `tap --reporter=tap`: each
// subtest directly inside a test file (one `t.test(...)`) is one case. A file
// that failed without a failing case (a crash, a timeout) counts as one
// failure. Extra arguments `name=ok|fail` add named checks (lint, typecheck).
// Prints the failures and the closing line "N passed, N failed"; exits 1 when
// anything failed or nothing ran at all.
import { existsSync, readFileSync } from 'node:fs';

let passed = 0;
let failed = 0;
const failures = [];

function count(ok, name) {
  if (ok) {
    passed++;
  } else {
    failed++;
    failures.push(name);
  }
}

for (const arg of process.argv.slice(2)) {
  const named = /^([\w:-]+)=(ok|fail)$/.exec(arg);
  if (named) {
    count(named[2] === 'ok', named[1]);
    continue;
  }
  if (!existsSync(arg)) {
    count(false, `${arg} (no TAP output)`);
    continue;
  }
  let failedCases = 0;
  for (const line of readFileSync(arg, 'utf8').split('\n')) {
    const sub = /^ {4}(not ok|ok) \d+ - (.*?)(?: # (time=|SKIP|TODO).*)?$/.exec(line);
    if (sub) {
      if (sub[3] === 'SKIP' || sub[3] === 'TODO') {
        continue;
      }
      count(sub[1] === 'ok', sub[2]);
      failedCases += sub[1] === 'ok' ? 0 : 1;
      continue;
    }
    const file = /^(not ok|ok) \d+ - (\S+)/.exec(line);
    if (file) {
      if (file[1] === 'not ok' && failedCases === 0) {
        count(false, `${file[2]} (failed outside its test cases)`);
      }
      failedCases = 0;
    }
  }
}

if (failures.length > 0) {
  console.log('\nFailed:');
  for (const f of failures) {
    console.log(`  - ${f}`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
