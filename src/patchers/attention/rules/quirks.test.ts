/**
 * Family quirks in the lifted block (built with the test families of `test/support/families.ts`): q/k norm, the
 * logit softcap, Phi-3's Slice-packed QKV, partial rotary and the mask's sliding window in Optimum exports, the same
 * facts from GenAI GroupQueryAttention; the reasons when a quirk does not read right; and what gqa does with them
 * (window and softcap kept, lossy only when the window changes, targets without the feature leave the block).
 */
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { buildFamily, type ExportForm } from '../../../../test/support/family-graphs.js';
import { FAMILIES, familyWeights, type FamilyName } from '../../../../test/support/families.js';
import { GraphBuilder } from '../../../graph/build/builder.js';
import { saveModelToBytes } from '../../../graph/io/bytes.js';
import { eliminateDeadCode } from '../../../graph/passes/dce.js';
import { OrtDecoder } from '../../../runtime/ort/decoder.js';
import { DataType } from '../../../graph/ir/dtype.js';
import { Graph } from '../../../graph/ir/graph.js';
import { Model } from '../../../graph/ir/model.js';
import { tensorType } from '../../../graph/ir/types.js';
import type { Value } from '../../../graph/ir/value.js';
import { applyGqa } from '../../gqa/index.js';
import { liftAttention } from '../lift.js';
import { maskWindow } from './mask-window.js';

const build = (family: FamilyName, form: ExportForm) => buildFamily(form, FAMILIES[family], familyWeights(FAMILIES[family]));
const lift = (family: FamilyName, form: ExportForm) => liftAttention(build(family, form));

describe.each(['optimum', 'genai'] as const)('quirks lifted from the %s form', (form) => {
  it('mistral: the sliding window on every layer', () => {
    const { blocks, unsupported } = lift('mistral', form);
    expect(unsupported).toEqual([]);
    expect(blocks.map((b) => [b.window, b.softcap, b.notes.filter((n) => n.startsWith('sliding-window'))])).toEqual([
      [6, undefined, ['sliding-window=6']],
      [6, undefined, ['sliding-window=6']],
    ]);
  });

  it('gemma2: softcap on every layer, the window on the even one, the query_pre_attn_scalar scale', () => {
    const { blocks } = lift('gemma2', form);
    expect(blocks.map((b) => [b.window, b.softcap])).toEqual([
      [6, 0.5],
      [undefined, 0.5],
    ]);
    for (const b of blocks) {
      expect(b.notes).toContain('softcap=0.5');
      expect(b.scale).toBeCloseTo(24 ** -0.5, 6);
    }
  });

  it('gemma3: q/k norm, the window on layer 0, one rope base per layer', () => {
    const { blocks } = lift('gemma3', form);
    expect(blocks.map((b) => [b.window, b.notes.includes('qk-norm'), b.rope?.rotaryDim])).toEqual([
      [6, true, 16],
      [undefined, true, 16],
    ]);
    if (form === 'optimum') expect(blocks.map((b) => b.rope?.theta)).toEqual([10000, 1000000]);
    if (form === 'optimum') for (const b of blocks) expect(b.normedHeads).toBeDefined();
  });

  it('phi3: one packed projection with q | k | v column ranges, partial rotary', () => {
    const { blocks } = lift('phi3', form);
    for (const b of blocks) {
      expect(b).toMatchObject({ qkvPacking: 'packed', headDim: 32, numHeads: 4, numKvHeads: 2 });
      expect([b.q?.columns, b.k?.columns, b.v?.columns]).toEqual([
        { start: 0, end: 128 },
        { start: 128, end: 192 },
        { start: 192, end: 256 },
      ]);
      expect(b.q?.node).toBe(b.v?.node);
      expect(b.rope?.rotaryDim).toBe(16);
    }
  });
});

