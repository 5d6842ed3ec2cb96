import { createHash } from 'node:crypto';
import { constants as FS } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { StateError } from '../errors';
import type { Domain, SgwConfig } from '../model/config';
import type { DesiredState } from '../model/desired';
import type { Logger } from '../observability/logger';
import { canonicalJson } from '../util/canonical-json';
import { errnoOf } from '../util/errno';
import { parseIp } from '../util/ip';
import { atomicFs, removeStaleTemps, tempPrefix, writeFileAtomic } from './atomic-file';
import type { AtomicFs } from './atomic-file';

/**
 * The last-known-good state on disk (`<stateDir>/state.json`).
 *
 * After a restart the daemon must know what it last applied before it
 * touches anything, so that it can cut the flows of grants revoked while it
 * was down and replace its rules in one step. The file is therefore written
 * atomically (atomic-file.ts: temp file, fsync, rename, fsync of the
 * directory): a reader,
 * or a daemon restarted after a crash or power loss, sees the old state or
 * the new one, never a mix.
 *
 * A file that cannot be used (corrupt, truncated, another node's, an
 * unknown version) is never fatal: load() reports it, moves it aside for
 * the operator, and the daemon rebuilds from configuration.
 */

/** The only format version this code reads and writes. */
export const STATE_VERSION = 1;
/** File name inside the state directory. */
export const STATE_FILE = 'state.json';
/** Unusable files are renamed to `state.json.corrupt-<UTC timestamp>[-n]`. */
export const CORRUPT_PREFIX = `${STATE_FILE}.corrupt-`;
/** In-flight writes are `state.json.tmp-<pid>-<random>`. */
export const TEMP_PREFIX = tempPrefix(STATE_FILE);
/** How many moved-aside files are kept (newest first). */
export const DEFAULT_KEEP_CORRUPT = 3;
/**
 * Files above this are refused before they are read. A host with thousands
 * of guests stays far below it (about 1 KiB per guest).
 */
export const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

/** What is persisted: the desired state last applied and where it came from. */
export interface PersistedState {
  version: 1;
  /** `daemon.node` of the config that produced it; another node's file is refused. */
  node: string;
  /** The daemon's config generation when it was saved. */
  generation: number;
  /** ISO 8601 UTC time of the save. */
  savedAt: string;
  /** configDigest() of the configuration that produced `desired`. */
  configDigest: string;
  desired: DesiredState;
  /** Proxy plane: capture port per listener key (empty in kernel mode). */
  proxyPorts: Record<string, number>;
}

/** Result of StateStore.load(); load() never throws. */
export type LoadResult =
  | { kind: 'none' }
  | { kind: 'ok'; state: PersistedState }
  /** `movedTo` is where the unusable file now is, or null when it was not moved (I/O errors, or the move failed). */
  | { kind: 'invalid'; error: StateError; movedTo: string | null };

/** The file operations the store uses; tests replace some to inject failures. */
export type StoreFs = AtomicFs;

export interface StateStoreOptions {
  log?: Logger;
  /** Overrides for single file operations (failure injection in tests). */
  fs?: Partial<StoreFs>;
  /** Clock for the moved-aside file names. */
  now?: () => Date;
  /** Moved-aside files to keep; default 3. */
  keepCorrupt?: number;
  /** Largest file load() reads; default 64 MiB. */
  maxBytes?: number;
}

// ---------------------------------------------------------------------------
// Shape. Strict objects: a key we did not write means the file is not ours
// (or not this version's), and rebuilding from config is always safe.

const nonEmpty = z.string().min(1);
/** Addresses are stored in canonical text; anything else was not written by us. */
const ipText = z.string().refine((s) => parseIp(s)?.text === s, { message: 'not a canonical IP address' });
const port = z.number().int().min(1).max(65535);
const level = z.enum(['rw', 'ro']);

const idRange = z.strictObject({ from: z.number().int().min(0), to: z.number().int().min(0) });

const grantSchema = z.strictObject({
  backend: ipText,
  port,
  service: z.enum(['nfs', 'portmap', 'mountd', 'smb']),
  proto: z.enum(['NFS', 'CIFS']),
  level,
  shares: z.array(z.strictObject({ id: nonEmpty, level })),
  smb: z.strictObject({ minDialect: z.number().int().min(0).max(0xffff), encryptionRequired: z.boolean(), shares: z.array(z.string()), steer: z.boolean() }).optional(),
  nfs: z
    .strictObject({
      readOnly: z.boolean(),
      identity: z
        .strictObject({ rootSquash: z.boolean(), anonUid: z.number().int(), anonGid: z.number().int(), uids: z.array(idRange).nullable(), gids: z.array(idRange).nullable(), idOffset: z.number().int().nullable().default(null) })
        .nullable(),
      exports: z.array(z.string()),
      steer: z.boolean(),
    })
    .optional(),
});

