/**
 * Runs one codec target: input i of seed s is always the same input
 * (Rng(mix(s, i))), so a finding is reproduced from (target, seed, index)
 * alone, and also saved as JSON under .fuzz/ with its error and stack.
 * A thrown Violation is a broken invariant; any other exception is a
 * crash; an input slower than the hang bound is reported as a hang (the
 * runner in main.ts also kills a worker stuck in one input).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Corpus } from './corpus';
import { mix, Rng } from './rng';
import { inputToJson, Violation } from './targets';
import type { Input, Target } from './targets';

export type FindingKind = 'crash' | 'violation' | 'hang';

export interface Finding {
  kind: FindingKind;
  target: string;
  seed: number;
  index: number;
  message: string;
  stack: string;
  /** Where the input was saved, if it was. */
  file: string | null;
}

export interface RunStats {
  target: string;
  seed: number;
  inputs: number;
  ms: number;
  findings: Finding[];
  /** The slowest single input. */
  maxInputMs: number;
}

export interface RunOptions {
  seed: number;
  /** Stop after this many inputs... */
  maxInputs: number;
  /** ...or after this long, whichever comes first. */
  maxMs: number;
  /** An input slower than this is a hang finding. */
  hangMs?: number;
  /** Directory for findings; null: do not save. */
  saveDir?: string | null;
  /** Written with the index of the input being run (for a watchdog in another thread). */
  current?: Int32Array;
  /** Called every 4096 inputs. */
  onProgress?: (inputs: number) => void;
}

/** The repository's .fuzz/ directory (gitignored). */
export const FUZZ_DIR = path.resolve(__dirname, '../../../.fuzz');

/** Input `index` of `seed` for `target`. */
export function inputAt(target: Target, corpus: Corpus, seed: number, index: number): Input {
  return target.generate(new Rng(mix(seed, index)), corpus);
}

/** Saves a finding's input and error; returns the file name. */
export function saveFinding(dir: string, f: Omit<Finding, 'file'>, input: Input): string {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${f.target}-${f.kind}-${f.seed}-${f.index}.json`);
  fs.writeFileSync(file, `${JSON.stringify({ ...f, replay: `FUZZ_REPLAY=${file} npm run fuzz`, input: inputToJson(input) }, null, 1)}\n`);
  return file;
}

/** Runs `target` with `opts`; never throws for what the target does. */
export function runTarget(target: Target, corpus: Corpus, opts: RunOptions): RunStats {
  const hangMs = opts.hangMs ?? 2000;
  const started = Date.now();
  const stats: RunStats = { target: target.name, seed: opts.seed, inputs: 0, ms: 0, findings: [], maxInputMs: 0 };
  for (let i = 0; i < opts.maxInputs; i++) {
    if ((i & 255) === 0 && Date.now() - started >= opts.maxMs) {
      break;
    }
    if (opts.current !== undefined) {
      Atomics.store(opts.current, 0, i);
    }
    const input = inputAt(target, corpus, opts.seed, i);
    const t0 = performance.now();
    let err: unknown = null;
    try {
      target.run(input);
    } catch (e) {
      err = e;
    }
    const dt = performance.now() - t0;
    stats.maxInputMs = Math.max(stats.maxInputMs, dt);
    stats.inputs++;
    if (err === null && dt > hangMs) {
      err = new Error(`one input took ${Math.round(dt)} ms (bound ${hangMs} ms)`);
    }
    if (err !== null && stats.findings.length < 20) {
      const kind: FindingKind = err instanceof Violation ? 'violation' : dt > hangMs ? 'hang' : 'crash';
      const e = err instanceof Error ? err : new Error(String(err));
      const f = { kind, target: target.name, seed: opts.seed, index: i, message: e.message, stack: e.stack ?? '' };
      const file = opts.saveDir === null || opts.saveDir === undefined ? null : saveFinding(opts.saveDir, f, input);
      stats.findings.push({ ...f, file });
    }
    if (opts.onProgress !== undefined && (i & 4095) === 4095) {
      opts.onProgress(stats.inputs);
    }
  }
  stats.ms = Date.now() - started;
  return stats;
}
