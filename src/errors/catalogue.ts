/**
 * The one list of sharegw's stable codes (SGW_ERR_* and SGW_WARN_*). Codes
 * are API: metric labels, log fields, admin answers and tests use them,
 * never the message text. Error classes, config problems and Manila skip
 * records are typed on `ErrorCode`, so a code that is not listed here does
 * not compile; test/unit/errors-catalogue.test.ts fails on an entry that
 * src/ no longer uses. docs/errors.md is generated from this file
 * (`npm run docs:errors`).
 */

/** How a code reaches an operator. */
export type Surface =
  | 'ProtocolError'
  | 'ConfigProblem'
  | 'ConfigError'
  | 'KernelApplyError'
  | 'HostNetError'
  | 'AdminProtocolError'
  | 'StateError'
  | 'NotifyError'
  | 'ManilaError'
  | 'NativeError'
  | 'DaemonLockError'
  | 'ProxyError'
  | 'SgwError'
  | 'EgressWarning'
  | 'Manila skip record'
  | 'log field'
  | 'metric label';

/** One catalogue entry. */
export interface CatalogueEntry {
  /** The classes or records that carry the code (first: the main one). */
  readonly surfaces: readonly Surface[];
  /** What happened, in one or two sentences. */
  readonly meaning: string;
  /** What an operator does about it. */
  readonly action: string;
}

