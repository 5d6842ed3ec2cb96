import { spawn } from 'node:child_process';

/**
 * The only module that starts processes (ADR 0013; lint enforces it). One
 * runner for every host command: an argv (never a shell), optional stdin
 * text, a timeout, caps on what is kept of stdout and stderr, and an
 * explicit result. The wrappers beside it (iptables.ts, iproute.ts,
 * conntrack.ts, systemd-notify.ts) know their tool and turn a result into
 * the typed error of their layer; this module knows no tool and throws
 * nothing.
 */

/**
 * The binaries we run, each overridable by an environment variable that is
 * read once, when this module loads (tests point them at fakes, the lab at
 * netns wrappers). systemd-notify is chosen by its caller (NotifierOptions).
 */
export const HOST_BINARIES = {
  iptablesSave: process.env['SGW_IPTABLES_SAVE'] ?? 'iptables-save',
  iptablesRestore: process.env['SGW_IPTABLES_RESTORE'] ?? 'iptables-restore',
  ip: process.env['SGW_IP'] ?? 'ip',
  conntrack: process.env['SGW_CONNTRACK'] ?? 'conntrack',
} as const;

/** One run of a host command. */
export interface ExecSpec {
  /** Binary name (looked up in PATH) or path. */
  file: string;
  args: readonly string[];
  /** Written to stdin, which is then closed; absent: stdin is /dev/null. */
  input?: string;
  /** The child is killed (killSignal) when it runs longer. */
  timeoutMs: number;
  /** Default SIGKILL: a wedged child may ignore anything softer. */
  killSignal?: NodeJS.Signals;
  /** The child's whole environment; absent: ours. */
  env?: NodeJS.ProcessEnv;
  /** Bytes of stdout kept (when not streamed); default unbounded. */
  maxStdoutBytes?: number;
  /** Bytes of stderr kept; default unbounded. */
  maxStderrBytes?: number;
  /** Past a cap: `truncate` keeps the first bytes, `kill` also kills the child (execFile's maxBuffer). */
  overflow?: 'truncate' | 'kill';
  /** Streams stdout by line instead of keeping it; a throw kills the child. */
  onLine?: (line: string) => void;
  /** Longer stdout lines are dropped whole, unread; default 16 KiB. */
  maxLineChars?: number;
}

/** How a run ended. `run()` resolves with one of these and never rejects. */
export type ExecResult =
  | {
      kind: 'exited';
      /** Null when the child was killed by a signal. */
      code: number | null;
      signal: NodeJS.Signals | null;
      /** Empty when stdout was streamed through onLine. */
      stdout: string;
      stderr: string;
      /** We killed it: it ran past timeoutMs. */
      timedOut: boolean;
      /** Output went past a cap (and, with overflow `kill`, we killed it). */
      overflowed: boolean;
    }
  /** The process could not be started (ENOENT, EACCES, ...); error.syscall is set. */
  | { kind: 'spawn-failed'; error: NodeJS.ErrnoException }
  /** onLine threw; the child was killed and this is what it threw. */
  | { kind: 'line-failed'; error: unknown };

/** Default cap of one streamed stdout line. */
export const MAX_LINE_CHARS = 16 * 1024;

/**
 * Splits a text stream into lines. A line longer than the cap is dropped
 * whole, including the part still to come, so a runaway line costs at most
 * the cap in memory.
 */
class LineSplitter {
  private rest = '';
  private overlong = false;

  constructor(
    private readonly maxChars: number,
    private readonly emit: (line: string) => void,
  ) {}

  push(chunk: string): void {
    const parts = (this.rest + chunk).split('\n');
    this.rest = parts.pop() ?? '';
    for (const line of parts) {
      if (this.overlong) {
        this.overlong = false; // The tail of a dropped line.
      } else if (line.length <= this.maxChars) {
        this.emit(line);
      }
    }
    if (this.rest.length > this.maxChars) {
      this.rest = '';
      this.overlong = true;
    }
  }

  end(): void {
    if (this.rest !== '' && !this.overlong) {
      this.emit(this.rest);
    }
    this.rest = '';
  }
}

