import * as fs from 'node:fs/promises';
import { HostNetError } from '../errors';

/**
 * Kernel settings under /proc/sys. No process is spawned: the files are
 * the interface, and writing only what differs keeps a re-sync from
 * touching a setting that is already right.
 */

/** Sets `path` (a /proc/sys file) to `value` unless it already holds it. */
export async function writeSysctl(path: string, value: string): Promise<void> {
  try {
    const cur = (await fs.readFile(path, 'utf8')).trim();
    if (cur !== value) {
      await fs.writeFile(path, value);
    }
  } catch (err) {
    throw new HostNetError('SGW_ERR_HOSTNET_SYSCTL', `cannot set ${path}=${value}: ${(err as Error).message}`);
  }
}