// Kept in code order within each area; the doc generator sorts anyway.
const entries = {
  // Admin socket (sharegw CLI <-> sharegwd).
  SGW_ERR_ADMIN_BAD_ARGUMENT: {
    surfaces: ['AdminProtocolError'],
    meaning: 'An admin request argument has the wrong type or an invalid value (e.g. a guest reference that is empty or too long).',
    action: 'Fix the argument given to `sharegw`; `sharegw --help` lists the accepted forms.',
  },
  SGW_ERR_ADMIN_BAD_JSON: {
    surfaces: ['AdminProtocolError'],
    meaning: 'A line on the admin socket is not JSON: a request (seen by the daemon) or a response (seen by the CLI).',
    action: 'Use the `sharegw` CLI of the same version as the daemon; a foreign client speaks the wrong protocol.',
  },
  SGW_ERR_ADMIN_BAD_REQUEST: {
    surfaces: ['AdminProtocolError'],
    meaning: 'An admin request is JSON but not an object with a string `cmd`.',
    action: 'Use the `sharegw` CLI of the same version as the daemon.',
  },
  SGW_ERR_ADMIN_CLOSED: {
    surfaces: ['AdminProtocolError'],
    meaning: 'sharegwd closed the admin connection without answering (it stopped, or refused an oversized request).',
    action: 'Check that sharegwd still runs (`systemctl status sharegwd`) and retry.',
  },
  SGW_ERR_ADMIN_MISSING_ARGUMENT: {
    surfaces: ['AdminProtocolError'],
    meaning: 'An admin command lacks a required argument.',
    action: 'Add the argument (e.g. `sharegw explain GUEST --to ADDR:PORT`).',
  },
  SGW_ERR_ADMIN_TIMEOUT: {
    surfaces: ['AdminProtocolError'],
    meaning: 'sharegwd did not answer an admin request in time.',
    action: 'Check whether sharegwd is stuck or overloaded (logs, `sharegw status` again); restart it if it stays unresponsive.',
  },
  SGW_ERR_ADMIN_TOO_LARGE: {
    surfaces: ['metric label'],
    meaning: 'An admin request line exceeded the size limit; the daemon closed that connection (`sharegw_admin_errors_total`).',
    action: 'Find the client sending oversized lines on the admin socket; the `sharegw` CLI never does.',
  },
  SGW_ERR_ADMIN_UNKNOWN_ARGUMENT: {
    surfaces: ['AdminProtocolError'],
    meaning: 'An admin command got an argument it does not know.',
    action: 'Remove the argument; the CLI and daemon may be of different versions.',
  },
  SGW_ERR_ADMIN_UNKNOWN_COMMAND: {
    surfaces: ['AdminProtocolError'],
    meaning: 'The admin request names a command the daemon does not know.',
    action: 'Use a command the running daemon supports; upgrade the daemon if the CLI is newer.',
  },
  SGW_ERR_ADMIN_UNKNOWN_GUEST: {
    surfaces: ['AdminProtocolError'],
    meaning: 'A guest reference (domain/instance, instance, or guest IP) names no configured guest.',
    action: 'Check the reference against `sharegw status`; the guest may have been removed by a reload or sync.',
  },
  SGW_ERR_ADMIN_UNREACHABLE: {
    surfaces: ['AdminProtocolError'],
    meaning: 'The CLI cannot connect to the admin socket (no daemon, wrong path, or no permission).',
    action: 'Start sharegwd, or pass the right socket path, and run the CLI as a user that may open it.',
  },

  // Configuration files (daemon file, domain files, clouds.yaml).
  SGW_ERR_CONFIG_BAD_ADDRESS: {
    surfaces: ['ConfigProblem'],
    meaning: 'A listen address is not HOST:PORT with an IP address (or localhost) and a port 1-65535.',
    action: 'Fix the value at the reported file:line (e.g. `metrics: 127.0.0.1:9464`).',
  },
  SGW_ERR_CONFIG_BAD_CIDR: {
    surfaces: ['ConfigProblem'],
    meaning: 'An access rule\'s `accessTo` is not an IP address or CIDR prefix, or the prefix has host bits set.',
    action: 'Write the network address of the prefix (the message suggests it).',
  },
  SGW_ERR_CONFIG_BAD_DURATION: {
    surfaces: ['ConfigProblem'],
    meaning: 'A duration is not like 500ms, 10s, 5m, 1h, is below its minimum, or `minInterval` is longer than `interval`.',
    action: 'Fix the value at the reported file:line.',
  },
  SGW_ERR_CONFIG_BAD_EXPORT: {
    surfaces: ['ConfigProblem'],
    meaning: 'A share export location does not parse for the share\'s protocol (NFS `host:/path`, CIFS `\\\\host\\share`).',
    action: 'Copy the export location as Manila shows it (`manila share-export-location-list`).',
  },
  SGW_ERR_CONFIG_BAD_ID: {
    surfaces: ['ConfigProblem'],
    meaning: 'An instance id, share id or name has control, format or separator characters, or is over 255 bytes.',
    action: 'Use the id Manila or Nova gives; printable ids only.',
  },
  SGW_ERR_CONFIG_BAD_INTERFACE: {
    surfaces: ['ConfigProblem'],
    meaning: 'An interface name is not 1-15 characters of A-Z a-z 0-9 _ . -.',
    action: 'Use the name `ip link` shows.',
  },
  SGW_ERR_CONFIG_BAD_IP: {
    surfaces: ['ConfigProblem'],
    meaning: 'A value that must be an IP address is not one.',
    action: 'Fix the value at the reported file:line.',
  },
  SGW_ERR_CONFIG_BAD_PORT_RANGE: {
    surfaces: ['ConfigProblem'],
    meaning: '`proxy.portRange` is not FROM-TO within 1024-65535.',
    action: 'Give an unprivileged range that no other service on the host uses.',
  },
  SGW_ERR_CONFIG_BAD_SIZE: {
    surfaces: ['ConfigProblem'],
    meaning: 'A size is not like 512KiB, 4MiB, 1GiB within its bounds, or `proxy.memoryBudget` is smaller than `proxy.connectionBudget`.',
    action: 'Fix the value at the reported file:line.',
  },
  SGW_ERR_CONFIG_BAD_TABLE: {
    surfaces: ['ConfigProblem'],
    meaning: 'A domain\'s `egress.table` is one of the kernel\'s own routing tables (253, 254, 255).',
    action: 'Pick another table, or leave it out to have one allocated from the daemon\'s `egress.tables`.',
  },
  SGW_ERR_CONFIG_BAD_TABLE_RANGE: {
    surfaces: ['ConfigProblem'],
    meaning: 'The daemon\'s `egress.tables` is not FROM-TO within 1-65535 avoiding 253-255.',
    action: 'Give a range of routing tables no other software on the host uses.',
  },
  SGW_ERR_CONFIG_BAD_URL: {
    surfaces: ['ConfigProblem'],
    meaning: 'A Manila/Keystone URL does not parse, has the wrong scheme, or carries a user or password.',
    action: 'Use an http(s) URL without credentials; put credentials in `auth`.',
  },
  SGW_ERR_CONFIG_CLOUD: {
    surfaces: ['ConfigProblem'],
    meaning: 'The named clouds.yaml entry is missing, unreadable, or lacks what its auth type needs.',
    action: 'Check clouds.yaml (OS_CLIENT_CONFIG_FILE, ./, ~/.config/openstack/, /etc/openstack/) and the entry\'s auth fields.',
  },
  SGW_ERR_CONFIG_DUPLICATE: {
    surfaces: ['ConfigProblem'],
    meaning: 'A value that must be unique (guest, IP, table, idOffset window, source IP on a link) is used twice, in one file or across domains.',
    action: 'Make the value unique; the message names the other place that claims it.',
  },
  SGW_ERR_CONFIG_INVALID: {
    surfaces: ['ConfigError'],
    meaning: 'The code of a ConfigError that holds no problem (should not happen; a ConfigError carries its first problem\'s code).',
    action: 'Report it as a bug with the configuration that caused it.',
  },
  SGW_ERR_CONFIG_IO: {
    surfaces: ['ConfigProblem'],
    meaning: 'A configuration file or the domains directory could not be read.',
    action: 'Check the path and the daemon user\'s permissions.',
  },
  SGW_ERR_CONFIG_NO_TABLE: {
    surfaces: ['ConfigProblem'],
    meaning: 'No routing table is left in the daemon\'s `egress.tables` for a domain with its own egress.',
    action: 'Widen `egress.tables` in the daemon file.',
  },
  SGW_ERR_CONFIG_RELOAD_REJECTED: {
    surfaces: ['log field'],
    meaning: 'A reload (SIGHUP or `sharegw reload`) found invalid configuration; the running configuration stays in force.',
    action: 'Fix the problems logged with it (each with file:line), then reload again; `sharegwd --check-config` checks first.',
  },
  SGW_ERR_CONFIG_SCHEMA: {
    surfaces: ['ConfigProblem'],
    meaning: 'A key is missing, has the wrong type, or is not allowed where it is (e.g. `encryption` on an NFS share).',
    action: 'Fix the key at the reported file:line; config/*.example.yaml shows every key.',
  },
  SGW_ERR_CONFIG_SHARED_BACKEND: {
    surfaces: ['ConfigProblem'],
    meaning: 'Two domains on different share networks reach the same backend address and neither has its own egress.',
    action: 'Give at least one of the domains its own egress (`egress:` in its domain file), or correct the address.',
  },
  SGW_ERR_CONFIG_UNKNOWN_KEY: {
    surfaces: ['ConfigProblem'],
    meaning: 'A key the schema does not know (often a typo).',
    action: 'Correct or remove the key.',
  },
  SGW_ERR_CONFIG_UNSUPPORTED: {
    surfaces: ['ConfigProblem'],
    meaning: 'A valid value the gateway does not support yet (IPv6 addresses or backends).',
    action: 'Use IPv4 for now.',
  },
  SGW_ERR_CONFIG_YAML: {
    surfaces: ['ConfigProblem'],
    meaning: 'A file is not valid YAML, or an alias has no anchor or expands too often.',
    action: 'Fix the syntax at the reported file:line; write values out instead of deep aliases.',
  },
  SGW_WARN_CONFIG_RO_BACKEND_ONLY: {
    surfaces: ['ConfigProblem'],
    meaning: 'A read-only rule on a CIFS share is enforced by the backend only: SMB3 signing and encryption keep writes out of the gateway\'s sight.',
    action: 'None needed if the backend enforces the rule; make sure the Manila access rule is `ro` too.',
  },
  SGW_WARN_CONFIG_RULE_IGNORED: {
    surfaces: ['ConfigProblem'],
    meaning: 'An access rule whose type (user, cert, cephx) the backend enforces; it grants no network access through the gateway.',
    action: 'Add an `ip` rule for the guests that must reach the share, if that is intended.',
  },

  // Kernel data plane.
  SGW_ERR_CONNTRACK_FAILED: {
    surfaces: ['KernelApplyError'],
    meaning: 'The conntrack tool could not be run, failed, or printed a listing it could not parse; revoked flows may live on until they time out.',
    action: 'Install conntrack-tools and check the daemon\'s CAP_NET_ADMIN; the stderr is in the log.',
  },
  SGW_ERR_KERNEL_RESTORE_FAILED: {
    surfaces: ['KernelApplyError'],
    meaning: 'iptables-restore could not be run or refused the rendered rules; the previous rules stay in force and the sync is retried.',
    action: 'Read the logged stderr and context lines; check the iptables backend (nft/legacy) and the kernel modules (conntrack, connlimit, comment).',
  },
  SGW_ERR_KERNEL_ROUTES_FAILED: {
    surfaces: ['KernelApplyError', 'log field'],
    meaning: 'Egress routes or rules (`ip -batch`) could not be applied; the affected domains fail closed until a sync succeeds.',
    action: 'Check that the egress interfaces exist and are up, and the logged stderr.',
  },
  SGW_ERR_KERNEL_SAVE_FAILED: {
    surfaces: ['KernelApplyError'],
    meaning: 'iptables-save could not be run or failed, so the current rules could not be read.',
    action: 'Check that iptables is installed and the daemon has CAP_NET_ADMIN; the stderr is in the log.',
  },
  SGW_WARN_EGRESS_RP_FILTER: {
    surfaces: ['EgressWarning'],
    meaning: 'Strict reverse-path filtering on the link of a domain with a shared source IP drops the replies to proxied flows.',
    action: 'Set net.ipv4.conf.<link>.rp_filter and net.ipv4.conf.all.rp_filter to 0 or 2.',
  },

  // Daemon lifecycle.
  SGW_ERR_DAEMON_ALREADY_RUNNING: {
    surfaces: ['DaemonLockError'],
    meaning: 'Another sharegwd holds the single-instance lock of this network namespace (ADR 0012); exit status 75.',
    action: 'Stop the other instance (its pid is in the message) or use it; `--cleanup --force` only if you know it is safe.',
  },
  SGW_ERR_DAEMON_LOCK: {
    surfaces: ['DaemonLockError'],
    meaning: 'The single-instance lock socket could not be made for another reason; the daemon does not run unlocked.',
    action: 'Check the errno in the message (e.g. no network namespace access).',
  },
  SGW_ERR_NOTIFY_EXIT: {
    surfaces: ['NotifyError'],
    meaning: 'The readiness/watchdog notifier exited non-zero or was killed.',
    action: 'Check `NotifyAccess=` in the unit and that sharegwd runs under systemd; the message has its stderr.',
  },
  SGW_ERR_NOTIFY_SPAWN: {
    surfaces: ['NotifyError'],
    meaning: 'The notifier binary (systemd-notify) could not be started.',
    action: 'Install systemd-notify or build the native shim (npm run build:native).',
  },
  SGW_ERR_NOTIFY_TIMEOUT: {
    surfaces: ['NotifyError'],
    meaning: 'The notifier did not finish in time: the service manager did not take the message.',
    action: 'Check systemd\'s state (`systemctl status`); a hung notifier delays readiness.',
  },
  SGW_ERR_STATE_CORRUPT: {
    surfaces: ['StateError'],
    meaning: 'The last-known-good state file is not JSON, truncated, too large or of the wrong shape; it is moved aside.',
    action: 'Nothing to do for the running daemon (it syncs anew); keep the moved-aside file for a bug report.',
  },
  SGW_ERR_STATE_FOREIGN: {
    surfaces: ['StateError'],
    meaning: 'The state file is well formed but written for another node or in an unknown version.',
    action: 'Check the daemon\'s `node:` setting and StateDirectory; do not copy state between hosts.',
  },
  SGW_ERR_STATE_IO: {
    surfaces: ['StateError'],
    meaning: 'Reading or writing the state file failed (ENOSPC, EACCES, EIO, ...); the old file stays intact.',
    action: 'Free disk space or fix permissions of the StateDirectory (errno in the message).',
  },
  SGW_ERR_INTERNAL: {
    surfaces: ['SgwError'],
    meaning: 'A thrown value that is neither a sharegw error nor carries an errno code (describeError\'s fallback).',
    action: 'Report it as a bug with the log line around it.',
  },

  // Host networking and tunnels.
  SGW_ERR_HOSTNET_IP: {
    surfaces: ['HostNetError'],
    meaning: 'An `ip` command (tunnel address, link query) failed.',
    action: 'Check the stderr in the message, the interface, and CAP_NET_ADMIN.',
  },
  SGW_ERR_HOSTNET_SYSCTL: {
    surfaces: ['HostNetError'],
    meaning: 'A sysctl under /proc/sys could not be written.',
    action: 'Check the daemon\'s permissions (systemd ProtectKernelTunables, capabilities).',
  },
  SGW_ERR_TUNNEL_REFUSED: {
    surfaces: ['log field'],
    meaning: 'A guest\'s tunnel interface is missing or not a real tunnel (tap/veth) interface, so it gets no rules (`sharegw_tunnels_refused_total`).',
    action: 'Check the interface name in the domain file against `ip link`; the log line gives the reason.',
  },

  // Manila and Keystone.
  SGW_ERR_MANILA_AUTH: {
    surfaces: ['ManilaError'],
    meaning: 'Keystone refused the credentials or token (401/403), or Manila refused the token.',
    action: 'Check the credentials, project and roles of the Manila account; the last-known-good state stays in force.',
  },
  SGW_ERR_MANILA_BAD_ID: {
    surfaces: ['Manila skip record', 'log field'],
    meaning: 'A share record from Manila has an id or name with forbidden characters or over 255 bytes; that share is skipped.',
    action: 'Find the share in Manila (shown escaped in `sharegw status`) and fix its name; sharegw will not map it.',
  },
  SGW_ERR_MANILA_CATALOG: {
    surfaces: ['ManilaError'],
    meaning: 'The Keystone service catalog has no usable `sharev2` endpoint for the interface and region.',
    action: 'Set `manila.interface`/`manila.region` to what the catalog offers, or give `manila.endpoint`.',
  },
  SGW_ERR_MANILA_HTTP: {
    surfaces: ['ManilaError'],
    meaning: 'Manila or Keystone answered with an HTTP error that is not about auth.',
    action: 'Look up the request id (in the message) in the Manila logs.',
  },
  SGW_ERR_MANILA_SHAPE: {
    surfaces: ['ManilaError'],
    meaning: 'A Manila or Keystone answer is not JSON or not the shape the API reference promises.',
    action: 'Check that the URL points at Manila (not a proxy page); report the request id if it does.',
  },
  SGW_ERR_MANILA_UNREACHABLE: {
    surfaces: ['ManilaError'],
    meaning: 'No answer from Manila or Keystone after retries (refused, reset, DNS, TLS, timeout).',
    action: 'Check the network path and TLS trust to the API; the last-known-good state stays in force.',
  },
  SGW_ERR_MANILA_VERSION: {
    surfaces: ['ManilaError'],
    meaning: 'The Manila server offers no microversion this client can use (needs 2.51 or later).',
    action: 'Upgrade Manila, or point sharegw at a newer endpoint.',
  },

  // Native shims.
  SGW_ERR_NATIVE_BUFFERED: {
    surfaces: ['NativeError'],
    meaning: 'A socket still had bytes buffered in Node when the native relay was to take it over; that connection stays in JavaScript.',
    action: 'None: counted in sharegw_native_fallbacks_total; a steady rate is normal under load.',
  },
  SGW_ERR_NATIVE_CALL: {
    surfaces: ['NativeError'],
    meaning: 'A native addon call failed (errno in the error); the caller fell back to the TypeScript path for that use.',
    action: 'Check the errno in sharegw_native_fallbacks_total and the log; rebuild the addon if it persists.',
  },
  SGW_ERR_NATIVE_LIMIT: {
    surfaces: ['NativeError'],
    meaning: 'As many native splice relays run as allowed; further connections relay in JavaScript.',
    action: 'None needed: counted as a fallback; those connections cost more CPU in the proxy.',
  },
  SGW_ERR_NATIVE_NO_FD: {
    surfaces: ['NativeError'],
    meaning: 'A socket had no file descriptor to hand to the addon (closed, or not TCP).',
    action: 'None: counted as a fallback; report it if it is frequent.',
  },

  // Wire protocols (proxy plane).
  SGW_ERR_PROTO_FRAMING: {
    surfaces: ['ProtocolError'],
    meaning: 'A length prefix or frame boundary breaks the transport\'s rules; that one connection is closed.',
    action: 'Counted in sharegw_protocol_errors_total{code}; a guest sending these is buggy or hostile (tenant and tunnel are logged).',
  },
  SGW_ERR_PROTO_MALFORMED: {
    surfaces: ['ProtocolError'],
    meaning: 'A header or body too short or inconsistent to decode; that one connection is closed.',
    action: 'As for SGW_ERR_PROTO_FRAMING; if a well-known client triggers it, capture the flow and report it.',
  },
  SGW_ERR_PROTO_TOO_LARGE: {
    surfaces: ['ProtocolError'],
    meaning: 'A frame, record or set of outstanding calls larger than the configured limit (checked before buffering).',
    action: 'Raise the proxy limits only if legitimate clients hit them; otherwise the guest is misbehaving.',
  },
  SGW_ERR_PROTO_UNEXPECTED: {
    surfaces: ['ProtocolError'],
    meaning: 'Not the protocol the port carries (e.g. no SMB magic on 445, an RPC REPLY from a client).',
    action: 'Check what the guest runs against the share port; the connection was closed.',
  },
  SGW_ERR_PROXY_CONNECT_TIMEOUT: {
    surfaces: ['ProxyError', 'metric label'],
    meaning: 'The proxy\'s connection to the backend did not complete within `proxy.connectTimeout` (`sharegw_proxy_backend_errors_total`).',
    action: 'Check that the backend is up and reachable from the domain\'s source IP and egress.',
  },
  SGW_ERR_PROXY_PORTS_EXHAUSTED: {
    surfaces: ['metric label'],
    meaning: 'No local port is left in `proxy.portRange` for a (guest, backend, port) listener; that grant gets no proxy listener (`sharegw_proxy_listen_errors_total`).',
    action: 'Widen `proxy.portRange` in the daemon file.',
  },
} as const satisfies Record<`SGW_${'ERR' | 'WARN'}_${string}`, CatalogueEntry>;

/** Every stable code sharegw uses. */
export type ErrorCode = keyof typeof entries;

/** The codes of one area, by prefix (e.g. `CodeOf<'SGW_ERR_PROTO_'>`). */
export type CodeOf<Prefix extends string> = Extract<ErrorCode, `${Prefix}${string}`>;

/** The catalogue: code → meaning and operator action. */
export const CATALOGUE: Readonly<Record<ErrorCode, CatalogueEntry>> = entries;

/** True when `s` is a catalogued code. */
export function isErrorCode(s: string): s is ErrorCode {
  return Object.prototype.hasOwnProperty.call(entries, s);
}
