/**
 * Test-only model families: tiny random-weight decoders with each family's attention quirks, their config.json, and
 * seeded weights (`family-weights.ts`). The same weights feed the ONNX builders (`family-graphs.ts`: Optimum unfused
 * and GenAI fused forms) and the plain TypeScript forward (`family-reference.ts`), so each graph is checked against a
 * from-scratch reference.
 *
 * Attention quirks per family: Llama / SmolLM grouped KV heads (SmolLM: the 49152 vocabulary in config.json only);
 * Qwen2 q/k/v biases; Qwen3 per-head q/k RMSNorm before the head transpose; Mistral a sliding window on every layer;
 * Phi-3 packed qkv_proj and partial rotary; Gemma 2 attention logit softcap, query_pre_attn_scalar and sliding /
 * global layers alternating (sliding on even layers); Gemma 3 query_pre_attn_scalar, q/k RMSNorm after the head
 * transpose, a sliding layer 0 with its own rope base (rope_local_base_freq) and a global layer 1. Everything outside
 * attention (embedding, RMSNorm with plain weights, SwiGLU MLP, untied LM head) stays Llama-like for every family:
 * Gemma's √D embedding scale, (1 + w) norms, GELU and extra norms, and Phi-3's fused gate_up are not modelled.
 *
 * Glossary: D hidden, H heads, Hkv KV heads, Dh head size, F MLP width, V vocabulary, W sliding window (keys a query
 * sees, itself included: key j is visible to query i when i − W < j ≤ i, as in transformers' sliding_window_overlay).
 * Weights are [in, out] (the MatMul layout).
 */

import type { LlamaConfig } from './llama-reference.js';

export type FamilyName = 'llama' | 'llama3' | 'qwen2' | 'qwen3' | 'mistral' | 'phi3' | 'gemma2' | 'gemma3' | 'smollm';

/** The Llama reference's sizes, plus each family's quirks. */
export interface FamilySpec extends LlamaConfig {
  family: FamilyName;
  modelType: string;
  architecture: string;
  /** config.json max_position_embeddings: small, so dca's chunks (CS = ⌊3c/4⌋, LW = ⌊c/8⌋) are reached in a test. */
  maxPositions: number;
  /** q/k/v projection biases (Qwen2). */
  bias: boolean;
  /** Per-head RMSNorm of q and k before rope: before the head transpose (Qwen3) or after it (Gemma 3). */
  qkNorm: false | 'before' | 'after';
  /** One packed qkv_proj (Phi-3). */
  packed: boolean;
  /** Leading dims of each head that rotate (partial_rotary_factor · Dh). */
  rotaryDim: number;
  /** Softmax scale: 1/√Dh, or query_pre_attn_scalar^−½ (Gemma). */
  scale: number;
  /** Attention logit softcap c: scores → c·tanh(scores / c) before the mask (Gemma 2). */
  softcap?: number;
  /** Per layer: its sliding window W, or undefined for global (full causal) attention. */
  windows: (number | undefined)[];
  /** Per layer rope base (Gemma 3: rope_local_base_freq on sliding layers). */
  thetas: number[];
  /** config.json fields beyond the common ones (the family's own, and values that only the recipe reads). */
  config: Record<string, unknown>;
  /** Llama 3 rope scaling (config rope_scaling, rope_type llama3): exports bake it into inv_freq. */
  ropeScaling?: Llama3RopeScaling;
}

export interface Llama3RopeScaling {
  factor: number;
  low_freq_factor: number;
  high_freq_factor: number;
  original_max_position_embeddings: number;
}

/** Small enough that head size 16's eight frequencies fall in all three bands (kept, smoothed, divided). */
const LLAMA3_SCALING: Llama3RopeScaling = { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 };

/** The sliding window of the windowed families: small, so the 9- and 26-token test sequences cross it. */
export const WINDOW = 6;

