import type { SgwConfig } from '../model/config';
import type { DesiredState, GuestState } from '../model/desired';
import type { Counters } from '../observability/counters';
import type { Logger } from '../observability/logger';
import type { ApplyReport, KernelRules } from '../dataplane/kernel/plane';
import type { EgressRoutes } from '../dataplane/kernel/egress-apply';
import { rpFilterWarnings } from '../dataplane/kernel/egress';
import type { EgressWarning } from '../dataplane/kernel/egress';
import type { OwnedTunnel } from '../dataplane/kernel/render';
import type { ProxyPlane } from '../dataplane/proxy/plane';
import { proxiedPart } from '../policy/policy';
import { vetTunnels } from '../tunnels/vet';
import { adoptTunnels, enableConntrackAccounting, linkFacts, TUNNEL_KINDS, enableForwarding, isLocalAddress, releaseTunnel, releaseTunnelPeer } from '../tunnels/host';
import type { TunnelState } from '../tunnels/host';
import { describeError } from '../errors';
import type { KernelCapNotes } from './caps';
import { readRpFilter } from './proc';
import type { Revoker } from './revoke';

/** The last egress batch that applied only partly. */
export interface EgressErrorView {
  message: string;
  context: string;
  at: string;
}

/** What one pass of the pipeline enforced. */
export interface SyncOutcome {
  /** The desired state as enforced: guests whose tunnels were refused left out. */
  desired: DesiredState;
  /** The kernel apply's report, or null when the rules were already right. */
  report: ApplyReport | null;
}

/** The parts the pipeline drives; the daemon owns them. */
export interface SyncParts {
  kernel: KernelRules;
  egress: EgressRoutes;
  proxy: ProxyPlane;
  revoker: Revoker;
  caps: KernelCapNotes;
}

/**
 * One sync's way from desired state to host: vet and release tunnels,
 * kernel rules, egress routes, tunnel adoption, proxy listeners, then the
 * second kernel apply for moved listeners. Throws on the first failure;
 * the daemon keeps the last applied state and retries.
 * State: tunnel adoption results and refusals, the guests (and, after a
 * restart, the orphaned tunnels) whose addresses are ours to release, the
 * egress error and host warnings, and the source IPs already warned about.
 */
export class SyncPipeline {
  private tunnelStates: TunnelState[] = [];
  /** Guests refused adoption (not a tunnel interface), by key, with the reason. */
  private refused = new Map<string, string>();
  /** Tunnels found in the kernel's rules at start, released if no longer configured. */
  private orphans: OwnedTunnel[] = [];
  /** Guests whose tunnels the last sync (or, after a restart, the state file) held. */
  private previousGuests: readonly GuestState[] = [];
  private egressErrorView: EgressErrorView | null = null;
  private egressWarningList: EgressWarning[] = [];
  private readonly warnedSource = new Set<string>();

  constructor(
    private readonly log: Logger,
    private readonly counters: Counters,
    private readonly parts: SyncParts,
  ) {}

  /** Tunnel adoption results of the last sync (status). */
  get tunnels(): readonly TunnelState[] {
    return this.tunnelStates;
  }

  /** The last egress batch that applied only partly (status), or null. */
  get egressError(): EgressErrorView | null {
    return this.egressErrorView;
  }

  /** Host settings that break an egress (status). */
  get egressWarnings(): readonly EgressWarning[] {
    return this.egressWarningList;
  }

  /**
   * Whatever the state file says, the rules in the kernel name the tunnels
   * a previous run guarded: those no longer configured are released at the
   * first sync (before their chains go), even without a usable state file.
   */
  async loadOrphans(): Promise<void> {
    try {
      this.orphans = await this.parts.kernel.ownedTunnels();
    } catch (err) {
      this.log.warn({ ...describeError(err) }, 'cannot read existing rules for tunnels to release');
    }
  }

  /** The guests a restored state file says were held before the restart. */
  restorePrevious(guests: readonly GuestState[]): void {
    this.previousGuests = guests;
  }

