import type { SgwConfig } from '../model/config';
import type { DesiredState } from '../model/desired';
import type { Counters } from '../observability/counters';
import type { Logger } from '../observability/logger';
import { configDigest, STATE_VERSION, StateStore } from '../persist/state-store';
import { describeError } from '../errors';

/** What a restart takes over from the state file. */
export interface RestoredState {
  /** The desired state whose grants were enforced before the restart. */
  desired: DesiredState;
  proxyPorts: Record<string, number>;
  /** The generation to run on: the saved one, one more if the config changed. */
  generation: number;
}

/**
 * The daemon's use of the last-known-good state file (ADR 0006).
 * State: the last save's outcome, what was restored at start, and the
 * content last written (periodic syncs that change nothing write nothing).
 */
export class DaemonState {
  private readonly store: StateStore;
  private lastSave: { ok: boolean; at: string; error?: { code: string; message: string } } | null = null;
  private restored: { generation: number; savedAt: string; sameConfig: boolean } | null = null;
  private lastSavedKey = '';

  constructor(
    private readonly dir: string,
    private readonly node: string,
    private readonly log: Logger,
    private readonly counters: Counters,
  ) {
    this.store = new StateStore(dir, node, { log });
  }

  /**
   * Loads the last-known-good state. It tells which grants were enforced
   * before a restart (so grants removed while the daemon was down are cut at
   * the first sync) and which proxy ports were in use (so the first sync
   * renders the rules already in the kernel). A corrupt or foreign file is
   * set aside by the store; we rebuild from configuration and say so (null).
   */
  async load(config: SgwConfig): Promise<RestoredState | null> {
    const r = await this.store.load();
    if (r.kind === 'invalid') {
      this.counters.inc('sharegw_state_load_errors_total', { code: r.error.code });
      this.log.error({ code: r.error.code, err: r.error.message, movedTo: r.movedTo }, 'state file unusable; rebuilding from configuration');
      return null;
    }
    if (r.kind === 'none') {
      return null;
    }
    const st = r.state;
    if (st.desired.dataplane !== config.daemon.dataplane) {
      this.log.warn({ was: st.desired.dataplane }, 'state was written for the other data plane; not reused');
      return null;
    }
    const sameConfig = st.configDigest === configDigest(config);
    this.restored = { generation: st.generation, savedAt: st.savedAt, sameConfig };
    this.log.info({ generation: st.generation, savedAt: st.savedAt, sameConfig }, 'last-known-good state restored');
    return { desired: st.desired, proxyPorts: st.proxyPorts, generation: sameConfig ? st.generation : st.generation + 1 };
  }

  /** Writes the enforced state; a failure is reported and counted, never fatal. */
  async save(generation: number, config: SgwConfig, applied: DesiredState, proxyPorts: Record<string, number>): Promise<void> {
    const at = new Date().toISOString();
    const content = {
      generation,
      configDigest: configDigest(config),
      desired: applied,
      proxyPorts,
    };
    // Periodic syncs change nothing most of the time: no disk write then.
    const key = JSON.stringify(content);
    if (key === this.lastSavedKey && this.lastSave?.ok === true) {
      return;
    }
    try {
      await this.store.save({ version: STATE_VERSION, node: this.node, savedAt: at, ...content });
      this.lastSavedKey = key;
      if (this.lastSave?.ok === false) {
        this.log.info('state file written again');
      }
      this.lastSave = { ok: true, at };
    } catch (err) {
      const e = describeError(err);
      this.counters.inc('sharegw_state_save_errors_total', { code: e.code });
      if (this.lastSave?.ok !== false) {
        this.log.error({ code: e.code, err: e.message }, 'cannot write state file; running on, will retry every sync');
      }
      this.lastSave = { ok: false, at, error: { code: e.code, message: e.message } };
    }
  }

  /** The state part of status. */
  view(): { dir: string; lastSave: unknown; restored: unknown } {
    return { dir: this.dir, lastSave: this.lastSave, restored: this.restored };
  }
}
