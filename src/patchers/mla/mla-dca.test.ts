/**
 * mla after dca on TinyStories-656K: the cache holds latents, keys are rebuilt every step and rotated at their DCA
 * positions. Checked against the independent TypeScript forward with DCA positions (test/support/llama-reference.ts),
 * at full rank and at low rank (K/V weights ← W_D·W_U), with the temperature and the inter-chunk bias, over calls
 * that span chunks.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModelFile, saveModelFile } from '../../graph/io/fs.js';
import { maxAbs, verifyModels } from '../../runtime/verify.js';
import { applyDca, type DcaOptions } from '../dca/index.js';
import { inspectModel } from '../inspect.js';
import { dcaPositions, llamaForward, readSafetensors, TINYSTORIES_CONFIG } from '../../../test/support/llama-reference.js';
import { shared } from '../../../test/support/paths.js';
import { applyMla, effectiveWeights, planMla, type MlaOptions } from './index.js';
import { logitsInCalls } from '../../../test/support/ort-calls.js';

const ONNX = shared('tinystories-656k-optimum', 'onnx', 'model.onnx');
const tmp = mkdtempSync(join(tmpdir(), 'attnpatch-mla-dca-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const weights = readSafetensors(shared('tinystories-656k', 'fp32', 'model.safetensors'));
const IDS = (JSON.parse(readFileSync(shared('tinystories-656k', 'reference.json'), 'utf8')) as { input_ids: number[] }).input_ids.slice(0, 40);

function patched(dca: DcaOptions, mla: MlaOptions): { file: string; plan: ReturnType<typeof planMla> } {
  const m = loadModelFile(ONNX);
  expect(applyDca(m, dca, 512).left).toEqual([]);
  const plan = planMla(m, mla);
  const r = applyMla(m, mla);
  expect(r.left).toEqual([]);
  expect(r.patched.map((p) => p.from)).toEqual(['dca', 'dca']);
  const file = join(tmp, `${Math.random().toString(36).slice(2)}.onnx`);
  saveModelFile(m, file);
  return { file, plan };
}

/** The reference logits with DCA positions and, when given, the plan's effective K/V weights. */
function reference(positions: ReturnType<typeof dcaPositions>, plan?: ReturnType<typeof planMla>, logitScale = 1): Float32Array {
  const w = new Map(weights);
  for (const p of plan?.blocks ?? []) {
    const eff = effectiveWeights(p);
    const [rows, cols] = [p.source.k.rows, p.source.k.cols];
    const hf = (x: Float32Array) => Float32Array.from({ length: rows * cols }, (_, i) => x[(i % rows) * cols + Math.floor(i / rows)]!);
    w.set(`model.layers.${p.source.block.layer}.self_attn.k_proj.weight`, hf(eff.k));
    w.set(`model.layers.${p.source.block.layer}.self_attn.v_proj.weight`, hf(eff.v));
  }
  return Float32Array.from(llamaForward(w, TINYSTORIES_CONFIG, IDS, positions, logitScale).flatMap((r) => [...r]));
}

const CALLS = [[40], new Array<number>(40).fill(1), [8, 8, 8, 8, 8], [5, 13, 1, 21]];

describe('mla after dca', () => {
  it('is exact at full rank within CS + 1 tokens (default parameters, 64 greedy tokens fit in 385)', async () => {
    const { file } = patched({}, { rank: 'full' });
    const v = await verifyModels(ONNX, file, { tokens: 64 });
    expect(v.maxAbsDiff).toBeLessThanOrEqual(1e-4);
    expect(v.greedyMatch).toBe(true);
    expect(inspectModel(loadModelFile(file)).attention.map((b) => [b.form, b.notes.join(' ')])).toEqual([
      ['mla', 'latent=64+64 chunk_size=384 local_window=64'],
      ['mla', 'latent=64+64 chunk_size=384 local_window=64'],
    ]);
  });

  it.each([
    [{ rank: 'full' }, {}],
    [{ layout: 'split', rankK: 7, rankV: 12 }, {}],
    [{ rank: 30 }, { temperature: 'chunkllama', trainedLength: 16 }],
    [{ rank: 'full' }, { interBias: 0.7 }],
  ] as [MlaOptions, DcaOptions][])('%j with CS=12, LW=4 %j over 40 tokens (5 chunks) = the reference, in any calls', async (mla, extra) => {
    const dca = { chunkSize: 12, localWindow: 4, ...extra };
    const { file, plan } = patched(dca, mla);
    const f = dca.temperature ? 0.05 * Math.log(40 / 16) + 1 : 1;
    const lossy = mla.rank !== 'full';
    const expected = reference(dcaPositions(12, 4, dca.interBias ?? 0), lossy ? plan : undefined, f * f);
    for (const calls of dca.temperature ? [[40]] : CALLS) expect(maxAbs(await logitsInCalls(file, IDS, calls), expected)).toBeLessThanOrEqual(1e-4);
  });

  it('dca after mla refuses with the reason (apply dca first)', () => {
    const m = loadModelFile(ONNX);
    applyMla(m, { rank: 8 });
    expect(applyDca(m, {}, 512).left.map((l) => l.reason)).toEqual(['mla blocks are not lowered to DCA yet', 'mla blocks are not lowered to DCA yet']);
  });
});
