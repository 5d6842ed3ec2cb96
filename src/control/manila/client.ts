import type { z } from 'zod';
import type { ManilaSettings } from '../../model/config';
import { HttpTransport } from './http';
import type { HttpOptions } from './http';
import { requestIdOf } from './http';
import { catalogEndpoint, KeystoneTokens, manilaError, NoauthTokens, shapeMessage, snippet } from './keystone';
import type { TokenSource } from './keystone';
import { accessRulesEnvelope, exportLocationsEnvelope, securityServicesEnvelope, shareNetworkEnvelope, sharesEnvelope, versionsSchema } from './schemas';
import type { AccessRuleRecord, ExportLocationRecord, ManilaShare, SecurityService, ShareNetwork } from './schemas';

/** Share networks with subnets (and no flat neutron fields) arrived in 2.51. */
export const MIN_MICROVERSION = '2.51';
/** The newest microversion this client knows: `encryption_key_ref` (2.90). */
export const MAX_MICROVERSION = '2.90';
/** Share network `status` and `security_service_update_support`. */
export const STATUS_MICROVERSION = '2.63';
export const ENCRYPTION_MICROVERSION = '2.90';
/** Shares per page (Manila's osapi_max_limit defaults to 1000). */
export const PAGE_SIZE = 500;
/** A runaway pager (a server ignoring offset) stops here. */
const MAX_PAGES = 200;

/** `2.63` as a comparable number pair. */
export function parseMicroversion(v: string): [number, number] | null {
  const m = /^(\d+)\.(\d+)$/.exec(v);
  return m === null ? null : [Number(m[1]), Number(m[2])];
}

export function mvAtLeast(v: string, min: string): boolean {
  const a = parseMicroversion(v);
  const b = parseMicroversion(min);
  return a !== null && b !== null && (a[0] > b[0] || (a[0] === b[0] && a[1] >= b[1]));
}

/** What version negotiation settled on. */
export interface Negotiated {
  /** The microversion every request sends. */
  microversion: string;
  /** The server's maximum. */
  serverMax: string;
  /** The v2 base URL (without project). */
  base: string;
}

export interface ManilaClientDeps {
  http?: HttpTransport;
  tokens?: TokenSource;
  httpOptions?: Partial<HttpOptions>;
}

/**
 * A read-only Manila v2 client for the sync: version negotiation, auth
 * (Keystone or noauth), paging, and zod-checked answers. Every failure is a
 * ManilaError with a stable code; nothing else escapes.
 * State: the negotiated version and endpoint (dropped on a 401 or 406 so
 * the next call negotiates again), the token source, the HTTP agents.
 */
export class ManilaClient {
  readonly http: HttpTransport;
  readonly tokens: TokenSource;
  private negotiated: Negotiated | null = null;

  constructor(
    private readonly settings: ManilaSettings,
    deps: ManilaClientDeps = {},
  ) {
    this.http = deps.http ?? new HttpTransport({ timeoutMs: settings.timeoutMs, caFile: settings.caFile, ...deps.httpOptions });
    if (deps.tokens !== undefined) {
      this.tokens = deps.tokens;
    } else if (settings.auth.type === 'noauth') {
      this.tokens = new NoauthTokens(settings.auth);
    } else {
      this.tokens = new KeystoneTokens(this.http, settings.authUrl ?? '', settings.auth);
    }
  }

  /** The negotiated version (negotiating first if needed). */
  async version(): Promise<Negotiated> {
    if (this.negotiated !== null) {
      return this.negotiated;
    }
    const tok = await this.tokens.get();
    const endpoint = this.settings.endpoint ?? catalogEndpoint(tok.catalog, this.settings.interface, this.settings.region);
    const base = v2Base(endpoint);
    const res = await this.http.request({ method: 'GET', url: `${base}/`, headers: { 'X-Auth-Token': tok.token } });
    if (res.status === 401) {
      this.tokens.invalidate();
      throw manilaError('SGW_ERR_MANILA_AUTH', `GET ${base}/: Manila refused the token (HTTP 401)`, { status: 401, requestId: requestIdOf(res, [tok.token]) }, [tok.token]);
    }
    if (res.status !== 200 && res.status !== 300) {
      throw manilaError('SGW_ERR_MANILA_HTTP', `GET ${base}/: HTTP ${res.status}${snippet(res.text, [tok.token])}`, { status: res.status, requestId: requestIdOf(res, [tok.token]) }, [tok.token]);
    }
    const body = parse(versionsSchema, res.text, `GET ${base}/`, res.status, requestIdOf(res, [tok.token]), [tok.token]);
    const v2 = body.versions.find((v) => v.id.startsWith('v2')) ?? body.versions[0];
    const max = v2?.version ?? '';
    if (!mvAtLeast(max, MIN_MICROVERSION)) {
      throw manilaError('SGW_ERR_MANILA_VERSION', `Manila at ${base} offers microversions up to ${max === '' ? 'none' : max}; sharegw needs ${MIN_MICROVERSION} or later`, {}, [tok.token]);
    }
    const microversion = mvAtLeast(max, MAX_MICROVERSION) ? MAX_MICROVERSION : max;
    this.negotiated = { microversion, serverMax: max, base };
    return this.negotiated;
  }

  /** The features the negotiated version brings. */
  async features(): Promise<{ networkStatus: boolean; encryption: boolean; microversion: string }> {
    const v = await this.version();
    return { networkStatus: mvAtLeast(v.microversion, STATUS_MICROVERSION), encryption: mvAtLeast(v.microversion, ENCRYPTION_MICROVERSION), microversion: v.microversion };
  }

