/**
 * @file The attention of an MLA block: a model-local ONNX function `ai.attnpatch::LatentAttention` built only from
 * standard ops (ORT inlines it on every EP). Keys arrive rebuilt from the cached latents for all T positions, unrotated
 * and transposed ([B, 1, Hkv·Dh, T], the layout q·kᵀ reads); the function rotates them at their positions (rope.ts:
 * x·cos + x[perm]·sin', one row gather) — exact RoPE: the rotation sits between W_Q and W_UK, so W_UK cannot be
 * absorbed into the query — and attends with grouped queries. The value input is the value latent itself, shared by
 * all heads ([B, 1, T, r_v]: W_UV is folded into the output projection, so P·c_V is all a step computes over T), or
 * values rebuilt per KV head ([B, Hkv, T, Dh]).
 *
 * Inputs:  query [B,S,H·Dh] (unrotated), key [B,1,Hkv·Dh,T] (unrotated), value [B,Nv,T,Dv] (Nv ∈ {1, Hkv}),
 *          cos / sin [B,Dh,T] (full width, sin signed; 1 and 0 past the rotary dims), attention_mask [B,T] (int64),
 *          rotate_index [Dh] (int64: perm). The DCA variant (dca.ts) takes the [rows, Dh] tables as cos / sin instead.
 * Outputs: output [B,S,H·Dv], probs [B,H,S,T] (debug; optional).
 * Glossary: B batch, S new tokens, P past tokens, T = P + S, H heads, Hkv KV heads, G = H/Hkv, Dh head size.
 */
import { attr } from '../../graph/ir/attribute.js';
import { DataType } from '../../graph/ir/dtype.js';
import { Graph } from '../../graph/ir/graph.js';
import { Model, OnnxFunction } from '../../graph/ir/model.js';
import type { Value } from '../../graph/ir/value.js';
import { GraphBuilder } from '../../graph/build/builder.js';
import { dcaKeyRows, dcaScores, MLA_DCA_ATTRIBUTES, MLA_DCA_DEFAULTS } from './dca.js';

export const MLA_DOMAIN = 'ai.attnpatch';
/** The body needs standard ops from this opset on (Unsqueeze/Split/Slice with tensor inputs). */
export const MLA_MIN_OPSET = 13;
export const MLA_FUNCTION = 'LatentAttention';
/** The Dual Chunk Attention variant (dca.ts): cos/sin are the [rows, Dh] tables, rows picked inside by DCA position. */
export const MLA_DCA_FUNCTION = 'LatentDualChunkAttention';
export const MLA_INPUTS = ['query', 'key', 'value', 'cos', 'sin', 'attention_mask', 'rotate_index'] as const;
export const MLA_OUTPUTS = ['output', 'probs'] as const;
export const MLA_ATTRIBUTES = ['num_heads', 'kv_num_heads', 'scale', 'float_type'] as const;

/** What the two variants share inside the body. */
export interface BodyContext {
  b: GraphBuilder;
  i64: (v: number) => Value;
  unsq: (x: Value) => Value;
  dims: (...xs: (Value | number)[]) => Value;
  h: Value;
  hkv: Value;
  S: Value;
  P: Value;
  T: Value;
  /** Casts to the caller's float_type. */
  toFloatType: (x: Value) => Value;
}

