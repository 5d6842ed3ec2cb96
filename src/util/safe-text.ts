/**
 * Safe text for terminals. Ids and names come from tenants (share names,
 * Manila ids are any string): printed raw, an ESC sequence rewrites the
 * operator's screen, a bidi override reorders what they read, and a newline
 * forges a line of output. Pure.
 */

/**
 * What a terminal must never receive from an id: C0/C1 controls and DEL
 * (Cc), format characters including the bidi embeddings, overrides and
 * isolates and zero-width characters (Cf), line and paragraph separators
 * (Zl, Zp) and lone surrogates (Cs).
 */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;
const UNSAFE_ONE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;

/** Longest id accepted from configuration or Manila, in UTF-8 bytes. */
export const MAX_ID_BYTES = 255;

function escapeOne(ch: string): string {
  const cp = ch.codePointAt(0) ?? 0;
  return cp <= 0xff ? `\\x${cp.toString(16).padStart(2, '0')}` : `\\u{${cp.toString(16).toUpperCase()}}`;
}

/**
 * One field made safe to print: every unsafe character becomes a visible
 * escape (`\x1b`, `\u{202E}`). Backslashes stay as they are, so CIFS paths
 * read as written; an escape is therefore only ever a hint, never a way
 * to hide a character. Newlines are escaped too: a field is one line.
 */
export function safeText(s: string): string {
  return UNSAFE_ONE.test(s) ? s.replace(UNSAFE, escapeOne) : s;
}

/** A block of lines (a whole human view) made safe, its own newlines kept. */
export function safeLines(text: string): string {
  return text.split('\n').map(safeText).join('\n');
}

/**
 * Why `s` is not acceptable as an id (instance, share id or name), or null
 * when it is: non-empty, at most MAX_ID_BYTES of UTF-8, nothing a terminal
 * would act on or hide.
 */
export function idProblem(s: string): string | null {
  if (s === '') {
    return 'must not be empty';
  }
  const bytes = Buffer.byteLength(s, 'utf8');
  if (bytes > MAX_ID_BYTES) {
    return `is ${bytes} bytes long; at most ${MAX_ID_BYTES} bytes of UTF-8 are allowed`;
  }
  const bad = UNSAFE_ONE.exec(s);
  if (bad !== null) {
    return `contains the control or invisible character ${escapeOne(bad[0])} at offset ${bad.index}; only printable characters are allowed`;
  }
  return null;
}
