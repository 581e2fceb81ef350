/** The gqa patch on real exports: lossless lowering matches ORT logits, options change what they should. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModelFile, saveModelFile } from '../../graph/io/fs.js';
import type { Model } from '../../graph/ir/model.js';
import { verifyModels } from '../../runtime/verify.js';
import { isAttnpatchError } from '../../errors.js';
import { shared } from '../../../test/support/paths.js';
import { applyGqa, type GqaOptions } from './index.js';

const tmp = mkdtempSync(join(tmpdir(), 'attnpatch-gqa-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const TINY = shared('tinystories-656k-optimum', 'onnx', 'model.onnx');
const BENCH = shared('bench-llama-random', 'onnx', 'model.onnx');

function patch(file: string, options: GqaOptions = {}): { model: Model; out: string; report: ReturnType<typeof applyGqa> } {
  const model = loadModelFile(file);
  const report = applyGqa(model, options);
  const out = join(tmp, `${Math.random().toString(36).slice(2)}.onnx`);
  saveModelFile(model, out);
  return { model, out, report };
}

const ops = (m: Model) => m.graph.nodes.map((n) => n.opType);

describe('gqa: lossless lowering', () => {
  for (const [name, file, layers] of [['tinystories-656k', TINY, 2], ['bench-llama-random', BENCH, 4]] as const) {
    it(`${name}: every block becomes GroupQueryAttention(do_rotary=1); logits within 1e-4 over 24 greedy steps`, async () => {
      const { model, out, report } = patch(file);
      expect(report.left).toEqual([]);
      expect(report.patched.map((p) => p.to)).toEqual(new Array(layers).fill('GroupQueryAttention(do_rotary=1)'));
      expect(ops(model).filter((o) => o === 'GroupQueryAttention')).toHaveLength(layers);
      expect(ops(model)).not.toContain('Softmax');
      const v = await verifyModels(file, out, { tokens: 24 });
      expect(v.maxAbsDiff).toBeLessThanOrEqual(1e-4);
      expect(v.greedyMatch).toBe(true);
    });
  }

  it("rotary: 'keep' reuses the source's rope and is exact too", async () => {
    const { model, out, report } = patch(TINY, { rotary: 'keep' });
    expect(report.patched.map((p) => p.to)).toEqual(['GroupQueryAttention(source rope kept: rotary: keep)', 'GroupQueryAttention(source rope kept: rotary: keep)']);
    expect(ops(model)).toContain('Neg'); // the rotate_half chain survives
    const v = await verifyModels(TINY, out, { tokens: 16 });
    expect(v.maxAbsDiff).toBeLessThanOrEqual(1e-4);
  });

  it('MultiHeadAttention + RotaryEmbedding (fp16) lowers within the fp16 bound', async () => {
    const file = shared('tiny-random-llama-fp16-mha', 'model.onnx');
    const { model, out, report } = patch(file);
    expect(report.patched).toHaveLength(2);
    expect(ops(model)).not.toContain('MultiHeadAttention');
    const v = await verifyModels(file, out, { tokens: 16 });
    expect(v.maxAbsDiff).toBeLessThanOrEqual(2e-3);
    expect(v.greedyMatch).toBe(true);
  });

  it('an already fused GroupQueryAttention model is left as it is (same logits)', async () => {
    const file = shared('tiny-random-llama-fp32-gqa', 'model.onnx');
    const { out, report } = patch(file);
    expect(report.patched.map((p) => p.to)).toEqual(['GroupQueryAttention (unchanged)', 'GroupQueryAttention (unchanged)']);
    expect((await verifyModels(file, out, { tokens: 8 })).maxAbsDiff).toBe(0);
  });

  for (const folder of ['tiny-random-gpt2-fp32-ortfused', 'tiny-random-gpt2-fp16-ortfused']) {
    it(`${folder}: com.microsoft Attention with a stacked past lowers (q|k|v MatMul rebuilt, cache split and restacked)`, async () => {
      const file = shared(folder, 'past.onnx');
      const { model, out, report } = patch(file);
      expect(report.left).toEqual([]);
      expect(report.patched).toHaveLength(5);
      expect(ops(model)).not.toContain('Attention');
      const v = await verifyModels(file, out, { tokens: 24 });
      expect(v.maxAbsDiff).toBeLessThanOrEqual(folder.includes('fp16') ? 2e-3 : 1e-4);
      expect(v.greedyMatch).toBe(true);
    });
  }

  it('a block GroupQueryAttention cannot take is reported, not lowered; strict makes it an error', () => {
    const file = shared('ort-testdata-gpt2-unfused', 'gpt2_megatron.onnx');
    const { report } = patch(file);
    expect(report.patched).toEqual([]);
    expect(report.left[0]?.reason).toMatch(/head size 4 is not a multiple of 8/);
    expect(() => applyGqa(loadModelFile(file), { strict: true })).toThrow(/gqa could not lower 1 block/);
  });
});

describe('gqa: lossy options', () => {
  it('window larger than the context changes nothing; a small window changes the logits', async () => {
    const wide = patch(TINY, { window: 64 });
    expect(wide.report.lossy).toBe(true);
    expect(wide.report.warnings.join()).toMatch(/sliding window/);
    expect((await verifyModels(TINY, wide.out, { tokens: 16 })).maxAbsDiff).toBeLessThanOrEqual(1e-4);
    const narrow = patch(TINY, { window: 4 });
    expect((await verifyModels(TINY, narrow.out, { tokens: 16 })).maxAbsDiff).toBeGreaterThan(0.1);
  });

  it('kvHeads: 2 halves the cache and declares the narrower past/present shapes', async () => {
    const { model, out, report } = patch(TINY, { kvHeads: 2 });
    expect(report.left).toEqual([]);
    expect(report.warnings.join()).toMatch(/mean-pools/);
    const past = model.graph.input('past_key_values.0.key')!;
    expect(past.type).toMatchObject({ kind: 'tensor', shape: ['batch_size', 2, 'past_sequence_length', 16] });
    expect(model.graph.output('present.1.value')!.type).toMatchObject({ shape: ['batch_size', 2, expect.anything(), 16] });
    // Runs, and differs from the original (lossy).
    const v = await verifyModels(TINY, out, { tokens: 8 });
    expect(v.maxAbsDiff).toBeGreaterThan(1e-3);
    expect(Number.isFinite(v.maxAbsDiff)).toBe(true);
  });

  it('target: a window on the JS WebGPU kernels (no local window) is left with the reason', () => {
    const report = applyGqa(loadModelFile(TINY), { window: 64, target: 'webgpu-jsep' });
    expect(report.patched).toEqual([]);
    expect(report.left.map((l) => l.reason)).toEqual(new Array(2).fill('the target EP has no GroupQueryAttention local window'));
    expect(applyGqa(loadModelFile(TINY), { window: 64, target: 'webgpu' }).patched).toHaveLength(2);
  });

  it('rejects options that make no sense', () => {
    const m = loadModelFile(TINY);
    for (const bad of [{ kvHeads: 0 }, { window: 1.5 }, { rotary: 'sideways' }, { target: 'tpu' }] as unknown as GqaOptions[]) {
      try {
        applyGqa(m, bad);
        expect.unreachable();
      } catch (e) {
        expect(isAttnpatchError(e) && e.code).toBe('USAGE');
      }
    }
    expect(applyGqa(loadModelFile(TINY), { kvHeads: 3 }).left[0]?.reason).toMatch(/4 KV heads cannot be merged into 3/);
  });
});

describe('gqa: what loaders need of the patched graph', () => {
  it('imports com.microsoft, and names the cache batch dimension batch_size (transformers.js reads it by that name)', () => {
    const model = loadModelFile(TINY);
    expect(model.opsetImports.has('com.microsoft')).toBe(false);
    const past = model.graph.inputs.filter((v) => v.name.startsWith('past_key_values.'));
    for (const v of past) if (v.type?.kind === 'tensor') v.type = { ...v.type, shape: ['batch', ...v.type.shape!.slice(1)] };
    const report = applyGqa(model);
    expect(model.opsetImports.get('com.microsoft')).toBe(1);
    for (const v of past) expect(v.type?.kind === 'tensor' && v.type.shape).toEqual(['batch_size', 4, 'past_sequence_length', 16]);
    expect(report.warnings).toContain('gqa: named the batch dimension of 4 cache inputs batch_size (past_key_values.0.key, …), so transformers.js builds a first cache of batch 1 that GroupQueryAttention accepts');
    // Already named: nothing to say.
    expect(applyGqa(loadModelFile(TINY)).warnings).toEqual([]);
  });
});
