import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { Document, Node } from 'yaml';
import type { ConfigProblem } from '../errors';

/** A configuration file's name and text, read by the caller. */
export interface SourceText {
  file: string;
  text: string;
}

/** A parsed YAML file that can map a key path back to a line and column. */
export interface YamlSource {
  file: string;
  /** The plain JS value of the document (undefined when empty or broken). */
  value: unknown;
  /** Syntax problems; when non-empty, `value` must not be trusted. */
  problems: ConfigProblem[];
  /**
   * Builds a problem located at the deepest existing node on `path`. Generic
   * in the code so that it stays a locator; the catalogue check happens
   * where the problem joins a `ConfigProblem[]` (a code not listed there
   * does not compile).
   */
  problem<C extends string>(path: readonly PropertyKey[], code: C, message: string, atKey?: boolean): Located<C>;
}

/** A problem as built by YamlSource.problem(), with the code it was given. */
export type Located<C extends string> = Omit<ConfigProblem, 'code'> & { code: C };

/** Renders a key path as a JSON pointer (`/guests/0/tunnel`). */
export function pointerOf(path: readonly PropertyKey[]): string {
  return path.map((k) => `/${String(k).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
}

/**
 * Parses YAML text while keeping source positions, so that every later
 * problem (schema or semantic) can name the file, line and key.
 */
export function parseYaml(file: string, text: string): YamlSource {
  const lc = new LineCounter();
  // uniqueKeys (the default) makes a duplicated key a syntax error, which
  // we want: a repeated key silently overriding another hides mistakes.
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, strict: true });
  const pos = (offset: number): { line: number; col: number } => {
    const p = lc.linePos(offset);
    return { line: p.line === 0 ? 1 : p.line, col: p.col };
  };
  const problems: ConfigProblem[] = [];
  for (const e of [...doc.errors, ...doc.warnings]) {
    const at = pos(e.pos[0]);
    problems.push({
      file,
      ...at,
      pointer: '',
      code: 'SGW_ERR_CONFIG_YAML',
      message: e.message.split('\n')[0] ?? e.message,
    });
  }
  let value: unknown;
  if (problems.length === 0) {
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      // The parser accepts what toJS() then throws on (a ReferenceError for
      // an alias without its anchor, or one that expands too often): a
      // problem of the file like any other, not an untyped exception.
      const alias = err instanceof Error ? (err.message.split('\n')[0] ?? err.message) : String(err);
      problems.push({ file, pointer: '', code: 'SGW_ERR_CONFIG_YAML', message: alias });
    }
  }
  return {
    file,
    value,
    problems,
    problem(path, code, message, atKey = false) {
      const range = locate(doc, path, atKey);
      const at = range === undefined ? {} : pos(range);
      return { file, ...at, pointer: pointerOf(path), code, message };
    },
  };
}

/** Offset of the deepest node that exists along `path` (key node when atKey). */
function locate(doc: Document, path: readonly PropertyKey[], atKey: boolean): number | undefined {
  let node: unknown = doc.contents;
  let best: number | undefined = rangeStart(node);
  for (let i = 0; i < path.length; i++) {
    const key = path[i];
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(key));
      if (pair === undefined) {
        return best;
      }
      if (last && atKey) {
        return rangeStart(pair.key) ?? best;
      }
      node = pair.value;
    } else if (isSeq(node) && typeof key === 'number') {
      node = node.items[key];
    } else {
      return best;
    }
    best = rangeStart(node) ?? best;
  }
  return best;
}

function rangeStart(node: unknown): number | undefined {
  const r = (node as Node | null | undefined)?.range;
  return Array.isArray(r) ? r[0] : undefined;
}
