import { spawn } from 'node:child_process';
import { KernelApplyError } from '../../errors';
import { parseIp } from '../../util/ip';

/**
 * The backend half of cutting a revoked flow in the kernel plane. The guest
 * half is done by the rules (a guest chain has no ESTABLISHED shortcut, so
 * the guest's next packet on a revoked flow meets the REJECT and gets a
 * reset). Deleting the conntrack entry by its original tuple (guest tunnel
 * IP -> backend:port) then leaves the backend's next packet, addressed to the
 * domain's source IP, without a NAT entry: the gateway's own stack resets
 * it. It also keeps an idle revoked flow from resuming if the grant comes
 * back. Listing flows for `sharegw flows` lives here too. With
 * kernel/restore.ts and tunnels/host.ts, the only modules that run host
 * commands.
 */

/** Overridable binary (tests may point it at a failing one). */
export const CONNTRACK = process.env['SGW_CONNTRACK'] ?? 'conntrack';

/** One original tuple to forget: TCP from `src` to `dst`:`dport`. */
export interface FlowTuple {
  src: string;
  dst: string;
  dport: number;
}

/** How long one conntrack run may take before it is killed. */
const RUN_TIMEOUT_MS = 30_000;
/** Longer stdout lines are no conntrack entries (those are < 1 KiB): dropped unread. */
const MAX_LINE_CHARS = 16 * 1024;

/**
 * Runs conntrack; `onLine` (when given) gets each stdout line as it
 * arrives, so a large table is never held as one string. An exception
 * from `onLine` kills the child and rejects instead of escaping into the
 * event loop.
 */
function run(args: string[], onLine?: (line: string) => void): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(CONNTRACK, args, { stdio: ['ignore', onLine === undefined ? 'ignore' : 'pipe', 'pipe'] });
    // Bounded like iptables in restore.ts: a hung child must not hang the
    // daemon. Our own timer, not spawn's `timeout`: Node leaves that one
    // pending when the spawn itself fails (ENOENT).
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    let stderr = '';
    let failed: { err: unknown } | null = null;
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < MAX_LINE_CHARS) {
        stderr += d; // Only the first line is reported.
      }
    });
    if (onLine !== undefined && child.stdout !== null) {
      let rest = '';
      let overlong = false;
      const feed = (line: string): void => {
        if (failed !== null) {
          return;
        }
        try {
          onLine(line);
        } catch (err) {
          failed = { err };
          child.kill('SIGKILL');
        }
      };
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        const parts = (rest + d).split('\n');
        rest = parts.pop() ?? '';
        for (const line of parts) {
          if (overlong) {
            overlong = false; // The tail of a dropped line.
          } else if (line.length <= MAX_LINE_CHARS) {
            feed(line);
          }
        }
        if (rest.length > MAX_LINE_CHARS) {
          rest = '';
          overlong = true;
        }
      });
      child.stdout.on('end', () => {
        if (rest !== '' && !overlong && rest.length <= MAX_LINE_CHARS) {
          feed(rest);
        }
      });
    }
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (failed !== null) {
        reject(failed.err);
      } else {
        resolve({ code, signal, stderr });
      }
    });
  });
}

/**
 * Deletes the conntrack entries of each tuple; returns how many were deleted.
 * `conntrack -D` exits 1 when nothing matched: that is not an error here.
 */
export async function deleteFlows(tuples: readonly FlowTuple[]): Promise<number> {
  let deleted = 0;
  for (const t of tuples) {
    let r;
    try {
      r = await run(['-D', '-p', 'tcp', '--orig-src', t.src, '--orig-dst', t.dst, '--dport', String(t.dport)]);
    } catch (err) {
      throw new KernelApplyError('SGW_ERR_CONNTRACK_FAILED', `cannot run ${CONNTRACK}: ${(err as Error).message}`, { exitCode: null, stderr: '' });
    }
    const m = /(\d+) flow entries have been deleted/.exec(r.stderr);
    if (m !== null) {
      deleted += Number(m[1]);
      continue;
    }
    throw new KernelApplyError('SGW_ERR_CONNTRACK_FAILED', `${CONNTRACK} exited ${String(r.code)}: ${r.stderr.trim().split('\n')[0] ?? ''}`, { exitCode: r.code, stderr: r.stderr });
  }
  return deleted;
}

