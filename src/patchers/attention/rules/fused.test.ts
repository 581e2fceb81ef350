/** The fused-form lift rules (GQA, MHA + RotaryEmbedding, ORT Attention, ONNX Attention) on every fused fixture. */
import { describe, expect, it } from 'vitest';
import { attr, type Attribute } from '../../../graph/ir/attribute.js';
import { DataType } from '../../../graph/ir/dtype.js';
import { Graph } from '../../../graph/ir/graph.js';
import { Model } from '../../../graph/ir/model.js';
import { Node, type Input } from '../../../graph/ir/node.js';
import { tensorType, type Dim } from '../../../graph/ir/types.js';
import type { Value } from '../../../graph/ir/value.js';
import { loadModelFile } from '../../../graph/io/fs.js';
import { MemoryTensor, viewBytes } from '../../../graph/tensor/tensor.js';
import { shared } from '../../../../test/support/paths.js';
import type { AttentionBlock } from '../block.js';
import { constFloat, constInts, constValue } from '../const.js';
import { liftAttention, type LiftReport } from '../lift.js';

const lift = (...path: string[]): LiftReport => liftAttention(loadModelFile(shared(...path), { allowMissingExternalData: true }));
const heads = (b: AttentionBlock) => [b.numHeads, b.numKvHeads, b.headDim];
const names = (kv: { key: Value; value: Value } | null) => (kv ? [kv.key.name, kv.value.name] : null);

/** Owned nodes are read only by owned nodes (or write the present cache), and never include projections. */
function expectOwnershipSound(b: AttentionBlock): void {
  const present = new Set([b.present?.key, b.present?.value]);
  for (const n of b.nodes) {
    expect(['MatMul', 'MatMulNBits', 'Gemm']).not.toContain(n.opType);
    if (n === b.anchor) continue;
    for (const out of n.outputs) {
      if (!out) continue;
      for (const c of out.consumers()) expect(b.nodes.has(c), `${n.name} → ${c.name}`).toBe(true);
      if (n.graph?.outputs.includes(out)) expect(present.has(out)).toBe(true);
    }
  }
}

