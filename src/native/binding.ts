/**
 * The addon's JavaScript surface (native-shims/src/*.cc), as TypeScript
 * sees it. Only src/native/ uses these types.
 */

/** What `originalDst(fd)` returns: the destination before REDIRECT/DNAT. */
export interface RawDestination {
  address: string;
  port: number;
  family: 4 | 6;
}

/** Events of a SpliceRelay; 'done' comes once, last. */
export type RawRelayEvent =
  | { type: 'eof'; dir: 'ab' | 'ba' }
  | {
      type: 'done';
      reason: 'complete' | 'error' | 'stopped';
      ab: number;
      ba: number;
      eofAB: boolean;
      eofBA: boolean;
      error?: { code: string; errno: number; side: 'a' | 'b' };
    };

export interface RawSpliceRelay {
  /** Bytes delivered so far, [a->b, b->a]. */
  bytes(): [number, number];
  /** Wakes and joins the thread (teardown: bytes still in its pipes are lost). */
  stop(): [number, number];
}

export interface NativeBinding {
  readonly abiVersion: number;
  originalDst(fd: number): RawDestination;
  setTcpUserTimeout(fd: number, ms: number): void;
  getTcpUserTimeout(fd: number): number;
  setKeepAlive(fd: number, idleS: number, intervalS: number, count: number): void;
  getKeepAlive(fd: number): { enabled: boolean; idleS: number; intervalS: number; count: number };
  /** An unconnected IPv4 TCP socket bound to a device and address:port (0: chosen at connect). */
  egressSocket(device: string, address: string, port: number): number;
  sdNotify(socketPath: string, message: string): number;
  SpliceRelay: new (fdA: number, fdB: number, budgetAB: number, budgetBA: number, onEvent: (e: RawRelayEvent) => void) => RawSpliceRelay;
}

/** The ABI this TypeScript expects; a different addon is not loaded. */
export const ABI_VERSION = 2;
