/**
 * @file The attention of an MLA block: a model-local ONNX function `ai.attnpatch::LatentAttention` built only from
 * standard ops (ORT inlines it on every EP). Keys arrive reconstructed from the cached latents but unrotated, for
 * all T positions; the function rotates them at their positions (exact RoPE: the rotation sits between W_Q and W_UK,
 * so W_UK cannot be absorbed into the query) and attends with grouped queries. The value input is either the value
 * latent itself, shared by all heads ([B, 1, T, r_v]: W_UV is folded into the output projection, so P·c_V is all
 * the step computes over T) or reconstructed values per KV head ([B, Hkv, T, Dh]).
 *
 * Inputs:  query [B,S,H·Dh] (unrotated), key [B,1,T,Hkv·Dh] (unrotated), value [B,Nv,T,Dv] (Nv ∈ {1, Hkv}),
 *          cos / sin [B,T,R/2] (R = rotary dims; rows = positions of all T tokens), attention_mask [B,T] (int64).
 * Outputs: output [B,S,H·Dv], probs [B,H,S,T] (debug; optional).
 * Glossary: B batch, S new tokens, P past tokens, T = P + S, H heads, Hkv KV heads, G = H/Hkv, Dh head size.
 */
import { attr } from '../../graph/ir/attribute.js';
import { DataType } from '../../graph/ir/dtype.js';
import { Graph } from '../../graph/ir/graph.js';
import { Model, OnnxFunction } from '../../graph/ir/model.js';
import type { Value } from '../../graph/ir/value.js';
import { GraphBuilder } from '../../graph/build/builder.js';
import { rotate, type RopeLayout, type RotateConsts } from './rope.js';

export const MLA_DOMAIN = 'ai.attnpatch';
/** The body needs standard ops from this opset on (Unsqueeze/Split/Slice with tensor inputs). */
export const MLA_MIN_OPSET = 13;
export const MLA_INPUTS = ['query', 'key', 'value', 'cos', 'sin', 'attention_mask'] as const;
export const MLA_OUTPUTS = ['output', 'probs'] as const;
export const MLA_ATTRIBUTES = ['num_heads', 'kv_num_heads', 'scale', 'float_type'] as const;

export function mlaFunctionName(layout: RopeLayout): string {
  return layout === 'half' ? 'LatentAttention' : 'LatentAttentionInterleaved';
}

/** Builds the function for one rope layout; the caller adds it to the model. */
export function buildMlaFunction(model: Model, layout: RopeLayout): OnnxFunction {
  const body = new Graph(mlaFunctionName(layout));
  const fn = new OnnxFunction(mlaFunctionName(layout), MLA_DOMAIN, body);
  // NOTE: ORT inlines the body at the model's own opset version, so the body uses the model's.
  fn.opsetImports.set('', Math.max(model.opset('') ?? MLA_MIN_OPSET, MLA_MIN_OPSET));
  fn.attributeNames.push(...MLA_ATTRIBUTES);
  fn.attributeDefaults.push(attr.int('float_type', DataType.FLOAT));
  const b = new GraphBuilder(model, body, 'mla');
  const [query, key, value, cos, sin, mask] = MLA_INPUTS.map((n) => body.addInput(n)) as [Value, Value, Value, Value, Value, Value];

  const i64 = (v: number) => b.constInts([v]);
  const h = b.constRef('num_heads', 'int');
  const hkv = b.constRef('kv_num_heads', 'int');
  const at = (shape: Value, i: number) => b.op('Gather', [shape, b.constInts([i], true)], { attributes: { axis: 0 } });
  const unsq = (x: Value) => b.op('Unsqueeze', [x, i64(0)]);
  /** A 1-D shape from scalar dims and literal numbers (−1: inferred). */
  const dims = (...xs: (Value | number)[]) => b.op('Concat', xs.map((x) => (typeof x === 'number' ? i64(x) : unsq(x))), { attributes: { axis: 0 } });

  const qShape = b.op('Shape', [query]);
  const kShape = b.op('Shape', [key]);
  const B = at(qShape, 0);
  const S = at(qShape, 1);
  const T = at(kShape, 2);
  const P = b.op('Sub', [T, S]);
  const Dh = b.op('Div', [at(kShape, 3), hkv]);
  const Dv = at(b.op('Shape', [value]), 3);
  const halfRot = at(b.op('Shape', [cos]), 2);
  const k: RotateConsts = {
    zero: i64(0),
    one: i64(1),
    two: i64(2),
    last: i64(-1),
    rot: unsq(b.op('Mul', [halfRot, b.constInts([2], true)])),
    halfRot: unsq(halfRot),
    headDim: unsq(Dh),
  };

  // Heads: q [B,H,S,Dh], keys [B,Hkv,T,Dh]; cos/sin [B,1,T,R/2] broadcast over heads, queries take the last S rows.
  const q = b.op('Transpose', [b.op('Reshape', [query, dims(B, S, h, Dh)])], { attributes: { perm: [0, 2, 1, 3] } });
  const kHeads = b.op('Transpose', [b.op('Reshape', [key, dims(B, T, hkv, Dh)])], { attributes: { perm: [0, 2, 1, 3] } });
  const cosK = b.op('Unsqueeze', [cos, i64(1)]);
  const sinK = b.op('Unsqueeze', [sin, i64(1)]);
  const lastRows = (t: Value) => b.op('Slice', [t, unsq(P), unsq(T), i64(2)]);
  const kRot = rotate(b, kHeads, cosK, sinK, k, layout);
  const qRot = rotate(b, q, lastRows(cosK), lastRows(sinK), k, layout);

  // Scores with queries grouped by KV head ([B,Hkv,G·S,Dh]), so keys are never repeated.
  const scores = b.op('MatMul', [b.op('Reshape', [qRot, dims(B, hkv, -1, Dh)]), b.op('Transpose', [kRot], { attributes: { perm: [0, 1, 3, 2] } })]);
  // NOTE: Cast to the caller's float_type keeps one body for float32 and float16 models.
  const toFloatType = (x: Value) => b.op('Cast', [x], { attributes: [attr.ref('to', 'float_type', 2)] });
  const scaled = b.op('Reshape', [b.op('Mul', [scores, toFloatType(b.constRef('scale', 'float'))]), dims(B, h, S, T)]); // [B,H,S,T]

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
