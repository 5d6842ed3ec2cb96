import { cidrContains, parseCidr, parseIp } from '../../src/util/ip';

/**
 * A packet tracer over rendered iptables-restore text (kube-proxy's
 * tracePacket idea): it interprets exactly the matches and targets our
 * renderer emits, so tests can ask "what happens to this packet?" instead of
 * comparing strings only. Anything it does not understand throws, so a new
 * rule shape cannot silently pass.
 */

export interface Packet {
  iif: string;
  /** Egress interface when forwarded (the backend side). */
  oif?: string;
  src: string;
  dst: string;
  proto: 'tcp' | 'udp' | 'icmp';
  sport?: number;
  dport?: number;
  icmpType?: number;
  /** Conntrack state of the packet before this hop. */
  state?: 'NEW' | 'ESTABLISHED';
}

export interface TraceResult {
  verdict: 'ACCEPT' | 'DROP' | 'REJECT';
  /** Table/chain where the verdict fell. */
  where: string;
  path: 'forward' | 'local' | 'dropped-early';
  /** Destination after DNAT and source after SNAT. */
  dst: string;
  dport?: number;
  src: string;
  snatPorts?: string;
  rejectWith?: string;
  comment?: string;
}

interface Rule {
  chain: string;
  raw: string;
  match: (p: Ctx) => boolean;
  target: string;
  args: Map<string, string>;
  comment?: string;
}

interface Ctx extends Packet {
  ctDnat: boolean;
  /** connlimit rules this packet was counted by (raw lines). */
  counted: string[];
  /** Live connections a connlimit rule counts (without this one). */
  countOf: (line: string) => number;
}

function tokenize(line: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line)) !== null) {
    out.push(m[1] ?? m[2] ?? '');
  }
  return out;
}

function ipIn(spec: string, addr: string): boolean {
  const c = parseCidr(spec);
  const a = parseIp(addr);
  if (c === null || a === null) {
    throw new Error(`tracer: bad address ${spec} / ${addr}`);
  }
  return cidrContains(c, a);
}

function parseRule(line: string): Rule {
  const tok = tokenize(line);
  const op = tok.shift();
  const chain = tok.shift() ?? '';
  if (op === '-I') {
    tok.shift(); // position
  }
  const tests: ((p: Ctx) => boolean)[] = [];
  const args = new Map<string, string>();
  let target = '';
  let comment: string | undefined;
  let neg = false;
  while (tok.length > 0) {
    const t = tok.shift() ?? '';
    const v = (): string => tok.shift() ?? '';
    const not = neg;
    neg = false;
    const add = (f: (p: Ctx) => boolean): void => void tests.push(not ? (p) => !f(p) : f);
    switch (t) {
      case '!':
        neg = true;
        break;
      case '-i': {
        const x = v();
        add((p) => p.iif === x);
        break;
      }
      case '-o': {
        const x = v();
        add((p) => p.oif === x);
        break;
      }
      case '-s': {
        const x = v();
        add((p) => ipIn(x, p.src));
        break;
      }
      case '-d': {
        const x = v();
        add((p) => ipIn(x, p.dst));
        break;
      }
      case '-p': {
        const x = v();
        add((p) => p.proto === x);
        break;
      }
      case '-m': {
        const mod = v();
        if (!['tcp', 'udp', 'icmp', 'conntrack', 'comment', 'multiport', 'limit', 'connlimit'].includes(mod)) {
          throw new Error(`tracer: unknown match module ${mod} in: ${line}`);
        }
        break;
      }
      case '--dport': {
        const x = Number(v());
        add((p) => p.dport === x);
        break;
      }
      case '--sport': {
        const [lo, hi] = v().split(':').map(Number);
        add((p) => p.sport !== undefined && p.sport >= (lo ?? 0) && p.sport <= (hi ?? lo ?? 0));
        break;
      }
      case '--dports': {
        const set = new Set(v().split(',').map(Number));
        add((p) => p.dport !== undefined && set.has(p.dport));
        break;
      }
      case '--ctstate': {
        const states = v().split(',');
        add((p) => states.some((s) => (s === 'DNAT' ? p.ctDnat : s === (p.state ?? 'NEW') || (s === 'RELATED' && false))));
        break;
      }
      case '--icmp-type': {
        const x = Number(v());
        add((p) => p.icmpType === x);
        break;
      }
      case '--limit':
        v();
        break;
      case '--connlimit-above': {
        // connlimit counts the connections that passed this very rule and
        // still live, plus the one being opened (xt_connlimit).
        const above = Number(v());
        add((p) => {
          p.counted.push(line);
          return p.countOf(line) + 1 > above;
        });
        break;
      }
      case '--connlimit-mask': {
        if (v() !== '32') {
          throw new Error(`tracer: only --connlimit-mask 32 is modelled: ${line}`);
        }
        break;
      }
      case '--connlimit-daddr':
        break;
      case '--comment':
        comment = v();
        break;
      case '-j':
        target = v();
        break;
      case '--to-destination':
      case '--to-source':
      case '--reject-with':
        args.set(t, v());
        break;
      default:
        throw new Error(`tracer: unknown token ${t} in: ${line}`);
    }
  }
  const rule: Rule = { chain, raw: line, match: (p) => tests.every((f) => f(p)), target, args };
  if (comment !== undefined) {
    rule.comment = comment;
  }
  return rule;
}

