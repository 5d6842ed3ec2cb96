/**
 * Pure: turns text that came from outside (an API's error body, a header,
 * a URL, a message) into text that is safe to put into an error, a log line
 * or `sharegw status`. Two kinds of secret are removed:
 * - the exact values the process holds (the current token, the password,
 *   the application credential secret, the AMQP URL's password), also in
 *   their JSON-escaped (ASCII and `\/`), URL-encoded and form-encoded forms;
 * - known secret shapes: values of secret-named keys (`"password": ...`,
 *   `token=...`, `X-Auth-Token: ...`, the `id` of a `token` object), HTTP
 *   credentials (Bearer, Basic, ...), user information in URLs, Fernet
 *   tokens and JWTs, and (in excerpts of upstream bodies) long hex or
 *   base64 blobs.
 * Control characters, C1 controls and bidi/format characters are escaped
 * (`\xNN`, `\u{NNNN}`) so the result cannot drive a terminal.
 */

/** What replaces a removed secret. */
export const REDACTED = '[redacted]';
/** Longest excerpt of an upstream body, including the `...` of a cut. */
export const EXCERPT_MAX = 200;
/** Secrets shorter than this are not matched as text (they would match everywhere). */
export const MIN_SECRET_LENGTH = 4;
/** Secret forms shorter than this match only as whole words (see formsOf). */
const WORD_BELOW = 12;
/** Only this much of a body is looked at (a cut end is dropped, see cut()). */
const SCAN_MAX = 8192;
/** Bodies up to this size are parsed as JSON, so escaping cannot hide a secret. */
const JSON_MAX = 65536;

/** Key names whose value is a secret wherever they appear (case-insensitive). */
const SECRET_KEY =
  '(?:password|passwd|pwd|secret|client_secret|application_credential_secret|token|auth_token|access_token|refresh_token|id_token|subject_token|x-auth-token|x-subject-token|authorization|proxy-authorization|api_key|apikey|private_key|credential|credentials)';
const SECRET_KEY_RE = new RegExp(`^${SECRET_KEY}$`, 'i');

/*
 * `key: value` and `key=value` with the key optionally quoted (JSON, Python
 * repr, JSON inside a JSON string), the value double-quoted, single-quoted,
 * escape-quoted, or bare up to a separator. Group 1 keeps the key part.
 */
