/**
 * The mla patch on the other export forms and sources: Optimum and onnxruntime-genai (GroupQueryAttention, cos/sin
 * caches) graphs of Llama and Qwen2 (k/v biases: b_K stays on the up side, b_V folds into a constant), a 4-bit
 * MatMulNBits source (dequantized exactly), blocks it must refuse, and composition after gqa.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../graph/build/builder.js';
import { attr } from '../../graph/ir/attribute.js';
import { DataType } from '../../graph/ir/dtype.js';
import { tensorType } from '../../graph/ir/types.js';
import type { Model } from '../../graph/ir/model.js';
import { loadModelFile, saveModelFile } from '../../graph/io/fs.js';
import { eliminateDeadCode } from '../../graph/passes/dce.js';
import { toFloat32 } from '../../graph/tensor/decode.js';
import { MemoryTensor, viewBytes } from '../../graph/tensor/tensor.js';
import { losslessTolerance, maxAbs, verifyModels } from '../../runtime/verify.js';
import { applyGqa } from '../gqa/index.js';
import { FAMILIES, familyWeights, type FamilyName } from '../../../test/support/families.js';
import { buildFamily, type ExportForm } from '../../../test/support/family-graphs.js';
import { familyForward } from '../../../test/support/family-reference.js';
import { shared } from '../../../test/support/paths.js';
import { applyMla, effectiveWeights, planMla, type MlaOptions } from './index.js';
import { logitsInCalls } from '../../../test/support/ort-calls.js';

const tmp = mkdtempSync(join(tmpdir(), 'attnpatch-mla-forms-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const IDS = [3, 17, 42, 8, 55, 21, 9, 30, 12, 47, 5, 38, 26, 60, 14, 33, 7, 51, 19, 44];

function save(m: Model): string {
  const out = join(tmp, `${Math.random().toString(36).slice(2)}.onnx`);
  saveModelFile(m, out);
  return out;
}

describe.each([
  ['optimum', 'llama'],
  ['optimum', 'qwen2'],
  ['genai', 'llama'],
  ['genai', 'qwen2'],
] as [ExportForm, FamilyName][])('%s %s', (form, family) => {
  const spec = FAMILIES[family];
  const weights = familyWeights(spec);
  const file = save(buildFamily(form, spec, weights));

  it('full rank (joint and split) is exact', async () => {
    for (const options of [{ rank: 'full' }, { layout: 'split', rank: 'full' }] as MlaOptions[]) {
      const m = loadModelFile(file);
      expect(applyMla(m, options).left).toEqual([]);
      const v = await verifyModels(file, save(m), { tokens: 8 });
      expect(v.maxAbsDiff).toBeLessThanOrEqual(1e-4);
    }
  });

  it.each([{ rank: 13 }, { layout: 'split', rankK: 6, rankV: 9 }] as MlaOptions[])('%j equals the reference forward with W_D·W_U weights', async (options) => {
    const plan = planMla(loadModelFile(file), options);
    const w = { ...weights, layers: weights.layers.map((l, i) => ({ ...l, ...effectiveWeights(plan.blocks[i]!) })) };
    const expected = Float32Array.from(familyForward(spec, w, IDS).flatMap((r) => [...r]));
    const m = loadModelFile(file);
    applyMla(m, options);
    const patched = save(m);
    expect(maxAbs(await logitsInCalls(patched, IDS, [IDS.length]), expected)).toBeLessThanOrEqual(1e-4);
    expect(maxAbs(await logitsInCalls(patched, IDS, [7, 1, 12]), expected)).toBeLessThanOrEqual(1e-4);
  });
});

describe('rope variants (GroupQueryAttention built-in rotary as the source)', () => {
  /** The genai Llama (head size 32) with GQA's rotary interleaved, or rotating only the first `rotary` dims. */
  function variant(change: { interleaved?: boolean; rotary?: number }): string {
    const spec = { ...FAMILIES.llama, headDim: 32 };
    const m = buildFamily('genai', spec, familyWeights(spec));
    for (const node of m.graph.nodes.filter((n) => n.opType === 'GroupQueryAttention')) {
      if (change.interleaved) node.setAttr(attr.int('rotary_interleaved', 1));
      if (change.rotary) {
        for (const i of [7, 8]) {
          const table = node.input(i)!;
          const [rows, half] = table.initializer!.dims as [number, number];
          const f = toFloat32(table.initializer!);
          const w = change.rotary / 2;
          const sliced = Float32Array.from({ length: rows * w }, (_, j) => f[Math.floor(j / w) * half + (j % w)]!);
          table.initializer = new MemoryTensor(DataType.FLOAT, [rows, w], viewBytes(sliced));
          table.type = tensorType(DataType.FLOAT, [rows, w]);
        }
      }
    }
    return save(m);
  }
  it.each([{ interleaved: true }, { rotary: 16 }, { interleaved: true, rotary: 16 }])('%j: exact at full rank', async (change) => {
    const file = variant(change);
    const m = loadModelFile(file);
    expect(applyMla(m, { layout: 'split', rank: 'full' }).left).toEqual([]);
    const v = await verifyModels(file, save(m), { tokens: 8 });
    expect(v.maxAbsDiff).toBeLessThanOrEqual(1e-4);
  });
});