/** One direction of a conntrack entry. */
export interface ConntrackTuple {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** Null unless accounting is on (net.netfilter.nf_conntrack_acct=1). */
  packets: number | null;
  bytes: number | null;
}

/** One conntrack entry as `conntrack -L` shows it. */
export interface KernelFlow {
  /** Layer-4 protocol name (`tcp`). */
  proto: string;
  /** TCP state (`ESTABLISHED`, `SYN_SENT`, ...); null for stateless protocols. */
  state: string | null;
  /** Seconds until the entry expires. */
  timeoutS: number;
  /** As the client sent it: for a guest flow, guest tunnel IP -> backend:port. */
  orig: ConntrackTuple;
  /** As the server answers: reply.dst is the SNAT source (the domain source IP). */
  reply: ConntrackTuple;
  /** `[ASSURED]`: traffic was seen both ways. */
  assured: boolean;
  /** `[UNREPLIED]`: no answer seen yet. */
  unreplied: boolean;
  mark: number | null;
  zone: number | null;
  /** Age in seconds when conntrack timestamps are on (`delta-time=`); else null. */
  ageS: number | null;
}

const TUPLE_KEYS = ['src', 'dst', 'sport', 'dport', 'packets', 'bytes'] as const;
type TupleKey = (typeof TUPLE_KEYS)[number];

/** A decimal number that fits a JS number exactly; null otherwise. */
function count(text: string): number | null {
  if (!/^[0-9]{1,15}$/.test(text)) {
    return null;
  }
  return Number(text);
}

function parseTuple(fields: Partial<Record<TupleKey, string>>): ConntrackTuple | null {
  const src = parseIp(fields.src ?? '');
  const dst = parseIp(fields.dst ?? '');
  const sport = count(fields.sport ?? '');
  const dport = count(fields.dport ?? '');
  if (src === null || dst === null || sport === null || dport === null || sport > 65535 || dport > 65535) {
    return null;
  }
  const packets = fields.packets === undefined ? null : count(fields.packets);
  const bytes = fields.bytes === undefined ? null : count(fields.bytes);
  if ((fields.packets !== undefined && packets === null) || (fields.bytes !== undefined && bytes === null)) {
    return null;
  }
  return { src: src.text, dst: dst.text, sport, dport, packets, bytes };
}

/**
 * Parses one line of `conntrack -L` (default or `-o extended` format);
 * null when it is not a well-formed entry with ports (a summary line,
 * ICMP, garbage).
 */
function parseLine(line: string): KernelFlow | null {
  const tok = line.trim().split(/\s+/);
  let i = 0;
  // `-o extended` starts with the layer-3 protocol: `ipv4 2 tcp 6 ...`.
  if ((tok[0] === 'ipv4' || tok[0] === 'ipv6') && /^[0-9]+$/.test(tok[1] ?? '')) {
    i = 2;
  }
  const proto = tok[i];
  const protoNum = tok[i + 1] ?? '';
  const timeoutS = count(tok[i + 2] ?? '');
  if (proto === undefined || !/^[a-z][a-z0-9-]*$/.test(proto) || !/^[0-9]{1,3}$/.test(protoNum) || timeoutS === null) {
    return null;
  }
  i += 3;
  let state: string | null = null;
  if (/^[A-Z_]+$/.test(tok[i] ?? '')) {
    state = tok[i] ?? null;
    i++;
  }
  const dirs: Partial<Record<TupleKey, string>>[] = [];
  const flow = { assured: false, unreplied: false, mark: null as number | null, zone: null as number | null, ageS: null as number | null };
  for (; i < tok.length; i++) {
    const t = tok[i] ?? '';
    if (t.startsWith('[')) {
      // Flags; others ([OFFLOAD], [HW_OFFLOAD], timestamps) are not needed.
      flow.assured ||= t === '[ASSURED]';
      flow.unreplied ||= t === '[UNREPLIED]';
      continue;
    }
    const eq = t.indexOf('=');
    if (eq <= 0) {
      return null;
    }
    const key = t.slice(0, eq);
    const value = t.slice(eq + 1);
    if (key === 'src') {
      // Each direction starts with src=; a third one means this is not a flow.
      if (dirs.length === 2) {
        return null;
      }
      dirs.push({});
    }
    if ((TUPLE_KEYS as readonly string[]).includes(key)) {
      const dir = dirs[dirs.length - 1];
      if (dir === undefined || dir[key as TupleKey] !== undefined) {
        return null;
      }
      dir[key as TupleKey] = value;
    } else if (key === 'mark' || key === 'zone' || key === 'delta-time') {
      const n = count(value);
      if (n === null) {
        return null;
      }
      flow[key === 'delta-time' ? 'ageS' : key] = n;
    }
    // Anything else (use=, id=, secctx=, helper=, zone-orig=, labels=) is not needed.
  }
  const orig = dirs[0] === undefined ? null : parseTuple(dirs[0]);
  const reply = dirs[1] === undefined ? null : parseTuple(dirs[1]);
  if (orig === null || reply === null) {
    return null;
  }
  return { proto, state, timeoutS, orig, reply, ...flow };
}

