import { inspect } from 'node:util';

const REDACTED = '[redacted]';

/**
 * A credential read from configuration (password, application credential
 * secret, a URL with a password in it). Every way of turning it into text
 * by accident (String(), JSON, util.inspect, template literals) gives
 * `[redacted]`; only reveal() gives the value, and only the HTTP and AMQP
 * edges call it. Object.keys() of a Secret is empty, so digests and
 * canonical JSON never see the value either.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
    holdSecret(value, 'config');
  }

  /** The value itself, for the request that needs it; never log the result. */
  reveal(): string {
    return this.#value;
  }

  /** True when both hold the same value (reload: did the credential change?). */
  equals(other: Secret | null | undefined): boolean {
    return other instanceof Secret && other.#value === this.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}

/** Config secrets and issued tokens remembered for the safety nets (bounded). */
const HELD_MAX = { config: 32, token: 8 } as const;
const held: Record<keyof typeof HELD_MAX, string[]> = { config: [], token: [] };

/**
 * Remembers a credential value the process holds (a config secret when its
 * Secret is made, a token when it is issued) so that the safety nets (the
 * logger, `sharegw status`) can strip it from any text, whatever the code
 * that built the text. A URL's password is held on its own as well. The
 * oldest values are forgotten first (reloads, token rotation).
 */
export function holdSecret(value: string, kind: keyof typeof HELD_MAX = 'token'): void {
  const list = held[kind];
  const values = [value];
  try {
    const u = new URL(value);
    if (u.password !== '') {
      values.push(u.password, decodeURIComponent(u.password));
    }
  } catch {
    // Not a URL.
  }
  for (const v of values) {
    const i = list.indexOf(v);
    if (i >= 0) {
      list.splice(i, 1);
    }
    list.push(v);
  }
  list.splice(0, Math.max(0, list.length - HELD_MAX[kind]));
}

/** Every credential value the process holds now (see holdSecret). */
export function heldSecrets(): readonly string[] {
  return [...held.config, ...held.token];
}
