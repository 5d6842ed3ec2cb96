/**
 * The Manila source's loop with a stand-in client (the client has its own
 * tests against a fake server): per-domain last-known-good, change
 * notification, persistence and restore, follow-up syncs while rules move.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import type { ManilaClient } from '../../src/control/manila/client';
import type { AccessRuleRecord, ManilaShare, ShareNetwork } from '../../src/control/manila/schemas';
import { ManilaSource } from '../../src/control/manila/source';
import { ManilaError } from '../../src/errors';
import type { ManilaSettings } from '../../src/model/config';
import { Counters } from '../../src/observability/counters';
import { createLogger } from '../../src/observability/logger';

class StandIn {
  calls: Record<string, number> = {};
  network: ShareNetwork | null = { id: 'sn1', project_id: 'p', status: 'active', share_network_subnets: [] };
  shareList: ManilaShare[] = [{ id: 's1', name: 'acme', status: 'available', share_proto: 'NFS', share_network_id: 'sn1', project_id: 'p' }];
  rules: AccessRuleRecord[] = [{ id: 'r1', access_type: 'ip', access_to: '198.19.0.5', access_level: 'rw', state: 'active' }];
  fail: ManilaError | null = null;
  http = { stats: { requests: 0, retries: 0 } };
  tokens = { issued: 0 };
  private count(k: string): void {
    this.calls[k] = (this.calls[k] ?? 0) + 1;
    this.http.stats.requests++;
    if (this.fail !== null) {
      throw this.fail;
    }
  }
  features(): Promise<{ networkStatus: boolean; encryption: boolean; microversion: string }> {
    return Promise.resolve({ networkStatus: true, encryption: false, microversion: '2.73' });
  }
  async shareNetwork(): Promise<ShareNetwork | null> {
    this.count('network');
    return Promise.resolve(this.network);
  }
  async securityServices(): Promise<[]> {
    this.count('ss');
    return Promise.resolve([]);
  }
  async shares(): Promise<ManilaShare[]> {
    this.count('shares');
    return Promise.resolve(this.shareList);
  }
  async exportLocations(): Promise<{ id: string; path: string; preferred: boolean }[]> {
    this.count('locations');
    return Promise.resolve([{ id: 'e1', path: '198.18.0.100:/export/acme', preferred: true }]);
  }
  async accessRules(): Promise<AccessRuleRecord[]> {
    this.count('rules');
    return Promise.resolve(this.rules);
  }
  close(): void {}
}

const SETTINGS: ManilaSettings = {
  cloud: null,
  authUrl: null,
  auth: { type: 'noauth', user: 'admin', project: 'p' },
  endpoint: 'http://127.0.0.1:1/v2',
  interface: 'public',
  region: null,
  caFile: null,
  timeoutMs: 1000,
  intervalMs: 150,
  minIntervalMs: 20,
  notifications: null,
  notificationsExchange: 'openstack',
};

const DOMAINS = [{ name: 'acme', project: 'p', shareNetwork: 'sn1' }];

function make(t: { teardown(fn: () => unknown): void }, client: StandIn, dir: string): { source: ManilaSource; changes: () => number; logs: string[] } {
  let changes = 0;
  const logs: string[] = [];
  const source = new ManilaSource({
    settings: SETTINGS,
    node: 'hv1',
    stateDir: dir,
    log: createLogger('debug', new Writable({ write: (c: Buffer, _e, cb) => (logs.push(c.toString()), cb()) })),
    counters: new Counters(),
    onChange: () => changes++,
    client: client as unknown as ManilaClient,
    followUpMs: 250,
  });
  t.teardown(() => source.stop());
  return { source, changes: () => changes, logs };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('ManilaSource.start() syncs, persists, and reports a change once', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgw-src-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const c = new StandIn();
  const { source, changes } = make(t, c, dir);
  await source.start(DOMAINS);
  t.same(source.snapshot().get('acme')?.shares[0]?.accessRules, [{ accessType: 'ip', accessTo: '198.19.0.5', accessLevel: 'rw' }]);
  t.equal(changes(), 1);
  t.ok(fs.existsSync(path.join(dir, 'manila.json')));
  t.equal((fs.statSync(path.join(dir, 'manila.json')).mode & 0o777).toString(8), '600');
  await sleep(400);
  t.equal(changes(), 1, 'periodic syncs that change nothing do not call back');
  t.equal(c.calls['locations'], 1, 'export locations read once for an unchanged share');
  t.ok((c.calls['rules'] ?? 0) >= 3, 'rules read at every sync');
});

t.test('ManilaSource keeps the last-known-good state of a failing domain and restores it after a restart', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgw-src-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const c = new StandIn();
  const a = make(t, c, dir);
  await a.source.start(DOMAINS);
  c.fail = new ManilaError('SGW_ERR_MANILA_UNREACHABLE', 'GET http://x/v2: ECONNREFUSED');
  await sleep(300);
  const st = a.source.status();
  t.equal(st.lastError?.code, 'SGW_ERR_MANILA_UNREACHABLE');
  t.equal(st.domains[0]?.stale, true);
  t.equal(a.source.snapshot().get('acme')?.shares.length, 1, 'still in force');
  t.equal(a.logs.filter((l) => l.includes('Manila sync of domain failed')).length, 1, 'logged once, not at every retry');
  await a.source.stop();

  const b = make(t, c, dir);
  await b.source.start(DOMAINS);
  t.equal(b.source.snapshot().get('acme')?.shares.length, 1, 'restored from manila.json while Manila fails');
  t.ok(b.source.status().restored !== null);
  const other = make(t, c, dir);
  await other.source.start([{ name: 'acme', project: 'p', shareNetwork: 'another' }]);
  t.equal(other.source.snapshot().get('acme'), undefined, 'state for another share network is not restored');
});

t.test('ManilaSource follows a rule in transit at minInterval, not at the next interval', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgw-src-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const c = new StandIn();
  c.rules = [{ id: 'r1', access_type: 'ip', access_to: '198.19.0.5', access_level: 'rw', state: 'queued_to_apply' }];
  const { source } = make(t, c, dir);
  await source.start(DOMAINS);
  const before = c.calls['rules'] ?? 0;
  await sleep(100);
  t.ok((c.calls['rules'] ?? 0) - before >= 3, `polled at minInterval while queued (${(c.calls['rules'] ?? 0) - before} in 100 ms)`);
  c.rules = [{ id: 'r1', access_type: 'ip', access_to: '198.19.0.5', access_level: 'rw', state: 'active' }];
  await sleep(60);
  t.equal(source.snapshot().get('acme')?.shares[0]?.accessRules.length, 1);
  const settled = c.calls['rules'] ?? 0;
  await sleep(100);
  t.ok((c.calls['rules'] ?? 0) - settled <= 1, 'back to the interval once settled');
});

t.test('ManilaSource stops following a share stuck in a transient state', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgw-src-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const c = new StandIn();
  c.shareList = [{ id: 's1', name: 'acme', status: 'creating', share_proto: 'NFS', share_network_id: 'sn1', project_id: 'p' }];
  const { source } = make(t, c, dir);
  await source.start(DOMAINS);
  await sleep(400);
  const n = c.calls['shares'] ?? 0;
  await sleep(450);
  const more = (c.calls['shares'] ?? 0) - n;
  t.ok(more <= 4, `after the follow-up window only interval polls (${more} in 450 ms at a 150 ms interval)`);
});
