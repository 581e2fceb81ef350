/**
 * ONNX decoders of the test families (`families.ts`), built with `GraphBuilder`, in the two export forms attnpatch
 * meets most:
 * - `optimum`: what Optimum / torch.onnx write for eager attention — model-level additive causal mask from
 *   attention_mask, model-level cos/sin from inv_freq·position_ids, per layer MatMul [+ bias Add] → Reshape →
 *   [q/k RMSNorm (Qwen3, decomposed, before the transpose as in HF's Qwen3Attention)] → Transpose → rotate_half rope →
 *   Concat(past) → repeat_kv → Div(√Dh) → Add(mask) → Softmax → MatMul(v), decomposed RMSNorms everywhere;
 * - `genai`: what the onnxruntime-genai builder writes — SimplifiedLayerNormalization, separate q/k/v MatMuls
 *   [+ bias], [q/k SimplifiedLayerNormalization per head], com.microsoft GroupQueryAttention with do_rotary=1 and
 *   constant cos/sin caches, seqlens_k / total_sequence_length from attention_mask.
 * Inputs/outputs are transformers.js's: input_ids, attention_mask, [position_ids], past_key_values.N.key/value →
 * logits, present.N.key/value ([B, Hkv, T, Dh]).
 */
import { GraphBuilder } from '../../src/graph/build/builder.js';
import { DataType } from '../../src/graph/ir/dtype.js';
import { Graph } from '../../src/graph/ir/graph.js';
import { Model } from '../../src/graph/ir/model.js';
import { tensorType } from '../../src/graph/ir/types.js';
import type { Value } from '../../src/graph/ir/value.js';
import { viewBytes } from '../../src/graph/tensor/tensor.js';
import { invFreq, type FamilySpec, type FamilyWeights, type LayerWeights } from './families.js';

export type ExportForm = 'optimum' | 'genai';

const BIG = 2 ** 62;
const F32_MIN = -3.4028234663852886e38;

/** Shared start: the model, its builder, and the inputs every form has. */
function start(s: FamilySpec, opsets: Record<string, number>) {
  const graph = new Graph('family');
  const model = new Model(graph, { opsetImports: opsets, irVersion: 8 });
  const b = new GraphBuilder(model, graph, 'family');
  const ids = graph.addInput('input_ids', tensorType(DataType.INT64, ['batch_size', 'sequence_length']));
  const mask = graph.addInput('attention_mask', tensorType(DataType.INT64, ['batch_size', 'past_sequence_length + sequence_length']));
  return { graph, model, b, ids, mask };
}

function pastInputs(graph: Graph, s: FamilySpec, l: number): [Value, Value] {
  const t = tensorType(DataType.FLOAT, ['batch_size', s.kvHeads, 'past_sequence_length', s.headDim]);
  return [graph.addInput(`past_key_values.${l}.key`, t), graph.addInput(`past_key_values.${l}.value`, t)];
}

/** h + MLP(RMSNorm(h)) with SwiGLU; `norm` is the form's RMSNorm. */
function mlp(b: GraphBuilder, h: Value, l: LayerWeights, s: FamilySpec, norm: (x: Value, w: Float32Array) => Value): Value {
  const x = norm(h, l.postNorm);
  const gate = b.op('MatMul', [x, b.floats('gate', [s.hidden, s.intermediate], l.gate)]);
  const up = b.op('MatMul', [x, b.floats('up', [s.hidden, s.intermediate], l.up)]);
  const act = b.op('Mul', [b.op('Mul', [gate, b.op('Sigmoid', [gate])]), up]);
  return b.op('Add', [h, b.op('MatMul', [act, b.floats('down', [s.intermediate, s.hidden], l.down)])]);
}

/** x·W (+ bias). */
function project(b: GraphBuilder, x: Value, w: Float32Array, inDim: number, outDim: number, bias: Float32Array | undefined, name: string): Value {
  const y = b.op('MatMul', [x, b.floats(`${name}.weight`, [inDim, outDim], w)]);
  return bias ? b.op('Add', [y, b.floats(`${name}.bias`, [outDim], bias)]) : y;
}

function finish(b: GraphBuilder, graph: Graph, h: Value, w: FamilyWeights, s: FamilySpec, norm: (x: Value, w: Float32Array) => Value, presents: Value[]): void {
  const logits = b.op('MatMul', [norm(h, w.norm), b.floats('lm_head', [s.hidden, s.vocab], w.lmHead)], { outputs: ['logits'] })[0]!;
  graph.outputs.push(logits, ...presents);
}

