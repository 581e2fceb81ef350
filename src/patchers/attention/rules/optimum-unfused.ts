/**
 * @file Lift rule (stub, to be written): optimum-unfused.
 */
import type { LiftRule } from '../block.js';

export const optimumUnfusedRule: LiftRule = {
  name: 'optimum-unfused',
  anchors: () => false,
  lift: () => ({ ok: false, reason: 'not implemented' }),
};
