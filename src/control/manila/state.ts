import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { z } from 'zod';
import type { SyncedDomain } from './sync';

/**
 * The last-known-good synced state on disk (`<stateDir>/manila.json`), so
 * that a daemon restarted while Manila is down still serves the shares it
 * last synced. Written atomically (temp file, fsync, rename, fsync of the
 * directory) like state.json. It holds no secret: security services are
 * stored without passwords (they are stripped when Manila's answer is
 * parsed) and tokens are never written.
 */

export const MANILA_STATE_FILE = 'manila.json';
const MAX_BYTES = 64 * 1024 * 1024;

const str = z.string();
const nstr = z.string().nullable();
const syncedDomainSchema = z.object({
  domain: str,
  shareNetworkId: str,
  network: z
    .object({
      name: nstr,
      status: z.enum(['active', 'network_change', 'error', 'unknown']),
      securityServiceUpdateSupport: z.boolean().nullable(),
      subnets: z.array(z.object({ id: str, cidr: nstr, availabilityZone: nstr })),
      securityServices: z.array(z.object({ id: str, type: str, name: nstr, server: nstr, domain: nstr, dnsIp: nstr, ou: nstr, user: nstr })),
    })
    .nullable(),
  shares: z.array(
    z.object({
      id: str,
      name: str.optional(),
      proto: z.enum(['NFS', 'CIFS']),
      exportLocations: z.array(str),
      accessRules: z.array(z.object({ accessType: z.enum(['ip', 'user', 'cert', 'cephx']), accessTo: str, accessLevel: z.enum(['rw', 'ro']) })),
      encryption: z.literal('required').optional(),
      encrypted: z.boolean().optional(),
    }),
  ),
  flags: z.object({ frozen: z.boolean(), networkError: z.boolean(), missing: z.boolean() }),
  skipped: z.array(z.object({ share: str, what: str, reason: str, code: str.optional() })),
  fetchedAt: str,
});

const fileSchema = z.object({
  version: z.literal(1),
  node: str,
  savedAt: str,
  domains: z.array(syncedDomainSchema),
});

export type ManilaStateLoad = { kind: 'none' } | { kind: 'ok'; savedAt: string; domains: SyncedDomain[] } | { kind: 'invalid'; reason: string };

export class ManilaStateFile {
  readonly file: string;

  constructor(
    readonly dir: string,
    private readonly node: string,
  ) {
    this.file = path.join(dir, MANILA_STATE_FILE);
  }

  /** Never throws: an unusable file is reported and ignored (Manila is asked again). */
  async load(): Promise<ManilaStateLoad> {
    let text: string;
    try {
      const st = await fsp.stat(this.file);
      if (st.size > MAX_BYTES) {
        return { kind: 'invalid', reason: `${this.file} is ${st.size} bytes, above ${MAX_BYTES}` };
      }
      text = await fsp.readFile(this.file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return code === 'ENOENT' ? { kind: 'none' } : { kind: 'invalid', reason: `cannot read ${this.file}: ${code ?? String(err)}` };
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return { kind: 'invalid', reason: `${this.file} is not JSON` };
    }
    const r = fileSchema.safeParse(json);
    if (!r.success) {
      return { kind: 'invalid', reason: `${this.file} has an unexpected shape at ${r.error.issues[0]?.path.join('.') ?? '?'}` };
    }
    if (r.data.node !== this.node) {
      return { kind: 'invalid', reason: `${this.file} was written for node "${r.data.node}"` };
    }
    return { kind: 'ok', savedAt: r.data.savedAt, domains: r.data.domains as SyncedDomain[] };
  }

  /** Replaces the file atomically; throws on I/O errors (the caller counts and retries). */
  async save(domains: readonly SyncedDomain[], now: Date = new Date()): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.tmp-${process.pid}`;
    const body = JSON.stringify({ version: 1, node: this.node, savedAt: now.toISOString(), domains });
    const fh = await fsp.open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(body);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, this.file);
    const d = await fsp.open(this.dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }
}
