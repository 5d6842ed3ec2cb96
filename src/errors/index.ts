/**
 * Error classes. Every error carries a stable `code` (SGW_ERR_<AREA>_<WHAT>)
 * from the one catalogue (./catalogue.ts); each class is typed on the subset
 * of codes it may carry. Codes are API: metrics labels, log fields and tests
 * use them, never messages.
 */

import type { CodeOf, ErrorCode } from './catalogue';

export { CATALOGUE, isErrorCode } from './catalogue';
export type { CatalogueEntry, CodeOf, ErrorCode } from './catalogue';

/** Base class of every error sharegw raises on purpose. */
export class SgwError extends Error {
  /** Stable machine-readable code. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
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

/** Codes of configuration problems (errors) and warnings. */
export type ConfigProblemCode = CodeOf<'SGW_ERR_CONFIG_' | 'SGW_WARN_CONFIG_'>;

/** One configuration problem; a ConfigError holds one or more. */
export interface ConfigProblem extends ConfigLocation {
  code: ConfigProblemCode;
  message: string;
}

/**
 * Formats a problem as `file:line:col: key: message [code]`. Takes any code
 * string: formatting is not where codes are checked (ConfigProblem is).
 */
export function formatProblem(p: Omit<ConfigProblem, 'code'> & { code: string }): string {
  const pos = p.line === undefined ? p.file : `${p.file}:${p.line}:${p.col ?? 1}`;
  const key = p.pointer === '' ? '(document)' : p.pointer;
  return `${pos}: ${key}: ${p.message} [${p.code}]`;
}

/** Invalid configuration: carries every problem found, not just the first. */
export class ConfigError extends SgwError {
  declare readonly code: ConfigProblemCode;
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    const first = problems[0];
    const head = first ? formatProblem(first) : 'invalid configuration';
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
    super(first?.code ?? 'SGW_ERR_CONFIG_INVALID', `${head}${more}`);
    this.problems = problems;
  }
}

/** Stable codes of KernelApplyError. */
export type KernelApplyErrorCode = CodeOf<'SGW_ERR_KERNEL_'> | 'SGW_ERR_CONNTRACK_FAILED';

/** iptables-restore (or -save) failed; carries exit code, stderr and context. */
export class KernelApplyError extends SgwError {
  declare readonly code: KernelApplyErrorCode;
  readonly exitCode: number | null;
  readonly stderr: string;
  /** The failing line of the restore input with up to 3 lines around it. */
  readonly context: string;

  constructor(
    code: KernelApplyErrorCode,
    message: string,
    details: { exitCode: number | null; stderr: string; context?: string },
  ) {
    super(code, message);
    this.exitCode = details.exitCode;
    this.stderr = details.stderr;
    this.context = details.context ?? '';
  }
}

/** Stable codes of HostNetError. */
export type HostNetErrorCode = CodeOf<'SGW_ERR_HOSTNET_'>;

/** A host networking operation (tunnel adoption, sysctl) failed. */
export class HostNetError extends SgwError {
  declare readonly code: HostNetErrorCode;
  constructor(code: HostNetErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Stable codes of AdminProtocolError. */
export type AdminErrorCode = CodeOf<'SGW_ERR_ADMIN_'>;

/** The admin protocol saw a malformed request or response. */
export class AdminProtocolError extends SgwError {
  declare readonly code: AdminErrorCode;
  constructor(code: AdminErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Stable codes of StateError (meanings in the catalogue). */
export type StateErrorCode = CodeOf<'SGW_ERR_STATE_'>;

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

/** Stable codes of NotifyError (meanings in the catalogue). */
export type NotifyErrorCode = CodeOf<'SGW_ERR_NOTIFY_'>;

/**
 * A readiness/watchdog notification could not be delivered. Never thrown
 * into callers: the notifier logs and counts it (notifications are advisory
 * to the daemon's own work, fatal only through systemd's timeouts).
 */
export class NotifyError extends SgwError {
  declare readonly code: NotifyErrorCode;
  constructor(code: NotifyErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
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

/** Stable codes of ProtocolError (meanings in the catalogue). */
export type ProtocolErrorCode = CodeOf<'SGW_ERR_PROTO_'>;

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

/**
 * Stable codes of ManilaError (meanings in the catalogue). SGW_ERR_MANILA_BAD_ID
 * is not one: it marks a skipped record, not a failed call.
 */
export type ManilaErrorCode = Exclude<CodeOf<'SGW_ERR_MANILA_'>, ManilaRecordCode>;

/** Codes of Manila records skipped by the sync (not errors of a call). */
export type ManilaRecordCode = 'SGW_ERR_MANILA_BAD_ID';

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

/** Stable codes of NativeError (meanings in the catalogue). */
export type NativeErrorCode = CodeOf<'SGW_ERR_NATIVE_'>;

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

/** Stable codes of DaemonLockError (meanings in the catalogue). */
export type DaemonLockErrorCode = CodeOf<'SGW_ERR_DAEMON_'>;

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

/** Stable codes of ProxyError. */
export type ProxyErrorCode = 'SGW_ERR_PROXY_CONNECT_TIMEOUT';

/**
 * A proxy session's own failure on a backend leg (as opposed to an errno
 * from the socket). Its code is the `code` label of
 * sharegw_proxy_backend_errors_total, like an errno.
 */
export class ProxyError extends SgwError {
  declare readonly code: ProxyErrorCode;
  constructor(code: ProxyErrorCode, message: string) {
    super(code, message);
  }
}
