/**
 * The dca patch on TinyStories-656K: exact within CS + 1 tokens, and across several chunks equal to an independent
 * TypeScript forward pass written from the weights (safetensors) and the DCA position formulas.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAttnpatchError } from '../../errors.js';
import { loadModelFile, saveModelFile } from '../../graph/io/fs.js';
import { maxAbs, verifyModels } from '../../runtime/verify.js';
import { liftAttention } from '../attention/lift.js';
import { applyGqa } from '../gqa/index.js';
import { shared } from '../../../test/support/paths.js';
import { dcaPositions, llamaForward, ordinary, readSafetensors, TINYSTORIES_CONFIG } from '../../../test/support/llama-reference.js';
import { applyDca, type DcaOptions } from './index.js';
import { logitsInCalls } from '../../../test/support/ort-calls.js';

const ONNX = shared('tinystories-656k-optimum', 'onnx', 'model.onnx');
const tmp = mkdtempSync(join(tmpdir(), 'attnpatch-dca-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const weights = readSafetensors(shared('tinystories-656k', 'fp32', 'model.safetensors'));
const reference = JSON.parse(readFileSync(shared('tinystories-656k', 'reference.json'), 'utf8')) as { input_ids: number[] };
const IDS = reference.input_ids.slice(0, 40);

function patched(options: DcaOptions, before?: (m: ReturnType<typeof loadModelFile>) => void): string {
  const m = loadModelFile(ONNX);
  before?.(m);
  const report = applyDca(m, options, 512);
  expect(report.left).toEqual([]);
  const out = join(tmp, `${Math.random().toString(36).slice(2)}.onnx`);
  saveModelFile(m, out);
  return out;
}

const flat = (rows: Float32Array[]) => {
  const out = new Float32Array(rows.length * rows[0]!.length);
  rows.forEach((r, i) => out.set(r, i * r.length));
  return out;
};

describe('the TypeScript reference forward', () => {
  it('matches the shipped reference logits (64 tokens) — so it can judge DCA', () => {
    const ids = reference.input_ids;
    const ref = new Float32Array(readFileSync(shared('tinystories-656k', 'reference_logits.f32')).buffer.slice(0));
    expect(maxAbs(flat(llamaForward(weights, TINYSTORIES_CONFIG, ids, ordinary)), ref)).toBeLessThan(1e-4);
  });
});

describe('dca', () => {
  let small = '';
  beforeAll(() => {
    small = patched({ chunkSize: 12, localWindow: 4 });
  });

  it('is exact (≤ 1e-4) for T ≤ CS + 1 with the default parameters (CS 384, LW 64)', async () => {
    const v = await verifyModels(ONNX, patched({}), { tokens: 32 });
    expect(v.maxAbsDiff).toBeLessThanOrEqual(1e-4);
    expect(v.greedyMatch).toBe(true);
  });

  it('CS=12, LW=4 over 40 tokens (5 chunks): one prefill call = the reference (queries span chunks)', async () => {
    const expected = flat(llamaForward(weights, TINYSTORIES_CONFIG, IDS, dcaPositions(12, 4)));
    expect(maxAbs(await logitsInCalls(small, IDS, [40]), expected)).toBeLessThanOrEqual(1e-4);
  });

  it('… token by token (decode: sliced keys) and in chunk-aligned calls of L = 8 tokens', async () => {
    const expected = flat(llamaForward(weights, TINYSTORIES_CONFIG, IDS, dcaPositions(12, 4)));
    expect(maxAbs(await logitsInCalls(small, IDS, new Array(40).fill(1)), expected)).toBeLessThanOrEqual(1e-4);
    expect(maxAbs(await logitsInCalls(small, IDS, [8, 8, 8, 8, 8]), expected)).toBeLessThanOrEqual(1e-4);
    // Calls that start mid-chunk and span several.
    expect(maxAbs(await logitsInCalls(small, IDS, [5, 13, 1, 21]), expected)).toBeLessThanOrEqual(1e-4);
  });

  it('differs from ordinary attention past CS + 1 tokens (the patch does something)', async () => {
    const ordinaryLogits = flat(llamaForward(weights, TINYSTORIES_CONFIG, IDS, ordinary));
    expect(maxAbs(await logitsInCalls(small, IDS, [40]), ordinaryLogits)).toBeGreaterThan(0.1);
  });

  it("temperature 'chunkllama' scales logits by (0.05·ln(T/c) + 1)² past the trained length", async () => {
    const file = patched({ chunkSize: 12, localWindow: 4, trainedLength: 16, temperature: 'chunkllama' });
    const f = 0.05 * Math.log(40 / 16) + 1;
    const expected = flat(llamaForward(weights, TINYSTORIES_CONFIG, IDS, dcaPositions(12, 4), f * f));
    expect(maxAbs(await logitsInCalls(file, IDS, [40]), expected)).toBeLessThanOrEqual(1e-4);
  });

  it('interBias γ adds −γ·ln(#inter chunks) to inter-chunk logits (one-shot and decode)', async () => {
    const file = patched({ chunkSize: 12, localWindow: 4, interBias: 0.7 });
    const expected = flat(llamaForward(weights, TINYSTORIES_CONFIG, IDS, dcaPositions(12, 4, 0.7)));
    expect(maxAbs(await logitsInCalls(file, IDS, [40]), expected)).toBeLessThanOrEqual(1e-4);
    expect(maxAbs(await logitsInCalls(file, IDS, [8, 8, 8, 8, 8]), expected)).toBeLessThanOrEqual(1e-4);
  });

  it('composes after gqa (the GQA blocks are re-lowered; exact within CS + 1)', async () => {
    const file = patched({}, (m) => applyGqa(m));
    const v = await verifyModels(ONNX, file, { tokens: 16 });
    expect(v.maxAbsDiff).toBeLessThanOrEqual(1e-4);
  });

  for (const [folder, bound] of [['tiny-random-llama-fp32-gqa', 1e-4], ['tiny-random-llama-fp16-mha', 2e-3]] as const) {
    it(`${folder}: fused blocks (built-in rotary / RotaryEmbedding nodes) lower to DCA, exact within CS + 1`, async () => {
      const file = shared(folder, 'model.onnx');
      const m = loadModelFile(file);
      const report = applyDca(m, { trainedLength: 64 }); // CS 48, LW 8
      expect(report.left).toEqual([]);
      expect(report.patched).toHaveLength(2);
      const out = join(tmp, `${folder}.onnx`);
      saveModelFile(m, out);
      const v = await verifyModels(file, out, { tokens: 40, prompt: [1, 2, 3, 4, 5, 6, 7, 8] });
      expect(v.maxAbsDiff).toBeLessThanOrEqual(bound);
      expect(v.greedyMatch).toBe(true);
    });
  }

  it('gqa after dca says why it cannot, and inspect lifts the DCA calls', () => {
    const m = loadModelFile(ONNX);
    applyDca(m, {}, 512);
    const blocks = liftAttention(m).blocks;
    expect(blocks.map((b) => [b.form, b.numHeads, b.numKvHeads, b.headDim])).toEqual([['dca', 8, 4, 16], ['dca', 8, 4, 16]]);
    expect(blocks[0]?.past?.key.name).toBe('past_key_values.0.key');
    expect(applyGqa(m).left[0]?.reason).toMatch(/apply gqa before dca/);
  });

  it('rejects parameters that make no sense, naming the field', () => {
    const cases: [DcaOptions, RegExp][] = [
      [{ chunkSize: 512 }, /chunkSize 512 must be below the trained length 512/],
      [{ chunkSize: 100, localWindow: 100 }, /localWindow 100 must be below chunkSize 100/],
      [{ temperature: 'hot' as never }, /temperature must be one of none, chunkllama, qwen/],
    ];
    for (const [options, message] of cases) {
      try {
        applyDca(loadModelFile(ONNX), options, 512);
        expect.unreachable();
      } catch (e) {
        expect(isAttnpatchError(e) && e.code).toBe('USAGE');
        expect((e as Error).message).toMatch(message);
      }
    }
    expect(() => applyDca(loadModelFile(ONNX), {})).toThrow(/dca needs the trained context length/);
  });
});
