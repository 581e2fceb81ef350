/**
 * @file Debug: exposes each attention block's probabilities [B, H, S, T] as extra graph outputs named
 * `attnpatch_probs.<layer>` (never `present…`, which transformers.js would take for cache). Works for unfused blocks
 * (the Softmax output), Dual Chunk Attention and LatentAttention (mla) calls (their `probs` output).
 */
import type { Model } from '../../graph/ir/model.js';
import { liftAttention } from '../attention/lift.js';

export const PROBS_PREFIX = 'attnpatch_probs.';

/** Adds the probability outputs; returns the layers exposed. */
export function exposeAttentionProbs(model: Model): number[] {
  const layers: number[] = [];
  for (const block of liftAttention(model).blocks) {
    const a = block.anchor;
    const probs = a.opType === 'Softmax' ? a.outputs[0] : a.opType.startsWith('DualChunkAttention') ? a.outputs[3] : a.opType.startsWith('Latent') ? a.outputs[1] : null;
    if (!probs || model.graph.outputs.includes(probs)) continue;
    probs.name = `${PROBS_PREFIX}${block.layer}`;
    model.graph.outputs.push(probs);
    layers.push(block.layer);
  }
  return layers;
}
