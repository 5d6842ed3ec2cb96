import { randomBytes } from 'node:crypto';
import { constants as FS } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { errnoOf } from '../util/errno';

/**
 * Replacing a file so that a reader, or a daemon restarted after a crash or
 * a power loss, sees the old content or the new one, never a mix: write a
 * temp file next to it, fsync it, rename it over the file, fsync the
 * directory. Temp names are unique (`<file>.tmp-<pid>-<random>`), so two
 * writers never share one, and a failed write removes its own. A crash
 * still leaves one behind: loaders sweep them with removeStaleTemps().
 */

/** The file operations used here; tests replace some to inject failures. */
export type AtomicFs = Pick<typeof fsp, 'mkdir' | 'open' | 'rename' | 'unlink' | 'readdir' | 'lstat'>;

/** The step of writeFileAtomic() that failed; callers put it in their messages. */
export type AtomicStep = 'mkdir' | 'open' | 'write' | 'fsync' | 'close' | 'rename' | 'fsync-dir';

/**
 * Outcome of writeFileAtomic(). A failure carries the step and the error as
 * thrown (an errno error, usually), so that each caller maps it to its own
 * error code or passes it on unchanged.
 */
export type AtomicWriteResult = { ok: true } | { ok: false; step: AtomicStep; error: unknown };

/** Options of writeFileAtomic(). */
export interface AtomicWriteOptions {
  /** Overrides for single file operations (failure injection in tests). */
  fs?: Partial<AtomicFs> | undefined;
  /** Mode of the new file; default 0o600 (state may name tenants and guests). */
  mode?: number;
  /** Mode of the directory when it has to be created; default 0o700. */
  dirMode?: number;
}

/** Options of removeStaleTemps(). */
export interface SweepOptions {
  fs?: Partial<AtomicFs> | undefined;
  /** Clock for the age of a live process's temp file. */
  now?: () => Date;
}

/** What removeStaleTemps() did, for the caller to log. */
export interface SweepResult {
  removed: string[];
  failed: { path: string; errno: string | null }[];
}

/** A temp file this old is a crash leftover even if its pid is alive again (pid reuse). */
const STALE_TEMP_MS = 60 * 60 * 1000;

/** The node:fs/promises operations, with `overrides` in place of some. */
export function atomicFs(overrides: Partial<AtomicFs> = {}): AtomicFs {
  return { mkdir: fsp.mkdir, open: fsp.open, rename: fsp.rename, unlink: fsp.unlink, readdir: fsp.readdir, lstat: fsp.lstat, ...overrides };
}

/** Name prefix of the temp files of `file` (its base name + `.tmp-`). */
export function tempPrefix(file: string): string {
  return `${path.basename(file)}.tmp-`;
}

/**
 * Replaces `file` with `data` atomically, creating its directory if needed.
 * Never throws: on failure the old file is intact (unless the failing step
 * is the final fsync of the directory, after the rename) and the temp file
 * is gone.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<AtomicWriteResult> {
  const fs = atomicFs(options.fs);
  const dir = path.dirname(file);
  const tmp = path.join(dir, `${tempPrefix(file)}${process.pid}-${randomBytes(6).toString('hex')}`);
  let step: AtomicStep = 'mkdir';
  let fh: fsp.FileHandle | null = null;
  let renamed = false;
  try {
    const created = await fs.mkdir(dir, { recursive: true, mode: options.dirMode ?? 0o700 });
    if (created !== undefined) {
      // The new directory's own entry must survive a power loss too.
      await fsyncDir(fs, path.dirname(created));
    }
    step = 'open';
    // wx: never write through a name someone else placed there.
    fh = await fs.open(tmp, 'wx', options.mode ?? 0o600);
    step = 'write';
    await fh.writeFile(data);
    step = 'fsync';
    await fh.sync();
    step = 'close';
    // Set to null first: a failed close must not be retried below.
    const h = fh;
    fh = null;
    await h.close();
    step = 'rename';
    await fs.rename(tmp, file);
    renamed = true;
    step = 'fsync-dir';
    await fsyncDir(fs, dir);
    return { ok: true };
  } catch (error) {
    if (fh !== null) {
      await fh.close().catch(() => undefined);
    }
    if (!renamed) {
      await fs.unlink(tmp).catch(() => undefined);
    }
    return { ok: false, step, error };
  }
}

/**
 * Removes the temp files of `file` left by writes that never finished (a
 * crash, kill -9, power loss). This process's are never in flight when its
 * caller runs this (the caller serializes its own writes); another live
 * process's are kept unless old enough to be a pid reuse. Best effort: a
 * directory that cannot be read gives an empty result.
 */
export async function removeStaleTemps(file: string, options: SweepOptions = {}): Promise<SweepResult> {
  const fs = atomicFs(options.fs);
  const now = options.now ?? (() => new Date());
  const dir = path.dirname(file);
  const prefix = tempPrefix(file);
  const result: SweepResult = { removed: [], failed: [] };
  let names: string[];
  try {
    names = (await fs.readdir(dir)).filter((n) => n.startsWith(prefix));
  } catch {
    return result; // The loader reports the directory's problems when it reads the file.
  }
  for (const name of names) {
    const full = path.join(dir, name);
    try {
      const pid = Number(/^(\d+)-/.exec(name.slice(prefix.length))?.[1] ?? NaN);
      if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) {
        const st = await fs.lstat(full);
        if (now().getTime() - st.mtimeMs < STALE_TEMP_MS) {
          continue;
        }
      }
      await fs.unlink(full);
      result.removed.push(full);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') {
        result.failed.push({ path: full, errno: errnoOf(err) });
      }
    }
  }
  return result;
}

/** fsync of a directory makes renames and creations in it durable. */
async function fsyncDir(fs: AtomicFs, dir: string): Promise<void> {
  const dh = await fs.open(dir, FS.O_RDONLY | FS.O_DIRECTORY);
  try {
    await dh.sync();
  } catch (err) {
    // Some filesystems cannot fsync a directory; the rename is then as
    // durable as that filesystem makes it, and there is nothing more to do.
    if (errnoOf(err) !== 'EINVAL' && errnoOf(err) !== 'ENOTSUP') {
      throw err;
    }
  } finally {
    await dh.close().catch(() => undefined);
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoOf(err) === 'EPERM';
  }
}
