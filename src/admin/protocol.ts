import { AdminProtocolError } from '../errors';

/**
 * Admin socket protocol: one JSON object per line each way.
 * Request `{"cmd":"status"}`; response `{"ok":true,"result":...}` or
 * `{"ok":false,"error":{"code":"SGW_ERR_...","message":"..."}}`.
 */

/** Commands the daemon answers. */
export const ADMIN_COMMANDS = ['ping', 'status', 'reload'] as const;
export type AdminCommand = (typeof ADMIN_COMMANDS)[number];

/** Longest request line accepted; anything longer closes the connection. */
export const MAX_LINE = 64 * 1024;

export interface AdminRequest {
  cmd: AdminCommand;
}

export type AdminResponse = { ok: true; result: unknown } | { ok: false; error: { code: string; message: string } };

/** Parses and checks one request line. */
export function parseRequest(line: string): AdminRequest {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new AdminProtocolError('SGW_ERR_ADMIN_BAD_JSON', 'request is not valid JSON');
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new AdminProtocolError('SGW_ERR_ADMIN_BAD_REQUEST', 'request must be a JSON object');
  }
  const cmd = (v as { cmd?: unknown }).cmd;
  if (typeof cmd !== 'string' || !(ADMIN_COMMANDS as readonly string[]).includes(cmd)) {
    throw new AdminProtocolError('SGW_ERR_ADMIN_UNKNOWN_COMMAND', `unknown command; expected one of ${ADMIN_COMMANDS.join(', ')}`);
  }
  return { cmd: cmd as AdminCommand };
}
