import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { heldSecrets } from '../../config/secret';
import { ManilaError } from '../../errors';
import { excerpt, redact } from '../../util/redact';

/**
 * The HTTP edge of the control module: one request at a time per call, on
 * keep-alive agents, with an overall deadline per attempt and retries with
 * exponential backoff and full jitter for requests that are safe to repeat
 * (GETs; Keystone token requests, which create nothing a repeat would
 * duplicate). Bodies are capped before they are buffered. Nothing here
 * logs: the caller decides, and errors carry no header or body of ours;
 * what they quote of the server's (the URL, a socket error) is redacted.
 */

/** Larger answers are refused (a share list of 10,000 is ~15 MiB). */
export const MAX_BODY_BYTES = 32 * 1024 * 1024;

export interface HttpRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  url: string;
  headers?: Record<string, string>;
  body?: unknown;
  /** Repeat on no answer, 429, 502, 503, 504 (default: GET only). */
  retry?: boolean;
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

export interface HttpOptions {
  timeoutMs: number;
  /** PEM bundle replacing Node's default CAs. */
  caFile?: string | null;
  /** Attempts for retryable requests (first try included). */
  attempts?: number;
  /** First backoff; doubles per attempt, capped by maxBackoffMs. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Injected for tests. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

/** Counts what the transport did, for metrics and the scale figures. */
export interface HttpStats {
  requests: number;
  retries: number;
}

export class HttpTransport {
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  private readonly httpsAgent: https.Agent;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  readonly stats: HttpStats = { requests: 0, retries: 0 };

  constructor(private readonly opts: HttpOptions) {
    // Read once at start: a CA bundle that cannot be read is a startup error.
    const ca = opts.caFile === undefined || opts.caFile === null ? undefined : fs.readFileSync(opts.caFile);
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 4, ...(ca === undefined ? {} : { ca }) });
    // Not unref'd: a caller awaits the retry, the loop must wait for it too.
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.random = opts.random ?? Math.random;
  }

  async request(req: HttpRequest): Promise<HttpResponse> {
    const retry = req.retry ?? req.method === 'GET';
    const attempts = retry ? Math.max(1, this.opts.attempts ?? 3) : 1;
    let last: unknown = null;
    for (let i = 0; i < attempts; i++) {
      if (i > 0) {
        this.stats.retries++;
        // Full jitter (AWS architecture blog): hosts that failed together
        // do not come back together.
        const cap = Math.min(this.opts.maxBackoffMs ?? 5000, (this.opts.backoffMs ?? 250) * 2 ** (i - 1));
        const after = retryAfterMs(last);
        await this.sleep(after ?? Math.round(this.random() * cap));
      }
      try {
        const res = await this.once(req);
        if (retry && (res.status === 429 || res.status === 502 || res.status === 503 || res.status === 504) && i + 1 < attempts) {
          last = res;
          continue;
        }
        return res;
      } catch (err) {
        last = err;
        if (!(err instanceof ManilaError) || err.code !== 'SGW_ERR_MANILA_UNREACHABLE') {
          throw err;
        }
      }
    }
    if (last instanceof Error) {
      throw last;
    }
    return last as HttpResponse;
  }

  /** Closes idle keep-alive sockets (daemon stop). */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private once(req: HttpRequest): Promise<HttpResponse> {
    this.stats.requests++;
    const url = new URL(req.url);
    const isHttps = url.protocol === 'https:';
    const body = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
    const where = `${req.method} ${url.origin}${url.pathname}`;
    return new Promise<HttpResponse>((resolve, reject) => {
      let done = false;
      const fail = (msg: string, cause?: unknown): void => {
        if (!done) {
          done = true;
          clearTimeout(timer);
          r.destroy();
          // The URL may come from a catalog and the message names its host:
          // both are the server's word, so both are redacted.
          reject(new ManilaError('SGW_ERR_MANILA_UNREACHABLE', redact(`${where}: ${msg}`, [...heldSecrets(), ...Object.values(req.headers ?? {})]), { cause }));
        }
      };
      const r = (isHttps ? https : http).request(
        url,
        {
          method: req.method,
          agent: isHttps ? this.httpsAgent : this.httpAgent,
          headers: {
            Accept: 'application/json',
            ...(body === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': String(body.length) }),
            ...req.headers,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_BODY_BYTES) {
              fail(`answer larger than ${MAX_BODY_BYTES} bytes`);
              return;
            }
            chunks.push(c);
          });
          res.on('end', () => {
            if (!done) {
              done = true;
              clearTimeout(timer);
              resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') });
            }
          });
          res.on('error', (err) => fail(`answer broken off: ${err.message}`, err));
        },
      );
      // One deadline for the whole exchange, connect to last byte.
      const timer = setTimeout(() => fail(`no complete answer within ${this.opts.timeoutMs} ms`), this.opts.timeoutMs);
      r.on('error', (err: NodeJS.ErrnoException) => fail(err.code ?? err.message, err));
      r.end(body);
    });
  }
}

/** Retry-After of a 429/503 answer, in ms, capped at 30 s. */
function retryAfterMs(last: unknown): number | null {
  const h = (last as HttpResponse | null)?.headers?.['retry-after'];
  if (typeof h !== 'string') {
    return null;
  }
  const s = Number(h);
  return Number.isFinite(s) && s >= 0 ? Math.min(30_000, s * 1000) : null;
}

/**
 * The request id of an answer (Manila: x-compute-request-id; Keystone:
 * x-openstack-request-id), sanitized and cut to 128 characters: it goes
 * into errors and status, and a hostile server chooses it.
 */
export function requestIdOf(res: HttpResponse, extra: readonly string[] = []): string | null {
  const v = res.headers['x-openstack-request-id'] ?? res.headers['x-compute-request-id'];
  return typeof v === 'string' ? excerpt(v, [...heldSecrets(), ...extra], 128) : null;
}