/** Builds one variant; the caller adds it to the model. */
export function buildMlaFunction(model: Model, variant: 'ordinary' | 'dca' = 'ordinary'): OnnxFunction {
  const name = variant === 'dca' ? MLA_DCA_FUNCTION : MLA_FUNCTION;
  const body = new Graph(name);
  const fn = new OnnxFunction(name, MLA_DOMAIN, body);
  // NOTE: ORT inlines the body at the model's own opset version, so the body uses the model's.
  fn.opsetImports.set('', Math.max(model.opset('') ?? MLA_MIN_OPSET, MLA_MIN_OPSET));
  fn.attributeNames.push(...MLA_ATTRIBUTES, ...(variant === 'dca' ? MLA_DCA_ATTRIBUTES : []));
  fn.attributeDefaults.push(attr.int('float_type', DataType.FLOAT), ...(variant === 'dca' ? MLA_DCA_DEFAULTS : []));
  const b = new GraphBuilder(model, body, 'mla');
  const [query, key, value, cos, sin, mask, perm] = MLA_INPUTS.map((n) => body.addInput(n)) as Value[] as [Value, Value, Value, Value, Value, Value, Value];

  const i64 = (v: number) => b.constInts([v]);
  const h = b.constRef('num_heads', 'int');
  const hkv = b.constRef('kv_num_heads', 'int');
  const at = (shape: Value, i: number) => b.op('Gather', [shape, b.constInts([i], true)], { attributes: { axis: 0 } });
  const unsq = (x: Value) => b.op('Unsqueeze', [x, i64(0)]);
  /** A 1-D shape from scalar dims and literal numbers (−1: inferred). */
  const dims = (...xs: (Value | number)[]) => b.op('Concat', xs.map((x) => (typeof x === 'number' ? i64(x) : unsq(x))), { attributes: { axis: 0 } });
  // NOTE: Cast to the caller's float_type keeps one body for float32 and float16 models.
  const toFloatType = (x: Value) => b.op('Cast', [x], { attributes: [attr.ref('to', 'float_type', 2)] });

  const qShape = b.op('Shape', [query]);
  const kShape = b.op('Shape', [key]);
  const B = at(qShape, 0);
  const S = at(qShape, 1);
  const T = at(kShape, 3);
  const P = b.op('Sub', [T, S]);
  const Dh = b.op('Div', [at(kShape, 2), hkv]);
  const Dv = at(b.op('Shape', [value]), 3);
  const c: BodyContext = { b, i64, unsq, dims, h, hkv, S, P, T, toFloatType };

  // Keys [B,Hkv,Dh,T] — the layout q·kᵀ reads, so no transpose over T — rotated as k·cos + k[perm]·sin' (rows).
  const kHeads = b.op('Reshape', [key, dims(B, hkv, Dh, T)]);
  const kTurned = b.op('Gather', [kHeads, perm], { attributes: { axis: 2 } });
  const rotateK = (cosRows: Value, sinRows: Value) => b.op('Add', [b.op('Mul', [kHeads, cosRows]), b.op('Mul', [kTurned, sinRows])]);
  const q = b.op('Transpose', [b.op('Reshape', [query, dims(B, S, h, Dh)])], { attributes: { perm: [0, 2, 1, 3] } });
  const qTurned = b.op('Gather', [q, perm], { attributes: { axis: 3 } });
  /** q·cos + q[perm]·sin' with rows broadcastable to [B,H,S,Dh]. */
  const rotateQ = (cosRows: Value, sinRows: Value) => b.op('Add', [b.op('Mul', [q, cosRows]), b.op('Mul', [qTurned, sinRows])]);
  const grouped = (x: Value) => b.op('Reshape', [x, dims(B, hkv, -1, Dh)]);
  let scaled: Value;
  if (variant === 'dca') {
    const rows = dcaKeyRows(c, cos, sin);
    const kT = rotateK(rows.cos, rows.sin);
    scaled = dcaScores(c, (at2) => grouped(rotateQ(b.op('Gather', [cos, at2], { attributes: { axis: 0 } }), b.op('Gather', [sin, at2], { attributes: { axis: 0 } }))), kT);
  } else {
    const kT = rotateK(b.op('Unsqueeze', [cos, i64(1)]), b.op('Unsqueeze', [sin, i64(1)]));
    // Queries: the last S positions' rows, [B,1,S,Dh].
    const lastRows = (t: Value) => b.op('Unsqueeze', [b.op('Transpose', [b.op('Slice', [t, unsq(P), unsq(T), i64(2)])], { attributes: { perm: [0, 2, 1] } }), i64(1)]);
    // Scores with queries grouped by KV head ([B,Hkv,G·S,Dh]), so keys are never repeated.
    const scores = b.op('MatMul', [grouped(rotateQ(lastRows(cos), lastRows(sin))), kT]);
    scaled = b.op('Mul', [scores, toFloatType(b.constRef('scale', 'float'))]);
  }
  scaled = b.op('Reshape', [scaled, dims(B, h, S, T)]); // [B,H,S,T]

  // Mask: causal (key index > query index) and padding (attention_mask == 0).
  const one = b.constInts([1], true);
  const keyIdx = b.op('Range', [b.constInts([0], true), T, one]);
  const queryIdx = b.op('Range', [P, T, one]);
  const future = b.op('Greater', [b.op('Unsqueeze', [keyIdx, i64(0)]), b.op('Unsqueeze', [queryIdx, i64(1)])]); // [S,T]
  const padding = b.op('Equal', [b.op('Unsqueeze', [mask, i64(1)]), b.constInts([0], true)]); // [B,1,T]
  const blocked = b.op('Unsqueeze', [b.op('Or', [b.op('Unsqueeze', [future, i64(0)]), padding]), i64(1)]); // [B,1,S,T]
  // −65504 (the float16 minimum) is far below any score and never −∞: a fully masked row softmaxes to uniform, not NaN.
  const masked = b.op('Where', [blocked, toFloatType(b.constFloat(-65504)), scaled]);
  const probs = b.op('Softmax', [masked], { attributes: { axis: -1 }, outputs: ['probs'] })[0]!;

  // P·V grouped by KV head; a shared latent value ([B,1,T,r]) broadcasts over the KV heads.
  const pv = b.op('MatMul', [b.op('Reshape', [probs, dims(B, hkv, -1, T)]), value]);
  const heads = b.op('Transpose', [b.op('Reshape', [pv, dims(B, h, S, Dv)])], { attributes: { perm: [0, 2, 1, 3] } });
  const out = b.op('Reshape', [heads, dims(B, S, -1)], { outputs: ['output'] })[0]!;
  body.outputs.push(out, probs);
  return fn;
}
