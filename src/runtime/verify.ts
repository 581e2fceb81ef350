/**
 * @file `verify`: runs an original and a patched model side by side on ONNX Runtime over a fixed prompt and
 * N greedy decode steps (the patched model is fed the original's tokens, so every step compares like with
 * like) and reports the largest logit difference and whether the greedy tokens agree.
 */
import * as ort from 'onnxruntime-node';
import { argmax, OrtDecoder, type OrtModule } from './ort/decoder.js';

export interface VerifyOptions {
  /** Greedy decode steps after the prompt. */
  tokens?: number;
  /** Prompt token ids (default: a fixed ramp inside the vocabulary). */
  prompt?: readonly number[];
  /** onnxruntime-node execution provider. */
  device?: 'cpu' | 'webgpu' | 'cuda';
  /** Called after each step with (done, total). */
  onProgress?: (done: number, total: number) => void;
}

export interface VerifyReport {
  maxAbsDiff: number;
  greedyMatch: boolean;
  tokens: number;
  /** Index of the first decode step whose greedy tokens differ, or -1. */
  firstMismatch: number;
  /** The original model's greedy tokens. */
  generated: number[];
  /** Largest |logit| of the original model (scales the fp16 tolerance). */
  maxAbsLogit: number;
  /** Element type of the logits: 'float32' or 'float16'. */
  logitsType: string;
}

/**
 * The logit difference a lossless patch may cause: 1e-4 for float32 logits; for float16, four units in the last
 * place at the largest logit (a fused kernel rounds intermediates differently), and never below 1e-4.
 */
export function losslessTolerance(report: Pick<VerifyReport, 'maxAbsLogit' | 'logitsType'>): number {
  if (report.logitsType !== 'float16') return 1e-4;
  const ulp = 2 ** (Math.floor(Math.log2(Math.max(report.maxAbsLogit, 2 ** -14))) - 10);
  return Math.max(1e-4, 4 * ulp);
}

function maxAbsOf(a: Float32Array): number {
  let m = 0;
  for (const x of a) m = Math.max(m, Math.abs(x));
  return m;
}

/** Largest |a − b| over two equal-length arrays (NaN counts as infinite). */
export function maxAbs(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** Compares two models (file paths) over a prompt and `tokens` greedy steps. */
export async function verifyModels(original: string, patched: string, options: VerifyOptions = {}): Promise<VerifyReport> {
  const sessionOptions = { executionProviders: [options.device ?? 'cpu'] };
  const mod = ort as unknown as OrtModule;
  const [a, b] = await Promise.all([OrtDecoder.create(mod, original, sessionOptions), OrtDecoder.create(mod, patched, sessionOptions)]);
  try {
    const steps = options.tokens ?? 16;
    let prompt = options.prompt;
    if (!prompt) {
      // A fixed ramp of ids inside the vocabulary (learned from one probe step).
      const vocab = (await a.step([1])).vocab;
      a.reset();
      prompt = Array.from({ length: 8 }, (_, i) => 1 + ((i * 37 + 11) % Math.max(2, vocab - 1)));
    }
    let [ra, rb] = await Promise.all([a.step(prompt), b.step(prompt)]);
    let worst = maxAbs(ra.logits, rb.logits);
    let maxAbsLogit = maxAbsOf(ra.logits);
    let row = prompt.length - 1;
    const generated: number[] = [];
    let firstMismatch = -1;
    for (let i = 0; i < steps; i++) {
      const next = argmax(ra.logits, ra.vocab, row);
      if (next !== argmax(rb.logits, rb.vocab, row) && firstMismatch < 0) firstMismatch = i;
      generated.push(next);
      // Both models continue from the original's token so later steps compare the same context.
      [ra, rb] = await Promise.all([a.step([next]), b.step([next])]);
      worst = Math.max(worst, maxAbs(ra.logits, rb.logits));
      maxAbsLogit = Math.max(maxAbsLogit, maxAbsOf(ra.logits));
      row = 0;
      options.onProgress?.(i + 1, steps);
    }
    return { maxAbsDiff: worst, greedyMatch: firstMismatch < 0, tokens: steps, firstMismatch, generated, maxAbsLogit, logitsType: a.logitsType };
  } finally {
    await Promise.all([a.release(), b.release()]);
  }
}
