/** Align-then-merge: the small linear algebra, the function-preserving transforms (ORT logits), the aligned merge. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../graph/build/builder.js';
import { saveModelToBytes } from '../../graph/io/bytes.js';
import { loadModelFile } from '../../graph/io/fs.js';
import { isAttnpatchError } from '../../errors.js';
import { collectKvCalibrationFromText } from '../../runtime/eval/calibrate.js';
import { evaluatePerplexityIds } from '../../runtime/eval/perplexity.js';
import { tokenizeText } from '../../runtime/eval/tokenize.js';
import { OrtDecoder, type OrtModule } from '../../runtime/ort/decoder.js';
import { maxAbs } from '../../runtime/verify.js';
import { REPO_ROOT, shared } from '../../../test/support/paths.js';
import * as ort from 'onnxruntime-node';
import type { AttentionBlock } from '../attention/block.js';
import { liftAttention } from '../attention/lift.js';
import { alignKvHeads, keyTransforms, nearestOrthogonal, nearestRotation2, procrustesGroup, svd, type KvCalibration } from './align.js';
import { applyGqa, type GqaOptions } from './index.js';

const FOLDER = join(REPO_ROOT, 'models', 'tinystories-656k');
const TINY = join(FOLDER, 'onnx', 'model.onnx');
const BENCH = shared('bench-llama-random', 'onnx', 'model.onnx');
const PART1 = readFileSync(shared('corpus-tinystories-val', 'tinystories_val.txt'), 'utf8');
const PART2 = readFileSync(shared('corpus-tinystories-val', 'tinystories_val_part2.txt'), 'utf8');

/** Deterministic pseudo-random numbers in [-1, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 31) - 1;
}

function mul(a: Float64Array, b: Float64Array, n: number, transposeA = false): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) out[i * n + j]! += (transposeA ? a[k * n + i]! : a[i * n + k]!) * b[k * n + j]!;
  return out;
}

function expectOrthogonal(q: Float64Array, n: number): void {
  const qtq = mul(q, q, n, true);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) expect(qtq[i * n + j]!).toBeCloseTo(i === j ? 1 : 0, 10);
}

describe('linear algebra', () => {
  it('svd reconstructs a matrix with orthogonal factors, also a rank-deficient one', () => {
    const r = rng(1);
    for (const n of [1, 2, 5, 16]) {
      const a = Float64Array.from({ length: n * n }, r);
      if (n === 5) for (let i = 0; i < n; i++) a[i * n + 4] = a[i * n + 3]!; // rank 4
      const { u, s, v } = svd(a, n);
      expectOrthogonal(u, n);
      expectOrthogonal(v, n);
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          let x = 0;
          for (let k = 0; k < n; k++) x += u[i * n + k]! * s[k]! * v[j * n + k]!;
          expect(x).toBeCloseTo(a[i * n + j]!, 10);
        }
      }
    }
  });

  it('nearestOrthogonal recovers the rotation of a rotated-and-scaled matrix; nearestRotation2 has det +1', () => {
    const r = rng(2);
    const n = 6;
    const q = nearestOrthogonal(Float64Array.from({ length: n * n }, r), n);
    expectOrthogonal(q, n);
    // a = q · diag(positive): its polar factor is q.
    const a = Float64Array.from(q, (x, i) => x * (1 + (i % n)));
    const back = nearestOrthogonal(a, n);
    for (let i = 0; i < n * n; i++) expect(back[i]!).toBeCloseTo(q[i]!, 10);
    const rot = nearestRotation2(Float64Array.of(0, 1, 1, 0)); // a reflection: the best rotation is not it
    expect(rot[0]! * rot[3]! - rot[1]! * rot[2]!).toBeCloseTo(1, 12);
  });

  it('generalized Procrustes aligns heads that are rotated copies of one another', () => {
    // Y_1 = Y_0 · Rᵀ: the transform of head 1 must undo R (T_1 = R, T_0 = I).
    const r = rng(3);
    const d = 4;
    const rows = 50;
    const rot = nearestOrthogonal(Float64Array.from({ length: d * d }, r), d);
    const y = new Float64Array(rows * 2 * d);
    for (let t = 0; t < rows; t++) {
      const y0 = Array.from({ length: d }, r);
      for (let a = 0; a < d; a++) {
        y[t * 2 * d + a] = y0[a]!;
        let x = 0;
        for (let c = 0; c < d; c++) x += y0[c]! * rot[a * d + c]!; // (Y_0 Rᵀ)[t, a]
        y[t * 2 * d + d + a] = x;
      }
    }
    const n = 2 * d;
    const gram = new Float64Array(n * n);
    for (let t = 0; t < rows; t++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) gram[i * n + j]! += y[t * n + i]! * y[t * n + j]!;
    const [t0, t1] = procrustesGroup(gram, n, [0, 1], d, [0, 1, 2, 3], nearestOrthogonal);
    for (let i = 0; i < d * d; i++) {
      expect(t0![i]!).toBeCloseTo(i % (d + 1) === 0 ? 1 : 0, 8);
      expect(t1![i]!).toBeCloseTo(rot[i]!, 8);
    }
  });

  it('key transforms are rotations on the rope planes only (interleaved and partial rotary)', () => {
    const block = { numHeads: 4, numKvHeads: 2, headDim: 8, rope: { interleaved: true, rotaryDim: 4 } } as unknown as AttentionBlock;
    const r = rng(4);
    const n = 16;
    const x = Float64Array.from({ length: n * n }, r);
    const gram = mul(x, x, n, true);
    const [, t1] = keyTransforms(block, gram, 2);
    expectOrthogonal(t1!, 8);
    const inPlane = (i: number, j: number) => (i < 4 && j < 4 ? Math.floor(i / 2) === Math.floor(j / 2) : i >= 4 && j >= 4);
    for (let i = 0; i < 8; i++) for (let j = 0; j < 8; j++) if (!inPlane(i, j)) expect(t1![i * 8 + j]).toBe(0);
    for (const p of [0, 2]) expect(t1![p * 9]! * t1![(p + 1) * 9]! - t1![p * 8 + p + 1]! * t1![(p + 1) * 8 + p]!).toBeCloseTo(1, 12);
  });
});

/** Logits of the original and a transformed model on one 64-token prompt. */
async function logitDiff(original: string, transformed: Uint8Array): Promise<number> {
  const mod = ort as unknown as OrtModule;
  const [a, b] = await Promise.all([OrtDecoder.create(mod, original), OrtDecoder.create(mod, transformed)]);
  try {
    const ids = Array.from({ length: 64 }, (_, i) => 3 + ((i * 37 + 11) % 2000));
    const [ra, rb] = await Promise.all([a.step(ids), b.step(ids)]);
    return maxAbs(ra.logits, rb.logits);
  } finally {
    await Promise.all([a.release(), b.release()]);
  }
}