const KEY_VALUE_RE = new RegExp(
  `((?:\\\\?["'])?${SECRET_KEY}(?:[_-][\\w-]*)?(?:\\\\?["'])?\\s*[:=]\\s*)(?:\\\\"(?:(?!\\\\").)*\\\\"|"(?:\\\\.|[^"\\\\])*"|'(?:\\\\.|[^'\\\\])*'|(?!["'\\\\{\\[])(?:(?:Bearer|Basic|Digest|Negotiate|NTLM)\\s+)?[^\\s,;&}\\]"']+)`,
  'gi',
);
/** Keystone v2 style: the token is the `id` of the `token` object. */
const TOKEN_ID_RE = /((?:\\?["'])token(?:\\?["'])\s*:\s*\{[^{}]*?(?:\\?["'])id(?:\\?["'])\s*:\s*)(?:\\"(?:(?!\\").)*\\"|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')/gi;
/** RFC 9110 §11.4 credentials after a scheme. */
const AUTH_SCHEME_RE = /\b(Bearer|Basic|Digest|Negotiate|NTLM)\s+[A-Za-z0-9._~+/=-]{6,}/gi;
/** RFC 3986 §3.2.1 user information: the password, or a lone user part (often a token). */
const URL_PASSWORD_RE = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/?#@:'"]*):([^\s/?#@'"]*)@/gi;
const URL_USER_RE = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/?#@:'"]+)@/gi;
/** Keystone Fernet tokens are base64url starting with version byte 0x80 ("gAAAAA"). */
const FERNET_RE = /gAAAAA[A-Za-z0-9_=-]{16,}/g;
/** RFC 7519 compact JWS/JWE. */
const JWT_RE = /\beyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*/g;
const HEX_BLOB_RE = /\b[0-9a-fA-F]{32,}\b/g;
const B64_BLOB_RE = /[A-Za-z0-9+/_-]{40,}={0,2}/g;
/** C0, DEL, C1, and the format characters that reorder or hide text. */
const UNSAFE_RE = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;

/** The ways a secret can be written in a body or URL. */
export function secretForms(secret: string): string[] {
  const json = JSON.stringify(secret).slice(1, -1);
  // Python's json.dumps escapes every non-ASCII character (ensure_ascii).
  const ascii = json.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const uri = encodeURIComponent(secret);
  const forms = [secret, json, ascii, json.replace(/\//g, '\\/'), ascii.replace(/\//g, '\\/'), uri, uri.replace(/%20/g, '+'), uri.replace(/%[0-9A-F]{2}/g, (p) => p.toLowerCase())];
  return [...new Set(forms)].sort((a, b) => b.length - a.length);
}

/** One form of a held secret; a short one matches only as a whole word. */
interface Form {
  text: string;
  word: RegExp | null;
}

/**
 * Every form of every secret long enough to match, longest first. A form
 * shorter than WORD_BELOW matches only between non-alphanumerics: a
 * RabbitMQ password `guest` must not eat every "guests" of a status, and
 * an echoed short password is delimited (quotes, `=`, spaces) anyway.
 */
function formsOf(secrets: readonly string[]): Form[] {
  const texts = [...new Set(secrets.filter((x) => x.length >= MIN_SECRET_LENGTH).flatMap(secretForms))].sort((a, b) => b.length - a.length);
  return texts.map((text) => ({ text, word: text.length < WORD_BELOW ? new RegExp(`(?<![A-Za-z0-9])${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![A-Za-z0-9])`, 'g') : null }));
}

function removeForms(text: string, forms: readonly Form[]): string {
  let out = text;
  for (const f of forms) {
    if (out.includes(f.text)) {
      out = f.word === null ? out.split(f.text).join(REDACTED) : out.replace(f.word, REDACTED);
    }
  }
  return out;
}

/** Removes every exact secret (in every form) from the text. */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  return removeForms(text, formsOf(secrets));
}

/** Removes the known secret shapes; `blobs` also removes long hex/base64 runs. */
export function redactShapes(text: string, opts: { blobs?: boolean } = {}): string {
  // Every shape needs a separator, a space or a long run; most ids have none.
  if (!/[:=\s]/.test(text) && !text.includes('gAAAAA') && !text.includes('eyJ') && (opts.blobs !== true || text.length < 32)) {
    return text;
  }
  let out = text
    .replace(TOKEN_ID_RE, `$1"${REDACTED}"`)
    .replace(KEY_VALUE_RE, `$1${REDACTED}`)
    .replace(AUTH_SCHEME_RE, `$1 ${REDACTED}`)
    .replace(URL_PASSWORD_RE, `$1$2:${REDACTED}@`)
    .replace(URL_USER_RE, `$1${REDACTED}@`)
    .replace(FERNET_RE, REDACTED)
    .replace(JWT_RE, REDACTED);
  if (opts.blobs === true) {
    out = out.replace(HEX_BLOB_RE, REDACTED).replace(B64_BLOB_RE, (m) => (/[0-9]/.test(m) && /[a-z]/.test(m) && /[A-Z]/.test(m) ? REDACTED : m));
  }
  return out;
}

/** Escapes the characters that can drive a terminal or hide text. */
export function escapeControl(text: string): string {
  return text.replace(UNSAFE_RE, (c) => {
    const n = c.charCodeAt(0);
    return n <= 0xff ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u{${n.toString(16)}}`;
  });
}

/**
 * Exact secrets and known shapes removed, controls escaped: for any text
 * built from outside input (messages, URLs from a catalog, status values).
 */
export function redact(text: string, secrets: readonly string[]): string {
  return escapeControl(redactShapes(redactSecrets(text, secrets)));
}

/**
 * A short, sanitized excerpt of an upstream body for an error message: at
 * most `max` characters, whitespace collapsed, secrets, secret shapes and
 * blobs removed, controls escaped. A JSON body is redacted by key and value
 * after decoding, so no escaping hides a secret from the match.
 */
export function excerpt(body: string, secrets: readonly string[], max = EXCERPT_MAX): string {
  let text = body;
  if (body.length <= JSON_MAX) {
    const parsed = parseJson(body);
    if (parsed.ok) {
      text = JSON.stringify(redactJson(parsed.value, secrets, false, 0)) ?? '';
    }
  }
  if (text.length > SCAN_MAX) {
    text = cut(text, SCAN_MAX, secrets);
  }
  const clean = escapeControl(redactShapes(redactSecrets(text, secrets).replace(/\s+/g, ' ').trim(), { blobs: true }));
  return clean.length <= max ? clean : `${cut(clean, max - 3, secrets)}...`;
}

/**
 * A JSON value with secret-named keys' values replaced and every string
 * redacted; `inToken` marks the inside of a `token` object, whose `id` is
 * the token itself (Keystone v2).
 */
export function redactJson(value: unknown, secrets: readonly string[], inToken: boolean, depth: number): unknown {
  if (typeof value === 'string') {
    return redactShapes(redactSecrets(value, secrets));
  }
  if (value === null || typeof value !== 'object') {
    return value;
  }
  if (depth > 32) {
    return REDACTED;
  }
  if (Array.isArray(value)) {
    return value.map((v) => redactJson(v, secrets, false, depth + 1));
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const key = redactSecrets(k, secrets);
    const secretKey = SECRET_KEY_RE.test(k) || (inToken && k.toLowerCase() === 'id');
    if (secretKey && (v === null || typeof v !== 'object')) {
      out[key] = REDACTED;
    } else {
      out[key] = redactJson(v, secrets, k.toLowerCase() === 'token', depth + 1);
    }
  }
  return out;
}

/**
 * A copy of any value (status, log arguments) with every string passed
 * through redact() and secret-named keys' scalar values replaced. Errors
 * become `{ type, code, message }`; depth is bounded. `escape: false`
 * keeps control characters (JSON log lines escape them already).
 */
export function redactDeep(value: unknown, secrets: readonly string[], opts: { escape?: boolean } = {}): unknown {
  const forms = formsOf(secrets);
  const clean = (s: string): string => {
    const r = redactShapes(removeForms(s, forms));
    return opts.escape === false ? r : escapeControl(r);
  };
  return deep(value, clean, 0);
}

function deep(value: unknown, clean: (s: string) => string, depth: number): unknown {
  if (typeof value === 'string') {
    return clean(value);
  }
  if (value === null || typeof value !== 'object') {
    return value;
  }
  if (depth > 16) {
    return REDACTED;
  }
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return { type: value.name, ...(typeof code === 'string' ? { code } : {}), message: clean(value.message) };
  }
  if (Array.isArray(value)) {
    return value.map((v) => deep(v, clean, depth + 1));
  }
  if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null) {
    // Class instances (Secret, Buffer, Map) keep their own rendering.
    return value;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    // Keys are the code's own names: values are cleaned, keys kept.
    out[k] = SECRET_KEY_RE.test(k) && (v === null || typeof v !== 'object') ? REDACTED : deep(v, clean, depth + 1);
  }
  return out;
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  const t = text.trimStart();
  if (!t.startsWith('{') && !t.startsWith('[')) {
    return { ok: false };
  }
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false };
  }
}

/**
 * The first `n` characters, minus what the cut may have split: a trailing
 * run of word characters (the start of a token) and any trailing start of
 * a held secret.
 */
function cut(text: string, n: number, secrets: readonly string[]): string {
  let out = text.slice(0, n);
  if (/[^\s,;:"'(){}[\]<>]$/.test(out) && /^[^\s,;:"'(){}[\]<>]/.test(text.slice(n))) {
    out = out.replace(/[^\s,;:"'(){}[\]<>]+$/, '');
  }
  for (const s of secrets) {
    for (const f of s.length < MIN_SECRET_LENGTH ? [] : secretForms(s)) {
      for (let k = Math.min(f.length - 1, out.length); k >= 1; k--) {
        if (out.endsWith(f.slice(0, k))) {
          out = out.slice(0, out.length - k);
          break;
        }
      }
    }
  }
  return out;
}
