/**
 * @file Node metadata the mla patch stamps on what it builds, for the nodes that must be found again: the lift rule
 * reads a LatentAttention call's cache names and head size, and the runtime's refit finds each folded output
 * projection (and the folded value bias after it) by layer.
 */

/** The layer of a LatentAttention call. */
export const MLA_LAYER_KEY = 'ai.attnpatch.mla.layer';
/** JSON {@link MlaCallInfo} on a LatentAttention call. */
export const MLA_INFO_KEY = 'ai.attnpatch.mla';
/** The layer of a folded output-projection MatMul (W_O·W_UV per head). */
export const MLA_FOLD_KEY = 'ai.attnpatch.mla.fold';
/** The layer of the Add of the folded value bias Σ_h b_V,h·W_O,h after it. */
export const MLA_FOLD_BIAS_KEY = 'ai.attnpatch.mla.fold_bias';
/** 'true' on the folded MatMul of a full-rank (exact) block: nothing to refit. */
export const MLA_EXACT_KEY = 'ai.attnpatch.mla.exact';

export interface MlaCallInfo {
  headDim: number;
  rotaryDim: number;
  interleaved: boolean;
  /** Names of the cache inputs and outputs (key, value). */
  past: [string, string];
  present: [string, string];
}