function connKey(p: Packet): string {
  return `${p.src}:${p.sport ?? 0}>${p.dst}:${p.dport ?? 0}`;
}

/** Parsed restore text: per table, the rules of each chain in order. */
export class Ruleset {
  readonly tables = new Map<string, Map<string, Rule[]>>();
  readonly declared = new Map<string, Set<string>>();
  /** Per connlimit rule, the live connections it counted (`src:sport>dst:dport`). */
  private readonly live = new Map<string, Set<string>>();

  constructor(text: string) {
    let table = '';
    for (const line of text.split('\n')) {
      if (line.startsWith('*')) {
        table = line.slice(1);
        this.tables.set(table, new Map());
        this.declared.set(table, new Set());
      } else if (line.startsWith(':')) {
        this.declared.get(table)?.add(line.slice(1).split(' ')[0] ?? '');
      } else if (line.startsWith('-A ') || line.startsWith('-I ')) {
        const r = parseRule(line);
        const chains = this.tables.get(table);
        if (chains === undefined) {
          throw new Error('rule outside a table');
        }
        const list = chains.get(r.chain) ?? [];
        if (line.startsWith('-I ')) {
          list.unshift(r);
        } else {
          list.push(r);
        }
        chains.set(r.chain, list);
      }
    }
  }

  /** The connection of `pkt` ended: no connlimit rule counts it any more. */
  close(pkt: Packet): void {
    const k = connKey(pkt);
    for (const set of this.live.values()) {
      set.delete(k);
    }
  }

  private run(table: string, chain: string, p: Ctx, depth = 0): Rule | null {
    if (depth > 10) {
      throw new Error('tracer: jump loop');
    }
    for (const r of this.tables.get(table)?.get(chain) ?? []) {
      if (!r.match(p)) {
        continue;
      }
      if (r.target.startsWith('SGW-')) {
        const hit = this.run(table, r.target, p, depth + 1);
        if (hit !== null) {
          return hit;
        }
        continue;
      }
      if (r.target === 'RETURN') {
        return null;
      }
      if (r.target === '') {
        // A rule without a target only counts (the cap chains' marker).
        continue;
      }
      return r;
    }
    return null;
  }

  /** Follows one packet through raw, nat, routing and filter as the kernel would. */
  trace(pkt: Packet, localAddrs: readonly string[]): TraceResult {
    const p: Ctx = { ...pkt, ctDnat: false, counted: [], countOf: (line) => this.live.get(line)?.size ?? 0 };
    const fresh = (p.state ?? 'NEW') === 'NEW';
    const base = (): Pick<TraceResult, 'src' | 'dst' | 'dport'> => ({ src: p.src, dst: p.dst, ...(p.dport === undefined ? {} : { dport: p.dport }) });
    const verdictOf = (r: Rule, where: string, path: TraceResult['path']): TraceResult => {
      const out: TraceResult = { verdict: r.target as TraceResult['verdict'], where, path, ...base() };
      const rw = r.args.get('--reject-with');
      if (rw !== undefined) {
        out.rejectWith = rw;
      }
      if (r.comment !== undefined) {
        out.comment = r.comment;
      }
      return out;
    };
    const raw = this.run('raw', 'PREROUTING', p);
    if (raw !== null && raw.target === 'DROP') {
      return verdictOf(raw, 'raw/PREROUTING', 'dropped-early');
    }
    if (fresh) {
      const nat = this.run('nat', 'PREROUTING', p);
      if (nat !== null && nat.target === 'DNAT') {
        const [ip, port] = (nat.args.get('--to-destination') ?? '').split(':');
        p.dst = ip ?? p.dst;
        if (port !== undefined) {
          p.dport = Number(port);
        }
        p.ctDnat = true;
      }
    }
    const local = localAddrs.includes(p.dst);
    const hook = local ? 'INPUT' : 'FORWARD';
    const f = this.run('filter', hook, p);
    const path = local ? 'local' : 'forward';
    if (f !== null && f.target !== 'ACCEPT') {
      return verdictOf(f, `filter/${hook}`, path);
    }
    const result: TraceResult = { verdict: 'ACCEPT', where: f === null ? `filter/${hook} (policy)` : `filter/${hook}`, path, ...base() };
    if (f?.comment !== undefined) {
      result.comment = f.comment;
    }
    // The connection lives now: every connlimit rule it passed counts it.
    const conn = connKey(pkt);
    for (const line of p.counted) {
      const set = this.live.get(line) ?? new Set<string>();
      set.add(conn);
      this.live.set(line, set);
    }
    if (!local && fresh) {
      const post = this.run('nat', 'POSTROUTING', p);
      if (post !== null && post.target === 'SNAT') {
        const [ip, ports] = (post.args.get('--to-source') ?? '').split(':');
        result.src = ip ?? p.src;
        if (ports !== undefined) {
          result.snatPorts = ports;
        }
      }
    }
    return result;
  }
}
