/**
 * Error catalogue. Every error carries a stable `code` (SGW_ERR_<AREA>_<WHAT>);
 * codes are API: metrics labels, log fields and tests use them, never messages.
 */

/** Base class of every error sharegw raises on purpose. */
export class SgwError extends Error {
  /** Stable machine-readable code. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Where in which file a configuration problem was found. */
export interface ConfigLocation {
  file: string;
  line?: number;
  col?: number;
  /** JSON-pointer-like path of the key, e.g. `/guests/0/tunnel/guestIp`. */
  pointer: string;
}

/** One configuration problem; a ConfigError holds one or more. */
export interface ConfigProblem extends ConfigLocation {
  code: string;
  message: string;
}

/** Formats a problem as `file:line:col: key: message [code]`. */
export function formatProblem(p: ConfigProblem): string {
  const pos = p.line === undefined ? p.file : `${p.file}:${p.line}:${p.col ?? 1}`;
  const key = p.pointer === '' ? '(document)' : p.pointer;
  return `${pos}: ${key}: ${p.message} [${p.code}]`;
}

/** Invalid configuration: carries every problem found, not just the first. */
export class ConfigError extends SgwError {
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    const first = problems[0];
    const head = first ? formatProblem(first) : 'invalid configuration';
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
    super(first?.code ?? 'SGW_ERR_CONFIG_INVALID', `${head}${more}`);
    this.problems = problems;
  }
}

/** iptables-restore (or -save) failed; carries exit code, stderr and context. */
export class KernelApplyError extends SgwError {
  readonly exitCode: number | null;
  readonly stderr: string;
  /** The failing line of the restore input with up to 3 lines around it. */
  readonly context: string;

  constructor(
    code: string,
    message: string,
    details: { exitCode: number | null; stderr: string; context?: string },
  ) {
    super(code, message);
    this.exitCode = details.exitCode;
    this.stderr = details.stderr;
    this.context = details.context ?? '';
  }
}

/** A host networking operation (tunnel adoption, sysctl) failed. */
export class HostNetError extends SgwError {}

/** An object was used after it was closed, or in the wrong state. */
export class InvalidStateError extends SgwError {
  constructor(message: string) {
    super('SGW_ERR_INVALID_STATE', message);
  }
}

/** The admin protocol saw a malformed request or response. */
export class AdminProtocolError extends SgwError {}

/** Stable codes of StateError. */
export type StateErrorCode =
  /** Reading or writing the state file failed (ENOSPC, EACCES, EIO, ...). */
  | 'SGW_ERR_STATE_IO'
  /** The file is not JSON, is truncated, too large, or has the wrong shape. */
  | 'SGW_ERR_STATE_CORRUPT'
  /** The file is well formed but was written for another node or in an unknown version. */
  | 'SGW_ERR_STATE_FOREIGN';

/**
 * The last-known-good state file could not be written or used. The message
 * names the file and, for I/O, the errno code; it never quotes file content.
 */
export class StateError extends SgwError {
  declare readonly code: StateErrorCode;
  /** The file (or directory) concerned. */
  readonly path: string;
  /** The errno code (`ENOSPC`, `EACCES`, ...) for SGW_ERR_STATE_IO; null otherwise. */
  readonly errno: string | null;

  constructor(code: StateErrorCode, message: string, details: { path: string; errno?: string | null; cause?: unknown }) {
    super(code, message, details.cause === undefined ? undefined : { cause: details.cause });
    this.path = details.path;
    this.errno = details.errno ?? null;
  }
}

/** Stable codes of NotifyError. */
export type NotifyErrorCode =
  /** The notifier binary could not be started (ENOENT, EACCES). */
  | 'SGW_ERR_NOTIFY_SPAWN'
  /** The notifier exited non-zero or was killed. */
  | 'SGW_ERR_NOTIFY_EXIT'
  /** The notifier did not finish in time (the service manager did not take the message). */
  | 'SGW_ERR_NOTIFY_TIMEOUT';

/**
 * A readiness/watchdog notification could not be delivered. Never thrown
 * into callers: the notifier logs and counts it (notifications are advisory
 * to the daemon's own work, fatal only through systemd's timeouts).
 */
export class NotifyError extends SgwError {
  declare readonly code: NotifyErrorCode;
}

/** Returns a short, secret-free description of any thrown value. */
export function describeError(err: unknown): { code: string; message: string } {
  if (err instanceof SgwError) {
    return { code: err.code, message: err.message };
  }
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return { code: typeof code === 'string' ? code : 'SGW_ERR_INTERNAL', message: err.message };
  }
  return { code: 'SGW_ERR_INTERNAL', message: String(err) };
}

