/**
 * The Optimum (unfused, eager) form of the test families: what Optimum / torch.onnx write for eager attention.
 * Model level: additive causal + padding mask [B, 1, S, T] from attention_mask — and, when a layer has a sliding
 * window, a second mask that also hides keys at or before i − W (transformers ≥ 4.53 `sliding_window_overlay`:
 * `kv_idx > q_idx − W`, exported as Greater(k, Sub(q, W))) — and cos/sin [B, S, rotaryDim] from inv_freq·position_ids
 * (one pair per rope base). Per layer: MatMul [+ bias Add] (or Phi-3's packed qkv_proj sliced into q/k/v with Slice)
 * → Reshape → [q/k RMSNorm before (Qwen3) or after (Gemma 3) the Transpose] → Transpose → rotate_half rope (partial:
 * Concat(rope(x[..., :rd]), x[..., rd:])) → Concat(past) → repeat_kv → Div(√Dh) or Mul(query_pre_attn_scalar^−½) →
 * [softcap Div → Tanh → Mul] → Add(mask) → Softmax → MatMul(v); decomposed RMSNorms everywhere.
 */
import { DataType } from '../../src/graph/ir/dtype.js';
import type { Model } from '../../src/graph/ir/model.js';
import { tensorType } from '../../src/graph/ir/types.js';
import type { Value } from '../../src/graph/ir/value.js';
import { finish, mlp, packedProject, pastInputs, project, start } from './family-parts.js';
import { invFreq, type FamilySpec, type FamilyWeights } from './families.js';

const BIG = 2 ** 62;
const F32_MIN = -3.4028234663852886e38;