const guestSchema = z.strictObject({
  key: nonEmpty,
  domain: nonEmpty,
  instance: nonEmpty,
  iface: nonEmpty,
  guestIp: ipText,
  gatewayIp: ipText,
  sourceIp: ipText,
  grants: z.array(grantSchema),
});

const egressSchema = z.strictObject({
  domain: nonEmpty,
  iface: nonEmpty,
  via: ipText.nullable(),
  table: z.number().int().min(1).max(65535),
  sourceIp: ipText,
  backends: z.array(ipText),
});

// exactOptional(): DesiredState's optional keys may be absent but never
// undefined (exactOptionalPropertyTypes), and `satisfies` keeps the shape
// and the model type in step without a cast.
const desiredSchema = z.strictObject({
  dataplane: z.enum(['kernel', 'proxy']),
  guests: z.array(guestSchema),
  egress: z.array(egressSchema).exactOptional(),
  rulePriority: z.number().int().min(1).max(32765).exactOptional(),
  limits: z.strictObject({ perBackend: z.number().int().min(1).max(65535), perDomainPerBackend: z.number().int().min(1).max(65535) }).exactOptional(),
}) satisfies z.ZodType<DesiredState>;

const persistedSchema: z.ZodType<PersistedState> = z.strictObject({
  version: z.literal(STATE_VERSION),
  node: nonEmpty,
  generation: z.number().int().nonnegative(),
  savedAt: z.iso.datetime(),
  configDigest: z.string().regex(/^[0-9a-f]{64}$/),
  desired: desiredSchema,
  proxyPorts: z.record(nonEmpty, port),
});

// ---------------------------------------------------------------------------

/**
 * sha256 (hex) of the canonical JSON of a validated configuration.
 *
 * Only what the configuration says counts, not where it was read from: the
 * daemon file's path, `domainsDir`, each domain's file name and the warnings
 * (which carry file positions) are left out, and domains are ordered by name
 * rather than by file name. Moving or renaming files keeps the digest; any
 * change of a setting, guest, share or rule changes it. Addresses count by
 * their canonical text, so `2001:db8:0::1` and `2001:db8::1` are the same.
 */
export function configDigest(config: SgwConfig): string {
  const daemon: Partial<SgwConfig['daemon']> = { ...config.daemon };
  delete daemon.file;
  delete daemon.domainsDir;
  const domains = [...config.domains]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((d) => {
      const copy: Partial<Domain> = { ...d };
      delete copy.file;
      return copy;
    });
  return createHash('sha256').update(canonicalJson({ daemon, domains })).digest('hex');
}

/**
 * Reads and writes `<dir>/state.json` for one node. Operations on one store
 * run one at a time in call order, so the last save() called is the one on
 * disk and load() never races a rename.
 */
