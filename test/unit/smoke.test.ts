import t from 'tap';
import { parseIp } from '../../src/util/ip';

t.test('parseIp() returns canonical text', async (t) => {
  t.equal(parseIp('198.18.0.1')?.text, '198.18.0.1');
});
