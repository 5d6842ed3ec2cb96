/**
 * One codec target in a worker thread (started by main.ts): runs it and
 * posts its statistics; writes the index of the input it is running into
 * the shared array, so the main thread can tell a hang from slow progress.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadCorpus } from './corpus';
import { runTarget } from './engine';
import { TARGETS, knownFailOpen } from './targets';

export interface WorkerJob {
  target: string;
  seed: number;
  maxInputs: number;
  maxMs: number;
  saveDir: string;
  current: SharedArrayBuffer;
}

async function main(): Promise<void> {
  const job = workerData as WorkerJob;
  const target = TARGETS.find((t) => t.name === job.target);
  if (target === undefined) {
    throw new Error(`no target ${job.target}`);
  }
  const corpus = await loadCorpus();
  const stats = runTarget(target, corpus, {
    seed: job.seed,
    maxInputs: job.maxInputs,
    maxMs: job.maxMs,
    saveDir: job.saveDir,
    current: new Int32Array(job.current),
    onProgress: (inputs) => parentPort?.postMessage({ progress: inputs, heapUsed: process.memoryUsage().heapUsed }),
  });
  parentPort?.postMessage({ stats, knownFailOpen: { ...knownFailOpen } });
}

void main();
