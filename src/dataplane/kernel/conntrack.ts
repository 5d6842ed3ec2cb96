import { conntrackDelete, conntrackGet, conntrackList } from '../../host/conntrack';
import { parseIp } from '../../util/ip';

/**
 * The backend half of cutting a revoked flow in the kernel plane. The guest
 * half is done by the rules (a guest chain has no ESTABLISHED shortcut, so
 * the guest's next packet on a revoked flow meets the REJECT and gets a
 * reset). Deleting the conntrack entry by its original tuple (guest tunnel
 * IP -> backend:port) then leaves the backend's next packet, addressed to the
 * domain's source IP, without a NAT entry: the gateway's own stack resets
 * it. It also keeps an idle revoked flow from resuming if the grant comes
 * back. Listing flows for `sharegw flows` lives here too. The tool itself
 * runs through host/conntrack.ts; this module builds its arguments and
 * parses its lines.
 */

/** One original tuple to forget: TCP from `src` to `dst`:`dport`. */
export interface FlowTuple {
  src: string;
  dst: string;
  dport: number;
}

/**
 * Deletes the conntrack entries of each tuple; returns how many were deleted.
 * `conntrack -D` exits 1 when nothing matched: that is not an error here.
 */
export async function deleteFlows(tuples: readonly FlowTuple[]): Promise<number> {
  let deleted = 0;
  for (const t of tuples) {
    deleted += await conntrackDelete(['-p', 'tcp', '--orig-src', t.src, '--orig-dst', t.dst, '--dport', String(t.dport)]);
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
  await conntrackList(['-p', 'tcp'], (line) => {
    const f = parseLine(line);
    if (f !== null && keep(f)) {
      flows.push(f);
    }
  });
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
  await conntrackGet(['-p', 'tcp', '-s', src, '-d', dst, '--sport', String(sport), '--dport', String(dport), ...inZone], (line) => {
    found ??= parseLine(line);
  });
  return found;
}
