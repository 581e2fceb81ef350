/**
 * The unfused lift rules (optimum-unfused, gpt2-unfused) on the shared fixtures, pinned to the numbers of each
 * export, and on test-only builders reproducing the node chains the fixtures lack: the torch SDPA decomposition,
 * Qwen2 q/k/v biases, interleaved and partial rope, table cos/sin, and a K path with no projection.
 */
import { describe, expect, it } from 'vitest';
import { shared } from '../../../../test/support/paths.js';
import { attr, type Attribute } from '../../../graph/ir/attribute.js';
import { DataType } from '../../../graph/ir/dtype.js';
import { Graph } from '../../../graph/ir/graph.js';
import { Model } from '../../../graph/ir/model.js';
import { Node } from '../../../graph/ir/node.js';
import type { Value } from '../../../graph/ir/value.js';
import { loadModelFile } from '../../../graph/io/fs.js';
import { MemoryTensor, viewBytes } from '../../../graph/tensor/tensor.js';
import type { AttentionBlock, Projection } from '../block.js';
import { liftAttention } from '../lift.js';
import { gpt2UnfusedRule } from './gpt2-unfused.js';
import { optimumUnfusedRule } from './optimum-unfused.js';

const RULES = [optimumUnfusedRule, gpt2UnfusedRule];
const load = (...p: string[]) => loadModelFile(shared(...p));

function weight(p: Projection | null): { name: string | undefined; dims: readonly number[] | undefined; bias: string | null } {
  return { name: p?.weight?.name, dims: p?.weight?.initializer?.dims, bias: p?.bias?.name ?? null };
}
const names = (nodes: Iterable<Node>) => [...nodes].map((n) => n.name);

describe('optimum-unfused on tinystories-656k-optimum (eager Llama, 2 layers, GQA 8/4)', () => {
  const model = load('tinystories-656k-optimum');
  const report = liftAttention(model);

  it('lifts both layers and nothing is unsupported', () => {
    expect(report.unsupported).toEqual([]);
    expect(report.blocks.map((b) => b.layer)).toEqual([0, 1]);
  });

  it('reads heads, head size, scale, cache and rope (layer 0)', () => {
    const b = report.blocks[0]!;
    expect(b).toMatchObject({ form: 'unfused', numHeads: 8, numKvHeads: 4, headDim: 16, scale: 0.25, qkvPacking: 'separate', kvLayout: 'bnsh' });
    expect(b.anchor.name).toBe('/model/layers.0/self_attn/Softmax');
    expect([b.past?.key.name, b.past?.value.name]).toEqual(['past_key_values.0.key', 'past_key_values.0.value']);
    expect([b.present?.key.name, b.present?.value.name]).toEqual(['present.0.key', 'present.0.value']);
    expect(b.rope).toMatchObject({ interleaved: false, rotaryDim: 16, source: { kind: 'inv-freq', attentionScaling: 1 } });
    expect(b.rope?.theta).toBeCloseTo(10000, 0);
    const src = b.rope!.source;
    expect(src.kind === 'inv-freq' && [src.positionIds?.name, src.invFreq.initializer ?? src.invFreq.producer?.opType]).toEqual(['position_ids', 'Constant']);
    expect(b.hidden?.name).toBe('/model/layers.0/input_layernorm/Mul_1_output_0');
    expect(b.output.name).toBe('/model/layers.0/self_attn/Reshape_7_output_0');
  });

  it('reads the projections (no biases in Llama)', () => {
    const b = report.blocks[0]!;
    expect(weight(b.q)).toEqual({ name: 'onnx::MatMul_809', dims: [128, 128], bias: null });
    expect(weight(b.k)).toEqual({ name: 'onnx::MatMul_810', dims: [128, 64], bias: null });
    expect(weight(b.v)).toEqual({ name: 'onnx::MatMul_811', dims: [128, 64], bias: null });
    expect(weight(b.o)).toEqual({ name: 'onnx::MatMul_831', dims: [128, 128], bias: null });
    expect(b.q?.node.name).toBe('/model/layers.0/self_attn/q_proj/MatMul');
    expect(b.q?.output).toBe(b.q?.node.output(0));
    expect(weight(report.blocks[1]!.q).name).toBe('onnx::MatMul_835');
  });

  it('owns the per-layer nodes, never the projections or the shared rope / mask subgraphs', () => {
    const b = report.blocks[0]!;
    const own = names(b.nodes);
    expect(own).toEqual(expect.arrayContaining(['/model/layers.0/self_attn/Softmax', '/model/layers.0/self_attn/Concat_5', '/model/layers.0/self_attn/Expand', '/model/layers.0/self_attn/Reshape_7', '/model/layers.0/self_attn/Slice_4']));
    for (const p of [b.q, b.k, b.v, b.o]) expect(b.nodes.has(p!.node)).toBe(false);
    expect(own.filter((n) => n.startsWith('/model/rotary_emb') || /^\/model\/[A-Z]/.test(n))).toEqual([]);
    // The cos/sin Unsqueeze is shared with layer 1 (torch CSE), so it is not layer 0's.
    expect(own).not.toContain('/model/layers.0/self_attn/Unsqueeze_6');
    expect(b.rope!.nodes.every((n) => b.nodes.has(n))).toBe(true);
    expect(names(b.rope!.nodes)).toEqual(expect.arrayContaining(['/model/layers.0/self_attn/Add', '/model/layers.0/self_attn/Add_1', '/model/layers.0/self_attn/Neg_1']));
    expect(b.heads?.k.name).toBe('/model/layers.0/self_attn/Add_1_output_0');
  });
});

