/** Injected filesystem failures for the atomic-file writer's tests. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AtomicFs, AtomicStep } from '../../src/persist/atomic-file';

/** An errno error as node:fs throws it. */
export function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected`), { code });
}

/**
 * An fs for writeFileAtomic() (and the stores over it) that fails at `step`
 * with errno `code`: open, write, fsync and close only on the temp files whose
 * name starts with `tempPrefix`, fsync-dir on directories, rename and mkdir
 * always. Used by the atomic-file and state-store tests alike.
 */
export function failingFs(tempPrefix: string, step: AtomicStep, code: string): Partial<AtomicFs> {
  const isTemp = (p: unknown): boolean => typeof p === 'string' && path.basename(p).startsWith(tempPrefix);
  const open = (async (p: fs.PathLike, flags?: string | number, mode?: fs.Mode) => {
    if (step === 'open' && isTemp(p)) {
      throw errno(code);
    }
    const fh = await fs.promises.open(p, flags, mode);
    if (isTemp(p)) {
      if (step === 'write') {
        // Half the bytes reach the file, then the disk is full.
        fh.writeFile = async (data: unknown) => {
          const s = String(data);
          await fs.promises.writeFile(p as string, s.slice(0, s.length >> 1));
          throw errno(code);
        };
      }
      if (step === 'fsync') {
        fh.sync = async () => {
          throw errno(code);
        };
      }
      if (step === 'close') {
        const close = fh.close.bind(fh);
        fh.close = async () => {
          await close();
          throw errno(code);
        };
      }
    } else if (step === 'fsync-dir' && typeof p === 'string' && !isTemp(p) && fs.statSync(p).isDirectory()) {
      fh.sync = async () => {
        throw errno(code);
      };
    }
    return fh;
  }) as AtomicFs['open'];
  const out: Partial<AtomicFs> = { open };
  if (step === 'rename') {
    out.rename = async () => {
      throw errno(code);
    };
  }
  if (step === 'mkdir') {
    out.mkdir = (async () => {
      throw errno(code);
    }) as AtomicFs['mkdir'];
  }
  return out;
}