describe('q/k norm as one SimplifiedLayerNormalization node (instead of decomposed) in an Optimum export', () => {
  /** Qwen3's Optimum graph with each per-head norm replaced by SimplifiedLayerNormalization(x, w). */
  function fusedNorms() {
    const model = build('qwen3', 'optimum');
    const b = new GraphBuilder(model, model.graph, 'sln');
    const transposes = model.graph.nodes.filter((n) => n.opType === 'Transpose' && n.input(0)?.producer?.opType === 'Mul' && n.input(0)?.producer?.input(0)?.producer?.opType === 'Mul');
    for (const t of transposes) {
      const mul = t.input(0)!.producer!;
      b.before = t;
      t.setInput(0, b.op('SimplifiedLayerNormalization', [mul.input(0)!.producer!.input(0)!, mul.input(1)!], { attributes: { axis: -1, epsilon: FAMILIES.qwen3.eps } }));
    }
    eliminateDeadCode(model);
    return { model, replaced: transposes.length };
  }
  async function logits(model: Model, ids: number[]) {
    const dec = await OrtDecoder.create(ort, saveModelToBytes(model));
    try {
      return [...(await dec.step(ids)).logits];
    } finally {
      await dec.release();
    }
  }

  it('is lifted as qk-norm with its normalized heads, and gqa (built-in rotary) stays exact', async () => {
    const { model, replaced } = fusedNorms();
    expect(replaced).toBe(4);
    const { blocks } = liftAttention(model);
    expect(blocks.map((b) => [b.notes.includes('qk-norm'), b.normedHeads?.q.producer?.opType])).toEqual([
      [true, 'Transpose'],
      [true, 'Transpose'],
    ]);
    const ids = [5, 17, 2, 40, 33, 8, 59];
    const before = await logits(model, ids);
    expect(applyGqa(model).patched.map((p) => p.to)).toEqual(['GroupQueryAttention(do_rotary=1)', 'GroupQueryAttention(do_rotary=1)']);
    const after = await logits(model, ids);
    expect(Math.max(...after.map((v, i) => Math.abs(v - before[i]!)))).toBeLessThanOrEqual(1e-4);
  });
});

describe('the window of a Where(condition, scores, −inf) mask', () => {
  it('is read from the condition as from an additive mask', () => {
    const model = build('mistral', 'optimum');
    const b = new GraphBuilder(model, model.graph, 'where');
    for (const softmax of model.graph.nodes.filter((n) => n.opType === 'Softmax')) {
      const add = softmax.input(0)!.producer!;
      const additive = add.input(1)!.producer!; // Where(And(visible, padding), 0, min)
      b.before = softmax;
      softmax.setInput(0, b.op('Where', [additive.input(0)!, add.input(0)!, b.floats('neg_inf', [], [-Infinity])]));
    }
    eliminateDeadCode(model);
    const { blocks } = liftAttention(model);
    expect(blocks.map((bl) => [bl.notes[0], bl.window])).toEqual([
      ['mask=where', 6],
      ['mask=where', 6],
    ]);
  });
});

describe('quirks that do not read right are reported', () => {
  it('a softcap whose tanh is multiplied by another number', () => {
    const model = build('gemma2', 'optimum');
    const tanh = model.graph.nodes.find((n) => n.opType === 'Tanh')!;
    const mul = tanh.output(0).consumers()[0]!;
    const b = new GraphBuilder(model, model.graph, 't');
    mul.setInput(1, b.floats('other_cap', [], [2]));
    const r = liftAttention(model);
    expect(r.unsupported.map((u) => u.reason)).toContain('optimum-unfused: softcap: tanh(x / 0.5) is multiplied by 2, not by the same cap');
  });

  it('a packed projection sliced on another axis', () => {
    const model = build('phi3', 'optimum');
    const slice = model.graph.nodes.find((n) => n.opType === 'Slice' && n.input(0)?.producer?.opType === 'MatMul')!;
    slice.setInput(3, new GraphBuilder(model, model.graph, 't').ints('axis1', [1]));
    const r = liftAttention(model);
    expect(r.unsupported.map((u) => u.reason)).toContainEqual(expect.stringMatching(/^optimum-unfused: [qkv] projection: Slice '.*' does not cut the last axis$/));
  });
});

