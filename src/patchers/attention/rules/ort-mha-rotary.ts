/**
 * @file Lift rule (stub, to be written): ort-mha-rotary.
 */
import type { LiftRule } from '../block.js';

export const ortMhaRotaryRule: LiftRule = {
  name: 'ort-mha-rotary',
  anchors: () => false,
  lift: () => ({ ok: false, reason: 'not implemented' }),
};
