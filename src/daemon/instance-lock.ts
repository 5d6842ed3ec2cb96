import * as fs from 'node:fs';
import * as net from 'node:net';
import { DaemonLockError } from '../errors';

/**
 * One sharegwd per network namespace (ADR 0012): the lock is a listening
 * unix socket in the abstract namespace, `@sharegw/daemon`. Binding it is
 * atomic, the kernel scopes it to the network namespace (exactly the scope
 * of what the daemon programs: iptables chains, policy routes, tunnel
 * addresses) and frees it when the process dies, kill -9 included, so
 * there is no stale file to judge. Node has no flock(2); this needs none.
 *
 * On a conflict the holder is identified from the kernel, not from what
 * it says: /proc/net/unix gives the socket's inode, /proc/<pid>/fd the
 * process holding it, /proc/<pid>/status its uid. Any local user can bind
 * an abstract name, so a holder of another uid is reported as such (a
 * squatter, not a sharegwd).
 */

/** The abstract socket name (without the leading NUL). */
export const LOCK_NAME = 'sharegw/daemon';
/** Exit status of a sharegwd (or --cleanup) refused by the lock (EX_TEMPFAIL). */
export const EXIT_ALREADY_RUNNING = 75;

/** Who holds the lock, as far as /proc tells. */
export interface LockHolder {
  pid: number;
  uid: number | null;
  /** The start of its command line (`node .../sharegwd.js --config ...`). */
  command: string;
}

/** A held lock; released by release() or by the process's end. */
export interface InstanceLock {
  readonly name: string;
  release(): Promise<void>;
}

/**
 * Takes the lock or throws DaemonLockError: SGW_ERR_DAEMON_ALREADY_RUNNING
 * naming the holder when another process has it, SGW_ERR_DAEMON_LOCK when
 * the socket cannot be made at all (the daemon must not run unlocked).
 */
export async function acquireInstanceLock(name: string = LOCK_NAME, proc: ProcReader = realProc): Promise<InstanceLock> {
  const server = net.createServer((s) => s.destroy());
  // Connections carry nothing; a flood of them must not hold resources.
  server.maxConnections = 1;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(`\0${name}`, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      const holder = findHolder(name, proc);
      throw new DaemonLockError('SGW_ERR_DAEMON_ALREADY_RUNNING', alreadyRunning(name, holder), { holder });
    }
    throw new DaemonLockError('SGW_ERR_DAEMON_LOCK', `cannot take the single-instance lock @${name}: ${code ?? String(err)}`, { holder: null, cause: err });
  }
  // The lock must not keep the process alive; it lives until exit.
  server.unref();
  server.on('error', () => undefined);
  let released = false;
  return {
    name,
    release: () => {
      if (released) {
        return Promise.resolve();
      }
      released = true;
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function alreadyRunning(name: string, h: LockHolder | null): string {
  if (h === null) {
    return `another sharegwd already runs in this network namespace (lock @${name} is taken; its holder could not be identified)`;
  }
  const me = typeof process.geteuid === 'function' ? process.geteuid() : null;
  const foreign = h.uid !== null && me !== null && h.uid !== me;
  return foreign
    ? `the single-instance lock @${name} is held by pid ${h.pid} (uid ${h.uid}: ${h.command || '?'}), which is not a sharegwd of this user; stop that process`
    : `another sharegwd already runs in this network namespace (pid ${h.pid}: ${h.command || '?'}); stop it first`;
}

/** What the holder lookup reads; injected in tests. */
export interface ProcReader {
  netUnix(): string;
  pids(): string[];
  fds(pid: string): string[];
  readlink(path: string): string;
  read(path: string): string;
}

const realProc: ProcReader = {
  netUnix: () => fs.readFileSync('/proc/net/unix', 'utf8'),
  pids: () => fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)),
  fds: (pid) => fs.readdirSync(`/proc/${pid}/fd`),
  readlink: (p) => fs.readlinkSync(p),
  read: (p) => fs.readFileSync(p, 'utf8'),
};

/**
 * Inodes of listening sockets bound to the abstract `name` in a
 * /proc/net/unix listing. Node binds the whole sun_path, so the name comes
 * padded with NULs (shown as `@`). Pure.
 */
export function listeningInodes(listing: string, name: string): number[] {
  const out: number[] = [];
  for (const line of listing.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // Num RefCount Protocol Flags Type St Inode Path; St 01 = listening.
    const path = f[7];
    if (path === undefined || f[5] !== '01') {
      continue;
    }
    if (path.startsWith(`@${name}`) && /^@*$/.test(path.slice(name.length + 1))) {
      out.push(Number(f[6]));
    }
  }
  return out;
}

/** The process holding the lock socket, or null when /proc does not tell. */
export function findHolder(name: string, proc: ProcReader = realProc): LockHolder | null {
  let inodes: number[];
  try {
    inodes = listeningInodes(proc.netUnix(), name);
  } catch {
    return null;
  }
  const wanted = new Set(inodes.map((i) => `socket:[${i}]`));
  if (wanted.size === 0) {
    return null;
  }
  let pids: string[];
  try {
    pids = proc.pids();
  } catch {
    return null;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = proc.fds(pid);
    } catch {
      continue; // gone, or not ours to read
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = proc.readlink(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (wanted.has(target)) {
        return { pid: Number(pid), uid: uidOf(proc, pid), command: commandOf(proc, pid) };
      }
    }
  }
  return null;
}

function uidOf(proc: ProcReader, pid: string): number | null {
  try {
    const m = /^Uid:\s+(\d+)/m.exec(proc.read(`/proc/${pid}/status`));
    return m === null ? null : Number(m[1]);
  } catch {
    return null;
  }
}

function commandOf(proc: ProcReader, pid: string): string {
  try {
    return proc
      .read(`/proc/${pid}/cmdline`)
      .split('\0')
      .filter((w) => w !== '')
      .slice(0, 4)
      .join(' ')
      .replace(/[^\x20-\x7e]/g, '?')
      .slice(0, 200);
  } catch {
    return '';
  }
}
