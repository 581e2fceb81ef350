/**
 * @file The fused Dual Chunk Attention op: a model-local ONNX function `ai.attnpatch::DualChunkAttention` built only
 * from standard ops (ORT inlines it on every EP). Positions follow shared/reference/algorithms.md §1.2 with
 * L = chunk_size − local_window: key j is rotated at j mod L (and cached rotated); query i at i mod L (intra),
 * min(L + i mod L, CS) (successive) and CS (inter); one softmax over all keys.
 *
 * When every query of a call lies in one chunk (decode, chunk-aligned prefill) the keys are sliced into their
 * three sections so q·kᵀ is computed once per key; otherwise (queries spanning chunks) all three scores are
 * computed and selected per (query, key) pair. An `If` picks the path at run time.
 *
 * Inputs:  query [B,S,H·Dh], key [B,S,Hkv·Dh], value [B,S,Hkv·Dh] (unrotated), past_key [B,Hkv,P,Dh] (rotated at DCA
 *          key positions), past_value [B,Hkv,P,Dh], attention_mask [B,P+S] (int64; 0 = padding), cos / sin
 *          [≥ CS+1, R/2] (R = rotary dims).
 * Outputs: output [B,S,H·Dh], present_key, present_value [B,Hkv,P+S,Dh], probs [B,H,S,P+S] (debug; optional).
 * Glossary: B batch, S new tokens, P past tokens, T = P+S, H heads, Hkv KV heads, G = H/Hkv, Dh head size.
 */
import { attr } from '../../graph/ir/attribute.js';
import { DataType } from '../../graph/ir/dtype.js';
import { Graph } from '../../graph/ir/graph.js';
import { Model, OnnxFunction } from '../../graph/ir/model.js';
import type { Value } from '../../graph/ir/value.js';
import { GraphBuilder } from '../../graph/build/builder.js';

export const DCA_DOMAIN = 'ai.attnpatch';
/** The function body needs standard ops from this opset on (Unsqueeze/Slice with tensor inputs). */
export const DCA_MIN_OPSET = 13;
export const DCA_INPUTS = ['query', 'key', 'value', 'past_key', 'past_value', 'attention_mask', 'cos', 'sin'] as const;
export const DCA_OUTPUTS = ['output', 'present_key', 'present_value', 'probs'] as const;
/** Attributes a DualChunkAttention node passes (all required except temperature, trained_length). */
export const DCA_ATTRIBUTES = ['num_heads', 'kv_num_heads', 'chunk_size', 'local_window', 'scale', 'temperature_coef', 'trained_length', 'float_type', 'inter_bias'] as const;

export type RopeLayout = 'half' | 'interleaved';

export function dcaFunctionName(layout: RopeLayout): string {
  return layout === 'half' ? 'DualChunkAttention' : 'DualChunkAttentionInterleaved';
}

/** Rotates the first R dims of x [B,N,S,Dh] at per-query rows of the cos/sin tables (rows: [S] indices). */
function rope(b: GraphBuilder, x: Value, cosRows: Value, sinRows: Value, k: Ctx, layout: RopeLayout): Value {
  const rot = b.op('Slice', [x, k.zero1, k.rotDim1, k.axisLast]);
  const pass = b.op('Slice', [x, k.rotDim1, k.headDim1, k.axisLast]);
  let cos: Value;
  let sin: Value;
  let turned: Value;
  if (layout === 'half') {
    cos = b.op('Concat', [cosRows, cosRows], { attributes: { axis: -1 } });
    sin = b.op('Concat', [sinRows, sinRows], { attributes: { axis: -1 } });
    const first = b.op('Slice', [rot, k.zero1, k.halfRot1, k.axisLast]);
    const second = b.op('Slice', [rot, k.halfRot1, k.rotDim1, k.axisLast]);
    turned = b.op('Concat', [b.op('Neg', [second]), first], { attributes: { axis: -1 } });
  } else {
    // Pairs (2i, 2i+1): cos/sin repeat per pair; rotate(x)[2i] = −x[2i+1], rotate(x)[2i+1] = x[2i].
    const pairwise = (t: Value) => b.op('Reshape', [b.op('Concat', [b.op('Unsqueeze', [t, k.axisLast]), b.op('Unsqueeze', [t, k.axisLast])], { attributes: { axis: -1 } }), k.rowsByRot]);
    cos = pairwise(cosRows);
    sin = pairwise(sinRows);
    const even = b.op('Slice', [rot, k.zero1, k.rotDim1, k.axisLast, k.two1]);
    const odd = b.op('Slice', [rot, k.one1, k.rotDim1, k.axisLast, k.two1]);
    const stacked = b.op('Concat', [b.op('Unsqueeze', [b.op('Neg', [odd]), k.axisLast]), b.op('Unsqueeze', [even, k.axisLast])], { attributes: { axis: -1 } });
    turned = b.op('Reshape', [stacked, b.op('Shape', [rot])]);
  }
  const rotated = b.op('Add', [b.op('Mul', [rot, cos]), b.op('Mul', [turned, sin])]);
  return b.op('Concat', [rotated, pass], { attributes: { axis: -1 } });
}

