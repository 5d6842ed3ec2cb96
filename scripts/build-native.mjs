// npm `install` script: builds the optional native shims (native-shims/)
// with node-gyp. The daemon runs without them (src/native/ falls back), so
// a failed build prints one line and the install goes on, unless
// SGW_NATIVE_REQUIRED=1 (CI) makes it fatal. SGW_NATIVE=off skips the build.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = path.join(root, 'native-shims');
const required = process.env.SGW_NATIVE_REQUIRED === '1';

if (process.env.SGW_NATIVE === 'off' && !required) {
  console.log('sharegw: SGW_NATIVE=off, native shims not built (the daemon uses its fallbacks)');
  process.exit(0);
}

// npm hands scripts its bundled node-gyp; outside npm, look for npm's copy
// next to this node, else use one from PATH.
const bundled = path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
const gyp = process.env.npm_config_node_gyp || (existsSync(bundled) ? bundled : undefined);
// Build against this node's own headers when they are installed beside it
// (no download); npm passes its configured nodedir itself.
const prefix = path.resolve(path.dirname(process.execPath), '..');
const nodedir = !process.env.npm_config_nodedir && existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
const [cmd, args] = gyp ? [process.execPath, [gyp, 'rebuild', ...nodedir]] : ['node-gyp', ['rebuild', ...nodedir]];
const r = spawnSync(cmd, args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
if (r.status === 0) {
  console.log('sharegw: native shims built (native-shims/build/Release/sharegw_native.node)');
  process.exit(0);
}
// The compiler's first error, else node-gyp's first complaint.
const lines = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.split('\n');
const why = r.error?.message ?? lines.find((l) => /\berror:/.test(l)) ?? lines.find((l) => /gyp ERR!/.test(l)) ?? `node-gyp exited with ${r.status}`;
if (required) {
  process.stderr.write(`${r.stdout ?? ''}${r.stderr ?? ''}`);
  console.error(`sharegw: native shims failed to build and SGW_NATIVE_REQUIRED=1: ${why}`);
  process.exit(1);
}
console.log(`sharegw: native shims not built, the daemon will use its fallbacks (${why.slice(0, 200)})`);