describe('genai-gqa: com.microsoft GroupQueryAttention', () => {
  it('tiny-random-llama-fp32-gqa: packed QKV with do_rotary and cos/sin caches', () => {
    const { blocks, unsupported } = lift('tiny-random-llama-fp32-gqa', 'model.onnx');
    expect(unsupported).toEqual([]);
    expect(blocks.map((b) => [b.layer, b.form])).toEqual([[0, 'gqa'], [1, 'gqa']]);
    for (const b of blocks) {
      expect(heads(b)).toEqual([1, 1, 16]);
      expect(b.scale).toBe(0.25);
      expect(b.qkvPacking).toBe('packed');
      expect(b.q?.node).toBe(b.k?.node);
      expect(b.k?.node).toBe(b.v?.node);
      expect([b.q?.columns, b.k?.columns, b.v?.columns]).toEqual([{ start: 0, end: 16 }, { start: 16, end: 32 }, { start: 32, end: 48 }]);
      expect(b.q?.weight?.name).toBe(`model.layers.${b.layer}.attn.qkv_proj.MatMul.weight`);
      expect(b.q?.output).toBe(b.anchor.input(0));
      expect(b.o?.node.name).toBe(`/model/layers.${b.layer}/attn/o_proj/MatMul`);
      expect(b.hidden?.name).toBe(`/model/layers.${b.layer}/input_layernorm/output_0`);
      expect(b.rope).toMatchObject({ interleaved: false, rotaryDim: 16, nodes: [] });
      expect(b.rope?.source).toMatchObject({ kind: 'cache', cos: { name: 'cos_cache' }, sin: { name: 'sin_cache' } });
      expect(b.kvLayout).toBe('bnsh');
      expect(names(b.past)).toEqual([`past_key_values.${b.layer}.key`, `past_key_values.${b.layer}.value`]);
      expect(names(b.present)).toEqual([`present.${b.layer}.key`, `present.${b.layer}.value`]);
      expect([...b.nodes]).toEqual([b.anchor]);
      expect(b.notes).toEqual([]);
    }
  });

  it('qwen3.5-0.8b q4: six full-attention layers at their real indices, MatMulNBits, mrope nodes, q/k norm, gate', () => {
    const { blocks, unsupported } = lift('qwen3.5-0.8b-onnx-community-q4-graph-only', 'decoder_model_merged_q4.onnx');
    // The 18 Gated-DeltaNet layers are If subgraphs: no anchor of any rule, so no entry anywhere.
    expect(unsupported).toEqual([]);
    expect(blocks.map((b) => b.layer)).toEqual([3, 7, 11, 15, 19, 23]);
    for (const b of blocks) {
      expect(b.form).toBe('gqa');
      expect(heads(b)).toEqual([8, 2, 256]);
      expect(b.scale).toBe(0.0625);
      expect(b.qkvPacking).toBe('separate');
      // q_proj computes query and gate interleaved per head (then Split): no column range describes q alone.
      expect(b.q).toBeNull();
      for (const p of [b.k, b.v]) {
        expect(p?.node.opType).toBe('MatMulNBits');
        expect(p?.quant).toMatchObject({ bits: 4, blockSize: 32, k: 1024, n: 512 });
        expect(p?.quant?.zeroPoints).not.toBeNull();
        expect(p?.weight?.initializer?.dims).toEqual([512, 32, 16]);
      }
      expect(b.k?.quant?.scales.name).toBe(`model_layers_${b.layer}_attn_k_proj_MatMul_weight_scales`);
      expect(b.hidden?.name).toBe(`/model/layers.${b.layer}/input_layernorm/output_0`);
      expect(b.o).toBeNull(); // the output goes through the sigmoid gate first
      expect(b.rope).toMatchObject({ interleaved: false, rotaryDim: 64, source: { kind: 'computed' } });
      expect(b.rope?.nodes.map((n) => n.name)).toEqual([`/model/layers.${b.layer}/attn/q_mrope/RotaryEmbedding`, `/model/layers.${b.layer}/attn/k_mrope/RotaryEmbedding`]);
      expect(names(b.past)).toEqual([`past_key_values.${b.layer}.key`, `past_key_values.${b.layer}.value`]);
      expect(names(b.present)).toEqual([`present.${b.layer}.key`, `present.${b.layer}.value`]);
      expect(b.notes).toEqual(['attention-bias', 'qk-norm', 'q-split', 'output-gate']);
      for (const n of b.rope?.nodes ?? []) expect(b.nodes.has(n)).toBe(true);
      expect([...b.nodes].some((n) => n.opType === 'SimplifiedLayerNormalization')).toBe(false);
      expectOwnershipSound(b);
    }
  });

  it('tiny-qwen35-gqa-fp16: separate q/k/v, no rope at all', () => {
    const { blocks, unsupported } = lift('synthetic-genai-fixtures', 'tiny-qwen35-gqa-fp16.decoder.onnx');
    expect(unsupported).toEqual([]);
    expect(blocks.map((b) => b.layer)).toEqual([0, 1]);
    for (const b of blocks) {
      expect(heads(b)).toEqual([4, 2, 16]);
      expect(b.scale).toBe(0.25);
      expect(b.qkvPacking).toBe('separate');
      expect([b.q?.weight?.name, b.k?.weight?.name, b.v?.weight?.name, b.o?.weight?.name]).toEqual(['q', 'k', 'v', 'o'].map((r) => `l${b.layer}.${r}.w`));
      expect(b.rope).toBeNull();
      expect(b.notes).toEqual(['no-rope']);
      expect(names(b.past)).toEqual([`past_key_values.${b.layer}.key`, `past_key_values.${b.layer}.value`]);
    }
  });

  it('webgpu-tiny-graph-capture-gqa: one layer, head size from the projection widths', () => {
    const { blocks, unsupported } = lift('synthetic-genai-fixtures', 'webgpu-tiny-graph-capture-gqa.model.onnx');
    expect(unsupported).toEqual([]);
    expect(blocks).toHaveLength(1);
    const b = blocks[0]!;
    expect([b.layer, b.form, ...heads(b)]).toEqual([0, 'gqa', 2, 2, 32]);
    expect(b.scale).toBeCloseTo(1 / Math.sqrt(32), 12);
    expect([b.q?.output?.name, b.k?.output?.name, b.v?.output?.name, b.o?.node.output().name]).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj']);
    expect(b.hidden?.name).toBe('embed_out');
    expect(names(b.present)).toEqual(['present.0.key', 'present.0.value']);
  });
});

