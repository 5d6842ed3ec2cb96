import { heldSecrets, holdSecret } from '../../config/secret';
import { ManilaError } from '../../errors';
import type { ManilaErrorCode } from '../../errors';
import type { ManilaAuth } from '../../model/config';
import type { HttpTransport } from './http';
import { requestIdOf } from './http';
import { tokenSchema } from './schemas';
import type { TokenBody } from './schemas';
import { excerpt, redact } from '../../util/redact';

/**
 * Keystone v3 tokens for the control module.
 * State: the current token (kept only in memory), its expiry, the project
 * it is scoped to and the catalog that came with it; one issue in flight
 * at a time, shared by concurrent callers.
 *
 * A token is reused until a safety margin before its expiry (10 % of its
 * lifetime, at least 60 s), so a sync never starts with a token that dies
 * mid-way; a 401 from Manila invalidates it early (revoked, rotated keys).
 */
export interface TokenInfo {
  /** The X-Auth-Token value; never logged, never persisted. */
  token: string;
  projectId: string;
  catalog: TokenBody['token']['catalog'];
  /** ms since the epoch. */
  expiresAt: number;
}

export interface TokenSource {
  get(): Promise<TokenInfo>;
  /** Forget the current token (Manila answered 401). */
  invalidate(): void;
  /** How many tokens were issued (status, tests). */
  readonly issued: number;
}

/** noauth (labs): the "token" is `user:project` and there is no catalog. */
export class NoauthTokens implements TokenSource {
  readonly issued = 0;
  constructor(private readonly auth: { user: string; project: string }) {}
  get(): Promise<TokenInfo> {
    return Promise.resolve({ token: `${this.auth.user}:${this.auth.project}`, projectId: this.auth.project, catalog: [], expiresAt: Infinity });
  }
  invalidate(): void {}
}

export class KeystoneTokens implements TokenSource {
  private current: TokenInfo | null = null;
  private pending: Promise<TokenInfo> | null = null;
  issued = 0;

  constructor(
    private readonly http: HttpTransport,
    private readonly authUrl: string,
    private readonly auth: Exclude<ManilaAuth, { type: 'noauth' }>,
    private readonly now: () => number = Date.now,
  ) {}

  get(): Promise<TokenInfo> {
    const c = this.current;
    if (c !== null && this.now() < c.expiresAt - this.margin(c)) {
      return Promise.resolve(c);
    }
    if (this.pending === null) {
      this.pending = this.issue().finally(() => {
        this.pending = null;
      });
    }
    return this.pending;
  }

  invalidate(): void {
    this.current = null;
  }

  private margin(c: TokenInfo & { issuedAt?: number }): number {
    const life = c.expiresAt - (c.issuedAt ?? c.expiresAt);
    return Math.max(60_000, life / 10);
  }

  private async issue(): Promise<TokenInfo> {
    const url = `${this.authUrl.replace(/\/+$/, '')}/auth/tokens`;
    const t0 = this.now();
    const res = await this.http.request({ method: 'POST', url, body: this.body(), retry: true });
    const rid = requestIdOf(res);
    if (res.status === 401 || res.status === 403) {
      // Keystone's message is generic; the user name helps, the password never.
      const who = this.auth.type === 'password' ? `user "${this.auth.username}"` : `application credential "${this.auth.id}"`;
      throw manilaError('SGW_ERR_MANILA_AUTH', `Keystone refused ${who} (HTTP ${res.status}) at ${url}`, { status: res.status, requestId: rid });
    }
    if (res.status !== 201 && res.status !== 200) {
      throw manilaError('SGW_ERR_MANILA_HTTP', `POST ${url}: HTTP ${res.status}${snippet(res.text)}`, { status: res.status, requestId: rid });
    }
    const token = res.headers['x-subject-token'];
    let body: TokenBody;
    try {
      body = tokenSchema.parse(JSON.parse(res.text));
    } catch (err) {
      throw manilaError('SGW_ERR_MANILA_SHAPE', `POST ${url}: the token answer is not a Keystone v3 token: ${shapeMessage(err)}`, { status: res.status, requestId: rid });
    }
    const expiresAt = Date.parse(body.token.expires_at);
    if (typeof token !== 'string' || token === '' || !Number.isFinite(expiresAt) || body.token.project === undefined) {
      throw manilaError('SGW_ERR_MANILA_SHAPE', `POST ${url}: the answer has no X-Subject-Token, no valid expires_at or no project scope`, { status: res.status, requestId: rid });
    }
    // From now on every log line and status view strips it (safety net).
    holdSecret(token);
    this.issued++;
    const info: TokenInfo & { issuedAt: number } = { token, projectId: body.token.project.id, catalog: body.token.catalog, expiresAt, issuedAt: t0 };
    this.current = info;
    return info;
  }