describe('optimum-unfused on bench-llama-random (4 layers, GQA 4/2, Dh 64)', () => {
  const report = liftAttention(load('bench-llama-random'));

  it('lifts all four layers with the pinned numbers', () => {
    expect(report.unsupported).toEqual([]);
    expect(report.blocks.map((b) => [b.layer, b.numHeads, b.numKvHeads, b.headDim, b.scale, b.kvLayout, b.form])).toEqual(
      [0, 1, 2, 3].map((l) => [l, 4, 2, 64, 0.125, 'bnsh', 'unfused']),
    );
    const b = report.blocks[0]!;
    expect(weight(b.q)).toEqual({ name: 'onnx::MatMul_1354', dims: [256, 256], bias: null });
    expect(weight(b.k)).toEqual({ name: 'onnx::MatMul_1355', dims: [256, 128], bias: null });
    expect(weight(b.v)).toEqual({ name: 'onnx::MatMul_1356', dims: [256, 128], bias: null });
    expect(weight(b.o)).toEqual({ name: 'onnx::MatMul_1376', dims: [256, 256], bias: null });
    expect(b.rope).toMatchObject({ interleaved: false, rotaryDim: 64, source: { kind: 'inv-freq', attentionScaling: 1 } });
    expect(b.rope?.theta).toBeCloseTo(10000, 0);
    expect(report.blocks[3]!.present?.value.name).toBe('present.3.value');
  });
});