export type ProtocolErrorCode =
  /** A length prefix or frame boundary that breaks the transport's rules. */
  | 'SGW_ERR_PROTO_FRAMING'
  /** A frame larger than the configured limit (checked before buffering). */
  | 'SGW_ERR_PROTO_TOO_LARGE'
  /** A header or body too short or inconsistent to decode. */
  | 'SGW_ERR_PROTO_MALFORMED'
  /** Not the protocol the port carries (e.g. no SMB magic on 445). */
  | 'SGW_ERR_PROTO_UNEXPECTED';

/**
 * Bytes from a guest or a backend that a codec cannot accept. Codecs return
 * these (they never throw into the event loop); the proxy closes that one
 * connection and counts the code.
 */
export class ProtocolError extends SgwError {
  declare readonly code: ProtocolErrorCode;
  constructor(code: ProtocolErrorCode, message: string) {
    super(code, message);
  }
}

/** Stable codes of ManilaError. */
export type ManilaErrorCode =
  /** Keystone refused the credentials or the token (401/403), or Manila refused the token. */
  | 'SGW_ERR_MANILA_AUTH'
  /** Manila or Keystone answered with an HTTP error that is not about auth. */
  | 'SGW_ERR_MANILA_HTTP'
  /** A response body that is not JSON or not the shape the API reference promises. */
  | 'SGW_ERR_MANILA_SHAPE'
  /** No answer: refused, reset, DNS, TLS, or the request timed out (after retries). */
  | 'SGW_ERR_MANILA_UNREACHABLE'
  /** The server offers no microversion this client can use (needs 2.51 or later). */
  | 'SGW_ERR_MANILA_VERSION'
  /** The service catalog has no usable `sharev2` endpoint for the interface and region. */
  | 'SGW_ERR_MANILA_CATALOG';

/**
 * A call to Keystone or Manila failed. Carries what an operator needs to
 * find the request on the server (method, path, status, request id), never
 * a credential: request bodies and auth headers are not kept, and server
 * messages are cut short.
 */
export class ManilaError extends SgwError {
  declare readonly code: ManilaErrorCode;
  /** HTTP status, or null when there was no answer. */
  readonly status: number | null;
  /** `x-openstack-request-id` / `x-compute-request-id` of the answer, if any. */
  readonly requestId: string | null;

  constructor(code: ManilaErrorCode, message: string, details: { status?: number | null; requestId?: string | null; cause?: unknown } = {}) {
    super(code, message, details.cause === undefined ? undefined : { cause: details.cause });
    this.status = details.status ?? null;
    this.requestId = details.requestId ?? null;
  }
}

/** Stable codes of NativeError. */
export type NativeErrorCode =
  /** A socket has no file descriptor to hand to the addon (not connected, already closed, not TCP). */
  | 'SGW_ERR_NATIVE_NO_FD'
  /** A socket still had bytes buffered in Node when the native relay was to take it over. */
  | 'SGW_ERR_NATIVE_BUFFERED'
  /** As many native relays run as allowed (each holds a thread and two pipes). */
  | 'SGW_ERR_NATIVE_LIMIT'
  /** The addon's call failed; the errno name is in `errno`. */
  | 'SGW_ERR_NATIVE_CALL';

/**
 * A native shim could not do its job for one connection or message. The
 * caller falls back to the TypeScript implementation for that one use and
 * counts it in sharegw_native_fallbacks_total{shim,code}.
 */
export class NativeError extends SgwError {
  declare readonly code: NativeErrorCode;
  /** The errno name (ENOENT, ETIMEDOUT, ...) when a system call failed. */
  readonly errno: string | null;
  constructor(code: NativeErrorCode, message: string, options: { cause?: unknown; errno?: string } = {}) {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause });
    this.errno = options.errno ?? null;
  }
}

/** Stable codes of DaemonLockError. */
export type DaemonLockErrorCode =
  /** Another process holds the single-instance lock of this network namespace (ADR 0012). */
  | 'SGW_ERR_DAEMON_ALREADY_RUNNING'
  /** The lock socket could not be made for another reason; the daemon does not run unlocked. */
  | 'SGW_ERR_DAEMON_LOCK';

/**
 * sharegwd (or `--cleanup`) refused to run because it could not take the
 * single-instance lock. `holder` names the process that has it, when
 * /proc tells (pid, uid, command line).
 */
export class DaemonLockError extends SgwError {
  declare readonly code: DaemonLockErrorCode;
  readonly holder: { pid: number; uid: number | null; command: string } | null;
  constructor(code: DaemonLockErrorCode, message: string, details: { holder: { pid: number; uid: number | null; command: string } | null; cause?: unknown }) {
    super(code, message, details.cause === undefined ? undefined : { cause: details.cause });
    this.holder = details.holder;
  }
}
