import type { KernelFlow } from '../dataplane/kernel/conntrack';
import type { FlowInfo } from '../dataplane/proxy/plane';
import { AdminProtocolError, describeError } from '../errors';
import type { SgwConfig } from '../model/config';
import type { DesiredState, GuestState, Service } from '../model/desired';
import { explain, resolveGuestRef } from '../policy/explain';
import type { Explanation } from '../policy/explain';
import { ADMIN_ERRORS } from './protocol';
import type { ExplainRequest, FlowsRequest } from './protocol';

/**
 * The daemon's answers to `flows` and `explain`, kept out of daemon/index.ts so
 * they can be tested without one. No I/O of their own: the kernel flow
 * listing is passed in.
 */

/** Which plane carries a flow. */
export type FlowPlane = 'kernel' | 'proxy';

/** One live flow of a configured guest, as `sharegw flows` shows it. */
export interface FlowRow {
  /** `domain/instance`. */
  guest: string;
  domain: string;
  plane: FlowPlane;
  backend: string;
  port: number;
  /** The guest's source port. */
  guestPort: number;
  /** The service of the grant the flow uses; null when not granted. */
  service: Service | null;
  /** False for a flow the current grants no longer allow (revoked, not yet cut). */
  granted: boolean;
  /** TCP state (kernel) or ESTABLISHED (a live proxy session). */
  state: string;
  /** Bytes guest -> backend; null when conntrack accounting is off. */
  bytesUp: number | null;
  /** Bytes backend -> guest; null when conntrack accounting is off. */
  bytesDown: number | null;
  /** Seconds since the flow opened, when known (proxy; kernel with conntrack timestamps). */
  ageS?: number;
  /** Kernel plane: the address the flow is SNATed to (reply destination); null for proxy flows. */
  natSource: string | null;
}

/** Which flows to show; `guest` is a guest reference (key, instance id or tunnel). */
export interface FlowFilter {
  guest?: string;
  backend?: string;
}

/** `flows` answer. */
export interface FlowsResult {
  rows: FlowRow[];
  /** Null when the kernel was not asked (proxy plane); otherwise whether listing worked. */
  kernel: { ok: true } | { ok: false; error: { code: string; message: string } } | null;
}

/** listFlows() of dataplane/kernel/conntrack, or a stand-in in tests. */
export type KernelFlowLister = (keep: (f: KernelFlow) => boolean) => Promise<KernelFlow[]>;

/** Where `flows` gets its data. */
export interface FlowSources {
  desired: DesiredState;
  proxyFlows: readonly FlowInfo[];
  /** Null where the kernel carries no guest flows of its own (proxy plane). */
  kernelFlows: KernelFlowLister | null;
}

/** The guests a filter selects; throws SGW_ERR_ADMIN_UNKNOWN_GUEST for a reference that names none. */
function selectGuests(desired: DesiredState, filter: FlowFilter): GuestState[] {
  if (filter.guest === undefined) {
    return desired.guests;
  }
  const r = resolveGuestRef(desired.guests, filter.guest);
  if (r.guest === null) {
    const why = r.candidates.length > 1 ? `names ${r.candidates.length} guests (${r.candidates.map((g) => g.key).join(', ')})` : 'names no configured guest';
    throw new AdminProtocolError(ADMIN_ERRORS.unknownGuest, `guest "${filter.guest}" ${why}`);
  }
  return [r.guest];
}

function compareRows(a: FlowRow, b: FlowRow): number {
  const keys: [string | number, string | number][] = [
    [a.guest, b.guest],
    [a.plane, b.plane],
    [a.backend, b.backend],
    [a.port, b.port],
    [a.guestPort, b.guestPort],
  ];
  for (const [x, y] of keys) {
    if (x !== y) {
      return x < y ? -1 : 1;
    }
  }
  return 0;
}

/**
 * Joins the planes' live flows with the desired state. Kernel flows belong
 * to a guest when their original source is its tunnel IP; a kernel flow
 * whose reply comes from another address than the original destination
 * was DNATed to a proxy listener, and the proxy row stands for it. Flows
 * of anything but configured guests are left out.
 */
export function flowsView(desired: DesiredState, proxyFlows: readonly FlowInfo[], kernelFlows: readonly KernelFlow[], filter: FlowFilter): FlowRow[] {
  const guests = selectGuests(desired, filter);
  const byKey = new Map(guests.map((g) => [g.key, g]));
  const byIp = new Map(guests.map((g) => [g.guestIp, g]));
  const grantOf = (g: GuestState, backend: string, port: number): Service | null => g.grants.find((gr) => gr.backend === backend && gr.port === port)?.service ?? null;
  const rows: FlowRow[] = [];
  for (const f of proxyFlows) {
    const g = byKey.get(f.guest);
    if (g === undefined || (filter.backend !== undefined && f.backend !== filter.backend)) {
      continue;
    }
    const service = grantOf(g, f.backend, f.port);
    rows.push({
      guest: g.key,
      domain: g.domain,
      plane: 'proxy',
      backend: f.backend,
      port: f.port,
      guestPort: f.guestPort,
      service,
      granted: service !== null,
      state: 'ESTABLISHED',
      bytesUp: f.up,
      bytesDown: f.down,
      ageS: Math.max(0, Math.floor(f.ageMs / 1000)),
      natSource: null,
    });
  }
  for (const f of kernelFlows) {
    const g = byIp.get(f.orig.src);
    if (g === undefined || f.reply.src !== f.orig.dst || (filter.backend !== undefined && f.orig.dst !== filter.backend)) {
      continue;
    }
    const service = grantOf(g, f.orig.dst, f.orig.dport);
    const row: FlowRow = {
      guest: g.key,
      domain: g.domain,
      plane: 'kernel',
      backend: f.orig.dst,
      port: f.orig.dport,
      guestPort: f.orig.sport,
      service,
      granted: service !== null,
      state: f.state ?? '?',
      bytesUp: f.orig.bytes,
      bytesDown: f.reply.bytes,
      natSource: f.reply.dst,
    };
    if (f.ageS !== null) {
      row.ageS = f.ageS;
    }
    rows.push(row);
  }
  return rows.sort(compareRows);
}

/**
 * Answers `flows`. A kernel listing that fails does not fail the command:
 * the proxy rows are still returned and `kernel` says what went wrong.
 * An unknown guest filter is an error (SGW_ERR_ADMIN_UNKNOWN_GUEST).
 */
export async function flowsCommand(req: FlowsRequest, src: FlowSources): Promise<FlowsResult> {
  const filter: FlowFilter = {};
  if (req.guest !== undefined) {
    filter.guest = req.guest;
  }
  if (req.backend !== undefined) {
    filter.backend = req.backend;
  }
  const ips = new Set(selectGuests(src.desired, filter).map((g) => g.guestIp));
  let kernelFlows: KernelFlow[] = [];
  let kernel: FlowsResult['kernel'] = null;
  if (src.kernelFlows !== null) {
    try {
      // Filter while reading: the host's table may hold much other traffic.
      kernelFlows = await src.kernelFlows((f) => ips.has(f.orig.src));
      kernel = { ok: true };
    } catch (err) {
      kernel = { ok: false, error: describeError(err) };
    }
  }
  return { rows: flowsView(src.desired, src.proxyFlows, kernelFlows, filter), kernel };
}

/** Answers `explain` from the running configuration and desired state. */
export function explainCommand(req: ExplainRequest, config: SgwConfig, desired: DesiredState): Explanation {
  return explain(config, desired, req.guest, req.to);
}
