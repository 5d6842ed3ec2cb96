import { AdminProtocolError } from '../errors';
import type { AdminErrorCode } from '../errors';
import { formatAddrPort, parseAddrPort, parseIp } from '../util/ip';
import type { AddrPort } from '../util/ip';

/**
 * Admin socket protocol: one JSON object per line each way.
 * Requests: `{"cmd":"ping"}`, `{"cmd":"status"}`, `{"cmd":"reload"}`,
 * `{"cmd":"flows","guest"?:G,"backend"?:ADDR}` and
 * `{"cmd":"explain","guest":G,"to":"ADDR:PORT"}` (G: `domain/instance`,
 * instance id or tunnel interface; IPv6 as `[ADDR]:PORT`).
 * Response `{"ok":true,"result":...}` or
 * `{"ok":false,"error":{"code":"SGW_ERR_...","message":"..."}}`.
 */

/** Commands the daemon answers. */
export const ADMIN_COMMANDS = ['ping', 'status', 'reload', 'flows', 'explain'] as const;
export type AdminCommand = (typeof ADMIN_COMMANDS)[number];

/** Longest request line accepted; anything longer closes the connection. */
export const MAX_LINE = 64 * 1024;

/** Longest guest reference accepted (keys are domain/instance: 63 + 1 + an instance id). */
export const MAX_GUEST_REF = 255;

/** Stable codes of AdminProtocolError for bad requests. */
export const ADMIN_ERRORS = {
  badJson: 'SGW_ERR_ADMIN_BAD_JSON',
  badRequest: 'SGW_ERR_ADMIN_BAD_REQUEST',
  unknownCommand: 'SGW_ERR_ADMIN_UNKNOWN_COMMAND',
  /** A command with arguments got a key it does not know. */
  unknownArgument: 'SGW_ERR_ADMIN_UNKNOWN_ARGUMENT',
  /** A required argument is absent. */
  missingArgument: 'SGW_ERR_ADMIN_MISSING_ARGUMENT',
  /** An argument has the wrong type or an invalid value. */
  badArgument: 'SGW_ERR_ADMIN_BAD_ARGUMENT',
  /** A guest reference names no configured guest (flows). */
  unknownGuest: 'SGW_ERR_ADMIN_UNKNOWN_GUEST',
} as const;

/** `flows`: live flows, optionally of one guest and/or one backend address. */
export interface FlowsRequest {
  cmd: 'flows';
  guest?: string;
  /** Canonical backend address. */
  backend?: string;
}

/** `explain`: the policy decision for one guest and destination. */
export interface ExplainRequest {
  cmd: 'explain';
  guest: string;
  /** Canonical address and port (on the wire `ADDR:PORT`). */
  to: AddrPort;
}

/** A validated request. */
export type AdminRequest = { cmd: 'ping' } | { cmd: 'status' } | { cmd: 'reload' } | FlowsRequest | ExplainRequest;

export type AdminResponse = { ok: true; result: unknown } | { ok: false; error: { code: string; message: string } };

/** The arguments each command takes; commands without any ignore extra keys (as before arguments existed). */
const ARGUMENTS: Record<AdminCommand, readonly string[] | null> = {
  ping: null,
  status: null,
  reload: null,
  flows: ['guest', 'backend'],
  explain: ['guest', 'to'],
};

function bad(code: AdminErrorCode, message: string): AdminProtocolError {
  return new AdminProtocolError(code, message);
}

/** Checks a guest reference: a non-empty string of printable characters. */
export function checkGuestRef(v: unknown): string {
  if (typeof v !== 'string') {
    throw bad(ADMIN_ERRORS.badArgument, 'guest must be a string');
  }
  if (v === '' || v.length > MAX_GUEST_REF) {
    throw bad(ADMIN_ERRORS.badArgument, `guest must be 1-${MAX_GUEST_REF} characters`);
  }
  // Control characters would garble one-line logs and tables.
  if (/[\u0000-\u001f\u007f\s]/.test(v)) {
    throw bad(ADMIN_ERRORS.badArgument, 'guest must not contain whitespace or control characters');
  }
  return v;
}

/** Checks a backend address; returns it in canonical form. */
export function checkBackend(v: unknown): string {
  const ip = typeof v === 'string' && v.length <= 64 ? parseIp(v) : null;
  if (ip === null) {
    throw bad(ADMIN_ERRORS.badArgument, 'backend must be an IP address');
  }
  return ip.text;
}

/** Checks an `ADDR:PORT` destination (IPv6 as `[ADDR]:PORT`). */
export function checkDestination(v: unknown): AddrPort {
  const ap = typeof v === 'string' && v.length <= 64 ? parseAddrPort(v) : null;
  if (ap === null) {
    throw bad(ADMIN_ERRORS.badArgument, 'to must be ADDR:PORT (IPv6 as [ADDR]:PORT, port 1-65535)');
  }
  return ap;
}

/** Parses and checks one request line. */
export function parseRequest(line: string): AdminRequest {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw bad(ADMIN_ERRORS.badJson, 'request is not valid JSON');
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw bad(ADMIN_ERRORS.badRequest, 'request must be a JSON object');
  }
  const obj = v as Record<string, unknown>;
  const cmd = obj['cmd'];
  if (typeof cmd !== 'string' || !(ADMIN_COMMANDS as readonly string[]).includes(cmd)) {
    throw bad(ADMIN_ERRORS.unknownCommand, `unknown command; expected one of ${ADMIN_COMMANDS.join(', ')}`);
  }
  const c = cmd as AdminCommand;
  const allowed = ARGUMENTS[c];
  if (allowed === null) {
    return { cmd: c } as AdminRequest;
  }
  // Strict for commands with arguments: a filter an old daemon silently
  // ignored would show wrong results.
  for (const k of Object.keys(obj)) {
    if (k !== 'cmd' && !allowed.includes(k)) {
      throw bad(ADMIN_ERRORS.unknownArgument, `${c} takes no argument "${k.slice(0, 64)}"; expected ${allowed.join(', ')}`);
    }
  }
  const has = (k: string): boolean => Object.prototype.hasOwnProperty.call(obj, k);
  if (c === 'flows') {
    const req: FlowsRequest = { cmd: 'flows' };
    if (has('guest')) {
      req.guest = checkGuestRef(obj['guest']);
    }
    if (has('backend')) {
      req.backend = checkBackend(obj['backend']);
    }
    return req;
  }
  for (const k of ['guest', 'to']) {
    if (!has(k)) {
      throw bad(ADMIN_ERRORS.missingArgument, `explain needs "${k}"`);
    }
  }
  return { cmd: 'explain', guest: checkGuestRef(obj['guest']), to: checkDestination(obj['to']) };
}

/** The wire form of a request (one line, without the newline); parseRequest() reads it back. */
export function encodeRequest(req: AdminRequest): string {
  if (req.cmd === 'explain') {
    return JSON.stringify({ cmd: req.cmd, guest: req.guest, to: formatAddrPort(req.to) });
  }
  return JSON.stringify(req);
}