/** The Optimum (unfused, eager) form. */
export function buildOptimum(s: FamilySpec, w: FamilyWeights): Model {
  const { graph, model, b, ids, mask } = start(s, { '': 17 });
  const pos = graph.addInput('position_ids', tensorType(DataType.INT64, ['batch_size', 'sequence_length']));
  const { hidden: D, heads: H, kvHeads: Hkv, headDim: Dh } = s;
  const i64 = (name: string, v: number[]) => b.ints(name, v);
  const scalar64 = (name: string, v: number) => b.ints(name, [v], true);
  const f32 = (name: string, v: number) => b.floats(name, [], [v]);
  const norm = (x: Value, weight: Float32Array) => {
    const mean = b.op('ReduceMean', [b.op('Mul', [x, x])], { attributes: { axes: [-1], keepdims: 1 } });
    const r = b.op('Reciprocal', [b.op('Sqrt', [b.op('Add', [mean, f32('eps', s.eps)])])]);
    return b.op('Mul', [b.op('Mul', [x, r]), b.floats('norm.weight', [weight.length], weight)]);
  };

  // Model level: additive causal + padding mask [B, 1, S, T] and cos/sin [B, S, Dh].
  const S = b.op('Gather', [b.op('Shape', [ids]), scalar64('one', 1)], { attributes: { axis: 0 } });
  const T = b.op('Gather', [b.op('Shape', [mask]), scalar64('one', 1)], { attributes: { axis: 0 } });
  const qPos = b.op('Range', [b.op('Sub', [T, S]), T, scalar64('step', 1)]);
  const kPos = b.op('Range', [scalar64('zero', 0), T, scalar64('step', 1)]);
  const causal = b.op('LessOrEqual', [b.op('Unsqueeze', [kPos, i64('axes', [0])]), b.op('Unsqueeze', [qPos, i64('axes', [1])])]);
  const padding = b.op('Cast', [b.op('Unsqueeze', [mask, i64('axes', [1, 2])])], { attributes: { to: DataType.BOOL } });
  const bias = b.op('Where', [b.op('And', [causal, padding]), f32('zero', 0), f32('min', F32_MIN)]);
  const p = b.op('Cast', [b.op('Unsqueeze', [pos, i64('axes', [1])])], { attributes: { to: DataType.FLOAT } });
  const freqs = b.op('Transpose', [b.op('MatMul', [b.floats('inv_freq', [1, Dh / 2, 1], invFreq(s)), p])], { attributes: { perm: [0, 2, 1] } });
  const emb = b.op('Concat', [freqs, freqs], { attributes: { axis: -1 } });
  const [cos, sin] = [b.op('Cos', [emb]), b.op('Sin', [emb])];

  const slice = (x: Value, from: number, to: number) => b.op('Slice', [x, i64('start', [from]), i64('end', [to]), i64('axis', [3])]);
  const rope = (x: Value) => {
    const rotated = b.op('Concat', [b.op('Neg', [slice(x, Dh / 2, BIG)]), slice(x, 0, Dh / 2)], { attributes: { axis: -1 } });
    return b.op('Add', [b.op('Mul', [x, b.op('Unsqueeze', [cos, i64('axes', [1])])]), b.op('Mul', [rotated, b.op('Unsqueeze', [sin, i64('axes', [1])])])]);
  };
  /** [B,S,N·Dh] → [B,N,S,Dh], with Qwen3's per-head norm between the reshape and the transpose. */
  const heads = (x: Value, qkNorm?: Float32Array) => {
    const split = b.op('Reshape', [x, i64('heads_shape', [0, 0, -1, Dh])]);
    return b.op('Transpose', [qkNorm ? norm(split, qkNorm) : split], { attributes: { perm: [0, 2, 1, 3] } });
  };
  const repeatKv = (x: Value) => b.op('Reshape', [b.op('Expand', [b.op('Unsqueeze', [x, i64('axes', [2])]), i64('expand', [1, Hkv, H / Hkv, 1, Dh])]), i64('repeat_shape', [0, H, -1, Dh])]);

  let h = b.op('Gather', [b.floats('embed_tokens', [s.vocab, D], w.embed), ids], { attributes: { axis: 0 } });
  const presents: Value[] = [];
  w.layers.forEach((l, n) => {
    const [pastK, pastV] = pastInputs(graph, s, n);
    const x = norm(h, l.inputNorm);
    const q = rope(heads(project(b, x, l.q, D, H * Dh, l.qBias, `l${n}.q_proj`), l.qNorm));
    const k = rope(heads(project(b, x, l.k, D, Hkv * Dh, l.kBias, `l${n}.k_proj`), l.kNorm));
    const v = heads(project(b, x, l.v, D, Hkv * Dh, l.vBias, `l${n}.v_proj`));
    const kAll = b.op('Concat', [pastK, k], { attributes: { axis: -2 }, outputs: [`present.${n}.key`] })[0]!;
    const vAll = b.op('Concat', [pastV, v], { attributes: { axis: -2 }, outputs: [`present.${n}.value`] })[0]!;
    presents.push(kAll, vAll);
    const kT = b.op('Transpose', [repeatKv(kAll)], { attributes: { perm: [0, 1, 3, 2] } });
    const scores = b.op('Add', [b.op('Div', [b.op('MatMul', [q, kT]), f32('sqrt_dh', Math.sqrt(Dh))]), bias]);
    const pv = b.op('MatMul', [b.op('Softmax', [scores], { attributes: { axis: -1 } }), repeatKv(vAll)]);
    const merged = b.op('Reshape', [b.op('Transpose', [pv], { attributes: { perm: [0, 2, 1, 3] } }), i64('merged_shape', [0, 0, H * Dh])]);
    h = mlp(b, b.op('Add', [h, b.op('MatMul', [merged, b.floats(`l${n}.o_proj.weight`, [H * Dh, D], l.o)])]), l, s, norm);
  });
  finish(b, graph, h, w, s, norm, presents);
  return model;
}

