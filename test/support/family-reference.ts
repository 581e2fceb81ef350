/**
 * A from-scratch forward pass of the test families in plain TypeScript (no ONNX involved): RMSNorm, q/k/v projections
 * with optional biases, optional per-head q/k RMSNorm, rotate-half rope on the first rotaryDim dims of each head (per
 * layer rope base), grouped attention with the family's scale, optional logit softcap c·tanh(x/c), one softmax over
 * the causal keys — or over the last W keys on sliding-window layers — SwiGLU MLP, LM head. Rope positions come from
 * a `Positions` scheme (ordinary or Dual Chunk Attention), written from the formulas, like `llama-reference.ts`.
 */
import { invFreq, type FamilySpec, type FamilyWeights } from './families.js';
import { ordinary, rmsNorm, type Positions } from './llama-reference.js';

/** y = x·W (+ b) with W stored [in, out]. */
function linear(x: Float32Array, w: Float32Array, outDim: number, bias?: Float32Array): Float32Array {
  const y = new Float32Array(outDim);
  for (let o = 0; o < outDim; o++) {
    let s = bias?.[o] ?? 0;
    for (let i = 0; i < x.length; i++) s += x[i]! * w[i * outDim + o]!;
    y[o] = s;
  }
  return y;
}

/** Rotate-half rope of the first 2·inv.length dims of one head vector at position p (angles in float32, as the graph computes them). */
function rope(x: Float32Array, p: number, inv: Float32Array): Float32Array {
  const half = inv.length;
  const out = Float32Array.from(x);
  for (let i = 0; i < half; i++) {
    const angle = Math.fround(p * inv[i]!);
    const [c, s] = [Math.cos(angle), Math.sin(angle)];
    out[i] = x[i]! * c - x[i + half]! * s;
    out[i + half] = x[i + half]! * c + x[i]! * s;
  }
  return out;
}

/** Logits [T][V] of a full causal forward over `ids`. */
export function familyForward(s: FamilySpec, w: FamilyWeights, ids: readonly number[], positions: Positions = ordinary): Float32Array[] {
  const { hidden: D, heads: H, kvHeads: Hkv, headDim: Dh, eps } = s;
  const G = H / Hkv;
  let h = ids.map((id) => w.embed.slice(id * D, (id + 1) * D));
  for (const [n, l] of w.layers.entries()) {
    const inv = invFreq(s, s.thetas[n]);
    const window = s.windows[n];
    const x = h.map((t) => rmsNorm(t, l.inputNorm, eps));
    const heads = (vec: Float32Array, n: number, norm?: Float32Array) => {
      const v = vec.slice(n * Dh, (n + 1) * Dh);
      return norm ? rmsNorm(v, norm, eps) : v;
    };
    const q = x.map((t) => linear(t, l.q, H * Dh, l.qBias));
    const k = x.map((t) => linear(t, l.k, Hkv * Dh, l.kBias));
    const v = x.map((t) => linear(t, l.v, Hkv * Dh, l.vBias));
    const attn = h.map((_, i) => {
      const o = new Float32Array(H * Dh);
      for (let hh = 0; hh < H; hh++) {
        const kv = Math.floor(hh / G);
        const qh = heads(q[i]!, hh, l.qNorm);
        const scores = Array.from({ length: i + 1 }, (_, j) => {
          if (window !== undefined && j <= i - window) return -Infinity;
          const qr = rope(qh, positions.query(i, j), inv);
          const kr = rope(heads(k[j]!, kv, l.kNorm), positions.key(j), inv);
          let dot = 0;
          for (let t = 0; t < Dh; t++) dot += qr[t]! * kr[t]!;
          const x = dot * s.scale;
          return (s.softcap ? s.softcap * Math.tanh(x / s.softcap) : x) + (positions.bias?.(i, j) ?? 0);
        });
        const max = Math.max(...scores);
        const e = scores.map((sc) => (sc === -Infinity ? 0 : Math.exp(sc - max)));
        const sum = e.reduce((a, b) => a + b, 0);
        e.forEach((p, j) => {
          const vj = heads(v[j]!, kv);
          for (let t = 0; t < Dh; t++) o[hh * Dh + t]! += (p / sum) * vj[t]!;
        });
      }
      return o;
    });
    h = h.map((t, i) => {
      const a = linear(attn[i]!, l.o, D);
      const r = t.map((val, c) => val + a[c]!);
      const n = rmsNorm(r, l.postNorm, eps);
      const gate = linear(n, l.gate, s.intermediate);
      const up = linear(n, l.up, s.intermediate);
      const down = linear(gate.map((g, c) => (g / (1 + Math.exp(-g))) * up[c]!), l.down, D);
      return r.map((val, c) => val + down[c]!);
    });
  }
  return h.map((t) => linear(rmsNorm(t, w.norm, eps), w.lmHead, s.vocab));
}
