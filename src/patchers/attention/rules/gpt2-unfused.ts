/**
 * @file Lift rule (stub, to be written): gpt2-unfused.
 */
import type { LiftRule } from '../block.js';

export const gpt2UnfusedRule: LiftRule = {
  name: 'gpt2-unfused',
  anchors: () => false,
  lift: () => ({ ok: false, reason: 'not implemented' }),
};