describe('sources and refusals', () => {
  it('a 4-bit MatMulNBits model: k/v/o are dequantized exactly, factored in float (exact at full rank), and the report says so', async () => {
    const m = buildFamily('genai', FAMILIES.llama, familyWeights(FAMILIES.llama));
    quantizeProjections(m, /[kvo]_proj/);
    const q4 = save(m);
    const patched = loadModelFile(q4);
    const r = applyMla(patched, { rank: 'full' });
    expect(r.left).toEqual([]);
    expect(r.warnings.join('\n')).toMatch(/MatMulNBits .* dequantized exactly .* emitted in float/);
    const v = await verifyModels(q4, save(patched), { tokens: 8 });
    expect(v.maxAbsDiff).toBeLessThanOrEqual(1e-4);
  });

  it('float16 MultiHeadAttention + RotaryEmbedding (genai builder): a joint latent of d_model = 16 halves the cache losslessly', async () => {
    const fp16 = shared('tiny-random-llama-fp16-mha', 'model.onnx');
    const m = loadModelFile(fp16);
    const r = applyMla(m, { kvRatio: 0.5 });
    expect(r.patched.map((p) => p.from)).toEqual(['mha', 'mha']);
    expect(r).toMatchObject({ lossy: false, details: { kvElementsPerToken: 32, originalKvElementsPerToken: 64 } });
    const v = await verifyModels(fp16, save(m), { tokens: 16 });
    expect(v.maxAbsDiff).toBeLessThanOrEqual(losslessTolerance(v));
    expect(v.greedyMatch).toBe(true);
  });

  it('leaves Qwen3 blocks (q/k norm between projection and rope) with the reason', () => {
    const m = buildFamily('genai', FAMILIES.qwen3, familyWeights(FAMILIES.qwen3));
    const r = applyMla(m, { rank: 8 });
    expect(r.patched).toEqual([]);
    expect(r.left.map((l) => l.reason)).toEqual(['it uses qk-norm, which the MLA attention does not implement', 'it uses qk-norm, which the MLA attention does not implement']);
    expect(() => applyMla(buildFamily('genai', FAMILIES.qwen3, familyWeights(FAMILIES.qwen3)), { rank: 8, strict: true })).toThrow(/mla could not lower 2 block\(s\)/);
  });

  it('composes after gqa (GroupQueryAttention blocks are re-lowered) and after a gqa KV-head merge', async () => {
    const tiny = shared('tinystories-656k-optimum', 'onnx', 'model.onnx');
    const m = loadModelFile(tiny);
    applyGqa(m);
    expect(applyMla(m, { rank: 'full' }).patched.map((p) => p.from)).toEqual(['gqa', 'gqa']);
    expect((await verifyModels(tiny, save(m), { tokens: 16 })).maxAbsDiff).toBeLessThanOrEqual(1e-4);
    const merged = loadModelFile(tiny);
    applyGqa(merged, { kvHeads: 2 });
    const mergedFile = save(merged);
    applyMla(merged, { rank: 'full' });
    expect((await verifyModels(mergedFile, save(merged), { tokens: 16 })).maxAbsDiff).toBeLessThanOrEqual(1e-4);
  });
});

/** Replaces the matching MatMul projections by symmetric 4-bit MatMulNBits (block 32, no zero points). */
function quantizeProjections(m: Model, names: RegExp): void {
  const b = new GraphBuilder(m, m.graph, 'q4');
  for (const node of [...m.graph.nodes]) {
    const w = node.input(1);
    if (node.opType !== 'MatMul' || !w?.initializer || !names.test(w.name)) continue;
    const [k, n] = w.initializer.dims as [number, number];
    const f = toFloat32(w.initializer);
    const blocks = Math.ceil(k / 32);
    const packed = new Uint8Array(n * blocks * 16);
    const scales = new Float32Array(n * blocks);
    for (let col = 0; col < n; col++) {
      for (let blk = 0; blk < blocks; blk++) {
        let amax = 0;
        for (let i = 0; i < 32 && blk * 32 + i < k; i++) amax = Math.max(amax, Math.abs(f[(blk * 32 + i) * n + col]!));
        const scale = amax / 7 || 1;
        scales[col * blocks + blk] = scale;
        for (let i = 0; i < 32 && blk * 32 + i < k; i++) {
          const q = Math.max(0, Math.min(15, Math.round(f[(blk * 32 + i) * n + col]! / scale) + 8));
          packed[(col * blocks + blk) * 16 + (i >> 1)]! |= q << ((i & 1) * 4);
        }
      }
    }
    b.before = node;
    const y = b.op('MatMulNBits', [node.input(0), b.initializer('B', DataType.UINT8, [n, blocks, 16], packed), b.floats('scales', [n * blocks], scales)], {
      domain: 'com.microsoft',
      attributes: { K: k, N: n, bits: 4, block_size: 32 },
    });
    m.graph.replaceAllUsesWith(node.output(0), y);
  }
  eliminateDeadCode(m);
}
