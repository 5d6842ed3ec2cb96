import t from 'tap';
import { Counters } from '../../src/observability/counters';

t.test('a fresh counter reads 0 and is not in the snapshot', async (t) => {
  const c = new Counters();
  t.equal(c.get('sharegw_x_total'), 0);
  t.equal(c.get('sharegw_x_total', { code: 'A' }), 0);
  t.strictSame(c.snapshot(), {});
});

t.test('inc() adds 1 by default, or n', async (t) => {
  const c = new Counters();
  c.inc('sharegw_reloads_total');
  c.inc('sharegw_reloads_total');
  t.equal(c.get('sharegw_reloads_total'), 2);
  c.inc('sharegw_proxy_bytes_total', { dir: 'up' }, 1500);
  c.inc('sharegw_proxy_bytes_total', { dir: 'up' }, 36);
  t.equal(c.get('sharegw_proxy_bytes_total', { dir: 'up' }), 1536);
  t.equal(c.get('sharegw_proxy_bytes_total', { dir: 'down' }), 0, 'other label values are other counters');
  t.equal(c.get('sharegw_proxy_bytes_total'), 0, 'no labels is another counter');
  t.equal(c.get('sharegw_reloads_total', {}), 2, '{} is the same as no labels');
});

t.test('label order does not matter', async (t) => {
  const c = new Counters();
  c.inc('sharegw_m', { b: '2', a: '1' });
  c.inc('sharegw_m', { a: '1', b: '2' }, 4);
  t.equal(c.get('sharegw_m', { a: '1', b: '2' }), 5);
  t.equal(c.get('sharegw_m', { b: '2', a: '1' }), 5);
  t.strictSame(c.snapshot(), { 'sharegw_m{a="1",b="2"}': 5 });
});

t.test('snapshot() uses the exposition format and is sorted', async (t) => {
  const c = new Counters();
  c.inc('sharegw_reloads_total', { result: 'ok' });
  c.inc('sharegw_admin_errors_total', { code: 'SGW_ERR_ADMIN_BAD_JSON' });
  c.inc('sharegw_reloads_total', { result: 'rejected' }, 3);
  c.inc('sharegw_reloads_total');
  c.inc('sharegw_proxy_connections_total', { domain: 'acme', guest: 'g1' }, 7);
  const s = c.snapshot();
  t.strictSame(s, {
    'sharegw_admin_errors_total{code="SGW_ERR_ADMIN_BAD_JSON"}': 1,
    'sharegw_proxy_connections_total{domain="acme",guest="g1"}': 7,
    sharegw_reloads_total: 1,
    'sharegw_reloads_total{result="ok"}': 1,
    'sharegw_reloads_total{result="rejected"}': 3,
  });
  t.strictSame(Object.keys(s), [
    'sharegw_admin_errors_total{code="SGW_ERR_ADMIN_BAD_JSON"}',
    'sharegw_proxy_connections_total{domain="acme",guest="g1"}',
    'sharegw_reloads_total',
    'sharegw_reloads_total{result="ok"}',
    'sharegw_reloads_total{result="rejected"}',
  ], 'keys in sorted order');
});

t.test('snapshot() is a copy', async (t) => {
  const c = new Counters();
  c.inc('sharegw_x_total');
  const s = c.snapshot();
  s['sharegw_x_total'] = 99;
  s['sharegw_y_total'] = 1;
  t.equal(c.get('sharegw_x_total'), 1);
  t.strictSame(c.snapshot(), { sharegw_x_total: 1 });
});