/** Shared constants and shapes inside the body. */
interface Ctx {
  zero1: Value;
  one1: Value;
  two1: Value;
  axisLast: Value;
  rotDim1: Value;
  halfRot1: Value;
  headDim1: Value;
  rowsByRot: Value;
}

/** [B, S, N·Dh] → [B, N, S, Dh]. */
function splitHeads(b: GraphBuilder, x: Value, shape: Value): Value {
  return b.op('Transpose', [b.op('Reshape', [x, shape])], { attributes: { perm: [0, 2, 1, 3] } });
}

/** Builds the function (once per rope layout) and returns it; the caller adds it to the model. */
export function buildDcaFunction(model: Model, layout: RopeLayout): OnnxFunction {
  const body = new Graph(dcaFunctionName(layout));
  const fn = new OnnxFunction(dcaFunctionName(layout), DCA_DOMAIN, body);
  // NOTE: ORT inlines the body at the model's own opset version, so the body uses the model's.
  fn.opsetImports.set('', Math.max(model.opset('') ?? DCA_MIN_OPSET, DCA_MIN_OPSET));
  fn.attributeNames.push(...DCA_ATTRIBUTES);
  // Defaults: no temperature (the paper's setting), float32 activations.
  fn.attributeDefaults.push(attr.float('temperature_coef', 0), attr.int('trained_length', 1), attr.int('float_type', DataType.FLOAT), attr.float('inter_bias', 0));
  const b = new GraphBuilder(model, body, 'dca');
  const [query, key, value, pastKey, pastValue, mask, cosTable, sinTable] = DCA_INPUTS.map((n) => body.addInput(n));

  const i64 = (v: number) => b.constInts([v]);
  const scalar = (name: string) => b.constRef(name, 'int');
  const h = scalar('num_heads');
  const hkv = scalar('kv_num_heads');
  const cs = scalar('chunk_size');
  const lw = scalar('local_window');
  const L = b.op('Sub', [cs, lw]);
  const axis0 = i64(0);
  const first = (shape: Value, i: number) => b.op('Gather', [shape, b.constInts([i], true)], { attributes: { axis: 0 } });

  // Shapes: B, S from the query; P and Dh from the past cache; R from the cos table.
  const qShape = b.op('Shape', [query!]);
  const kvShape = b.op('Shape', [pastKey!]);
  const B = first(qShape, 0);
  const S = first(qShape, 1);
  const P = first(kvShape, 2);
  const Dh = first(kvShape, 3);
  const T = b.op('Add', [P, S]);
  const halfRot = first(b.op('Shape', [cosTable!]), 1);
  const rotDim = b.op('Mul', [halfRot, b.constInts([2], true)]);
  const unsq = (x: Value) => b.op('Unsqueeze', [x, axis0]);
  const k: Ctx = {
    zero1: i64(0),
    one1: i64(1),
    two1: i64(2),
    axisLast: i64(-1),
    rotDim1: unsq(rotDim),
    halfRot1: unsq(halfRot),
    headDim1: unsq(Dh),
    rowsByRot: b.op('Concat', [i64(-1), unsq(rotDim)], { attributes: { axis: 0 } }),
  };
  const bsnd = (n: Value) => b.op('Concat', [unsq(B), unsq(S), unsq(n), unsq(Dh)], { attributes: { axis: 0 } });
  const q = splitHeads(b, query!, bsnd(h));
  const kNew = splitHeads(b, key!, bsnd(hkv));
  const vNew = splitHeads(b, value!, bsnd(hkv));

  // Positions (absolute token indices; no left padding, as every DCA implementation assumes).
  const pos = b.op('Range', [P, T, b.constInts([1], true)]); // [S]
  const posMod = b.op('Mod', [pos, L]);
  const rows = (table: Value, at: Value) => b.op('Gather', [table, at], { attributes: { axis: 0 } });
  const rotateAt = (x: Value, at: Value) => rope(b, x, rows(cosTable!, at), rows(sinTable!, at), k, layout);
  const kRot = rotateAt(kNew, posMod);
  const presentKey = b.op('Concat', [pastKey!, kRot], { attributes: { axis: 2 }, outputs: ['present_key'] })[0]!;
  const presentValue = b.op('Concat', [pastValue!, vNew], { attributes: { axis: 2 }, outputs: ['present_value'] })[0]!;
  const qIntra = rotateAt(q, posMod);
  const qSucc = rotateAt(q, b.op('Min', [b.op('Add', [posMod, L]), cs]));
  const qInter = rotateAt(q, b.op('Expand', [cs, unsq(S)]));

  // Group queries by KV head: [B,H,S,Dh] → [B,Hkv,G·S,Dh], so K and V are never repeated.
  const groupShape = b.op('Concat', [unsq(B), unsq(hkv), i64(-1), unsq(Dh)], { attributes: { axis: 0 } });
  const byHead = b.op('Concat', [unsq(B), unsq(h), unsq(S), i64(-1)], { attributes: { axis: 0 } });
  const kT = b.op('Transpose', [presentKey], { attributes: { perm: [0, 1, 3, 2] } });

  // Scale and optional temperature f(T)² with f = max(1, coef·ln(T / trained_length) + 1).
  const tF = b.op('Cast', [T], { attributes: { to: DataType.FLOAT } });
  const ratio = b.op('Div', [tF, b.op('Cast', [scalar('trained_length')], { attributes: { to: DataType.FLOAT } })]);
  const f = b.op('Max', [b.op('Add', [b.op('Mul', [b.constRef('temperature_coef', 'float'), b.op('Log', [ratio])]), b.constFloat(1)]), b.constFloat(1)]);
  // NOTE: Cast to the caller's float_type keeps one body for float32 and float16 models.
  const toFloatType = (x: Value) => b.op('Cast', [x], { attributes: [attr.ref('to', 'float_type', 2)] });
  // Optional inter-chunk bias: −γ·ln(#inter chunks) on every inter key's logit, so the many keys that share the
  // capped inter positions get the attention budget of one chunk. Added before scaling, hence ÷ factor.
  const gammaOverFactor = b.op('Div', [b.constRef('inter_bias', 'float'), b.op('Mul', [b.constRef('scale', 'float'), b.op('Mul', [f, f])])]);
  const interBias = (bb: GraphBuilder, chunk: Value) =>
    bb.op('Cast', [bb.op('Neg', [bb.op('Mul', [gammaOverFactor, bb.op('Log', [bb.op('Max', [bb.op('Cast', [bb.op('Sub', [chunk, bb.constInts([1], true)])], { attributes: { to: DataType.FLOAT } }), bb.constFloat(1)])])])])], { attributes: [attr.ref('to', 'float_type', 2)] });
  const factor = toFloatType(b.op('Mul', [b.constRef('scale', 'float'), b.op('Mul', [f, f])]));
  // Which path: every query in one chunk n (then sections are contiguous key ranges), or not.
  const chunkOf = (x: Value) => b.op('Div', [x, L]);
  const lastPos = b.op('Sub', [T, b.constInts([1], true)]);
  const oneChunk = b.op('Equal', [chunkOf(P), chunkOf(lastPos)]);

  const sliced = new GraphBuilder(model, new Graph('one_chunk'), 'dca', b.names);
  {
    const n = chunkOf(P);
    const succStart = sliced.op('Max', [sliced.op('Mul', [sliced.op('Sub', [n, sliced.constInts([1], true)]), L]), sliced.constInts([0], true)]);
    const intraStart = sliced.op('Mul', [n, L]);
    const u = (x: Value) => sliced.op('Unsqueeze', [x, sliced.constInts([0])]);
    const keys = (from: Value, to: Value) => sliced.op('Slice', [kT, from, to, sliced.constInts([3])]);
    const zero = sliced.constInts([0]);
    const part = (qx: Value, from: Value, to: Value) => sliced.op('MatMul', [sliced.op('Reshape', [qx, groupShape]), keys(from, to)]);
    const inter = sliced.op('Add', [part(qInter, zero, u(succStart)), interBias(sliced, n)]);
    const all = sliced.op('Concat', [inter, part(qSucc, u(succStart), u(intraStart)), part(qIntra, u(intraStart), u(T))], { attributes: { axis: -1 } });
    sliced.graph.outputs.push(all);
  }
  const general = new GraphBuilder(model, new Graph('spanning_chunks'), 'dca', b.names);
  {
    // dn = chunk(query) − chunk(key): 0 intra, 1 successive, ≥ 2 inter.
    const keyIdx = general.op('Range', [general.constInts([0], true), T, general.constInts([1], true)]);
    const dn = general.op('Sub', [general.op('Unsqueeze', [chunkOf(pos), general.constInts([1])]), general.op('Unsqueeze', [general.op('Div', [keyIdx, L]), general.constInts([0])])]);
    const sIntra = general.op('MatMul', [general.op('Reshape', [qIntra, groupShape]), kT]);
    const sSucc = general.op('MatMul', [general.op('Reshape', [qSucc, groupShape]), kT]);
    // Per-query inter bias [G·S, 1] (queries grouped by KV head, like the scores).
    const perQuery = general.op('Unsqueeze', [interBias(general, chunkOf(pos)), general.constInts([1])]);
    const groups = general.op('Concat', [general.op('Div', [h, hkv]), general.constInts([1], true)].map((x) => general.op('Unsqueeze', [x, general.constInts([0])])), { attributes: { axis: 0 } });
    const sInter = general.op('Add', [general.op('MatMul', [general.op('Reshape', [qInter, groupShape]), kT]), general.op('Tile', [perQuery, groups])]);
    // Scores are [B,Hkv,G·S,T]: tile dn over the G groups of queries.
    const dnGrouped = general.op('Tile', [dn, groups]);
    const pick = general.op('Where', [
      general.op('Equal', [dnGrouped, general.constInts([0], true)]),
      sIntra,
      general.op('Where', [general.op('Equal', [dnGrouped, general.constInts([1], true)]), sSucc, sInter]),
    ]);
    general.graph.outputs.push(pick);
  }
  const raw = b.op('If', [oneChunk], { attributes: [attr.graph('then_branch', sliced.graph), attr.graph('else_branch', general.graph)] });
  sliced.graph.owner = raw.producer;
  general.graph.owner = raw.producer;

  const scaled = b.op('Reshape', [b.op('Mul', [raw, factor]), byHead]); // [B,H,S,T]

  // Mask: causal (key index > query position) and padding (attention_mask == 0).
  const keyIdx = b.op('Range', [b.constInts([0], true), T, b.constInts([1], true)]);
  const future = b.op('Greater', [b.op('Unsqueeze', [keyIdx, axis0]), b.op('Unsqueeze', [pos, i64(1)])]); // [S,T]
  const padding = b.op('Equal', [b.op('Unsqueeze', [mask!, i64(1)]), b.constInts([0], true)]); // [B,1,T]
  const blocked = b.op('Unsqueeze', [b.op('Or', [b.op('Unsqueeze', [future, axis0]), padding]), i64(1)]); // [B,1,S,T]
  // −65504 (the float16 minimum) is far below any score in both float32 and float16, and never −∞: a fully
  // masked (padding) row softmaxes to uniform instead of NaN.
  const masked = b.op('Where', [blocked, toFloatType(b.constFloat(-65504)), scaled]);
  const probs = b.op('Softmax', [masked], { attributes: { axis: -1 }, outputs: ['probs'] })[0]!;

  // P·V with grouped queries, then merge heads back to [B, S, H·Dh].
  const pv = b.op('MatMul', [b.op('Reshape', [probs, b.op('Concat', [unsq(B), unsq(hkv), i64(-1), unsq(T)], { attributes: { axis: 0 } })]), presentValue]);
  const heads = b.op('Transpose', [b.op('Reshape', [pv, b.op('Concat', [unsq(B), unsq(h), unsq(S), unsq(Dh)], { attributes: { axis: 0 } })])], { attributes: { perm: [0, 2, 1, 3] } });
  const out = b.op('Reshape', [heads, b.op('Concat', [unsq(B), unsq(S), i64(-1)], { attributes: { axis: 0 } })], { outputs: ['output'] })[0]!;
  body.outputs.push(out, presentKey, presentValue, probs);
  return fn;
}
