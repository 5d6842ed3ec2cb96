/**
 * Issue 14, what the fuzzers found (test/fuzz, docs/fuzzing.md):
 *
 * - config.validateConfig: a YAML alias without its anchor (`key: *nope`),
 *   or one expanded too often, made validateConfig throw the yaml
 *   library's ReferenceError instead of returning a SGW_ERR_CONFIG_YAML
 *   problem (found by config.validateConfig, seed 0x14f022, input 5681);
 * - smb-stream.SmbStream: after a refusal on one side, the other side's
 *   bytes were still passed on (found by smb-stream.SmbStream at its
 *   first inputs); fatal means unusable, both ways.
 */
import t from 'tap';
import { validateConfig } from '../../src/config/validate';
import { SmbStream } from '../../src/protocols/smb-stream';
import { smbHeader, smbNegotiateRequest } from '../fuzz/corpus';

const DAEMON = 'node: hv-test\ndataplane: proxy\ndomainsDir: domains.d\nstateDir: /tmp/sgw-state\n';

t.test('validateConfig() returns SGW_ERR_CONFIG_YAML when an alias has no anchor', async (t) => {
  for (const text of [`${DAEMON}adminSocket: *nope\n`, `${DAEMON}? *nope\n`]) {
    const r = validateConfig({ file: '/etc/sharegw/sharegwd.yaml', text }, [], '/etc/sharegw/domains.d');
    t.equal(r.config, null);
    t.match(r.problems, [{ code: 'SGW_ERR_CONFIG_YAML', file: '/etc/sharegw/sharegwd.yaml', message: /alias/i }]);
  }
});

t.test('validateConfig() returns SGW_ERR_CONFIG_YAML when aliases expand too often', async (t) => {
  const text = `${DAEMON}x: &a [1, 2]\ny: [${Array.from({ length: 200 }, () => '*a').join(', ')}]\n`;
  const r = validateConfig({ file: '/etc/sharegw/sharegwd.yaml', text }, [], '/etc/sharegw/domains.d');
  t.equal(r.config, null);
  t.match(r.problems, [{ code: 'SGW_ERR_CONFIG_YAML' }]);
});

const frame = (msg: Buffer): Buffer => {
  const p = Buffer.alloc(4);
  p.writeUIntBE(msg.length, 1, 3);
  return Buffer.concat([p, msg]);
};

t.test('SmbStream.fromBackend() refuses after the guest side was refused', async (t) => {
  const st = new SmbStream({ minDialect: 0x0300, encryptionRequired: false, shares: null });
  const r = st.fromGuest(frame(Buffer.concat([Buffer.from([0xff, 0x53, 0x4d, 0x42]), Buffer.alloc(40)])));
  t.equal(r.refusal?.reason, 'smb1');
  const after = st.fromBackend(frame(Buffer.concat([smbHeader(0, { response: true }), Buffer.alloc(65)])));
  t.equal(after.refusal?.reason, 'smb1', 'the same refusal');
  t.same(after.toGuest, [], 'nothing passes');
});

t.test('SmbStream.fromGuest() refuses after the backend side was refused', async (t) => {
  const st = new SmbStream({ minDialect: 0x0300, encryptionRequired: false, shares: null });
  t.equal(st.fromGuest(frame(smbNegotiateRequest([0x0311]))).refusal, undefined);
  const r = st.fromBackend(Buffer.from([1, 0, 0, 4, 0, 0, 0, 0]));
  t.equal(r.refusal?.code, 'SGW_ERR_PROTO_FRAMING');
  const after = st.fromGuest(frame(Buffer.concat([smbHeader(1), Buffer.alloc(24)])));
  t.equal(after.refusal?.code, 'SGW_ERR_PROTO_FRAMING', 'the same refusal');
  t.same(after.toBackend, [], 'nothing passes');
});