export class StateStore {
  /** Full path of the state file. */
  readonly file: string;
  private readonly fs: StoreFs;
  private readonly log: Logger | undefined;
  private readonly now: () => Date;
  private readonly keepCorrupt: number;
  private readonly maxBytes: number;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly dir: string,
    /** This host's `daemon.node`; a file written for another node is refused. */
    readonly node: string,
    options: StateStoreOptions = {},
  ) {
    this.file = path.join(dir, STATE_FILE);
    this.fs = atomicFs(options.fs);
    this.log = options.log;
    this.now = options.now ?? (() => new Date());
    this.keepCorrupt = options.keepCorrupt ?? DEFAULT_KEEP_CORRUPT;
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  }

  /**
   * The persisted state. Never throws: a missing file or directory is
   * `none`; any problem, I/O included, is `invalid` with a StateError, and
   * the daemon rebuilds from configuration. An unusable file (corrupt,
   * foreign, too large) is moved aside; on I/O errors it is left alone.
   * Also removes temp files left by a crash mid-save.
   */
  load(): Promise<LoadResult> {
    // The catch only keeps the never-throws promise against the unforeseen.
    return this.serial(() => this.doLoad()).catch((err: unknown): LoadResult => ({ kind: 'invalid', error: ioError(`cannot read state file ${this.file}`, this.file, err), movedTo: null }));
  }

  /**
   * Replaces the persisted state atomically. Throws StateError:
   * SGW_ERR_STATE_IO when the disk refuses (the old file is then intact and
   * no temp file is left), SGW_ERR_STATE_FOREIGN / SGW_ERR_STATE_CORRUPT
   * when `state` is for another node or would not load back (a bug in the
   * caller; nothing is written).
   */
  save(state: PersistedState): Promise<void> {
    return this.serial(() => this.doSave(state));
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async doLoad(): Promise<LoadResult> {
    await this.removeStaleTemps();
    let text: string;
    try {
      const read = await this.readCapped();
      if (typeof read !== 'string') {
        return read;
      }
      text = read;
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === 'ENOENT') {
        return { kind: 'none' };
      }
      return { kind: 'invalid', error: ioError(`cannot read state file ${this.file}`, this.file, err), movedTo: null };
    }
    const checked = this.check(text);
    if (checked instanceof StateError) {
      return this.reject(checked);
    }
    return { kind: 'ok', state: checked };
  }

  /** The file's text, or an `invalid` result when it is not a regular file or too large. Throws on I/O errors. */
  private async readCapped(): Promise<string | LoadResult> {
    // O_NONBLOCK: a FIFO planted at the path must not hang the daemon's start.
    const fh = await this.fs.open(this.file, FS.O_RDONLY | FS.O_NONBLOCK);
    try {
      const st = await fh.stat();
      if (!st.isFile()) {
        return { kind: 'invalid', error: new StateError('SGW_ERR_STATE_IO', `state file ${this.file} is not a regular file`, { path: this.file }), movedTo: null };
      }
      if (st.size > this.maxBytes) {
        return this.reject(new StateError('SGW_ERR_STATE_CORRUPT', `state file ${this.file} is ${st.size} bytes, above the limit of ${this.maxBytes}`, { path: this.file }));
      }
      return await fh.readFile({ encoding: 'utf8' });
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  /** The validated state, or the reason it cannot be used. Messages never quote content. */
  private check(text: string): PersistedState | StateError {
    const corrupt = (why: string): StateError => new StateError('SGW_ERR_STATE_CORRUPT', `state file ${this.file} is unusable: ${why}`, { path: this.file });
    const foreign = (why: string): StateError => new StateError('SGW_ERR_STATE_FOREIGN', `state file ${this.file} is unusable: ${why}`, { path: this.file });
    if (text.trim() === '') {
      return corrupt('empty file');
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      // V8's message quotes the text around the error: not repeated here.
      return corrupt(`not valid JSON (${Buffer.byteLength(text)} bytes; truncated?)`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      return corrupt('not a JSON object');
    }
    const obj = value as Record<string, unknown>;
    const version = obj['version'];
    if (version !== undefined && version !== STATE_VERSION) {
      const shown = typeof version === 'number' && Number.isSafeInteger(version) ? ` ${version}` : '';
      return foreign(`format version${shown} is not ${STATE_VERSION} (written by another sharegw release)`);
    }
    const node = obj['node'];
    if (typeof node === 'string' && node !== this.node) {
      return foreign(`written for node ${printable(node)}, this is node ${printable(this.node)}`);
    }
    const r = persistedSchema.safeParse(value);
    if (!r.success) {
      return corrupt(`wrong shape: ${summarize(r.error)}`);
    }
    return r.data;
  }

  /** Moves an unusable file aside, prunes old ones, logs; returns the `invalid` result. */
  private async reject(error: StateError): Promise<LoadResult> {
    let movedTo: string | null = null;
    try {
      movedTo = await this.freeAsideName();
      await this.fs.rename(this.file, movedTo);
    } catch (err) {
      movedTo = null;
      this.log?.warn({ code: error.code, path: this.file, errno: errnoOf(err) }, 'unusable state file could not be moved aside; it will be overwritten by the next save');
    }
    if (movedTo !== null) {
      this.log?.warn({ code: error.code, path: this.file, movedTo }, 'unusable state file moved aside; rebuilding from configuration');
      await this.pruneAside();
    }
    return { kind: 'invalid', error, movedTo };
  }

  private async freeAsideName(): Promise<string> {
    // 2026-01-02T03:04:05.678Z -> 20260102T030405.678Z: sorts by time as text.
    const base = `${CORRUPT_PREFIX}${this.now().toISOString().replace(/[-:]/g, '')}`;
    // Same millisecond: a suffix above every one in use, never a freed lower
    // one, so that the name order stays the age order that pruning relies on.
    let max = -1;
    for (const name of await this.fs.readdir(this.dir)) {
      if (name === base) {
        max = Math.max(max, 0);
      } else if (name.startsWith(`${base}-`)) {
        const n = Number(name.slice(base.length + 1));
        if (Number.isSafeInteger(n) && n > 0) {
          max = Math.max(max, n);
        }
      }
    }
    return path.join(this.dir, max === -1 ? base : `${base}-${max + 1}`);
  }

  /** Keeps the newest `keepCorrupt` moved-aside files. Best effort. */
  private async pruneAside(): Promise<void> {
    try {
      const names = (await this.fs.readdir(this.dir)).filter((n) => n.startsWith(CORRUPT_PREFIX)).sort(byAsideAge);
      for (const name of names.slice(0, Math.max(0, names.length - this.keepCorrupt))) {
        await this.fs.unlink(path.join(this.dir, name)).catch(() => undefined);
        this.log?.info({ path: path.join(this.dir, name) }, 'removed an old moved-aside state file');
      }
    } catch (err) {
      this.log?.warn({ dir: this.dir, errno: errnoOf(err) }, 'cannot prune moved-aside state files');
    }
  }

  /** Removes temp files of saves that never finished (atomic-file.ts). */
  private async removeStaleTemps(): Promise<void> {
    const r = await removeStaleTemps(this.file, { fs: this.fs, now: this.now });
    for (const full of r.removed) {
      this.log?.info({ path: full }, 'removed a temp file left by an interrupted state save');
    }
    for (const f of r.failed) {
      this.log?.warn({ path: f.path, errno: f.errno }, 'cannot remove a leftover state temp file');
    }
  }

  private async doSave(state: PersistedState): Promise<void> {
    // Never write what load() would refuse: the next start would lose it.
    if (state.node !== this.node) {
      throw new StateError('SGW_ERR_STATE_FOREIGN', `refusing to save state for node ${printable(state.node)} to ${this.file} of node ${printable(this.node)}`, { path: this.file });
    }
    const r = persistedSchema.safeParse(state);
    if (!r.success) {
      throw new StateError('SGW_ERR_STATE_CORRUPT', `refusing to save a state that would not load back to ${this.file}: ${summarize(r.error)}`, { path: this.file });
    }
    const text = `${JSON.stringify(state, null, 2)}\n`;
    const w = await writeFileAtomic(this.file, text, { fs: this.fs });
    if (!w.ok) {
      throw ioError(`cannot save state to ${this.file} (${w.step})`, this.file, w.error);
    }
  }
}

// ---------------------------------------------------------------------------

function ioError(what: string, file: string, err: unknown): StateError {
  const errno = errnoOf(err);
  return new StateError('SGW_ERR_STATE_IO', `${what}: ${errno ?? 'unknown error'}`, { path: file, errno, cause: err });
}

/** Node names from a file are shown only when plainly printable and short. */
function printable(s: string): string {
  return /^[A-Za-z0-9._:@-]{1,64}$/.test(s) ? `"${s}"` : '(unprintable name)';
}

/** Where and what, never the offending value: `/desired/guests/0/guestIp: custom` (+N more). */
function summarize(error: z.ZodError): string {
  // Only our own refinement messages are shown: zod's may name unknown keys.
  const shown = error.issues.slice(0, 3).map((i) => `/${i.path.map(String).join('/')}: ${i.code === 'custom' ? i.message : i.code}`);
  const more = error.issues.length > 3 ? ` (and ${error.issues.length - 3} more)` : '';
  return `${shown.join('; ')}${more}`;
}

/** Oldest first: by timestamp, then by the `-n` collision suffix. */
function byAsideAge(a: string, b: string): number {
  const ka = asideKey(a);
  const kb = asideKey(b);
  return ka.stamp < kb.stamp ? -1 : ka.stamp > kb.stamp ? 1 : ka.n - kb.n;
}

function asideKey(name: string): { stamp: string; n: number } {
  const rest = name.slice(CORRUPT_PREFIX.length);
  const m = /^(.*Z)(?:-(\d+))?$/.exec(rest);
  return m === null ? { stamp: rest, n: 0 } : { stamp: m[1] ?? rest, n: Number(m[2] ?? 0) };
}
