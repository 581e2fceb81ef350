/**
 * Seeded random weights of the test families (`families.ts`), shared by the ONNX builders and the reference forward.
 * Weights are [in, out] (the MatMul layout).
 */
import type { FamilySpec } from './families.js';

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

/**
 * inv_freq as the export stores it: float32 θ^(−2i/rotaryDim), rotaryDim/2 values, with Llama 3's scaling applied
 * when the spec has it (transformers' _compute_llama3_parameters: long wavelengths divided by the factor, short ones
 * kept, the band between interpolated).
 */
export function invFreq(s: FamilySpec, theta = s.theta): Float32Array {
  const plain = Array.from({ length: s.rotaryDim / 2 }, (_, i) => 1 / theta ** ((2 * i) / s.rotaryDim));
  const r = s.ropeScaling;
  if (!r) return Float32Array.from(plain);
  const [lowWave, highWave] = [r.original_max_position_embeddings / r.low_freq_factor, r.original_max_position_embeddings / r.high_freq_factor];
  return Float32Array.from(plain, (f) => {
    const wave = (2 * Math.PI) / f;
    if (wave < highWave) return f;
    if (wave > lowWave) return f / r.factor;
    const smooth = (r.original_max_position_embeddings / wave - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
    return (1 - smooth) * (f / r.factor) + smooth * f;
  });
}
