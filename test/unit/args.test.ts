import t from 'tap';
import { DEFAULT_CONFIG, parseArgs } from '../../src/cli/args';
import type { ParsedArgs } from '../../src/cli/args';

// The two real callers' vocabularies (src/cli/sharegw.ts and sharegwd.ts).
const CLI = { flags: ['json', 'help'], options: ['config', 'socket'] } as const;
const DAEMON = { flags: ['check-config', 'cleanup', 'help', 'version'], options: ['config'] } as const;

/** ParsedArgs as plain data for one strictSame. */
function plain(a: ParsedArgs): { flags: string[]; values: [string, string][]; positionals: string[]; unknown: string[] } {
  return { flags: [...a.flags].sort(), values: [...a.values.entries()].sort(), positionals: a.positionals, unknown: a.unknown };
}

function cli(argv: string[]): ReturnType<typeof plain> {
  return plain(parseArgs(argv, CLI.flags, CLI.options));
}

t.test('DEFAULT_CONFIG', async (t) => {
  t.equal(DEFAULT_CONFIG, '/etc/sharegw/sharegwd.yaml');
});

t.test('empty argv', async (t) => {
  const a = parseArgs([], CLI.flags, CLI.options);
  t.equal(a.flags.size, 0);
  t.equal(a.values.size, 0);
  t.strictSame(a.positionals, []);
  t.strictSame(a.unknown, []);
});

t.test('flags, both option forms and positionals, in any order', async (t) => {
  t.strictSame(cli(['status', '--json', '--socket', '/run/x.sock', 'extra', '--config=/etc/a.yaml']), {
    flags: ['json'],
    values: [
      ['config', '/etc/a.yaml'],
      ['socket', '/run/x.sock'],
    ],
    positionals: ['status', 'extra'],
    unknown: [],
  });
  t.strictSame(plain(parseArgs(['--check-config', '--config', 'c.yaml'], DAEMON.flags, DAEMON.options)), {
    flags: ['check-config'],
    values: [['config', 'c.yaml']],
    positionals: [],
    unknown: [],
  });
});

t.test('option values are taken verbatim', async (t) => {
  t.strictSame(cli(['--config=a=b=c']).values, [['config', 'a=b=c']], 'only the first = splits');
  t.strictSame(cli(['--config=']).values, [['config', '']], 'an explicit empty value');
  t.strictSame(cli(['--config', 'with space']).values, [['config', 'with space']]);
  t.strictSame(cli(['--config', '-']).values, [['config', '-']]);
  t.strictSame(cli(['--config', 'x', '--config', 'y']).values, [['config', 'y']], 'the last one wins');
});

t.test('a value option at the end lacks its value', async (t) => {
  t.strictSame(cli(['status', '--socket']), { flags: [], values: [], positionals: ['status'], unknown: ['--socket (needs a value)'] });
});

t.test('unknown options are reported, not guessed', async (t) => {
  t.strictSame(cli(['--verbose', '--json=yes', '--help', '--JSON', '--conf', 'x']), {
    flags: ['help'],
    values: [],
    positionals: ['x'],
    unknown: ['--verbose', '--json=yes', '--JSON', '--conf'],
  });
  t.strictSame(cli(['--check-config']).unknown, ['--check-config'], "the daemon's flags are not the CLI's");
  t.strictSame(cli(['--', '--json']), { flags: ['json'], values: [], positionals: [], unknown: ['--'] }, '-- is no end-of-options marker');
});

t.test('single-dash words are positionals', async (t) => {
  t.strictSame(cli(['-h', '-', 'reload']), { flags: [], values: [], positionals: ['-h', '-', 'reload'], unknown: [] });
});

t.test('a repeated flag is one flag; argv is not modified', async (t) => {
  const argv = ['--json', '--json', 'ping'];
  const a = parseArgs(argv, CLI.flags, CLI.options);
  t.strictSame([...a.flags], ['json']);
  t.strictSame(argv, ['--json', '--json', 'ping']);
});