/** The onnxruntime-genai (fused GroupQueryAttention, built-in rotary) form. */
export function buildGenai(s: FamilySpec, w: FamilyWeights, maxPositions = 256): Model {
  const { graph, model, b, ids, mask } = start(s, { '': 17, 'com.microsoft': 1 });
  const { hidden: D, heads: H, kvHeads: Hkv, headDim: Dh } = s;
  const norm = (x: Value, weight: Float32Array) =>
    b.op('SimplifiedLayerNormalization', [x, b.floats('norm.weight', [weight.length], weight)], { attributes: { axis: -1, epsilon: s.eps } });
  const seqlensK = b.op('Cast', [b.op('Sub', [b.op('ReduceSum', [mask, b.ints('axes', [1])], { attributes: { keepdims: 0 } }), b.ints('one', [1], true)])], { attributes: { to: DataType.INT32 } });
  const total = b.op('Cast', [b.op('Gather', [b.op('Shape', [mask]), b.ints('one', [1], true)], { attributes: { axis: 0 } })], { attributes: { to: DataType.INT32 } });
  const inv = invFreq(s);
  const table = (fn: (x: number) => number) => Float32Array.from({ length: maxPositions * (Dh / 2) }, (_, i) => fn(Math.fround(Math.floor(i / (Dh / 2)) * inv[i % (Dh / 2)]!)));
  const cosCache = b.initializer('cos_cache', DataType.FLOAT, [maxPositions, Dh / 2], viewBytes(table(Math.cos)));
  const sinCache = b.initializer('sin_cache', DataType.FLOAT, [maxPositions, Dh / 2], viewBytes(table(Math.sin)));
  /** Qwen3: RMSNorm over each head of [B, S, N·Dh]. */
  const headNorm = (x: Value, weight: Float32Array | undefined, n: number) =>
    weight ? b.op('Reshape', [norm(b.op('Reshape', [x, b.ints('heads_shape', [0, 0, n, Dh])]), weight), b.ints('flat_shape', [0, 0, n * Dh])]) : x;

  let h = b.op('Gather', [b.floats('embed_tokens', [s.vocab, D], w.embed), ids], { attributes: { axis: 0 } });
  const presents: Value[] = [];
  w.layers.forEach((l, n) => {
    const [pastK, pastV] = pastInputs(graph, s, n);
    const x = norm(h, l.inputNorm);
    const q = headNorm(project(b, x, l.q, D, H * Dh, l.qBias, `l${n}.q_proj`), l.qNorm, H);
    const k = headNorm(project(b, x, l.k, D, Hkv * Dh, l.kBias, `l${n}.k_proj`), l.kNorm, Hkv);
    const v = project(b, x, l.v, D, Hkv * Dh, l.vBias, `l${n}.v_proj`);
    const [out, presentK, presentV] = b.op('GroupQueryAttention', [q, k, v, pastK, pastV, seqlensK, total, cosCache, sinCache], {
      domain: 'com.microsoft',
      outputs: [b.names.fresh(`l${n}.attn_out`), `present.${n}.key`, `present.${n}.value`],
      attributes: { num_heads: H, kv_num_heads: Hkv, do_rotary: 1 },
    }) as [Value, Value, Value];
    presents.push(presentK, presentV);
    h = mlp(b, b.op('Add', [h, b.op('MatMul', [out, b.floats(`l${n}.o_proj.weight`, [H * Dh, D], l.o)])]), l, s, norm);
  });
  finish(b, graph, h, w, s, norm, presents);
  return model;
}

/** Builds one form. */
export function buildFamily(form: ExportForm, s: FamilySpec, w: FamilyWeights): Model {
  return form === 'optimum' ? buildOptimum(s, w) : buildGenai(s, w);
}
