import { conntrackEvents } from '../../host/conntrack';
import type { StreamHandle } from '../../host/exec';
import { parseConntrackList } from './conntrack';
import type { KernelFlow } from './conntrack';

/**
 * Kernel-plane flow events for the access log: `conntrack -E` streams every
 * new, updated and destroyed TCP entry of this namespace. Only flows the
 * rules accepted appear (a rejected SYN's entry is never confirmed). The
 * tool runs through host/conntrack.ts.
 */

export type FlowEventType = 'new' | 'update' | 'destroy';

export interface FlowEvent {
  type: FlowEventType;
  flow: KernelFlow;
}

/**
 * Parses one `conntrack -E` line. Pure. Event lines are list lines with a
 * `[NEW]`/`[UPDATE]`/`[DESTROY]` prefix, except that DESTROY lines carry no
 * timeout and state; those get "0 CLOSE" so the list parser reads them.
 * Anything else is null.
 */
export function parseEvent(line: string): FlowEvent | null {
  const m = /^\s*\[(NEW|UPDATE|DESTROY)\]\s+(.*)$/.exec(line);
  if (m === null || m[2] === undefined) {
    return null;
  }
  const type = m[1] === 'NEW' ? 'new' : m[1] === 'UPDATE' ? 'update' : 'destroy';
  let rest = m[2];
  if (type === 'destroy') {
    rest = rest.replace(/^(\S+\s+\d+)\s+(?=src=)/, '$1 0 CLOSE ');
  }
  const flow = parseConntrackList(rest)[0];
  return flow === undefined ? null : { type, flow };
}

/**
 * Runs `conntrack -E -p tcp` and hands each parsed event to `onEvent`.
 * Restarts the tool (after a second) if it exits, until stop().
 */
export class FlowEvents {
  private child: StreamHandle | null = null;
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly onEvent: (e: FlowEvent) => void,
    private readonly onExit: (code: number | null, stderr: string) => void,
  ) {}

  start(): void {
    if (this.stopped) {
      return;
    }
    this.child = conntrackEvents(
      ['-p', 'tcp'],
      (line) => {
        const e = parseEvent(line);
        if (e !== null) {
          this.onEvent(e);
        }
      },
      (code, stderr) => {
        this.child = null;
        if (this.stopped) {
          return;
        }
        this.onExit(code, stderr);
        this.timer = setTimeout(() => this.start(), 1000);
        this.timer.unref();
      },
    );
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) {
      clearTimeout(this.timer);
    }
    this.child?.stop();
  }
}
