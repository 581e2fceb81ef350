/**
 * The mla patch on real exports: exact at full rank (TinyStories-656K and bench-llama-random, 64 greedy tokens), the
 * cache transformers.js builds from the declared shapes works, and at low rank the patched graph equals an
 * independent TypeScript forward pass whose K/V weights are the plan's W_D·W_U (so caching latents, rebuilding and
 * rotating keys at their positions, and folding W_UV into W_O change nothing but the weights).
 */
import * as ort from 'onnxruntime-node';
import { env } from '@huggingface/transformers';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModelFile, saveModelFile } from '../../graph/io/fs.js';
import { OrtDecoder, type OrtModule } from '../../runtime/ort/decoder.js';
import { pipeline } from '../../runtime/transformers/pipeline.js';
import { maxAbs, verifyModels } from '../../runtime/verify.js';
import { inspectModel } from '../inspect.js';
import { llamaForward, readSafetensors, TINYSTORIES_CONFIG } from '../../../test/support/llama-reference.js';
import { REPO_ROOT, shared } from '../../../test/support/paths.js';
import { applyMla, effectiveWeights, planMla, type MlaOptions } from './index.js';
import { logitsInCalls } from '../../../test/support/ort-calls.js';

const TINY = shared('tinystories-656k-optimum', 'onnx', 'model.onnx');
const BENCH = shared('bench-llama-random', 'onnx', 'model.onnx');
const tmp = mkdtempSync(join(tmpdir(), 'attnpatch-mla-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function patched(file: string, options: MlaOptions): string {
  const m = loadModelFile(file);
  const report = applyMla(m, options);
  expect(report.left).toEqual([]);
  const out = join(tmp, `${Math.random().toString(36).slice(2)}.onnx`);
  saveModelFile(m, out);
  return out;
}

describe('mla at full rank is exact (64 greedy tokens)', () => {
  const cases: [string, MlaOptions, string][] = [
    ['tinystories-656k', { rank: 'full' }, TINY],
    ['tinystories-656k', { layout: 'split', rank: 'full' }, TINY],
    ['tinystories-656k', { rank: 'full', value: 'reconstruct' }, TINY],
    ['bench-llama-random', { rank: 'full' }, BENCH],
    ['bench-llama-random', { layout: 'split', rank: 'full' }, BENCH],
  ];
  it.each(cases)('%s %j', async (_name, options, file) => {
    const v = await verifyModels(file, patched(file, options), { tokens: 64 });
    expect(v.maxAbsDiff).toBeLessThanOrEqual(1e-4);
    expect(v.greedyMatch).toBe(true);
  });
});

describe('the latent KV cache', () => {
  it('keeps the cache names with shapes [batch_size, 1, past, width], and inspect counts the latent bytes', () => {
    const m = loadModelFile(TINY);
    const r = applyMla(m, { layout: 'split', rankK: 24, rankV: 40 });
    expect(r.details).toMatchObject({ kvElementsPerToken: 128, originalKvElementsPerToken: 256, kvRatio: 0.5 });
    const shape = (name: string, side: 'input' | 'output') => {
      const t = (side === 'input' ? m.graph.input(name) : m.graph.output(name))?.type;
      return t?.kind === 'tensor' ? t.shape : undefined;
    };
    expect(shape('past_key_values.0.key', 'input')).toEqual(['batch_size', 1, 'past_sequence_length', 24]);
    expect(shape('past_key_values.1.value', 'input')).toEqual(['batch_size', 1, 'past_sequence_length', 40]);
    expect(shape('present.1.key', 'output')?.slice(0, 2)).toEqual(['batch_size', 1]);
    expect(shape('present.1.key', 'output')?.[3]).toBe(24);
    const report = inspectModel(m);
    expect(report.attention.map((b) => b.form)).toEqual(['mla', 'mla']);
    expect(report.kvCacheBytesPerToken).toBe(2 * (24 + 40) * 4); // was 1024
    expect(applyMla(m, { rank: 8 }).left.map((l) => l.reason)).toEqual(['it is already multi-head latent attention', 'it is already multi-head latent attention']);
  });

  it('runs from the empty cache transformers.js builds (numbers kept, batch_size → 1, other symbols → 0), then decodes', async () => {
    const file = patched(TINY, { rank: 'full' });
    const session = await ort.InferenceSession.create(file);
    const meta = (session as unknown as { inputMetadata: { name: string; shape?: (number | string)[] }[] }).inputMetadata;
    const feeds: Record<string, ort.Tensor> = {};
    const ids = [1, 80, 147, 201, 282, 57];
    for (const { name, shape } of meta) {
      if (!name.startsWith('past_key_values')) continue;
      const dims = (shape ?? []).map((d) => (typeof d === 'number' ? d : d === 'batch_size' ? 1 : 0));
      expect(dims[3]).toBeGreaterThan(0); // a static latent width, never an unresolved symbol
      feeds[name] = new ort.Tensor('float32', new Float32Array(0), dims);
    }
    const run = (tokens: number[], past: number) => {
      const total = past + tokens.length;
      return session.run({
        ...feeds,
        input_ids: new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [1, tokens.length]),
        attention_mask: new ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]),
        position_ids: new ort.Tensor('int64', BigInt64Array.from(tokens, (_, i) => BigInt(past + i)), [1, tokens.length]),
      });
    };
    const first = await run(ids, 0);
    for (const [name, t] of Object.entries(first)) if (name.startsWith('present.')) feeds[name.replace('present.', 'past_key_values.')] = t;
    const second = await run([42], ids.length);
    // The original model over the same two calls.
    const d = await OrtDecoder.create(ort as unknown as OrtModule, TINY);
    const a = await d.step(ids);
    const b = await d.step([42]);
    await d.release();
    expect(maxAbs(first.logits!.data as Float32Array, a.logits)).toBeLessThanOrEqual(1e-4);
    expect(maxAbs(second.logits!.data as Float32Array, b.logits)).toBeLessThanOrEqual(1e-4);
    await session.release();
  });

  it('runs on onnxruntime-web (wasm) with the logits of onnxruntime-node (standard ops only)', async () => {
    const ortWeb = await import('onnxruntime-web');
    ortWeb.env.wasm.numThreads = 1;
    const file = patched(TINY, { kvRatio: 0.5, layout: 'split' });
    const ids = [1, 80, 147, 201, 282, 57, 9, 33];
    const run = async (mod: OrtModule, model: string | Uint8Array) => {
      const d = await OrtDecoder.create(mod, model);
      const a = await d.step(ids);
      const b = await d.step([42]);
      await d.release();
      return Float32Array.from([...a.logits, ...b.logits]);
    };
    const web = await run(ortWeb as unknown as OrtModule, new Uint8Array(readFileSync(file)));
    expect(maxAbs(web, await run(ort as unknown as OrtModule, file))).toBeLessThanOrEqual(1e-4);
  });

  it('transformers.js generates the same 64 greedy tokens through pipeline({ patch: mla })', async () => {
    env.allowRemoteModels = false;
    type Gen = ((t: string, o: object) => Promise<{ generated_text: string }[]>) & { dispose(): Promise<void> };
    const generate = async (patch?: string) => {
      const p = (await pipeline('text-generation', join(REPO_ROOT, 'models', 'tinystories-656k'), { device: 'cpu', dtype: 'fp32', cacheDir: false, ...(patch ? { patch } : {}) })) as unknown as Gen;
      const out = await p('Once upon a time, there was a little dog named', { max_new_tokens: 64, min_new_tokens: 64, do_sample: false });
      await p.dispose();
      return out[0]!.generated_text;
    };
    const plain = await generate();
    expect(await generate('mla:rank=full')).toBe(plain);
    expect((await generate('mla:kvRatio=0.25,layout=split')).length).toBeGreaterThan(100); // lossy, but it runs
  });
});