const BASE = { hidden: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 16, intermediate: 96, vocab: 61, eps: 1e-6, theta: 10000, maxPositions: 16 };
const PLAIN: Pick<FamilySpec, 'bias' | 'qkNorm' | 'packed' | 'rotaryDim' | 'scale' | 'windows' | 'thetas' | 'config'> = {
  bias: false,
  qkNorm: false,
  packed: false,
  rotaryDim: 16,
  scale: 1 / Math.sqrt(16),
  windows: [undefined, undefined],
  thetas: [10000, 10000],
  config: {},
};
const QWEN = { use_sliding_window: false, sliding_window: 4096, max_window_layers: 2 };
const llamaLike = { ...BASE, ...PLAIN, modelType: 'llama', architecture: 'LlamaForCausalLM' };

/** The families with builders. */
export const FAMILIES: Readonly<Record<FamilyName, FamilySpec>> = Object.freeze({
  llama: { ...llamaLike, family: 'llama' },
  llama3: { ...llamaLike, family: 'llama3', ropeScaling: LLAMA3_SCALING, config: { rope_scaling: { rope_type: 'llama3', ...LLAMA3_SCALING } } },
  smollm: { ...llamaLike, family: 'smollm', config: { vocab_size: 49152 } },
  qwen2: { ...BASE, ...PLAIN, family: 'qwen2', modelType: 'qwen2', architecture: 'Qwen2ForCausalLM', bias: true, config: QWEN },
  qwen3: { ...BASE, ...PLAIN, family: 'qwen3', modelType: 'qwen3', architecture: 'Qwen3ForCausalLM', qkNorm: 'before', config: QWEN },
  mistral: { ...BASE, ...PLAIN, family: 'mistral', modelType: 'mistral', architecture: 'MistralForCausalLM', windows: [WINDOW, WINDOW], config: { sliding_window: WINDOW } },
  // Phi-3.5 / Phi-4-mini style: partial rotary (factor 0.5 of head size 32), a sliding window longer than the context.
  phi3: {
    ...BASE,
    ...PLAIN,
    family: 'phi3',
    modelType: 'phi3',
    architecture: 'Phi3ForCausalLM',
    headDim: 32,
    packed: true,
    rotaryDim: 16,
    scale: 1 / Math.sqrt(32),
    config: { partial_rotary_factor: 0.5, sliding_window: 262144 },
  },
  gemma2: {
    ...BASE,
    ...PLAIN,
    family: 'gemma2',
    modelType: 'gemma2',
    architecture: 'Gemma2ForCausalLM',
    scale: 24 ** -0.5,
    softcap: 0.5,
    windows: [WINDOW, undefined],
    config: { query_pre_attn_scalar: 24, attn_logit_softcapping: 0.5, final_logit_softcapping: null, sliding_window: WINDOW, layer_types: ['sliding_attention', 'full_attention'] },
  },
  gemma3: {
    ...BASE,
    ...PLAIN,
    family: 'gemma3',
    modelType: 'gemma3_text',
    architecture: 'Gemma3ForCausalLM',
    qkNorm: 'after',
    scale: 24 ** -0.5,
    windows: [WINDOW, undefined],
    thetas: [10000, 1000000],
    theta: 1000000,
    config: { query_pre_attn_scalar: 24, attn_logit_softcapping: null, sliding_window: WINDOW, rope_local_base_freq: 10000, layer_types: ['sliding_attention', 'full_attention'] },
  },
});

/** The config.json a real checkpoint of the family would have (the fields recipes and patches read). */
export function familyConfig(s: FamilySpec): Record<string, unknown> {
  return {
    model_type: s.modelType,
    architectures: [s.architecture],
    hidden_size: s.hidden,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    head_dim: s.headDim,
    intermediate_size: s.intermediate,
    vocab_size: s.vocab,
    rms_norm_eps: s.eps,
    rope_theta: s.theta,
    max_position_embeddings: s.maxPositions,
    ...s.config,
  };
}

export { familyWeights, invFreq, type FamilyWeights, type LayerWeights } from './family-weights.js';