describe('maskWindow reads transformers’ window term in its exported forms', () => {
  /** A mask whose window terms are `terms(b, q, k)` And-ed together. */
  function mask(terms: (b: GraphBuilder, q: Value, k: Value) => Value[]): Value {
    const g = new Graph('m');
    const b = new GraphBuilder(new Model(g, { opsetImports: { '': 17 } }), g, 'm');
    const [q, k] = [g.addInput('q', tensorType(DataType.INT64, [4, 1])), g.addInput('k', tensorType(DataType.INT64, [1, 4]))];
    const all = terms(b, q, k).reduce((x, y) => b.op('And', [x, y]), b.op('LessOrEqual', [k, q]));
    return b.op('Where', [all, b.floats('zero', [], [0]), b.floats('min', [], [-1e30])]);
  }
  const w = (b: GraphBuilder, n: number) => b.ints(`w${n}`, [n], true);

  it.each([
    ['Greater(k, Sub(q, W))', (b: GraphBuilder, q: Value, k: Value) => [b.op('Greater', [k, b.op('Sub', [q, w(b, 5)])])]],
    ['Less(Sub(q, W), k)', (b: GraphBuilder, q: Value, k: Value) => [b.op('Less', [b.op('Sub', [q, w(b, 5)]), k])]],
    ['Greater(k, Add(q, −W))', (b: GraphBuilder, q: Value, k: Value) => [b.op('Greater', [k, b.op('Add', [q, w(b, -5)])])]],
    ['Less(Sub(q, k), W)', (b: GraphBuilder, q: Value, k: Value) => [b.op('Less', [b.op('Sub', [q, k]), w(b, 5)])]],
  ])('%s → 5', (_, terms) => {
    expect(maskWindow(mask(terms))).toEqual({ ok: true, window: 5 });
  });

  it('a plain causal mask has no window; two windows in one mask are reported, not guessed', () => {
    expect(maskWindow(mask(() => []))).toEqual({ ok: true, window: undefined });
    const two = mask((b, q, k) => [b.op('Greater', [k, b.op('Sub', [q, w(b, 4)])]), b.op('Greater', [k, b.op('Sub', [q, w(b, 6)])])]);
    expect(maskWindow(two)).toEqual({ ok: false, reason: 'mask: several sliding windows (4, 6) in one mask' });
  });
});

describe('gqa keeps the window and the softcap', () => {
  it('emits local_window_size and softcap per block (Gemma 2, Optimum)', () => {
    const model = build('gemma2', 'optimum');
    const r = applyGqa(model);
    expect(r.left).toEqual([]);
    expect(r.lossy).toBe(false);
    const gqa = model.graph.nodes.filter((n) => n.opType === 'GroupQueryAttention');
    expect(gqa.map((n) => [n.attr('local_window_size')?.type === 'int' ? Number(n.attr('local_window_size')!.value) : undefined, n.attr('softcap')?.value])).toEqual([
      [6, 0.5],
      [undefined, 0.5],
    ]);
  });

  it("a window is lossy only where it is not the block's own", () => {
    expect(applyGqa(build('mistral', 'optimum'), { window: 6 })).toMatchObject({ lossy: false, warnings: [] });
    const other = applyGqa(build('mistral', 'optimum'), { window: 4 });
    expect(other.lossy).toBe(true);
    expect(other.patched.map((p) => p.to)).toEqual(['GroupQueryAttention(do_rotary=1, window=4)', 'GroupQueryAttention(do_rotary=1, window=4)']);
    expect(other.warnings).toContain('gqa: a 4-token sliding window drops attention to older tokens');
  });

  it('a target whose kernel has no window or softcap leaves the block with the reason', () => {
    const r = applyGqa(build('gemma2', 'optimum'), { target: 'webgpu-jsep' });
    expect(r.patched).toEqual([]);
    expect(r.left.map((l) => l.reason)).toEqual(['the target EP has no GroupQueryAttention local window', 'the target EP has no GroupQueryAttention softcap']);
  });
});
