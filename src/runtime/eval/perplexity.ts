/**
 * @file Perplexity of a decoder ONNX model on a text, in fixed-length windows (onnxruntime-node, CPU).
 *
 * The whole text is tokenized once, with no special tokens, and cut into consecutive non-overlapping windows of
 * `context` tokens. Each window runs as one forward pass from an empty cache, and every token after the first is
 * scored (log-softmax in float64), so every scored token saw its window's tokens before it and nothing more.
 * Only one window's logits are held at a time.
 *
 * `bos: true` starts each window with the tokenizer's BOS id followed by `context − 1` text tokens and scores
 * all of those (the convention of the TinyStories reference figures; the model is then always prompted the way it
 * was trained). `partial: true` also scores the trailing short window.
 */
import * as ort from 'onnxruntime-node';
import { AttnpatchError } from '../../errors.js';
import { OrtDecoder, type OrtModule } from '../ort/decoder.js';
import { tokenizeText } from './tokenize.js';

export interface PerplexityResult {
  /** exp(mean negative log-likelihood per scored token). */
  ppl: number;
  /** Tokens scored. */
  tokens: number;
  context: number;
  /** Windows evaluated. */
  windows: number;
}

export interface WindowOptions {
  /** Tokens per forward pass (the window, BOS included). */
  context: number;
  /** Evaluate only the first `windows` windows. */
  windows?: number;
  /** Start every window with BOS and score all its text tokens (default false: no special tokens). */
  bos?: boolean;
  /** Also score the trailing window shorter than `context` (default false: full windows only). */
  partial?: boolean;
  /** Feed each window in calls of at most this many tokens through the KV cache (memory O(T·n), not O(T²)). */
  prefillChunk?: number;
  /** Called after each window with (done, total). */
  onProgress?: (done: number, total: number) => void;
}

export interface PerplexityOptions extends WindowOptions {
  /** The .onnx file, or the model's bytes (e.g. patched in memory). */
  model: string | Uint8Array;
  /** The transformers.js model folder whose tokenizer reads the text. */
  tokenizerFolder: string;
  text: string;
}

export interface PerplexityIdsOptions extends WindowOptions {
  model: string | Uint8Array;
  /** The text's token ids, no special tokens. */
  ids: readonly number[];
  /** BOS id (needed with `bos: true`). */
  bosId?: number;
}

/** The model input of each window (BOS prepended when asked), as many as the options allow. */
export function planWindows(ids: readonly number[], o: Omit<WindowOptions, 'onProgress'> & { bosId?: number }): number[][] {
  const { context } = o;
  if (!Number.isInteger(context) || context < 2) throw new AttnpatchError('USAGE', `context must be an integer ≥ 2, got ${context}`, { field: 'context' });
  if (o.windows !== undefined && (!Number.isInteger(o.windows) || o.windows < 1)) {
    throw new AttnpatchError('USAGE', `windows must be a positive integer, got ${o.windows}`, { field: 'windows' });
  }
  if (o.bos && o.bosId === undefined) throw new AttnpatchError('USAGE', 'bos asked for, but the tokenizer has no BOS token', { field: 'bos' });
  const prefix = o.bos ? [o.bosId!] : [];
  const step = context - prefix.length;
  const out: number[][] = [];
  for (let start = 0; start < ids.length && (o.windows === undefined || out.length < o.windows); start += step) {
    const chunk = ids.slice(start, start + step);
    // A window scores its tokens after the first model input: it needs two inputs at least.
    if (chunk.length < step && (!o.partial || prefix.length + chunk.length < 2)) break;
    out.push([...prefix, ...chunk]);
  }
  if (out.length === 0) {
    throw new AttnpatchError('USAGE', `the text holds ${ids.length} tokens, fewer than one window of ${context}${o.bos ? ' (with BOS)' : ''}`, { field: 'context' });
  }
  return out;
}

/** Σ −log softmax(row t)[target t+1] over the rows of one window's logits ([S, vocab]), in float64. */
export function windowNll(logits: Float32Array, vocab: number, input: readonly number[]): number {
  let nll = 0;
  for (let t = 0; t + 1 < input.length; t++) {
    const row = t * vocab;
    let max = -Infinity;
    for (let i = 0; i < vocab; i++) if (logits[row + i]! > max) max = logits[row + i]!;
    let sum = 0;
    for (let i = 0; i < vocab; i++) sum += Math.exp(logits[row + i]! - max);
    const target = input[t + 1]!;
    if (!(target >= 0 && target < vocab)) throw new AttnpatchError('USAGE', `token id ${target} is outside the model's vocabulary of ${vocab}`, { field: 'text' });
    nll += max + Math.log(sum) - logits[row + target]!;
  }
  return nll;
}

/** Perplexity of the model over already tokenized text. */
export async function evaluatePerplexityIds(o: PerplexityIdsOptions): Promise<PerplexityResult> {
  const windows = planWindows(o.ids, o);
  const decoder = await OrtDecoder.create(ort as unknown as OrtModule, o.model, { executionProviders: ['cpu'] });
  try {
    let nll = 0;
    let tokens = 0;
    for (const [i, input] of windows.entries()) {
      decoder.reset();
      const chunk = o.prefillChunk ?? input.length;
      // Score each call's rows as they come: row t predicts input[t + 1], which may be in the next call.
      for (let start = 0; start < input.length; start += chunk) {
        const end = Math.min(input.length, start + chunk);
        const { logits, vocab } = await decoder.step(input.slice(start, end));
        nll += windowNll(logits, vocab, input.slice(start, Math.min(input.length, end + 1)));
      }
      tokens += input.length - 1;
      o.onProgress?.(i + 1, windows.length);
    }
    return { ppl: Math.exp(nll / tokens), tokens, context: o.context, windows: windows.length };
  } finally {
    await decoder.release();
  }
}

/** Perplexity of a model on a text with its tokenizer (see the file header for the windowing). */
export async function evaluatePerplexity(o: PerplexityOptions): Promise<PerplexityResult> {
  const { ids, bos } = await tokenizeText(o.tokenizerFolder, o.text);
  const { text: _text, tokenizerFolder: _folder, ...rest } = o;
  return evaluatePerplexityIds({ ...rest, ids, ...(bos !== undefined ? { bosId: bos } : {}) });
}