/**
 * Parses `conntrack -L` output. Pure. Lines that are not well-formed
 * entries are skipped, never fatal: the table is read while it changes,
 * and a tool version may add fields.
 */
export function parseConntrackList(text: string): KernelFlow[] {
  const out: KernelFlow[] = [];
  for (const line of text.split('\n')) {
    const f = parseLine(line);
    if (f !== null) {
      out.push(f);
    }
  }
  return out;
}

/**
 * Lists the host's TCP conntrack entries (`conntrack -L -p tcp`, IPv4 as the
 * data planes are). `keep` filters while reading, so a large table of other
 * traffic is never held in memory.
 */
export async function listFlows(keep: (f: KernelFlow) => boolean = () => true): Promise<KernelFlow[]> {
  const flows: KernelFlow[] = [];
  let r;
  try {
    r = await run(['-L', '-p', 'tcp'], (line) => {
      const f = parseLine(line);
      if (f !== null && keep(f)) {
        flows.push(f);
      }
    });
  } catch (err) {
    // Spawn failures carry the syscall; anything else came from `keep`.
    const spawnFailed = typeof (err as NodeJS.ErrnoException).syscall === 'string';
    const what = spawnFailed ? `cannot run ${CONNTRACK}` : `reading ${CONNTRACK} -L output failed`;
    throw new KernelApplyError('SGW_ERR_CONNTRACK_FAILED', `${what}: ${(err as Error).message}`, { exitCode: null, stderr: '' });
  }
  if (r.code !== 0) {
    const why = r.signal !== null ? `was killed (${r.signal}; the limit is ${RUN_TIMEOUT_MS / 1000} s)` : `exited ${String(r.code)}: ${r.stderr.trim().split('\n')[0] ?? ''}`;
    throw new KernelApplyError('SGW_ERR_CONNTRACK_FAILED', `${CONNTRACK} -L ${why}`, { exitCode: r.code, stderr: r.stderr });
  }
  return flows;
}

/**
 * One entry by its exact original tuple (`conntrack -G`), e.g. to read the
 * byte counters of a flow that just closed. Null when it is already gone
 * (conntrack exits non-zero) or the tool fails: callers only log from it.
 */
export async function getFlow(src: string, dst: string, sport: number, dport: number, zone?: number): Promise<KernelFlow | null> {
  let found: KernelFlow | null = null;
  // A lookup is per zone (zone 0 unless told): flows of a domain with its
  // own egress live in that domain's zone (ADR 0011).
  const inZone = zone === undefined ? [] : ['-w', String(zone)];
  try {
    await run(['-G', '-p', 'tcp', '-s', src, '-d', dst, '--sport', String(sport), '--dport', String(dport), ...inZone], (line) => {
      found ??= parseLine(line);
    });
  } catch {
    return null;
  }
  return found;
}
