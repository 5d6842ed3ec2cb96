/**
 * The real Manila of test/lab/manila.sh from the tests' side: bring it up
 * (noauth or keystone), and a small admin REST writer for what the tests
 * do as a tenant would (share networks, security services, shares, access
 * rules). The code under test never uses this: it reads through its own
 * client.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

const SCRIPT = path.resolve(__dirname, '../../../test/lab/manila.sh');

export type LabEnv = Record<string, string>;

/** `manila.sh up` in the given auth mode (switching mode takes a down first); lab.env as a map. */
export function manilaUp(auth: 'noauth' | 'keystone'): LabEnv {
  const env = { ...process.env, MANILA_LAB_AUTH: auth };
  let out: string;
  try {
    out = execFileSync('bash', [SCRIPT, 'up'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? '');
    if (/runs with auth=/.test(stderr)) {
      execFileSync('bash', [SCRIPT, 'down'], { stdio: 'ignore', timeout: 120_000 });
      out = execFileSync('bash', [SCRIPT, 'up'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
    } else {
      throw new Error(`manila.sh up failed: ${stderr.slice(-2000)}`);
    }
  }
  const vars: LabEnv = {};
  for (const line of out.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m !== null) {
      vars[m[1] ?? ''] = m[2] ?? '';
    }
  }
  return vars;
}

/** A fresh, empty noauth tenant (any hex id is one). */
export function freshProject(): string {
  return randomBytes(16).toString('hex');
}

export class ManilaAdmin {
  constructor(
    readonly endpoint: string,
    readonly project: string,
    private readonly token: string,
    readonly microversion = '2.73',
  ) {}

  /** A keystone-mode writer with a token for user/password in the named project. */
  static async keystone(env: LabEnv, user: string, password: string, projectId: string): Promise<ManilaAdmin> {
    const res = await fetch(`${env['OS_AUTH_URL'] ?? ''}/auth/tokens`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ auth: { identity: { methods: ['password'], password: { user: { name: user, domain: { id: 'default' }, password } } }, scope: { project: { id: projectId } } } }),
    });
    if (res.status !== 201) {
      throw new Error(`keystone token for ${user}: HTTP ${res.status}`);
    }
    return new ManilaAdmin(env['MANILA_ENDPOINT'] ?? '', projectId, res.headers.get('x-subject-token') ?? '');
  }

  async call(method: string, p: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${this.endpoint}/${this.project}/${p}`, {
      method,
      headers: { 'X-Auth-Token': this.token, 'X-OpenStack-Manila-API-Version': this.microversion, 'Content-Type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    let parsed: Record<string, unknown> = {};
    try {
      parsed = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
    } catch {
      parsed = { text };
    }
    return { status: res.status, body: parsed };
  }

  private async ok(method: string, p: string, body?: unknown): Promise<Record<string, unknown>> {
    const r = await this.call(method, p, body);
    if (r.status < 200 || r.status > 299) {
      throw new Error(`${method} ${p}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    }
    return r.body;
  }

  async createShareNetwork(name: string): Promise<string> {
    const b = await this.ok('POST', 'share-networks', { share_network: { name } });
    return (b['share_network'] as { id: string }).id;
  }

  async createSecurityService(type: string, name: string, server: string, password: string): Promise<string> {
    const b = await this.ok('POST', 'security-services', { security_service: { type, name, server, domain: 'lab.test', user: 'cn=manila', password, dns_ip: '198.18.0.53' } });
    return (b['security_service'] as { id: string }).id;
  }

  async addSecurityService(sn: string, ss: string): Promise<void> {
    await this.ok('POST', `share-networks/${sn}/action`, { add_security_service: { security_service_id: ss } });
  }

  /** update_security_service on an in-use network: the asynchronous check first, repeated until compatible. */
  async updateSecurityService(sn: string, current: string, next: string): Promise<void> {
    for (let i = 0; i < 60; i++) {
      const r = await this.ok('POST', `share-networks/${sn}/action`, { update_security_service_check: { current_service_id: current, new_service_id: next } });
      if (r['compatible'] === true) {
        break;
      }
      if (r['compatible'] === false) {
        throw new Error(`update_security_service_check: not compatible ${JSON.stringify(r)}`);
      }
      await new Promise((res) => setTimeout(res, 500));
    }
    await this.ok('POST', `share-networks/${sn}/action`, { update_security_service: { current_service_id: current, new_service_id: next } });
  }

  async shareNetworkStatus(sn: string): Promise<string> {
    const b = await this.ok('GET', `share-networks/${sn}`);
    return (b['share_network'] as { status: string }).status;
  }

  async createShare(proto: 'NFS' | 'CIFS', name: string, sn: string): Promise<string> {
    const b = await this.ok('POST', 'shares', { share: { share_proto: proto, size: 1, name, share_type: 'lab', share_network_id: sn } });
    return (b['share'] as { id: string }).id;
  }

  async shareStatus(id: string): Promise<string | null> {
    const r = await this.call('GET', `shares/${id}`);
    return r.status === 404 ? null : (r.body['share'] as { status: string }).status;
  }

  async waitShare(id: string, want: string | null, timeoutMs = 60_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    let st: string | null = '';
    while (Date.now() < end) {
      st = await this.shareStatus(id);
      if (st === want) {
        return;
      }
      if (st === 'error' && want !== 'error') {
        throw new Error(`share ${id} went to error`);
      }
      await new Promise((res) => setTimeout(res, 250));
    }
    throw new Error(`share ${id} is ${String(st)}, not ${String(want)}, after ${timeoutMs} ms`);
  }

  async allow(share: string, to: string, level: 'rw' | 'ro' = 'rw'): Promise<string> {
    const b = await this.ok('POST', `shares/${share}/action`, { allow_access: { access_type: 'ip', access_to: to, access_level: level } });
    return (b['access'] as { id: string }).id;
  }

  async deny(share: string, rule: string): Promise<void> {
    await this.ok('POST', `shares/${share}/action`, { deny_access: { access_id: rule } });
  }

  async ruleState(rule: string): Promise<string | null> {
    const r = await this.call('GET', `share-access-rules/${rule}`);
    return r.status === 404 ? null : (r.body['access'] as { state: string }).state;
  }

  async deleteShare(id: string): Promise<void> {
    await this.ok('DELETE', `shares/${id}`);
  }
}

/**
 * Polls `fn` every 50 ms until it returns true; the elapsed ms, or throws
 * after timeoutMs with what `detail` says about the state at that moment
 * (a CI log then tells why, not only that, a wait ran out).
 */
export async function waitFor(what: string, fn: () => boolean | Promise<boolean>, timeoutMs: number, detail?: () => unknown): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (await fn()) {
      return Date.now() - t0;
    }
    await new Promise((res) => setTimeout(res, 50));
  }
  let why = '';
  if (detail !== undefined) {
    try {
      why = `; ${JSON.stringify(await detail())}`;
    } catch (err) {
      why = `; (detail failed: ${String(err)})`;
    }
  }
  throw new Error(`timeout (${timeoutMs} ms) waiting for ${what}${why}`);
}