describe('gpt2-unfused on ORT test data', () => {
  it('gpt2_past: 12 layers, packed Gemm c_attn, stacked past_i, scale 1/√2 as ORT runs it', () => {
    const report = liftAttention(load('ort-testdata-gpt2-unfused', 'gpt2_past.onnx'));
    expect(report.unsupported).toEqual([]);
    expect(report.blocks.map((b) => b.layer)).toEqual([...Array(12).keys()]);
    const b = report.blocks[0]!;
    // NOTE: the file defines the Div's constant name twice; ONNX Runtime (and our loader) use the last
    // definition for every use, which is √2, so the scale is 1/√Dh as in GPT-2.
    expect(b).toMatchObject({ form: 'unfused', numHeads: 2, numKvHeads: 2, headDim: 2, qkvPacking: 'packed', kvLayout: 'stacked', rope: null });
    expect(b.scale).toBeCloseTo(Math.SQRT1_2, 6);
    expect(b.past?.key.name).toBe('past_0');
    expect(b.past?.key).toBe(b.past?.value);
    expect(b.present?.key.name).toBe('present_0');
    expect(b.present?.key).toBe(b.present?.value);
    expect(b.q?.node.opType).toBe('Gemm');
    expect(b.k?.node).toBe(b.q?.node);
    expect(weight(b.q)).toEqual({ name: 'h.0.attn.c_attn.weight_resize', dims: [4, 12], bias: 'h.0.attn.c_attn.bias_resize' });
    expect([b.q?.columns, b.k?.columns, b.v?.columns]).toEqual([{ start: 0, end: 4 }, { start: 4, end: 8 }, { start: 8, end: 12 }]);
    expect(weight(b.o)).toEqual({ name: 'h.0.attn.c_proj.weight_resize', dims: [4, 4], bias: 'h.0.attn.c_proj.bias_resize' });
    expect(b.notes).toContain('mask=where');
    expect(b.heads).toBeUndefined(); // new K stays transposed ([B,H,Dh,S]) in this export
    expect(b.nodes.has(b.q!.node)).toBe(false);
    expect(report.blocks[11]!.past?.key.name).toBe('past_11');
  });

  it('gpt2_megatron: 1 layer, MatMul + bias Add, Split past, q and k each divided by √√Dh', () => {
    const report = liftAttention(load('ort-testdata-gpt2-unfused', 'gpt2_megatron.onnx'));
    expect(report.unsupported).toEqual([]);
    const b = report.blocks[0]!;
    expect(b).toMatchObject({ layer: 0, form: 'unfused', numHeads: 2, numKvHeads: 2, headDim: 4, scale: 0.5, qkvPacking: 'packed', kvLayout: 'stacked' });
    expect(weight(b.q)).toEqual({ name: '209', dims: [8, 24], bias: 'transformer.layers.0.attention.query_key_value.bias' });
    expect(b.q?.output?.producer?.opType).toBe('Add');
    expect(b.v?.columns).toEqual({ start: 16, end: 24 });
    expect(weight(b.o)).toEqual({ name: '220', dims: [8, 8], bias: 'transformer.layers.0.attention.dense.bias' });
    expect(b.notes).toContain('mask=multiplicative');
    expect(b.heads).toBeDefined();
  });

  it('the two rules split Softmax anchors between them', () => {
    const gpt2 = load('ort-testdata-gpt2-unfused', 'gpt2_megatron.onnx').graph.nodes.find((n) => n.opType === 'Softmax')!;
    const llama = load('tinystories-656k-optimum').graph.nodes.find((n) => n.opType === 'Softmax')!;
    expect([optimumUnfusedRule.anchors(gpt2), gpt2UnfusedRule.anchors(gpt2)]).toEqual([false, true]);
    expect([optimumUnfusedRule.anchors(llama), gpt2UnfusedRule.anchors(llama)]).toEqual([true, false]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Test-only builders: one Llama-style attention block, with the exact node chains of the variants.

interface BlockOptions {
  /** torch SDPA decomposition: Mul(q, Sqrt(s)), Mul(kᵀ, √s), Where(IsNaN(p), 0, p); `scale` s. */
  sdpa?: boolean;
  scale?: number;
  /** Qwen2 q/k/v biases. */
  bias?: boolean;
  interleaved?: boolean;
  /** Gather(cos_cached, position_ids) tables instead of inv_freq. */
  table?: boolean;
  /** Partial rotary: rope on the first `rotaryDim` dims only. */
  rotaryDim?: number;
  attentionScaling?: number;
  /** K heads reshaped straight from a graph input (no projection). */
  kFromInput?: boolean;
}

const D = 32;
const H = 4;
const HKV = 2;
const DH = 8;
const BIG = 2 ** 62;

function buildBlock(o: BlockOptions = {}): { model: Model; graph: Graph } {
  const graph = new Graph('block');
  const model = new Model(graph, { opsetImports: { '': 17 } });
  let n = 0;
  const node = (opType: string, inputs: (Value | null)[], attrs: Attribute[] = [], out?: string): Value => {
    const name = `${opType}_${n++}`;
    graph.insert(new Node({ opType, name, inputs, outputs: [out ?? `${name}_out`], attributes: attrs }));
    return graph.nodes[graph.nodes.length - 1]!.output(0);
  };
  const f32 = (name: string, dims: number[], data?: ArrayLike<number>) =>
    graph.addInitializer(name, new MemoryTensor(DataType.FLOAT, dims, viewBytes(Float32Array.from(data ?? new Float32Array(dims.reduce((a, b) => a * b, 1))))));
  let c = 0;
  const i64 = (data: number[], scalar = false) =>
    graph.addInitializer(`c${c++}`, new MemoryTensor(DataType.INT64, scalar ? [] : [data.length], viewBytes(BigInt64Array.from(data, BigInt))));
  const scalarF = (x: number) => f32(`s${c++}`, [], [x]);

  const hidden = graph.addInput('hidden');
  const pos = graph.addInput('position_ids');
  const mask = graph.addInput('attention_mask_4d');
  const pastK = graph.addInput('past_key_values.0.key');
  const pastV = graph.addInput('past_key_values.0.value');

  // Model-level cos/sin.
  const rd = o.rotaryDim ?? DH;
  const inv = Array.from({ length: rd / 2 }, (_, i) => 10000 ** ((-2 * i) / rd));
  let cos: Value;
  let sin: Value;
  if (o.table) {
    const col = (j: number) => inv[o.interleaved ? j >> 1 : j % (rd / 2)]!;
    const rows = (fn: (x: number) => number) => Array.from({ length: 16 * rd }, (_, k) => fn(Math.floor(k / rd) * col(k % rd)));
    cos = node('Gather', [f32('cos_cached', [16, rd], rows(Math.cos)), pos]);
    sin = node('Gather', [f32('sin_cached', [16, rd], rows(Math.sin)), pos]);
  } else {
    const p = node('Cast', [node('Unsqueeze', [pos, i64([1])])], [attr.int('to', 1)]);
    const freqs = node('Transpose', [node('MatMul', [f32('inv_freq', [1, rd / 2, 1], inv), p])], [attr.ints('perm', [0, 2, 1])]);
    const emb = o.interleaved
      ? node('Reshape', [node('Expand', [node('Unsqueeze', [freqs, i64([-1])]), i64([1, 1, 1, 2])]), i64([0, 0, rd])])
      : node('Concat', [freqs, freqs], [attr.int('axis', -1)]);
    const scaled = (x: Value) => (o.attentionScaling === undefined ? x : node('Mul', [x, scalarF(o.attentionScaling)]));
    cos = node('Cast', [scaled(node('Cos', [emb]))], [attr.int('to', 1)]);
    sin = node('Cast', [scaled(node('Sin', [emb]))], [attr.int('to', 1)]);
  }

  const project = (p: string, width: number): Value => {
    let y = node('MatMul', [hidden, f32(`${p}_proj.weight`, [D, width])], [], `${p}_proj_out`);
    if (o.bias) y = node('Add', [y, f32(`${p}_proj.bias`, [width])]);
    return y;
  };
  const heads = (x: Value) => node('Transpose', [node('Reshape', [x, i64([0, 0, -1, DH])])], [attr.ints('perm', [0, 2, 1, 3])]);
  const slice = (x: Value, start: number, end: number, step = 1) => node('Slice', [x, i64([start]), i64([end]), i64([3]), i64([step])]);
  const rope = (x: Value): Value => {
    const cosU = node('Unsqueeze', [cos, i64([1])]);
    const sinU = node('Unsqueeze', [sin, i64([1])]);
    const apply = (xr: Value) => {
      const rot = o.interleaved
        ? node('Reshape', [
            node('Concat', [node('Unsqueeze', [node('Neg', [slice(xr, 1, BIG, 2)]), i64([-1])]), node('Unsqueeze', [slice(xr, 0, BIG, 2), i64([-1])])], [attr.int('axis', -1)]),
            i64([0, 0, 0, rd]),
          ])
        : node('Concat', [node('Neg', [slice(xr, rd / 2, BIG)]), slice(xr, 0, rd / 2)], [attr.int('axis', -1)]);
      return node('Add', [node('Mul', [xr, cosU]), node('Mul', [rot, sinU])]);
    };
    if (rd === DH) return apply(x);
    return node('Concat', [apply(slice(x, 0, rd)), slice(x, rd, BIG)], [attr.int('axis', -1)]);
  };
  const repeatKv = (x: Value) => node('Reshape', [node('Expand', [node('Unsqueeze', [x, i64([2])]), i64([1, HKV, H / HKV, 1, DH])]), i64([0, H, -1, DH])]);

  const q = rope(heads(project('q', H * DH)));
  const kHeads = o.kFromInput ? heads(graph.addInput('k_in')) : heads(project('k', HKV * DH));
  const kCat = node('Concat', [pastK, rope(kHeads)], [attr.int('axis', -2)], 'present.0.key');
  const vCat = node('Concat', [pastV, heads(project('v', HKV * DH))], [attr.int('axis', -2)], 'present.0.value');
  const kT = node('Transpose', [repeatKv(kCat)], [attr.ints('perm', [0, 1, 3, 2])]);
  let probs: Value;
  if (o.sdpa) {
    const s = o.scale ?? 1 / Math.sqrt(DH);
    const scores = node('MatMul', [node('Mul', [q, node('Sqrt', [scalarF(s)])]), node('Mul', [kT, scalarF(Math.sqrt(s))])]);
    const p = node('Softmax', [node('Add', [scores, mask])], [attr.int('axis', -1)]);
    probs = node('Where', [node('IsNaN', [p]), scalarF(0), p]);
  } else {
    const scores = node('Div', [node('MatMul', [q, kT]), scalarF(Math.sqrt(DH))]);
    probs = node('Cast', [node('Softmax', [node('Add', [scores, mask])], [attr.int('axis', -1)])], [attr.int('to', 1)]);
  }
  const pv = node('MatMul', [probs, repeatKv(vCat)]);
  const merged = node('Reshape', [node('Transpose', [pv], [attr.ints('perm', [0, 2, 1, 3])]), i64([0, 0, H * DH])], [], 'attn_output');
  const out = node('MatMul', [merged, f32('o_proj.weight', [H * DH, D])], [], 'o_out');
  graph.outputs.push(out, kCat, vCat);
  return { model, graph };
}

function liftOne(o: BlockOptions): AttentionBlock {
  const r = liftAttention(buildBlock(o).model, RULES);
  expect(r.unsupported).toEqual([]);
  expect(r.blocks).toHaveLength(1);
  return r.blocks[0]!;
}

describe('optimum-unfused on built blocks', () => {
  it('eager baseline: GQA 4/2, Dh 8, scale 1/√8, half-split inv_freq rope', () => {
    const b = liftOne({});
    expect(b).toMatchObject({ layer: 0, form: 'unfused', numHeads: H, numKvHeads: HKV, headDim: DH, kvLayout: 'bnsh', qkvPacking: 'separate' });
    expect(b.scale).toBeCloseTo(1 / Math.sqrt(DH), 6);
    expect(b.rope).toMatchObject({ interleaved: false, rotaryDim: DH, source: { kind: 'inv-freq', attentionScaling: 1 } });
    expect(b.rope?.theta).toBeCloseTo(10000, 0);
    expect(b.output.name).toBe('attn_output');
    expect(b.o?.weight?.name).toBe('o_proj.weight');
  });

  it('torch SDPA decomposition: form sdpa, scale = √s · √s, Where(IsNaN) owned', () => {
    const b = liftOne({ sdpa: true, scale: 0.2 });
    expect(b.form).toBe('sdpa');
    expect(b.scale).toBeCloseTo(0.2, 6);
    expect([...b.nodes].map((n) => n.opType)).toEqual(expect.arrayContaining(['IsNaN', 'Where', 'Sqrt', 'Softmax']));
    expect(b).toMatchObject({ numHeads: H, numKvHeads: HKV, headDim: DH });
  });

  it('Qwen2 biases land in Projection.bias, and the bias Adds stay with the projections', () => {
    const b = liftOne({ bias: true });
    expect([b.q?.bias?.name, b.k?.bias?.name, b.v?.bias?.name]).toEqual(['q_proj.bias', 'k_proj.bias', 'v_proj.bias']);
    expect(b.q?.weight?.name).toBe('q_proj.weight');
    expect(b.q?.output?.producer?.opType).toBe('Add');
    expect(b.nodes.has(b.q!.output!.producer!)).toBe(false);
    expect(b.form).toBe('unfused');
  });

  it('interleaved (rotate_every_two) rope, from inv_freq and from tables', () => {
    expect(liftOne({ interleaved: true }).rope).toMatchObject({ interleaved: true, rotaryDim: DH, source: { kind: 'inv-freq' } });
    const t = liftOne({ interleaved: true, table: true }).rope!;
    expect(t).toMatchObject({ interleaved: true, rotaryDim: DH, source: { kind: 'table' } });
    expect(t.theta).toBeCloseTo(10000, -1);
  });

  it('half-split tables gathered by position_ids, with theta from the angles', () => {
    const r = liftOne({ table: true }).rope!;
    expect(r.source.kind === 'table' && [r.source.cos.name, r.source.sin.name, r.source.positionIds?.name]).toEqual(['cos_cached', 'sin_cached', 'position_ids']);
    expect(r.theta).toBeCloseTo(10000, -1);
  });

  it('partial rotary and attention scaling', () => {
    const b = liftOne({ rotaryDim: 4, attentionScaling: 0.5 });
    expect(b.rope).toMatchObject({ rotaryDim: 4, interleaved: false, source: { kind: 'inv-freq', attentionScaling: 0.5 } });
    expect(b.headDim).toBe(DH);
  });

  it('a Softmax that is not attention (MoE router → TopK) anchors neither rule', () => {
    const graph = new Graph('router');
    const h = graph.addInput('h');
    const w = graph.addInitializer('router.weight', new MemoryTensor(DataType.FLOAT, [D, 4], viewBytes(new Float32Array(D * 4))));
    const mm = new Node({ opType: 'MatMul', name: 'router', inputs: [h, w], outputs: ['logits'] });
    const sm = new Node({ opType: 'Softmax', name: 'probs', inputs: [mm.output(0)], outputs: ['p'], attributes: [attr.int('axis', -1)] });
    const k = graph.addInitializer('k', new MemoryTensor(DataType.INT64, [1], viewBytes(BigInt64Array.from([2n]))));
    graph.insert([mm, sm, new Node({ opType: 'TopK', name: 'topk', inputs: [sm.output(0), k], outputs: ['vals', 'idx'] })]);
    expect([optimumUnfusedRule.anchors(sm), gpt2UnfusedRule.anchors(sm)]).toEqual([false, false]);
    expect(liftAttention(new Model(graph), RULES)).toEqual({ blocks: [], unsupported: [] });
  });

  it('a K path without a projection is unsupported, naming what was expected', () => {
    const r = liftAttention(buildBlock({ kFromInput: true }).model, RULES);
    expect(r.blocks).toEqual([]);
    expect(r.unsupported).toHaveLength(1);
    const f = r.unsupported[0]!;
    expect(f.node).toMatch(/^Softmax_/);
    expect(f.reason).toMatch(/^optimum-unfused: k path \(expected .*MatMul\(hidden, W_k\)\): /);
    expect(f.reason).toMatch(/expected Add or MatMul or Reshape or Gemm or Slice, found graph input 'k_in'$/);
  });
});
