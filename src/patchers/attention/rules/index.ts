/**
 * @file The lift rules, in the order they are tried on each node (fused ops first: they anchor on one node).
 */
import type { LiftRule } from '../block.js';
import { attnpatchMlaRule } from '../../mla/lift.js';
import { attnpatchDcaRule } from './attnpatch-dca.js';
import { genaiGqaRule } from './genai-gqa.js';
import { gpt2UnfusedRule } from './gpt2-unfused.js';
import { onnx24AttentionRule } from './onnx24-attention.js';
import { optimumUnfusedRule } from './optimum-unfused.js';
import { ortAttentionGpt2Rule } from './ort-attention-gpt2.js';
import { ortMhaRotaryRule } from './ort-mha-rotary.js';

export const LIFT_RULES: readonly LiftRule[] = Object.freeze([
  attnpatchDcaRule,
  attnpatchMlaRule,
  genaiGqaRule,
  ortMhaRotaryRule,
  ortAttentionGpt2Rule,
  onnx24AttentionRule,
  optimumUnfusedRule,
  gpt2UnfusedRule,
]);