describe('ort-mha-rotary: com.microsoft MultiHeadAttention + RotaryEmbedding', () => {
  it('tiny-random-llama-fp16-mha: rope from the RotaryEmbedding nodes, which the block owns', () => {
    const { blocks, unsupported } = lift('tiny-random-llama-fp16-mha', 'model.onnx');
    expect(unsupported).toEqual([]);
    expect(blocks.map((b) => [b.layer, b.form])).toEqual([[0, 'mha'], [1, 'mha']]);
    for (const b of blocks) {
      expect(heads(b)).toEqual([1, 1, 16]);
      expect(b.scale).toBe(0.25);
      expect(b.qkvPacking).toBe('separate');
      expect(b.q?.node.name).toBe(`/model/layers.${b.layer}/attn/q_proj/MatMul`);
      expect(b.v?.output).toBe(b.anchor.input(2));
      expect(b.rope).toMatchObject({ interleaved: false, rotaryDim: 16, source: { kind: 'cache', cos: { name: 'cos_cache' } } });
      expect(b.rope?.nodes.map((n) => n.name)).toEqual(['q', 'k'].map((r) => `/model/layers.${b.layer}/attn/${r}_rotary/RotaryEmbedding`));
      expect(new Set(b.nodes)).toEqual(new Set([b.anchor, ...(b.rope?.nodes ?? [])]));
      expect(names(b.past)).toEqual([`past_key_values.${b.layer}.key`, `past_key_values.${b.layer}.value`]);
      expect(names(b.present)).toEqual([`present.${b.layer}.key`, `present.${b.layer}.value`]);
      expect(b.notes).toEqual(['attention-bias', 'causal-from-mask']);
    }
  });
});

describe('ort-attention-gpt2: com.microsoft Attention with stacked past', () => {
  for (const folder of ['tiny-random-gpt2-fp32-ortfused', 'tiny-random-gpt2-fp16-ortfused']) {
    it(`${folder}: five blocks, packed weight on the op, past_i / present_i`, () => {
      const { blocks, unsupported } = lift(folder, 'past.onnx');
      expect(unsupported).toEqual([]);
      expect(blocks.map((b) => b.layer)).toEqual([0, 1, 2, 3, 4]);
      for (const b of blocks) {
        expect([b.form, ...heads(b)]).toEqual(['ort-attention', 4, 4, 8]);
        expect(b.scale).toBeCloseTo(1 / Math.sqrt(8), 12);
        expect(b.qkvPacking).toBe('packed');
        for (const p of [b.q, b.k, b.v]) {
          expect(p?.node).toBe(b.anchor);
          expect(p?.weight?.name).toBe(`transformer.h.${b.layer}.attn.c_attn.weight`);
          expect(p?.output).toBeNull(); // the op projects internally
        }
        expect([b.q?.columns, b.k?.columns, b.v?.columns]).toEqual([{ start: 0, end: 32 }, { start: 32, end: 64 }, { start: 64, end: 96 }]);
        expect(b.rope).toBeNull();
        expect(b.kvLayout).toBe('stacked');
        expect(b.past?.key).toBe(b.past?.value);
        expect(b.past?.key.name).toBe(`past_${b.layer}`);
        expect(names(b.present)).toEqual([`present_${b.layer}`, `present_${b.layer}`]);
        expect(b.o?.weight?.name).toBe(`transformer.h.${b.layer}.attn.c_proj.weight`);
        expect(b.notes).toEqual(['no-rope', 'qkv-inside-op', 'mask-index']);
        expect([...b.nodes]).toEqual([b.anchor]);
      }
    });
  }
});

