import type { DesiredState } from '../model/desired';
import type { Counters } from '../observability/counters';
import type { Logger } from '../observability/logger';
import { getFlow } from '../dataplane/kernel/conntrack';
import type { KernelFlow } from '../dataplane/kernel/conntrack';
import { FlowEvents } from '../dataplane/kernel/flow-events';

/** Open flows remembered for their close record; the oldest goes beyond this. */
const MAX_OPEN_FLOWS = 200_000;

/** Fields of a kernel-plane access record (open and close alike). */
export type AccessRecord = Record<string, unknown>;

/** The key a flow's open and close events share: its original tuple. */
export function flowKey(f: KernelFlow): string {
  return `${f.orig.src}:${f.orig.sport}>${f.orig.dst}:${f.orig.dport}`;
}

/**
 * The access record of a new conntrack flow under `applied`, or null when
 * the flow is not a guest's granted flow of the kernel plane. Pure.
 */
export function openRecord(applied: DesiredState | null, f: KernelFlow): AccessRecord | null {
  const g = applied?.guests.find((x) => x.guestIp === f.orig.src);
  const gr = g?.grants.find((x) => x.backend === f.orig.dst && x.port === f.orig.dport);
  // A flow DNATed to a proxy listener (a steered grant) is the proxy's to log.
  if (g === undefined || gr === undefined || f.reply.src !== f.orig.dst) {
    return null;
  }
  return { plane: 'kernel', domain: g.domain, guest: g.key, guestPort: f.orig.sport, backend: f.orig.dst, port: f.orig.dport, service: gr.service, shares: gr.shares.map((x) => x.id), natSource: f.reply.dst };
}

/** The conntrack zone a guest's flows live in (its domain's egress table), if any. Pure. */
export function zoneOf(applied: DesiredState | null, guestIp: string): number | undefined {
  const guestDomain = applied?.guests.find((x) => x.guestIp === guestIp)?.domain;
  return applied?.egress?.find((x) => x.domain === guestDomain)?.table;
}

/**
 * Kernel-plane access log from conntrack events: an open record when the
 * rules accept a guest's flow, a close record (with bytes each way) when
 * it reaches CLOSE/TIME_WAIT, or when its entry is destroyed first
 * (expired, or deleted by a revocation).
 * State: the event stream, the open flows (bounded), the counter reads
 * still under way for close records, and when the stream's end was last
 * logged.
 */
export class KernelAccessLog {
  private flowEvents: FlowEvents | null = null;
  /** Counter reads for close records still under way; stop() waits for them so the stop record stays last. */
  private readonly pendingCloses = new Set<Promise<void>>();

  constructor(
    private readonly log: Logger,
    private readonly counters: Counters,
    /** The desired state whose grants were last fully enforced. */
    private readonly applied: () => DesiredState | null,
  ) {}

  /** Starts following conntrack events. */
  start(): void {
    const access = this.log.child({ log: 'access' });
    const open = new Map<string, { at: number; rec: AccessRecord; closed: boolean }>();
    let lastEventsWarn = 0;
    const close = (k: string, f: KernelFlow, reason: string): void => {
      const o = open.get(k);
      if (o === undefined || o.closed) {
        return;
      }
      o.closed = true;
      access.info({ event: 'close', ...o.rec, bytesUp: f.orig.bytes, bytesDown: f.reply.bytes, durationMs: Date.now() - o.at, reason }, 'flow close');
    };
    this.flowEvents = new FlowEvents(
      (e) => {
        const f = e.flow;
        const k = flowKey(f);
        if (e.type === 'new') {
          const rec = openRecord(this.applied(), f);
          if (rec === null) {
            return;
          }
          if (open.size >= MAX_OPEN_FLOWS) {
            const oldest = open.keys().next().value;
            if (oldest !== undefined) {
              open.delete(oldest);
            }
          }
          open.set(k, { at: Date.now(), rec, closed: false });
          access.info({ event: 'open', ...rec }, 'flow open');
        } else if (e.type === 'update' && (f.state === 'CLOSE' || f.state === 'TIME_WAIT') && open.get(k)?.closed === false) {
          // UPDATE events carry no counters: read them while the entry lives.
          const zone = zoneOf(this.applied(), f.orig.src);
          const p = getFlow(f.orig.src, f.orig.dst, f.orig.sport, f.orig.dport, zone).then((now) => close(k, now ?? f, f.state === 'CLOSE' ? 'reset' : 'done'));
          this.pendingCloses.add(p);
          void p.finally(() => this.pendingCloses.delete(p));
        } else if (e.type === 'destroy') {
          close(k, f, 'expired-or-deleted');
          open.delete(k);
        }
      },
      (code, stderr) => {
        this.counters.inc('sharegw_flow_events_errors_total');
        // It restarts every second: say so at most once a minute.
        const now = Date.now();
        if (now - lastEventsWarn > 60_000) {
          lastEventsWarn = now;
          this.log.warn({ code, stderr }, 'conntrack event stream ended; restarting (kernel-plane access log)');
        }
      },
    );
    this.flowEvents.start();
  }

  /** Stops the event stream and waits for close records under way. Idempotent. */
  async stop(): Promise<void> {
    this.flowEvents?.stop();
    await Promise.allSettled([...this.pendingCloses]);
  }
}
