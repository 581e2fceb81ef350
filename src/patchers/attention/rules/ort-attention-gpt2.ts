/**
 * @file Lift rule (stub, to be written): ort-attention-gpt2.
 */
import type { LiftRule } from '../block.js';

export const ortAttentionGpt2Rule: LiftRule = {
  name: 'ort-attention-gpt2',
  anchors: () => false,
  lift: () => ({ ok: false, reason: 'not implemented' }),
};