describe('onnx24-attention: ONNX Attention + RotaryEmbedding + TensorScatter', () => {
  it('static-scatter-bias-decoder-opset24: static cache through TensorScatter, rope table gathered by position', () => {
    const { blocks, unsupported } = lift('synthetic-genai-fixtures', 'static-scatter-bias-decoder-opset24.model.onnx');
    expect(unsupported).toEqual([]);
    expect(blocks.map((b) => b.layer)).toEqual([0, 1]);
    for (const b of blocks) {
      expect([b.form, ...heads(b)]).toEqual(['onnx-attention', 4, 2, 16]);
      expect(b.scale).toBe(0.25);
      // Weights are stored [out, in] and transposed in the graph.
      expect(b.k).toMatchObject({ transposed: true, weight: { name: `model.layers.${b.layer}.self_attn.k_proj.weight` } });
      expect(b.o?.transposed).toBe(true);
      expect(b.kvLayout).toBe('static');
      expect(names(b.past)).toEqual([`key_cache.${b.layer}`, `value_cache.${b.layer}`]);
      expect(names(b.present)).toEqual([`updated_key_cache.${b.layer}`, `updated_value_cache.${b.layer}`]);
      expect(b.rope).toMatchObject({ interleaved: false, rotaryDim: 16 });
      expect(b.rope?.source).toMatchObject({ kind: 'table', cos: { name: 'model.rotary_emb.cos_cache' }, positionIds: { name: 'position_ids' } });
      expect([...b.nodes].map((n) => n.opType).sort()).toEqual(['Attention', 'RotaryEmbedding', 'RotaryEmbedding', 'TensorScatter', 'TensorScatter']);
      // The mask keeps keys with query_pos − key_pos < 8 (mistral sliding window); the op itself is not causal.
      expect(b.notes).toEqual(['static-cache', 'cache-layout=bsd', 'attention-bias', 'sliding-window=8', 'causal-from-mask', 'nonpad-kv-seqlen']);
      expectOwnershipSound(b);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Hand-built graphs

const f32 = (dims: number[]) => new MemoryTensor(DataType.FLOAT, dims, viewBytes(new Float32Array(dims.reduce((a, b) => a * b, 1))));
const fType = (shape: Dim[]) => tensorType(DataType.FLOAT, shape);

function node(g: Graph, opType: string, inputs: Input[], outputs: string[], attributes: Attribute[] = [], domain = ''): Node {
  const n = new Node({ opType, domain, name: outputs[0] ?? opType, inputs, outputs, attributes });
  g.insert(n);
  return n;
}

/** One packed-QKV GQA layer (H=2, Hkv=1, Dh=16) whose cos/sin come from `cos(g)` / `sin(g)`. */
function gqaModel(opts: { cos: (g: Graph) => Value; heads?: [number, number]; attrs?: Attribute[] }): Model {
  const g = new Graph('gqa');
  const x = g.addInput('hidden', fType(['B', 'S', 32]));
  const pk = g.addInput('past_key_values.0.key', fType(['B', 1, 'P', 16]));
  const pv = g.addInput('past_key_values.0.value', fType(['B', 1, 'P', 16]));
  const seqlens = g.addInput('seqlens_k', tensorType(DataType.INT32, ['B']));
  const total = g.addInput('total_sequence_length', tensorType(DataType.INT32, []));
  const qkv = node(g, 'MatMul', [x, g.addInitializer('qkv.w', f32([32, 64]))], ['qkv']);
  const [h, hkv] = opts.heads ?? [2, 1];
  const gqa = node(
    g,
    'GroupQueryAttention',
    [qkv.output(), null, null, pk, pv, seqlens, total, opts.cos(g), g.addInitializer('sin_cache', f32([64, 8]))],
    ['attn', 'present.0.key', 'present.0.value'],
    [attr.int('num_heads', h), attr.int('kv_num_heads', hkv), attr.int('do_rotary', 1), ...(opts.attrs ?? [])],
    'com.microsoft',
  );
  g.outputs.push(gqa.output(0), gqa.output(1), gqa.output(2));
  return new Model(g, { opsetImports: { '': 21, 'com.microsoft': 1 } });
}

describe('hand-built graphs', () => {
  it('GQA with constant caches lifts (the baseline for the negative cases)', () => {
    const { blocks, unsupported } = liftAttention(gqaModel({ cos: (g) => g.addInitializer('cos_cache', f32([64, 8])) }));
    expect(unsupported).toEqual([]);
    expect(blocks).toHaveLength(1);
    expect(heads(blocks[0]!)).toEqual([2, 1, 16]);
    expect([blocks[0]!.q?.columns, blocks[0]!.v?.columns]).toEqual([{ start: 0, end: 32 }, { start: 48, end: 64 }]);
  });

  it('GQA whose cos_cache is a Constant node lifts too, with the notes its attributes call for', () => {
    const cos = (g: Graph) => node(g, 'Constant', [], ['cos_const'], [attr.tensor('value', f32([64, 8]))]).output();
    const attrs = [attr.int('local_window_size', 4096), attr.float('softcap', 50), attr.int('rotary_interleaved', 1)];
    const { blocks } = liftAttention(gqaModel({ cos, attrs }));
    expect(blocks[0]?.rope).toMatchObject({ interleaved: true, rotaryDim: 16, source: { kind: 'cache', cos: { name: 'cos_const' } } });
    expect(blocks[0]?.notes).toEqual(['sliding-window=4096', 'softcap=50']);
  });

  it('GQA whose cos_cache is computed at run time is unsupported, saying what was expected', () => {
    const cos = (g: Graph) => node(g, 'Cos', [g.addInput('angles', fType([64, 8]))], ['cos_computed']).output();
    const { blocks, unsupported } = liftAttention(gqaModel({ cos }));
    expect(blocks).toEqual([]);
    expect(unsupported).toEqual([
      {
        node: 'attn',
        reason: "genai-gqa: do_rotary=1 but cos_cache 'cos_computed' is not a constant; expected a [max_positions, rotary_dim/2] initializer or Constant",
      },
    ]);
  });

  it('GQA with head counts that do not divide is unsupported', () => {
    const { unsupported } = liftAttention(gqaModel({ cos: (g) => g.addInitializer('cos_cache', f32([64, 8])), heads: [3, 2] }));
    expect(unsupported[0]?.reason).toMatch(/num_heads=3 and kv_num_heads=2: expected .* multiple/);
  });

  it('MultiHeadAttention with rope on q only is unsupported', () => {
    const g = new Graph('mha');
    const x = g.addInput('hidden', fType(['B', 'S', 16]));
    const pos = g.addInput('position_ids', tensorType(DataType.INT64, ['B', 'S']));
    const [cos, sin] = [g.addInitializer('cos', f32([64, 8])), g.addInitializer('sin', f32([64, 8]))];
    const proj = (r: string) => node(g, 'MatMul', [x, g.addInitializer(`${r}.w`, f32([16, 16]))], [r]).output();
    const q = node(g, 'RotaryEmbedding', [proj('q'), pos, cos, sin], ['q_rot'], [], 'com.microsoft').output();
    const mha = node(g, 'MultiHeadAttention', [q, proj('k'), proj('v')], ['attn'], [attr.int('num_heads', 1)], 'com.microsoft');
    g.outputs.push(mha.output());
    const { blocks, unsupported } = liftAttention(new Model(g));
    expect(blocks).toEqual([]);
    expect(unsupported[0]?.reason).toBe('ort-mha-rotary: RotaryEmbedding found on q only; expected it on both q and k, or on neither');
  });

  it('com.microsoft Attention with a computed weight, and ONNX Attention with 3-D inputs but no head counts, are unsupported', () => {
    const g = new Graph('attn');
    const x = g.addInput('hidden', fType(['B', 'S', 32]));
    const w = g.addInput('w', fType([32, 96]));
    node(g, 'Attention', [x, w], ['ort'], [attr.int('num_heads', 4)], 'com.microsoft');
    node(g, 'Attention', [x, x, x], ['onnx']);
    const { unsupported } = liftAttention(new Model(g, { opsetImports: { '': 24, 'com.microsoft': 1 } }));
    expect(unsupported.map((u) => u.reason)).toEqual([
      "ort-attention-gpt2: weights 'w' is not a 2-D constant; expected the packed QKV initializer [d_model, q + k + v]",
      'onnx24-attention: cannot tell the head counts: 3-D (or untyped) Q/K/V need the q_num_heads and kv_num_heads attributes',
    ]);
  });
});

describe('const helpers', () => {
  it('read initializers, Constant nodes (value and value_* forms) and Identity chains', () => {
    const g = new Graph('c');
    const ints = g.addInitializer('ints', new MemoryTensor(DataType.INT64, [3], viewBytes(new BigInt64Array([0n, 0n, -1n]))));
    const scalar = node(g, 'Constant', [], ['scalar'], [attr.float('value_float', 0.5)]).output();
    const viaIdentity = node(g, 'Identity', [node(g, 'Constant', [], ['w'], [attr.int('value_int', 8)]).output()], ['w_id']).output();
    const dynamic = g.addInput('dyn', fType([1]));
    expect(constInts(ints)).toEqual([0, 0, -1]);
    expect(constFloat(scalar)).toBe(0.5);
    expect(constInts(viaIdentity)).toEqual([8]);
    expect(constFloat(ints)).toBeUndefined(); // three values, not one
    expect(constValue(dynamic)).toBeUndefined();
    expect(constInts(node(g, 'Constant', [], ['v'], [attr.ints('value_ints', [2, 3])]).output())).toEqual([2, 3]);
  });
});
