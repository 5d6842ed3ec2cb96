/**
 * src/native's loader: one place decides native or fallback, and only
 * "not there" or "not loadable here" mean fallbacks.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { DEFAULT_ADDON_PATH, SHIMS, loadNative, logNativeOnce, nativeStatus, tryLoad } from '../../src/native';
import { createLogger } from '../../src/observability/logger';

t.test('tryLoad() falls back with a reason when SGW_NATIVE=off, the file is missing or not an ELF for this host', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgw-native-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const junk = path.join(dir, 'junk.node');
  fs.writeFileSync(junk, 'not an ELF file at all, just text that is long enough');
  const cases: [NodeJS.ProcessEnv, RegExp][] = [
    [{ SGW_NATIVE: 'off' }, /^SGW_NATIVE=off$/],
    [{ SGW_NATIVE_ADDON: path.join(dir, 'missing.node') }, /^addon not built/],
    [{ SGW_NATIVE_ADDON: junk }, /^addon not loadable here: .*(invalid ELF|file too short)/],
  ];
  for (const [env, reason] of cases) {
    const l = tryLoad(env);
    t.equal(l.binding, null, JSON.stringify(env));
    t.equal(l.status.loaded, false);
    t.match(l.status.reason, reason);
    t.strictSame(Object.keys(l.status.shims), [...SHIMS]);
    t.ok(Object.values(l.status.shims).every((v) => v === 'fallback'), 'every shim on its fallback');
  }
});

t.test('tryLoad() loads the built addon and passes its smoke call', { skip: fs.existsSync(DEFAULT_ADDON_PATH) ? false : `not built: ${DEFAULT_ADDON_PATH}` }, async (t) => {
  const l = tryLoad({});
  t.equal(l.status.loaded, true, String(l.status.reason));
  t.ok(Object.values(l.status.shims).every((v) => v === 'native'));
  t.equal(typeof l.binding?.SpliceRelay, 'function');
});

t.test('loadNative() decides once per process; nativeStatus() reports it; logNativeOnce() logs once', async (t) => {
  t.equal(loadNative(), loadNative(), 'cached');
  t.equal(nativeStatus(), loadNative().status);
  t.equal(nativeStatus().loaded, process.env['SGW_NATIVE'] !== 'off' && fs.existsSync(DEFAULT_ADDON_PATH), 'loaded exactly when built and not turned off');
  const out: string[] = [];
  const log = createLogger('info', { write: (s: string) => void out.push(s) });
  logNativeOnce(log);
  logNativeOnce(log);
  t.equal(out.length, 1, 'one line');
  const rec = JSON.parse(out[0] ?? '{}') as { level: number; msg: string };
  t.equal(rec.msg, nativeStatus().loaded ? 'native shims loaded' : 'native shims not loaded; running on the TypeScript fallbacks');
  t.equal(rec.level, nativeStatus().loaded ? 30 : 40, 'a warning when on fallbacks');
});
