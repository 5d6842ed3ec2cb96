// Lint rules; the layer rules keep pure modules pure (see docs/adr/0001).
import tseslint from 'typescript-eslint';
import n from 'eslint-plugin-n';

const io = ['node:child_process', 'child_process', 'node:fs', 'node:fs/promises', 'node:net', 'node:dgram', 'node:http', 'node:https'];
const pureImports = {
  paths: io.map((name) => ({ name, message: 'pure layer: no I/O here (STYLE.md, ADR 0001)' })),
  patterns: [{ group: ['**/host/*', '**/tunnels/*', '**/admin/*', '**/daemon'], message: 'pure layer: no I/O modules' }],
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'bench/node_modules/**', 'coverage/**', '.tap/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    plugins: { n },
    rules: {
      curly: ['error', 'all'],
      'no-console': 'error',
      'no-case-declarations': 'error',
      'n/prefer-node-protocol': 'error',
      'n/no-process-exit': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // Processes are started in src/host/exec.ts only; everything else calls
    // its wrappers (host/{iptables,iproute,conntrack,systemd-notify}.ts, ADR 0013).
    files: ['src/**/*.ts'],
    ignores: ['src/host/exec.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { paths: ['node:child_process', 'child_process'].map((name) => ({ name, message: 'only src/host/exec.ts spawns processes (ADR 0013): use a src/host/ wrapper' })) },
      ],
    },
  },
  {
    // Native code is loaded, and sockets' file descriptors reached, in src/native/ only (ADR 0010).
    files: ['src/**/*.ts'],
    ignores: ['src/native/**/*.ts', 'src/cli/sharegwd.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        { selector: "CallExpression[callee.name='require']", message: 'only src/native/ loads modules at run time (native code: ADR 0010)' },
        { selector: "MemberExpression[property.name='_handle']", message: "only src/native/ reaches a socket's handle (ADR 0010)" },
        { selector: "ImportExpression[source.value=/^(node:)?child_process$/]", message: 'only src/host/exec.ts spawns processes (ADR 0013): use a src/host/ wrapper' },
      ],
    },
  },
  {
    files: ['src/model/**/*.ts', 'src/policy/**/*.ts', 'src/control/manila/sync.ts', 'src/control/manila/schemas.ts', 'src/config/validate/**/*.ts', 'src/config/resolve-tables.ts', 'src/config/clouds.ts', 'src/config/schema.ts', 'src/config/yaml-source.ts', 'src/dataplane/kernel/render.ts', 'src/dataplane/kernel/chains.ts', 'src/dataplane/kernel/save-parse.ts', 'src/util/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', pureImports] },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
);
