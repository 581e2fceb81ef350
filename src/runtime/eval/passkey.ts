/**
 * @file Passkey retrieval (Mohtashami & Jaggi 2023, the test DCA's paper reports): filler text with a 5-digit key
 * at a given depth, a question at the end, and greedy decoding; the key is found or not. Small models cannot
 * retrieve, so the run also reports the mechanism: the attention mass the final query puts on the key's tokens,
 * per layer (averaged over heads), read from attention probabilities exposed as debug outputs.
 */
import * as ort from 'onnxruntime-node';
import { AttnpatchError } from '../../errors.js';
import { saveModelToBytes } from '../../graph/io/bytes.js';
import type { Model } from '../../graph/ir/model.js';
import { exposeAttentionProbs, PROBS_PREFIX } from '../../patchers/debug/expose-probs.js';
import { argmax, OrtDecoder, type OrtModule } from '../ort/decoder.js';
import { loadTokenizer } from './tokenize.js';

export const PASSKEY_INTRO = 'There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you about the important information there.';
export const PASSKEY_FILLER = ' The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.';
export const PASSKEY_QUESTION = ' What is the pass key? The pass key is';

export interface PasskeyOptions {
  /** The model (patched or not), loaded; it is not modified. */
  model: Model;
  tokenizerFolder: string;
  /** Prompt length in tokens (approximately; filler is whole sentences). */
  context: number;
  /** Where the key sits, 0 (start) … 1 (end). */
  depth: number;
  /** The 5-digit key (default: fixed, so runs are comparable). */
  key?: string;
  /** Feed the prompt in calls of at most this many tokens (DCA: its chunk length). */
  prefillChunk?: number;
  /** Tokens generated after the prompt. */
  tokens?: number;
}

export interface PasskeyResult {
  key: string;
  retrieved: boolean;
  generated: string;
  promptTokens: number;
  /** Token positions of the key's digits in the prompt. */
  keyPositions: [number, number];
  /**
   * Per layer: attention mass of the final query on the key's tokens (mean over heads), and its lift: mass per
   * key token ÷ mass per token of the filler within 128 tokens around the key. Lift > 1 means attention singles
   * the key out of its surroundings; it does not change when all distant tokens are down-weighted alike.
   */
  keyMass: { layer: number; mass: number; lift: number }[];
  /** What uniform attention would put on those tokens (for scale). */
  uniformMass: number;
}

/** Builds the prompt ids and where the key's tokens are. */
async function buildPrompt(o: PasskeyOptions, key: string): Promise<{ ids: number[]; span: [number, number] }> {
  const tok = await loadTokenizer(o.tokenizerFolder);
  const enc = (t: string) => tok.encode(t, { add_special_tokens: false });
  const fillerTokens = enc(PASSKEY_FILLER).length;
  const needle = ` The pass key is ${key}. Remember it. ${key} is the pass key.`;
  const fixed = enc(PASSKEY_INTRO + needle + PASSKEY_QUESTION).length;
  const repeats = Math.max(0, Math.round((o.context - fixed) / fillerTokens));
  const before = Math.round(repeats * Math.min(1, Math.max(0, o.depth)));
  const head = PASSKEY_INTRO + PASSKEY_FILLER.repeat(before) + ` The pass key is `;
  const start = enc(head).length;
  const text = head + `${key}. Remember it. ${key} is the pass key.` + PASSKEY_FILLER.repeat(repeats - before) + PASSKEY_QUESTION;
  const ids = enc(text);
  const keyLen = enc(head + key).length - start;
  return { ids, span: [start, start + Math.max(1, keyLen)] };
}

/** Runs the passkey test and the attention-mass check. */
export async function evaluatePasskey(o: PasskeyOptions): Promise<PasskeyResult> {
  if (!(o.depth >= 0 && o.depth <= 1)) throw new AttnpatchError('USAGE', `depth must be between 0 and 1, got ${o.depth}`, { field: 'depth' });
  const key = o.key ?? '68451';
  const { ids, span } = await buildPrompt(o, key);
  // Probabilities as extra outputs, on a copy: the caller's model stays as it was.
  const bytes = saveModelToBytes(o.model);
  const { loadModelFromBytes } = await import('../../graph/io/bytes.js');
  const debug = loadModelFromBytes(bytes);
  const layers = exposeAttentionProbs(debug);
  const decoder = await OrtDecoder.create(ort as unknown as OrtModule, saveModelToBytes(debug));
  try {
    const chunk = o.prefillChunk ?? ids.length;
    let last: Awaited<ReturnType<OrtDecoder['step']>> | undefined;
    for (let s = 0; s < ids.length; s += chunk) last = await decoder.step(ids.slice(s, s + chunk));
    const keyMass = layers.map((layer) => {
      const probs = last!.outputs[`${PROBS_PREFIX}${layer}`];
      const mass = massOn(probs, span);
      const near: [number, number] = [Math.max(0, span[0] - 128), Math.min(ids.length, span[1] + 128)];
      const around = massOn(probs, near) - mass;
      const lift = mass / (span[1] - span[0]) / (around / (near[1] - near[0] - (span[1] - span[0])));
      return { layer, mass, lift };
    });
    const tok = await loadTokenizer(o.tokenizerFolder);
    const out: number[] = [];
    let next = argmax(last!.logits, last!.vocab, last!.logits.length / last!.vocab - 1);
    for (let i = 0; i < (o.tokens ?? 8); i++) {
      out.push(next);
      const r = await decoder.step([next]);
      next = argmax(r.logits, r.vocab, 0);
    }
    const generated = tok.decode(out, { skip_special_tokens: true });
    return { key, retrieved: generated.includes(key), generated, promptTokens: ids.length, keyPositions: span, keyMass, uniformMass: (span[1] - span[0]) / ids.length };
  } finally {
    await decoder.release();
  }
}

/** Mean over heads of Σ_{j ∈ [from, to)} probs[0, h, last query, j]. */
function massOn(t: { dims: readonly number[]; data: unknown } | undefined, [from, to]: [number, number]): number {
  if (!t) return NaN;
  const [, heads, s, total] = t.dims as [number, number, number, number];
  const data = t.data as Float32Array;
  let sum = 0;
  for (let h = 0; h < heads; h++) {
    const row = (h * s + (s - 1)) * total;
    for (let j = from; j < to; j++) sum += data[row + j]!;
  }
  return sum / heads;
}
