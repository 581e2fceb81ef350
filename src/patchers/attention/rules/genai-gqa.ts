/**
 * @file Lift rule (stub, to be written): genai-gqa.
 */
import type { LiftRule } from '../block.js';

export const genaiGqaRule: LiftRule = {
  name: 'genai-gqa',
  anchors: () => false,
  lift: () => ({ ok: false, reason: 'not implemented' }),
};