  /** Runs the pipeline once for `wanted`; `force` re-applies rules even if unchanged. */
  async run(wanted: DesiredState, force: boolean, generation: number, domains: SgwConfig['domains']): Promise<SyncOutcome> {
    const { kernel, egress, proxy, revoker, caps } = this.parts;
    const before = this.tunnelStates;
    // Only real tunnel interfaces are adopted and get rules (see vet.ts).
    const vetted = vetTunnels(wanted, await linkFacts(), TUNNEL_KINDS);
    const desired = vetted.desired;
    for (const [key, r] of vetted.refused) {
      if (this.refused.get(key) !== r.reason) {
        this.counters.inc('sharegw_tunnels_refused_total');
        this.log.error({ guest: key, iface: r.guest.iface, code: 'SGW_ERR_TUNNEL_REFUSED' }, r.reason);
      }
    }
    this.refused = new Map([...vetted.refused].map(([k, r]) => [k, r.reason]));
    // Addresses off the tunnels of removed guests before their chains go,
    // rules before new tunnels get their addresses: at no moment is a
    // tunnel addressed without its guest's chains (deny by default) in the
    // kernel, even if the apply fails.
    await this.releaseRemovedTunnels(desired);
    await revoker.retryPending();
    const proxied = proxiedPart(desired);
    const listening = proxy.listening(proxied);
    let report = await kernel.apply(desired, listening, !force);
    // Zones first (just applied), then routes: a domain's first packet
    // through its table already has its conntrack zone.
    const eg = await egress.apply(desired);
    const egressError = eg?.partial ?? null;
    if (egressError !== null && egressError.message !== this.egressErrorView?.message) {
      this.counters.inc('sharegw_egress_errors_total');
      this.log.error({ code: 'SGW_ERR_KERNEL_ROUTES_FAILED', err: egressError.message, context: egressError.context }, 'some egress routes could not be applied; their domains fail closed (unreachable) until the next sync succeeds');
    }
    if (eg === null || egressError === null) {
      this.egressErrorView = null;
    } else {
      this.egressErrorView = { ...egressError, at: new Date().toISOString() };
    }
    this.checkEgressHost(desired);
    if (eg !== null && egressError === null) {
      if (eg.drifted) {
        this.counters.inc('sharegw_egress_drift_repairs_total');
        this.log.warn({ generation, batch: eg.sample }, 'another program changed sharegw egress routes or rules; repaired');
      } else {
        this.log.info({ generation, lines: eg.lines, batch: eg.sample }, 'egress routes and rules applied');
      }
    }
    this.tunnelStates = [
      ...(await adoptTunnels(desired.guests)),
      ...[...vetted.refused.values()].map((r) => ({ key: r.guest.key, iface: r.guest.iface, present: true, error: r.reason })),
    ];
    for (const t of this.tunnelStates) {
      if (t.error !== undefined && !before.some((b) => b.key === t.key && b.error === t.error)) {
        this.log.warn({ guest: t.key, iface: t.iface, error: t.error }, 'tunnel not ready');
      }
    }
    await this.checkSourceIps(domains);
    // Listeners bind the tunnels' gateway addresses, so they open after
    // adoption; the DNAT rules for new listeners follow in a second apply.
    const ports = await proxy.open(proxied);
    // Usually no listener opened or moved: the rules just applied are
    // already right, and a second apply would only cost an iptables-save.
    const same = ports.size === listening.size && [...ports].every(([k, p]) => listening.get(k) === p);
    const second = same ? null : await kernel.apply(desired, ports, true);
    if (second !== null) {
      report = { ...second, drifted: second.drifted || report?.drifted === true };
    }
    await proxy.closeStale(ports);
    // Kernel cap refusals, from the counters this sync's save already read.
    caps.note(kernel.observed());
    if (desired.dataplane === 'kernel') {
      await enableForwarding();
      await enableConntrackAccounting();
    }
    return { desired, report };
  }

  /** Counts and logs a successful kernel apply (drift repaired, lines applied). */
  logApplied(report: ApplyReport | null, generation: number): void {
    if (report?.drifted === true) {
      this.counters.inc('sharegw_rule_drift_repairs_total');
      this.log.warn({ generation, diff: report.driftSample }, 'another program changed sharegw chains or jumps; repaired');
    }
    if (report !== null) {
      this.counters.inc('sharegw_rule_applies_total', { result: 'ok' });
      this.log.info({ generation, lines: report.lines, ms: Math.round(report.durationMs) }, 'rules applied');
    }
  }

  /**
   * Takes the gateway address off tunnels of guests that are no longer
   * configured (their chains are gone with this sync: an addressed tunnel
   * without rules would be an open route). The previous guests come from the
   * last sync, or after a restart from the state file, so a guest removed
   * while the daemon was down is released too.
   */
  private async releaseRemovedTunnels(desired: DesiredState): Promise<void> {
    if (this.orphans.length > 0) {
      const wanted = new Set(desired.guests.map((g) => `${g.iface} ${g.guestIp}`));
      for (const o of this.orphans) {
        if (!wanted.has(`${o.iface} ${o.guestIp}`)) {
          await releaseTunnelPeer(o.iface, o.guestIp);
        }
      }
      this.orphans = [];
    }
    const keep = new Set(desired.guests.map((g) => `${g.iface} ${g.gatewayIp} ${g.guestIp}`));
    for (const old of this.previousGuests) {
      if (!keep.has(`${old.iface} ${old.gatewayIp} ${old.guestIp}`)) {
        await releaseTunnel(old.iface, old.gatewayIp, old.guestIp);
      }
    }
    this.previousGuests = desired.guests;
  }

  /** Host settings that break an egress without failing its apply (rp_filter); logged when they change. */
  private checkEgressHost(desired: DesiredState): void {
    const warnings = rpFilterWarnings(desired.egress ?? [], readRpFilter);
    const key = (w: readonly EgressWarning[]): string => w.map((x) => `${x.domain} ${x.code} ${x.message}`).join('\n');
    if (key(warnings) !== key(this.egressWarningList)) {
      for (const w of warnings) {
        this.log.warn({ code: w.code, domain: w.domain, iface: w.iface }, w.message);
      }
      if (warnings.length > 0) {
        this.counters.inc('sharegw_egress_warnings_total', {}, warnings.length);
      }
    }
    this.egressWarningList = warnings;
  }

  /** Warns once per source IP that no interface here holds (backends could not answer it). */
  private async checkSourceIps(domains: SgwConfig['domains']): Promise<void> {
    for (const d of domains) {
      const ip = d.sourceIp.text;
      if (!this.warnedSource.has(ip) && !(await isLocalAddress(ip))) {
        this.warnedSource.add(ip);
        this.log.warn({ domain: d.name, sourceIp: ip }, 'source IP is not assigned to any interface here; backends cannot answer it');
      }
    }
  }
}
