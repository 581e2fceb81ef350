/**
 * Each test family (llama: grouped KV heads, qwen2: q/k/v biases, qwen3: q/k RMSNorm) built in its Optimum (unfused)
 * and GenAI (fused GroupQueryAttention) export forms with random weights: the graph matches a from-scratch forward,
 * the recipe picked from its config.json applies its default patches (lossless ones still match), and dca — where the
 * recipe allows it — matches the reference under Dual Chunk Attention positions past the chunk size.
 */
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { saveModelToBytes } from '../../src/graph/io/bytes.js';
import type { Model } from '../../src/graph/ir/model.js';
import { inspectModel } from '../../src/patchers/inspect.js';
import { applyPatches } from '../../src/patchers/spec.js';
import { builtinRecipes } from '../../src/recipes/load.js';
import { matchRecipe } from '../../src/recipes/match.js';
import { checkForms, planRecipe } from '../../src/recipes/plan.js';
import type { Recipe } from '../../src/recipes/schema.js';
import { OrtDecoder } from '../../src/runtime/ort/decoder.js';
import { patchContextOf } from '../../src/runtime/model-folder.js';
import { buildFamily, type ExportForm } from '../support/family-graphs.js';
import { familyForward } from '../support/family-reference.js';
import { FAMILIES, familyConfig, familyWeights, type FamilyName } from '../support/families.js';
import { dcaPositions, type Positions } from '../support/llama-reference.js';

/** Token ids: a prefill of all but the last, then one decode step (the cache path). */
const IDS = [5, 17, 2, 40, 33, 8, 59, 21, 13];
/** Long enough to span three DCA chunks with trained length 16 (CS 12, LW 2, L 10). */
const LONG = Array.from({ length: 26 }, (_, i) => (i * 23 + 7) % 61);
const TOL = 1e-4;

let recipes: readonly Recipe[];
beforeAll(async () => {
  recipes = await builtinRecipes();
});

/** Logits of every position from ONNX Runtime, prefill then one decode step. */
async function runOrt(model: Model, ids: readonly number[]): Promise<Float32Array> {
  const dec = await OrtDecoder.create(ort, saveModelToBytes(model));
  try {
    const a = await dec.step(ids.slice(0, -1));
    const b = await dec.step(ids.slice(-1));
    return Float32Array.from([...a.logits, ...b.logits]);
  } finally {
    await dec.release();
  }
}

function maxDiff(got: Float32Array, want: Float32Array[]): number {
  const flat = Float32Array.from(want.flatMap((r) => [...r]));
  expect(got.length).toBe(flat.length);
  return got.reduce((m, v, i) => Math.max(m, Math.abs(v - flat[i]!)), 0);
}

const cases: [FamilyName, ExportForm][] = [
  ['llama', 'optimum'],
  ['llama', 'genai'],
  ['qwen2', 'optimum'],
  ['qwen2', 'genai'],
  ['qwen3', 'optimum'],
  ['qwen3', 'genai'],
];

describe.each(cases)('%s, %s export', (family, form) => {
  const spec = FAMILIES[family];
  const weights = familyWeights(spec);
  const config = familyConfig(spec);
  const build = () => buildFamily(form, spec, weights);
  const reference = (ids: readonly number[], positions?: Positions) => familyForward(spec, weights, ids, positions);

  it('the graph matches the from-scratch forward (prefill + one decode step)', async () => {
    expect(maxDiff(await runOrt(build(), IDS), reference(IDS))).toBeLessThanOrEqual(TOL);
  });

  it("config.json picks the family's recipe, and its default patches apply", async () => {
    const recipe = matchRecipe(recipes, config);
    expect(recipe.name).toBe(family);
    const plan = planRecipe(recipe, config);
    expect(plan.specs).toEqual([{ gqa: {} }]);
    const model = build();
    checkForms(plan, inspectModel(model).attention.map((b) => b.form));
    const [report] = applyPatches(model, plan.specs, patchContextOf(config));
    expect(report!.left).toEqual([]);
    expect(report!.lossy).toBe(false);
    expect(report!.patched.map((p) => p.to)).toEqual(new Array(spec.layers).fill(form === 'genai' ? 'GroupQueryAttention (unchanged)' : 'GroupQueryAttention(do_rotary=1)'));
    expect(maxDiff(await runOrt(model, IDS), reference(IDS))).toBeLessThanOrEqual(TOL);
  });

  it('dca where the recipe allows it: Dual Chunk Attention positions past the chunk size, as the reference computes them', async () => {
    const recipe = matchRecipe(recipes, config);
    const plan = planRecipe(recipe, config, 'dca');
    expect(plan.specs).toEqual([{ dca: { trainedLength: spec.maxPositions } }]);
    const model = build();
    const forms = inspectModel(model).attention.map((b) => b.form);
    checkForms(plan, forms);
    const [report] = applyPatches(model, plan.specs, patchContextOf(config));
    expect(report!.left).toEqual([]);
    expect(report!.details).toMatchObject({ chunkSize: 12, localWindow: 2, chunkLength: 10 });
    expect(maxDiff(await runOrt(model, LONG), reference(LONG, dcaPositions(12, 2)))).toBeLessThanOrEqual(TOL);
  });
});