/** Runs one host command to its end. */
export function run(spec: ExecSpec): Promise<ExecResult> {
  return new Promise((resolve) => {
    const env = spec.env === undefined ? {} : { env: spec.env };
    let child;
    try {
      child =
        spec.input === undefined
          ? spawn(spec.file, spec.args, { stdio: ['ignore', 'pipe', 'pipe'], ...env })
          : spawn(spec.file, spec.args, { stdio: ['pipe', 'pipe', 'pipe'], ...env });
    } catch (error) {
      // Node throws, rather than emitting 'error', for arguments it refuses
      // (a NUL byte in an argument): still a command that could not start.
      resolve({ kind: 'spawn-failed', error: error as NodeJS.ErrnoException });
      return;
    }
    const killSignal = spec.killSignal ?? 'SIGKILL';
    let settled = false;
    let timedOut = false;
    let overflowed = false;
    let lineFailure: { error: unknown } | null = null;
    // Our own timer, not spawn's `timeout`: Node leaves that one pending
    // when the spawn itself fails (ENOENT).
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill(killSignal);
    }, spec.timeoutMs);
    const settle = (r: ExecResult): void => {
      clearTimeout(timer);
      if (!settled) {
        settled = true;
        resolve(r);
      }
    };
    const collect = (stream: NodeJS.ReadableStream, cap: number | undefined): Buffer[] => {
      const kept: Buffer[] = [];
      let size = 0;
      stream.on('data', (b: Buffer) => {
        if (cap !== undefined && size + b.length > cap) {
          kept.push(b.subarray(0, Math.max(0, cap - size)));
          size = cap;
          if (!overflowed) {
            overflowed = true;
            if (spec.overflow === 'kill') {
              child.kill(killSignal);
            }
          }
          return;
        }
        kept.push(b);
        size += b.length;
      });
      return kept;
    };
    const err = collect(child.stderr, spec.maxStderrBytes);
    let out: Buffer[] = [];
    if (spec.onLine !== undefined) {
      const onLine = spec.onLine;
      const lines = new LineSplitter(spec.maxLineChars ?? MAX_LINE_CHARS, (line) => {
        if (lineFailure !== null) {
          return;
        }
        try {
          onLine(line);
        } catch (error) {
          lineFailure = { error };
          child.kill('SIGKILL');
        }
      });
      child.stdout.setEncoding('utf8').on('data', (d: string) => lines.push(d));
      child.stdout.on('end', () => lines.end());
    } else {
      out = collect(child.stdout, spec.maxStdoutBytes);
    }
    child.on('error', (error) => settle({ kind: 'spawn-failed', error }));
    child.on('close', (code, signal) => {
      if (lineFailure !== null) {
        settle({ kind: 'line-failed', error: lineFailure.error });
        return;
      }
      settle({
        kind: 'exited',
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
        overflowed,
      });
    });
    if (child.stdin !== null) {
      // A child that exits before reading its input must not crash us (EPIPE).
      child.stdin.on('error', () => undefined);
      child.stdin.end(spec.input ?? '');
    }
  });
}

/** A long-running command whose stdout is read line by line (e.g. `conntrack -E`). */
export interface StreamSpec {
  file: string;
  args: readonly string[];
  onLine: (line: string) => void;
  /** Called once when the process is gone, with the last stderr text (trimmed). */
  onExit: (code: number | null, stderr: string) => void;
  /** Default 16 KiB. */
  maxLineChars?: number;
  /** The tail of stderr kept for onExit; default 2000 characters. */
  maxStderrChars?: number;
}

/** A running stream; stop() ends it (SIGTERM) and onExit is still called. */
export interface StreamHandle {
  stop(): void;
}

/**
 * Starts a streaming command. A failure to start is reported through
 * onExit too (Node closes the child after the spawn error, code -2 for
 * ENOENT), so the caller has one place to restart from.
 */
export function spawnStream(spec: StreamSpec): StreamHandle {
  const child = spawn(spec.file, spec.args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const maxStderr = spec.maxStderrChars ?? 2000;
  let stderr = '';
  const lines = new LineSplitter(spec.maxLineChars ?? MAX_LINE_CHARS, spec.onLine);
  child.stdout.setEncoding('utf8').on('data', (d: string) => lines.push(d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr = (stderr + d).slice(-maxStderr);
  });
  child.on('error', () => undefined); // Reported through 'close'.
  child.on('close', (code) => spec.onExit(code, stderr.trim()));
  return { stop: () => child.kill('SIGTERM') };
}
