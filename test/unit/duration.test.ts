import t from 'tap';
import { parseDuration } from '../../src/config/duration';

t.test('parseDuration() converts every unit to milliseconds', async (t) => {
  const cases: [string | number, number][] = [
    ['250ms', 250],
    ['0ms', 0],
    ['10s', 10_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['24h', 86_400_000],
    ['1.5s', 1_500],
    ['0.25m', 15_000],
    ['0.4ms', 0],
    ['0.6ms', 1],
    ['10', 10_000],
    ['0', 0],
    ['  5m\t', 300_000],
    [0, 0],
    [3, 3_000],
    [0.5, 500],
    [0.0004, 0],
  ];
  for (const [input, ms] of cases) {
    t.equal(parseDuration(input), ms, `${typeof input === 'string' ? JSON.stringify(input) : String(input)} is ${ms} ms`);
  }
});

t.test('parseDuration() rejects what is not a duration', async (t) => {
  const bad: (string | number)[] = [
    '',
    ' ',
    'ms',
    's10',
    '1d',
    '1w',
    '10 s',
    '10S',
    '1h30m',
    '-1s',
    '-1',
    '+1s',
    '.5s',
    '5.s',
    '1e3',
    '0x10',
    '10sec',
    -1,
    -0.001,
    Number.NaN,
    Number.POSITIVE_INFINITY,
  ];
  for (const input of bad) {
    t.equal(parseDuration(input), null, `${typeof input === 'string' ? JSON.stringify(input) : String(input)} is refused`);
  }
});
