/**
 * @file Lift rule (stub, to be written): onnx24-attention.
 */
import type { LiftRule } from '../block.js';

export const onnx24AttentionRule: LiftRule = {
  name: 'onnx24-attention',
  anchors: () => false,
  lift: () => ({ ok: false, reason: 'not implemented' }),
};
