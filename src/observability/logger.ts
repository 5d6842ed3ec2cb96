import pino from 'pino';
import type { Logger } from 'pino';
import { heldSecrets } from '../config/secret';
import { redactDeep } from '../util/redact';

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
  // Issue 14: keys an upstream echo or a request body could bring along.
  'x-auth-token',
  'x-subject-token',
  'application_credential_secret',
  '*.application_credential_secret',
  'credentials',
  '*.credentials',
  // A Keystone request body: auth.identity.password.user.password.
  '*.*.*.password',
  '*.*.*.*.password',
  '*.*.*.secret',
];

/** The daemon's JSON logger on stdout (journald adds the timestamps' context). */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const opts: pino.LoggerOptions = {
    level,
    base: { svc: 'sharegwd' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    hooks: {
      // The safety net behind the paths above: the message and every string
      // value lose the credentials the process holds and known secret
      // shapes, whatever code built them (issue 14). The arguments are
      // copied, never changed.
      logMethod(args, method) {
        const secrets = heldSecrets();
        method.apply(this, args.map((a) => redactDeep(a, secrets, { escape: false })) as Parameters<typeof method>);
      },
    },
  };
  return destination === undefined ? pino(opts, pino.destination({ dest: 1, sync: false })) : pino(opts, destination);
}
