import pino from 'pino';
import type { Logger } from 'pino';

export type { Logger };

/**
 * Paths pino censors wherever they appear (one or two levels deep). Secrets
 * never reach a log line: passwords, tokens, credential secrets.
 */
export const REDACT_PATHS = [
  'password',
  'secret',
  'token',
  'authorization',
  '*.password',
  '*.secret',
  '*.token',
  '*.authorization',
  '*.*.password',
  '*.*.secret',
  '*.*.token',
  '*.*.authorization',
  'headers["x-auth-token"]',
  '*.headers["x-auth-token"]',
  // HTTP header names arrive in whatever case the peer used.
  'Authorization',
  '*.Authorization',
  '*.*.Authorization',
  'headers["X-Auth-Token"]',
  '*.headers["X-Auth-Token"]',
  'headers["X-Subject-Token"]',
  '*.headers["X-Subject-Token"]',
  'headers["x-subject-token"]',
  '*.headers["x-subject-token"]',
];

/** The daemon's JSON logger on stdout (journald adds the timestamps' context). */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const opts: pino.LoggerOptions = {
    level,
    base: { svc: 'sharegwd' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return destination === undefined ? pino(opts, pino.destination({ dest: 1, sync: false })) : pino(opts, destination);
}
