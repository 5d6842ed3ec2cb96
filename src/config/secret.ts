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