/** Applies only the alignment (no merge) to every block; returns the model bytes and the largest weight change. */
function alignOnly(file: string, groupSize: number, calibration?: KvCalibration): { bytes: Uint8Array; changed: boolean } {
  const m = loadModelFile(file);
  const b = new GraphBuilder(m, m.graph, 'align');
  let changed = false;
  for (const block of liftAttention(m).blocks) {
    const { key, value } = alignKvHeads(b, block, groupSize, calibration);
    const off = (t: Float64Array, d: number) => t.some((x, i) => Math.abs(x - (i % (d + 1) === 0 ? 1 : 0)) > 1e-3);
    changed ||= [...key, ...value].some((t) => off(t, block.headDim));
  }
  return { bytes: saveModelToBytes(m), changed };
}

describe('aligned KV-head merge', () => {
  let calibration: KvCalibration;
  beforeAll(async () => {
    calibration = await collectKvCalibrationFromText({ model: loadModelFile(TINY), tokenizerFolder: FOLDER, text: PART1, tokens: 4096 });
  });

  it('calibration: one symmetric (Hkv·Dh)² Gram per k/v projection output, the model left unchanged', async () => {
    const m = loadModelFile(TINY);
    const before = m.graph.outputs.map((v) => v.name);
    const c = await collectKvCalibrationFromText({ model: m, tokenizerFolder: FOLDER, text: PART1, tokens: 600 });
    expect(m.graph.outputs.map((v) => v.name)).toEqual(before);
    expect(c.tokens).toBe(600);
    expect([...c.grams.keys()]).toEqual([0, 1].flatMap((l) => ['k', 'v'].map((p) => `/model/layers.${l}/self_attn/${p}_proj/MatMul_output_0`)));
    for (const g of c.grams.values()) {
      expect(g.length).toBe(64 * 64);
      expect(g[1 * 64 + 5]).toBe(g[5 * 64 + 1]);
      expect(g[3 * 65]).toBeGreaterThan(0);
    }
    expect(calibration.tokens).toBe(4096);
  });

  it('the alignment transforms alone leave ORT logits unchanged (≤ 1e-4): calibrated and weights-only', async () => {
    for (const [group, c] of [[2, calibration], [4, calibration], [2, undefined]] as const) {
      const { bytes, changed } = alignOnly(TINY, group, c);
      expect(changed).toBe(true);
      expect(await logitDiff(TINY, bytes)).toBeLessThanOrEqual(1e-4);
    }
  });

  it('bench-llama-random (head dim 64, 2 KV heads): alignment alone is exact too', async () => {
    const { bytes, changed } = alignOnly(BENCH, 2);
    expect(changed).toBe(true);
    expect(await logitDiff(BENCH, bytes)).toBeLessThanOrEqual(1e-4);
  });

  it('aligned merge runs, halves the cache, and beats mean pooling on held-out text', async () => {
    const { ids } = await tokenizeText(FOLDER, PART2.slice(0, 30_000));
    const ppl = async (options: GqaOptions) => {
      const m = loadModelFile(TINY);
      const report = applyGqa(m, options);
      expect(report.left).toEqual([]);
      expect(m.graph.input('past_key_values.0.key')?.type).toMatchObject({ shape: ['batch_size', 2, 'past_sequence_length', 16] });
      return { report, r: await evaluatePerplexityIds({ model: saveModelToBytes(m), ids, context: 512, windows: 8 }) };
    };
    const mean = await ppl({ kvHeads: 2 });
    const aligned = await ppl({ kvHeads: 2, merge: 'aligned', calibration });
    expect(aligned.report.warnings.join()).toMatch(/aligns \(calibrated on 4096 tokens\) then mean-pools/);
    expect(Number.isFinite(aligned.r.ppl)).toBe(true);
    // Measured: ~510 (mean) vs ~140 (aligned) on 25k held-out tokens.
    expect(aligned.r.ppl).toBeLessThan(mean.r.ppl * 0.6);
  });

  it('rejects a bad merge mode and a calibration that is not statistics', () => {
    for (const bad of [{ kvHeads: 2, merge: 'median' }, { kvHeads: 2, merge: 'aligned', calibration: 'calib.txt' }] as unknown as GqaOptions[]) {
      try {
        applyGqa(loadModelFile(TINY), bad);
        expect.unreachable();
      } catch (e) {
        expect(isAttnpatchError(e) && e.code).toBe('USAGE');
      }
    }
  });

  it('a calibration of another model leaves the blocks unpatched, with the reason', () => {
    const wrong: KvCalibration = { tokens: 1, grams: new Map() };
    const report = applyGqa(loadModelFile(TINY), { kvHeads: 2, merge: 'aligned', calibration: wrong });
    expect(report.patched).toEqual([]);
    expect(report.left[0]?.reason).toMatch(/calibration has no activations of \/model\/layers\.0\/self_attn\/k_proj/);
  });
});
