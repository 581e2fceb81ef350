/**
 * An independent Llama forward pass in plain TypeScript, straight from safetensors weights (not from any ONNX
 * graph): RMSNorm, q/k/v projections, rotate-half RoPE, grouped attention, SwiGLU MLP, tied LM head. Positions
 * come from a pluggable scheme so the same code checks ordinary attention and Dual Chunk Attention, written from
 * the formulas in shared/reference/algorithms.md §1.2–1.4 (one softmax over all keys).
 */
import { readFileSync } from 'node:fs';

export interface LlamaConfig {
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  vocab: number;
  eps: number;
  theta: number;
}

type Weights = Map<string, Float32Array>;

/** Reads every float32 tensor of a .safetensors file. */
export function readSafetensors(path: string): Weights {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const out: Weights = new Map();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (t.dtype !== 'F32') throw new Error(`${name}: only F32 is read here`);
    const [a, b] = t.data_offsets;
    const bytes = buf.subarray(8 + n + a, 8 + n + b);
    out.set(name, new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)));
  }
  return out;
}

/** Relative-position scheme: the rope position of query i and key j given both indices. */
export interface Positions {
  query(i: number, j: number): number;
  key(j: number): number;
  /** Extra logit for (query i, key j), added after scaling. */
  bias?(i: number, j: number): number;
}

export const ordinary: Positions = { query: (i) => i, key: (j) => j };

/** DCA positions (algorithms.md §1.2): L = CS − LW; key j at j mod L; query by chunk distance. */
export function dcaPositions(chunkSize: number, localWindow: number, interBias = 0): Positions {
  const L = chunkSize - localWindow;
  return {
    // attnpatch's inter-chunk bias: −γ·ln(#inter chunks of the query) on inter keys.
    bias: (i, j) => (Math.floor(i / L) - Math.floor(j / L) >= 2 ? -interBias * Math.log(Math.max(1, Math.floor(i / L) - 1)) : 0),
    key: (j) => j % L,
    query(i, j) {
      const dn = Math.floor(i / L) - Math.floor(j / L);
      if (dn === 0) return i % L;
      if (dn === 1) return Math.min(L + (i % L), chunkSize);
      return chunkSize;
    },
  };
}

/** y[o] = Σ_i W[o][i] x[i] (HF Linear layout [out, in]). */
function linear(w: Float32Array, x: Float32Array, outDim: number): Float32Array {
  const inDim = x.length;
  const y = new Float32Array(outDim);
  for (let o = 0; o < outDim; o++) {
    let s = 0;
    for (let i = 0; i < inDim; i++) s += w[o * inDim + i]! * x[i]!;
    y[o] = s;
  }
  return y;
}

/** RMSNorm of one vector. */
export function rmsNorm(x: Float32Array, w: Float32Array, eps: number): Float32Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const r = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * r * w[i]!);
}

/** Rotate-half RoPE of one head vector at position p. */
function rope(x: Float32Array, p: number, theta: number): Float32Array {
  const d = x.length;
  const half = d / 2;
  const out = new Float32Array(d);
  for (let i = 0; i < half; i++) {
    const angle = Math.fround(p * Math.fround(1 / theta ** ((2 * i) / d)));
    const c = Math.cos(angle);
    const s = Math.sin(angle);
    out[i] = x[i]! * c - x[i + half]! * s;
    out[i + half] = x[i + half]! * c + x[i]! * s;
  }
  return out;
}

/** Logits [T, vocab] of a full causal forward over `ids`, with rope positions from `positions`. */
export function llamaForward(w: Weights, cfg: LlamaConfig, ids: readonly number[], positions: Positions = ordinary, logitScale = 1): Float32Array[] {
  const T = ids.length;
  const { hidden, heads, kvHeads, headDim: d, eps, theta } = cfg;
  const emb = w.get('lm_head.weight')!; // tied embeddings
  let h = ids.map((id) => emb.slice(id * hidden, (id + 1) * hidden));
  const G = heads / kvHeads;
  for (let l = 0; l < cfg.layers; l++) {
    const p = (name: string) => w.get(`model.layers.${l}.${name}`)!;
    const normed = h.map((x) => rmsNorm(x, p('input_layernorm.weight'), eps));
    const q = normed.map((x) => linear(p('self_attn.q_proj.weight'), x, heads * d));
    const k = normed.map((x) => linear(p('self_attn.k_proj.weight'), x, kvHeads * d));
    const v = normed.map((x) => linear(p('self_attn.v_proj.weight'), x, kvHeads * d));
    const head = (vec: Float32Array, n: number) => vec.subarray(n * d, (n + 1) * d);
    const attnOut = new Array<Float32Array>(T);
    for (let i = 0; i < T; i++) {
      const o = new Float32Array(heads * d);
      for (let hh = 0; hh < heads; hh++) {
        const kv = Math.floor(hh / G);
        const scores = new Float64Array(i + 1);
        let max = -Infinity;
        for (let j = 0; j <= i; j++) {
          const qr = rope(head(q[i]!, hh), positions.query(i, j), theta);
          const kr = rope(head(k[j]!, kv), positions.key(j), theta);
          let s = 0;
          for (let t = 0; t < d; t++) s += qr[t]! * kr[t]!;
          scores[j] = (s / Math.sqrt(d)) * logitScale + (positions.bias?.(i, j) ?? 0);
          max = Math.max(max, scores[j]!);
        }
        let sum = 0;
        for (let j = 0; j <= i; j++) sum += scores[j] = Math.exp(scores[j]! - max);
        for (let j = 0; j <= i; j++) {
          const vj = head(v[j]!, kv);
          for (let t = 0; t < d; t++) o[hh * d + t]! += (scores[j]! / sum) * vj[t]!;
        }
      }
      attnOut[i] = o;
    }
    h = h.map((x, i) => {
      const a = linear(p('self_attn.o_proj.weight'), attnOut[i]!, hidden);
      const r = x.map((v2, t) => v2 + a[t]!);
      const n2 = rmsNorm(r, p('post_attention_layernorm.weight'), eps);
      const gate = linear(p('mlp.gate_proj.weight'), n2, cfg.intermediate);
      const up = linear(p('mlp.up_proj.weight'), n2, cfg.intermediate);
      const act = gate.map((g, t) => (g / (1 + Math.exp(-g))) * up[t]!);
      const down = linear(p('mlp.down_proj.weight'), act, hidden);
      return r.map((v2, t) => v2 + down[t]!);
    });
  }
  return h.map((x) => linear(emb, rmsNorm(x, w.get('model.norm.weight')!, eps), cfg.vocab));
}

export const TINYSTORIES_CONFIG: LlamaConfig = { hidden: 128, layers: 2, heads: 8, kvHeads: 4, headDim: 16, intermediate: 384, vocab: 2048, eps: 1e-6, theta: 10000 };