  private body(): unknown {
    const a = this.auth;
    if (a.type === 'applicationCredential') {
      // An application credential carries its own scope.
      return { auth: { identity: { methods: ['application_credential'], application_credential: { id: a.id, secret: a.secret.reveal() } } } };
    }
    const project = 'id' in a.project ? { id: a.project.id } : { name: a.project.name, domain: { name: a.project.domain } };
    return {
      auth: {
        identity: { methods: ['password'], password: { user: { name: a.username, domain: { name: a.userDomain }, password: a.password.reveal() } } },
        scope: { project },
      },
    };
  }
}

/**
 * The `sharev2` endpoint of a catalog for an interface and (optional)
 * region; the catalog's `%(tenant_id)s`/`$(project_id)s` templates are
 * filled in by Keystone already.
 */
export function catalogEndpoint(catalog: TokenBody['token']['catalog'], iface: string, region: string | null): string {
  const svc = catalog.find((s) => s.type === 'sharev2');
  if (svc === undefined) {
    throw manilaError('SGW_ERR_MANILA_CATALOG', `the service catalog has no "sharev2" service (types: ${catalog.map((s) => s.type).join(', ') || 'none'})`);
  }
  const ep = svc.endpoints.find((e) => e.interface === iface && (region === null || e.region_id === region || e.region === region));
  if (ep === undefined) {
    throw manilaError('SGW_ERR_MANILA_CATALOG', `the "sharev2" service has no ${iface} endpoint${region === null ? '' : ` in region ${region}`}`);
  }
  return ep.url;
}

/**
 * A server's error body for a message: a sanitized excerpt of at most 200
 * characters (util/redact.ts) without the secrets the process holds or
 * `extra` (a token the caller used), or '' for an empty body.
 */
export function snippet(text: string, extra: readonly string[] = []): string {
  const t = excerpt(text, [...heldSecrets(), ...extra]);
  return t === '' ? '' : `: ${t}`;
}

/** Longest ManilaError message (the body excerpt in it is at most 200). */
const MAX_MESSAGE = 1000;

/**
 * A ManilaError whose message went through redact(): the message quotes
 * what the server sent (status lines, catalog URLs, versions, zod issues),
 * and a hostile server can make any of it echo a credential.
 */
export function manilaError(code: ManilaErrorCode, message: string, details: ConstructorParameters<typeof ManilaError>[2] = {}, extra: readonly string[] = []): ManilaError {
  const m = redact(message, [...heldSecrets(), ...extra]);
  // Bounded too: a catalog or a version list can be as long as the server likes.
  return new ManilaError(code, m.length > MAX_MESSAGE ? `${m.slice(0, MAX_MESSAGE - 3)}...` : m, details);
}

/** The first zod issue as `path: message`, or the error's message. */
export function shapeMessage(err: unknown): string {
  const issues = (err as { issues?: { path: PropertyKey[]; message: string }[] }).issues;
  const i = issues?.[0];
  if (i !== undefined) {
    return `${i.path.map(String).join('.') || '(root)'}: ${i.message}`;
  }
  return err instanceof SyntaxError ? 'not JSON' : String((err as Error).message);
}
