import t from 'tap';
import { parseEvent } from '../../src/dataplane/kernel/flow-events';

t.test('parseEvent() reads NEW, UPDATE and DESTROY lines as conntrack -E prints them', async (t) => {
  const n = parseEvent('    [NEW] tcp      6 120 SYN_SENT src=169.254.1.2 dst=198.18.0.100 sport=891 dport=2049 [UNREPLIED] src=198.18.0.100 dst=198.18.0.11 sport=2049 dport=891');
  t.equal(n?.type, 'new');
  t.match(n?.flow, { state: 'SYN_SENT', orig: { src: '169.254.1.2', dst: '198.18.0.100', sport: 891, dport: 2049 }, reply: { dst: '198.18.0.11' }, unreplied: true });
  const u = parseEvent(' [UPDATE] tcp      6 10 CLOSE src=169.254.1.2 dst=198.18.0.100 sport=891 dport=2049 src=198.18.0.100 dst=198.18.0.11 sport=2049 dport=891 [ASSURED]');
  t.equal(u?.type, 'update');
  t.equal(u?.flow.state, 'CLOSE');
  const d = parseEvent('[DESTROY] tcp      6 src=169.254.1.2 dst=198.18.0.100 sport=891 dport=2049 packets=12 bytes=1500 src=198.18.0.100 dst=198.18.0.11 sport=2049 dport=891 packets=10 bytes=9000 [ASSURED]');
  t.equal(d?.type, 'destroy');
  t.match(d?.flow, { orig: { bytes: 1500, packets: 12 }, reply: { bytes: 9000, packets: 10 } });
});

t.test('parseEvent() returns null for anything else', async (t) => {
  for (const line of ['', 'conntrack v1.4.7 (conntrack-tools): 3 flow events have been shown.', '[NEW] garbage', '[BOGUS] tcp 6 1 CLOSE src=1.2.3.4 dst=1.2.3.5 sport=1 dport=2 src=1.2.3.5 dst=1.2.3.4 sport=2 dport=1']) {
    t.equal(parseEvent(line), null, JSON.stringify(line));
  }
});
