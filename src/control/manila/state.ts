import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { z } from 'zod';
import type { Logger } from '../../observability/logger';
import { removeStaleTemps, writeFileAtomic } from '../../persist/atomic-file';
import type { AtomicFs } from '../../persist/atomic-file';
import type { SyncedDomain } from './sync';

/**
 * The last-known-good synced state on disk (`<stateDir>/manila.json`), so
 * that a daemon restarted while Manila is down still serves the shares it
 * last synced. Written atomically (persist/atomic-file.ts: temp file,
 * fsync, rename, fsync of the directory) like state.json. It holds no secret: security services are
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
      name: str.exactOptional(),
      proto: z.enum(['NFS', 'CIFS']),
      exportLocations: z.array(str),
      accessRules: z.array(z.object({ accessType: z.enum(['ip', 'user', 'cert', 'cephx']), accessTo: str, accessLevel: z.enum(['rw', 'ro']) })),
      encryption: z.literal('required').exactOptional(),
      encrypted: z.boolean().exactOptional(),
    }),
  ),
  flags: z.object({ frozen: z.boolean(), networkError: z.boolean(), missing: z.boolean() }),
  skipped: z.array(z.object({ share: str, what: str, reason: str, code: z.literal('SGW_ERR_MANILA_BAD_ID').exactOptional() })),
  fetchedAt: str,
}) satisfies z.ZodType<SyncedDomain>;

const fileSchema = z.object({
  version: z.literal(1),
  node: str,
  savedAt: str,
  domains: z.array(syncedDomainSchema),
});

export type ManilaStateLoad = { kind: 'none' } | { kind: 'ok'; savedAt: string; domains: SyncedDomain[] } | { kind: 'invalid'; reason: string };

/** Options of ManilaStateFile. */
export interface ManilaStateFileOptions {
  log?: Logger;
  /** Overrides for single file operations (failure injection in tests). */
  fs?: Partial<AtomicFs>;
}

/** Reads and writes `<dir>/manila.json` for one node. */
export class ManilaStateFile {
  readonly file: string;

  constructor(
    readonly dir: string,
    private readonly node: string,
    private readonly options: ManilaStateFileOptions = {},
  ) {
    this.file = path.join(dir, MANILA_STATE_FILE);
  }

  /** Never throws: an unusable file is reported and ignored (Manila is asked again). */
  async load(): Promise<ManilaStateLoad> {
    // No save is in flight here: ManilaSource saves only after start() loads.
    const swept = await removeStaleTemps(this.file, { fs: this.options.fs });
    for (const full of swept.removed) {
      this.options.log?.info({ path: full }, 'removed a temp file left by an interrupted Manila state save');
    }
    for (const f of swept.failed) {
      this.options.log?.warn({ path: f.path, errno: f.errno }, 'cannot remove a leftover Manila state temp file');
    }
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
    return { kind: 'ok', savedAt: r.data.savedAt, domains: r.data.domains };
  }

  /**
   * Replaces the file atomically; throws the I/O error as the disk gave it
   * (the caller counts and retries). A failed save leaves the old file and
   * no temp file.
   */
  async save(domains: readonly SyncedDomain[], now: Date = new Date()): Promise<void> {
    const body = JSON.stringify({ version: 1, node: this.node, savedAt: now.toISOString(), domains });
    const w = await writeFileAtomic(this.file, body, { fs: this.options.fs });
    if (!w.ok) {
      throw w.error;
    }
  }
}