export function buildOptimum(s: FamilySpec, w: FamilyWeights): Model {
  const { graph, model, b, ids, mask } = start({ '': 17 });
  const pos = graph.addInput('position_ids', tensorType(DataType.INT64, ['batch_size', 'sequence_length']));
  const { hidden: D, heads: H, kvHeads: Hkv, headDim: Dh, rotaryDim: rd } = s;
  const i64 = (name: string, v: number[]) => b.ints(name, v);
  const scalar64 = (name: string, v: number) => b.ints(name, [v], true);
  const f32 = (name: string, v: number) => b.floats(name, [], [v]);
  const norm = (x: Value, weight: Float32Array) => {
    const mean = b.op('ReduceMean', [b.op('Mul', [x, x])], { attributes: { axes: [-1], keepdims: 1 } });
    const r = b.op('Reciprocal', [b.op('Sqrt', [b.op('Add', [mean, f32('eps', s.eps)])])]);
    return b.op('Mul', [b.op('Mul', [x, r]), b.floats('norm.weight', [weight.length], weight)]);
  };
  /** Gemma 3's per-head norm as torch writes `x * rsqrt(x.pow(2).mean(-1) + eps) * w`. */
  const powNorm = (x: Value, weight: Float32Array) => {
    const mean = b.op('ReduceMean', [b.op('Pow', [x, f32('two', 2)])], { attributes: { axes: [-1], keepdims: 1 } });
    const r = b.op('Reciprocal', [b.op('Sqrt', [b.op('Add', [mean, f32('eps', s.eps)])])]);
    return b.op('Mul', [b.op('Mul', [x, r]), b.floats('norm.weight', [weight.length], weight)]);
  };

  // Model level: additive masks [B, 1, S, T] (full causal, and windowed where a layer slides) and cos/sin.
  const S = b.op('Gather', [b.op('Shape', [ids]), scalar64('one', 1)], { attributes: { axis: 0 } });
  const T = b.op('Gather', [b.op('Shape', [mask]), scalar64('one', 1)], { attributes: { axis: 0 } });
  const qPos = b.op('Unsqueeze', [b.op('Range', [b.op('Sub', [T, S]), T, scalar64('step', 1)]), i64('axes', [1])]);
  const kPos = b.op('Unsqueeze', [b.op('Range', [scalar64('zero', 0), T, scalar64('step', 1)]), i64('axes', [0])]);
  const causal = b.op('LessOrEqual', [kPos, qPos]);
  const padding = b.op('Cast', [b.op('Unsqueeze', [mask, i64('axes', [1, 2])])], { attributes: { to: DataType.BOOL } });
  const additive = (visible: Value) => b.op('Where', [b.op('And', [visible, padding]), f32('zero', 0), f32('min', F32_MIN)]);
  const masks = new Map<number | undefined, Value>([[undefined, additive(causal)]]);
  for (const W of new Set(s.windows)) {
    if (W !== undefined) masks.set(W, additive(b.op('And', [causal, b.op('Greater', [kPos, b.op('Sub', [qPos, scalar64('window', W)])])])));
  }
  const p = b.op('Cast', [b.op('Unsqueeze', [pos, i64('axes', [1])])], { attributes: { to: DataType.FLOAT } });
  const cosSin = new Map<number, [Value, Value]>();
  for (const theta of new Set(s.thetas)) {
    const freqs = b.op('Transpose', [b.op('MatMul', [b.floats('inv_freq', [1, rd / 2, 1], invFreq(s, theta)), p])], { attributes: { perm: [0, 2, 1] } });
    const emb = b.op('Concat', [freqs, freqs], { attributes: { axis: -1 } });
    cosSin.set(theta, [b.op('Cos', [emb]), b.op('Sin', [emb])]);
  }

  const slice = (x: Value, from: number, to: number, axis = 3) => b.op('Slice', [x, i64('start', [from]), i64('end', [to]), i64('axis', [axis])]);
  const rope = (x: Value, theta: number) => {
    const [cos, sin] = cosSin.get(theta)!;
    const apply = (xr: Value) => {
      const rotated = b.op('Concat', [b.op('Neg', [slice(xr, rd / 2, BIG)]), slice(xr, 0, rd / 2)], { attributes: { axis: -1 } });
      return b.op('Add', [b.op('Mul', [xr, b.op('Unsqueeze', [cos, i64('axes', [1])])]), b.op('Mul', [rotated, b.op('Unsqueeze', [sin, i64('axes', [1])])])]);
    };
    if (rd === Dh) return apply(x);
    return b.op('Concat', [apply(slice(x, 0, rd)), slice(x, rd, BIG)], { attributes: { axis: -1 } });
  };
  /** [B,S,N·Dh] → [B,N,S,Dh], with a per-head norm before (Qwen3) or after (Gemma 3) the transpose. */
  const heads = (x: Value, qkNorm?: Float32Array) => {
    const split = b.op('Reshape', [x, i64('heads_shape', [0, 0, -1, Dh])]);
    const transpose = (y: Value) => b.op('Transpose', [y], { attributes: { perm: [0, 2, 1, 3] } });
    if (!qkNorm || !s.qkNorm) return transpose(split);
    return s.qkNorm === 'before' ? transpose(norm(split, qkNorm)) : powNorm(transpose(split), qkNorm);
  };
  const repeatKv = (x: Value) => b.op('Reshape', [b.op('Expand', [b.op('Unsqueeze', [x, i64('axes', [2])]), i64('expand', [1, Hkv, H / Hkv, 1, Dh])]), i64('repeat_shape', [0, H, -1, Dh])]);
  const scaled = (qk: Value) => (Math.abs(s.scale - 1 / Math.sqrt(Dh)) < 1e-12 ? b.op('Div', [qk, f32('sqrt_dh', Math.sqrt(Dh))]) : b.op('Mul', [qk, f32('scaling', s.scale)]));
  const softcapped = (x: Value) => (s.softcap ? b.op('Mul', [b.op('Tanh', [b.op('Div', [x, f32('softcap', s.softcap)])]), f32('softcap', s.softcap)]) : x);

  let h = b.op('Gather', [b.floats('embed_tokens', [s.vocab, D], w.embed), ids], { attributes: { axis: 0 } });
  const presents: Value[] = [];
  w.layers.forEach((l, n) => {
    const [pastK, pastV] = pastInputs(graph, s, n);
    const x = norm(h, l.inputNorm);
    let [qp, kp, vp]: Value[] = [];
    if (s.packed) {
      const qkv = packedProject(b, x, l, s, `l${n}.qkv_proj`);
      [qp, kp, vp] = [slice(qkv, 0, H * Dh, -1), slice(qkv, H * Dh, (H + Hkv) * Dh, -1), slice(qkv, (H + Hkv) * Dh, BIG, -1)];
    } else {
      [qp, kp, vp] = [project(b, x, l.q, D, H * Dh, l.qBias, `l${n}.q_proj`), project(b, x, l.k, D, Hkv * Dh, l.kBias, `l${n}.k_proj`), project(b, x, l.v, D, Hkv * Dh, l.vBias, `l${n}.v_proj`)];
    }
    const q = rope(heads(qp!, l.qNorm), s.thetas[n]!);
    const k = rope(heads(kp!, l.kNorm), s.thetas[n]!);
    const v = heads(vp!);
    const kAll = b.op('Concat', [pastK, k], { attributes: { axis: -2 }, outputs: [`present.${n}.key`] })[0]!;
    const vAll = b.op('Concat', [pastV, v], { attributes: { axis: -2 }, outputs: [`present.${n}.value`] })[0]!;
    presents.push(kAll, vAll);
    const kT = b.op('Transpose', [repeatKv(kAll)], { attributes: { perm: [0, 1, 3, 2] } });
    const scores = b.op('Add', [softcapped(scaled(b.op('MatMul', [q, kT]))), masks.get(s.windows[n])!]);
    const pv = b.op('MatMul', [b.op('Softmax', [scores], { attributes: { axis: -1 } }), repeatKv(vAll)]);
    const merged = b.op('Reshape', [b.op('Transpose', [pv], { attributes: { perm: [0, 2, 1, 3] } }), i64('merged_shape', [0, 0, H * Dh])]);
    h = mlp(b, b.op('Add', [h, b.op('MatMul', [merged, b.floats(`l${n}.o_proj.weight`, [H * Dh, D], l.o)])]), l, s, norm);
  });
  finish(b, graph, h, w, s, norm, presents);
  return model;
}
