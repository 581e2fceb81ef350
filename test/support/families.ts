/**
 * Test-only model families: tiny random-weight decoders with each family's attention quirks (Llama: grouped KV heads;
 * Qwen2: q/k/v biases; Qwen3: per-head q/k RMSNorm before rope), their config.json, and seeded weights. The same
 * weights feed the ONNX builders (`family-graphs.ts`: Optimum unfused and GenAI fused forms) and the plain TypeScript
 * forward (`family-reference.ts`), so each graph is checked against a from-scratch reference.
 *
 * Glossary: D hidden, H heads, Hkv KV heads, Dh head size, F MLP width, V vocabulary. Weights are [in, out] (the
 * MatMul layout).
 */

export type FamilyName = 'llama' | 'qwen2' | 'qwen3';

export interface FamilySpec {
  family: FamilyName;
  modelType: string;
  architecture: string;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  vocab: number;
  eps: number;
  theta: number;
  /** config.json max_position_embeddings: small, so dca's chunks (CS = ⌊3c/4⌋, LW = ⌊c/8⌋) are reached in a test. */
  maxPositions: number;
  /** q/k/v projection biases (Qwen2). */
  bias: boolean;
  /** Per-head RMSNorm of q and k before rope (Qwen3). */
  qkNorm: boolean;
}

const BASE = { hidden: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 16, intermediate: 96, vocab: 61, eps: 1e-6, theta: 10000, maxPositions: 16 };

/** The families with builders. */
export const FAMILIES: Readonly<Record<FamilyName, FamilySpec>> = Object.freeze({
  llama: { ...BASE, family: 'llama', modelType: 'llama', architecture: 'LlamaForCausalLM', bias: false, qkNorm: false },
  qwen2: { ...BASE, family: 'qwen2', modelType: 'qwen2', architecture: 'Qwen2ForCausalLM', bias: true, qkNorm: false },
  qwen3: { ...BASE, family: 'qwen3', modelType: 'qwen3', architecture: 'Qwen3ForCausalLM', bias: false, qkNorm: true },
});

/** The config.json a real checkpoint of the family would have (the fields recipes and patches read). */
export function familyConfig(s: FamilySpec): Record<string, unknown> {
  const config: Record<string, unknown> = {
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
  };
  // Qwen configs carry a sliding window that use_sliding_window switches off.
  if (s.family !== 'llama') Object.assign(config, { use_sliding_window: false, sliding_window: 4096, max_window_layers: s.layers });
  return config;
}

export interface LayerWeights {
  inputNorm: Float32Array;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  o: Float32Array;
  qBias?: Float32Array;
  kBias?: Float32Array;
  vBias?: Float32Array;
  qNorm?: Float32Array;
  kNorm?: Float32Array;
  postNorm: Float32Array;
  gate: Float32Array;
  up: Float32Array;
  down: Float32Array;
}

export interface FamilyWeights {
  embed: Float32Array;
  layers: LayerWeights[];
  norm: Float32Array;
  lmHead: Float32Array;
}

/** mulberry32: a small seeded PRNG, so every run builds the same model. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random weights: projections ~ U(±1/√in), norms 1 ± 0.2, biases ±0.5 (Qwen2's are large, so they matter). */
export function familyWeights(s: FamilySpec, seed = 7): FamilyWeights {
  const r = rng(seed);
  const uniform = (n: number, scale: number, offset = 0) => Float32Array.from({ length: n }, () => offset + (2 * r() - 1) * scale);
  const matrix = (inDim: number, outDim: number) => uniform(inDim * outDim, 1 / Math.sqrt(inDim));
  const { hidden: D, heads: H, kvHeads: Hkv, headDim: Dh, intermediate: F, vocab: V } = s;
  const layers = Array.from({ length: s.layers }, (): LayerWeights => {
    const l: LayerWeights = {
      inputNorm: uniform(D, 0.2, 1),
      q: matrix(D, H * Dh),
      k: matrix(D, Hkv * Dh),
      v: matrix(D, Hkv * Dh),
      o: matrix(H * Dh, D),
      postNorm: uniform(D, 0.2, 1),
      gate: matrix(D, F),
      up: matrix(D, F),
      down: matrix(F, D),
    };
    if (s.bias) Object.assign(l, { qBias: uniform(H * Dh, 0.5), kBias: uniform(Hkv * Dh, 0.5), vBias: uniform(Hkv * Dh, 0.5) });
    if (s.qkNorm) Object.assign(l, { qNorm: uniform(Dh, 0.2, 1), kNorm: uniform(Dh, 0.2, 1) });
    return l;
  });
  return { embed: uniform(V * D, 1), layers, norm: uniform(D, 0.2, 1), lmHead: matrix(D, V) };
}

/** inv_freq as the export stores it: float32 θ^(−2i/Dh). */
export function invFreq(s: FamilySpec): Float32Array {
  return Float32Array.from({ length: s.headDim / 2 }, (_, i) => 1 / s.theta ** ((2 * i) / s.headDim));
}