describe('mla at low rank equals the reference forward with W_K, W_V ← W_D·W_U', () => {
  const weights = readSafetensors(shared('tinystories-656k', 'fp32', 'model.safetensors'));
  const reference = JSON.parse(readFileSync(shared('tinystories-656k', 'reference.json'), 'utf8')) as { input_ids: number[] };
  const IDS = reference.input_ids.slice(0, 40);

  /** HF [out, in] layout of an ONNX [in, out] weight. */
  const hf = (w: Float32Array, rows: number, cols: number) => Float32Array.from({ length: rows * cols }, (_, i) => w[(i % rows) * cols + Math.floor(i / rows)]!);

  const cases: MlaOptions[] = [{ rank: 37 }, { layout: 'split', rankK: 5, rankV: 11 }, { layout: 'split', rankK: 9, rankV: 20, value: 'reconstruct' }, { kvRatio: 0.3 }];
  it.each(cases)('%j: one prefill call, token by token, and calls spanning 5/13/1/21 tokens', async (options) => {
    const plan = planMla(loadModelFile(TINY), options);
    const w = new Map(weights);
    for (const p of plan.blocks) {
      const eff = effectiveWeights(p);
      const l = p.source.block.layer;
      w.set(`model.layers.${l}.self_attn.k_proj.weight`, hf(eff.k, p.source.k.rows, p.source.k.cols));
      w.set(`model.layers.${l}.self_attn.v_proj.weight`, hf(eff.v, p.source.v.rows, p.source.v.cols));
    }
    const rows = llamaForward(w, TINYSTORIES_CONFIG, IDS);
    const expected = new Float32Array(rows.length * rows[0]!.length);
    rows.forEach((r, i) => expected.set(r, i * r.length));
    const file = patched(TINY, options);
    expect(maxAbs(await logitsInCalls(file, IDS, [40]), expected)).toBeLessThanOrEqual(1e-4);
    expect(maxAbs(await logitsInCalls(file, IDS, new Array(40).fill(1)), expected)).toBeLessThanOrEqual(1e-4);
    expect(maxAbs(await logitsInCalls(file, IDS, [5, 13, 1, 21]), expected)).toBeLessThanOrEqual(1e-4);
    // …and differs from the original (the patch really is lossy here).
    const original = llamaForward(weights, TINYSTORIES_CONFIG, IDS.slice(0, 8));
    expect(maxAbs(expected.subarray(0, 8 * 2048), Float32Array.from(original.flatMap((r) => [...r])))).toBeGreaterThan(1e-3);
  });
});