  /** The project the token is scoped to. */
  async tokenProject(): Promise<string> {
    return (await this.tokens.get()).projectId;
  }

  /** A share network with its subnets; null when it does not exist (404). */
  async shareNetwork(id: string): Promise<ShareNetwork | null> {
    const r = await this.get(`share-networks/${encodeURIComponent(id)}`, shareNetworkEnvelope, { allow404: true });
    return r === null ? null : r.share_network;
  }

  /** Security services of a share network, without their passwords. */
  async securityServices(shareNetworkId: string, project: string): Promise<SecurityService[]> {
    const q = await this.scope(project, { share_network_id: shareNetworkId });
    const r = await this.get(`security-services/detail?${q}`, securityServicesEnvelope);
    return r?.security_services ?? [];
  }

  /** Every share on a share network (all statuses), paged. */
  async shares(shareNetworkId: string, project: string): Promise<ManilaShare[]> {
    const out: ManilaShare[] = [];
    for (let page = 0; page < MAX_PAGES; page++) {
      const q = await this.scope(project, { share_network_id: shareNetworkId, limit: String(PAGE_SIZE), offset: String(page * PAGE_SIZE), sort_key: 'created_at', sort_dir: 'asc' });
      const r = await this.get(`shares/detail?${q}`, sharesEnvelope);
      const got = r?.shares ?? [];
      out.push(...got);
      const next = r?.shares_links?.some((l) => l.rel === 'next') ?? false;
      if (got.length < PAGE_SIZE && !next) {
        return dedupe(out);
      }
      if (got.length === 0) {
        return dedupe(out);
      }
    }
    throw manilaError('SGW_ERR_MANILA_SHAPE', `shares of share network ${shareNetworkId}: more than ${MAX_PAGES} pages; the server seems to ignore offset`);
  }

  async exportLocations(shareId: string): Promise<ExportLocationRecord[]> {
    const r = await this.get(`shares/${encodeURIComponent(shareId)}/export_locations`, exportLocationsEnvelope, { allow404: true });
    return r?.export_locations ?? [];
  }

  async accessRules(shareId: string): Promise<AccessRuleRecord[]> {
    const r = await this.get(`share-access-rules?share_id=${encodeURIComponent(shareId)}`, accessRulesEnvelope, { allow404: true });
    return r?.access_list ?? [];
  }

  /** Closes keep-alive sockets. */
  close(): void {
    this.http.close();
  }

  /** Query string; other projects' resources need `all_tenants` (admin). */
  private async scope(project: string, q: Record<string, string>): Promise<string> {
    const p = new URLSearchParams(q);
    if (project !== (await this.tokens.get()).projectId) {
      p.set('all_tenants', '1');
      p.set('project_id', project);
    }
    return p.toString();
  }

  private async get<T>(path: string, schema: z.ZodType<T>, opts: { allow404?: boolean } = {}): Promise<T | null> {
    for (let attempt = 0; ; attempt++) {
      const v = await this.version();
      const tok = await this.tokens.get();
      const url = `${v.base}/${tok.projectId}/${path}`;
      const where = `GET ${v.base}/${tok.projectId}/${path.split('?')[0] ?? ''}`;
      const res = await this.http.request({ method: 'GET', url, headers: { 'X-Auth-Token': tok.token, 'X-OpenStack-Manila-API-Version': v.microversion } });
      const rid = requestIdOf(res, [tok.token]);
      if (res.status === 401 && attempt === 0) {
        // Revoked or expired early (key rotation): one fresh token, one retry.
        this.tokens.invalidate();
        continue;
      }
      if (res.status === 406 && attempt === 0) {
        // The server changed under us (downgrade): negotiate again.
        this.negotiated = null;
        continue;
      }
      if (res.status === 401 || res.status === 403) {
        throw manilaError('SGW_ERR_MANILA_AUTH', `${where}: Manila refused the request (HTTP ${res.status})${snippet(res.text, [tok.token])}`, { status: res.status, requestId: rid }, [tok.token]);
      }
      if (res.status === 404 && opts.allow404 === true) {
        return null;
      }
      if (res.status < 200 || res.status > 299) {
        throw manilaError('SGW_ERR_MANILA_HTTP', `${where}: HTTP ${res.status}${snippet(res.text, [tok.token])}`, { status: res.status, requestId: rid }, [tok.token]);
      }
      return parse(schema, res.text, where, res.status, rid, [tok.token]);
    }
  }
}

function parse<T>(schema: z.ZodType<T>, text: string, where: string, status: number, requestId: string | null, extra: readonly string[]): T {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // No cause: V8's SyntaxError quotes the body, and the body is the server's.
    throw manilaError('SGW_ERR_MANILA_SHAPE', `${where}: the answer is not JSON`, { status, requestId }, extra);
  }
  const r = schema.safeParse(json);
  if (!r.success) {
    throw manilaError('SGW_ERR_MANILA_SHAPE', `${where}: unexpected answer: ${shapeMessage(r.error)}`, { status, requestId }, extra);
  }
  return r.data;
}

/**
 * `http://h:8786/v2/<project>` or `http://h:8786/v2/` -> `http://h:8786/v2`:
 * catalogs carry the project in the URL, requests add the token's own.
 */
export function v2Base(endpoint: string): string {
  const u = endpoint.replace(/\/+$/, '');
  const m = /^(.*\/v2)(?:\/[0-9a-fA-F-]+)?$/.exec(u);
  return m?.[1] ?? u;
}

/** A share that moved between pages while we paged shows twice: keep one. */
function dedupe(shares: ManilaShare[]): ManilaShare[] {
  const seen = new Set<string>();
  return shares.filter((s) => (seen.has(s.id) ? false : (seen.add(s.id), true)));
}
