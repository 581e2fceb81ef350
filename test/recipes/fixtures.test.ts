/**
 * The shared fixtures that come with a config.json: which recipe `auto` picks, and that its default patches apply to
 * the real graph — or that what it refuses is refused with the recipe's reason.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadModelFile } from '../../src/graph/io/fs.js';
import { inspectModel } from '../../src/patchers/inspect.js';
import { applyPatches } from '../../src/patchers/spec.js';
import { builtinRecipes } from '../../src/recipes/load.js';
import { matchRecipe, type ModelConfig } from '../../src/recipes/match.js';
import { checkForms, planRecipe } from '../../src/recipes/plan.js';
import type { Recipe } from '../../src/recipes/schema.js';
import { patchContextOf } from '../../src/runtime/model-folder.js';
import { shared } from '../support/paths.js';

let recipes: readonly Recipe[];
beforeAll(async () => {
  recipes = await builtinRecipes();
});

const config = (folder: string) => JSON.parse(readFileSync(shared(folder, 'config.json'), 'utf8')) as ModelConfig;

interface Case {
  folder: string;
  model: string[];
  recipe: string;
  /** The auto plan's specs. */
  auto: unknown[];
  /** What each auto patch did: blocks patched (all of them: nothing left). */
  patched: number[];
  /** A request the recipe refuses, and the start of its message. */
  refused?: [string[], RegExp];
}

const CASES: Case[] = [
  { folder: 'tinystories-656k-optimum', model: ['onnx', 'model.onnx'], recipe: 'tinystories', auto: [{ dca: { trainedLength: 512 } }], patched: [2] },
  { folder: 'bench-llama-random', model: ['onnx', 'model.onnx'], recipe: 'llama', auto: [{ gqa: {} }], patched: [4], refused: [['gqa:window=512', 'dca'], /^recipe llama refuses gqa → dca: DualChunkAttention has no window, so dca leaves every block gqa gives a window/] },
  {
    folder: 'qwen3.5-0.8b-onnx-community-q4-graph-only',
    model: ['decoder_model_merged_q4.onnx'],
    recipe: 'qwen3_5',
    auto: [],
    patched: [],
    refused: [['dca'], /^recipe qwen3_5 refuses dca: only 6 of 24 layers are attention: the 18 Gated DeltaNet layers carry a recurrent state/],
  },
  { folder: 'tiny-random-gpt2-fp32-ortfused', model: ['past.onnx'], recipe: 'gpt2', auto: [{ gqa: {} }], patched: [5], refused: [['dca'], /^recipe gpt2 refuses dca: GPT-2 adds learned absolute position embeddings \(wpe\)/] },
  { folder: 'tiny-random-gpt2-fp16-ortfused', model: ['past.onnx'], recipe: 'gpt2', auto: [{ gqa: {} }], patched: [5], refused: [['mla'], /^recipe gpt2 refuses mla: the mla patch needs rotary keys/] },
];

describe.each(CASES)('$folder', (c) => {
  it(`matches ${c.recipe}; its default patches apply to every block`, () => {
    const cfg = config(c.folder);
    const recipe = matchRecipe(recipes, cfg);
    expect(recipe.name).toBe(c.recipe);
    const plan = planRecipe(recipe, cfg);
    expect(plan.specs).toEqual(c.auto);
    // Structure only where the fixture has no weights (qwen3.5): gqa on fused blocks reads none.
    const model = loadModelFile(shared(c.folder, ...c.model), { allowMissingExternalData: true });
    const forms = inspectModel(model).attention.map((b) => b.form);
    expect(forms.every((f) => recipe.match.exports.includes(f as never))).toBe(true);
    checkForms(plan, forms);
    const reports = applyPatches(model, plan.specs, patchContextOf(cfg));
    expect(reports.map((r) => r.patched.length)).toEqual(c.patched);
    for (const r of reports) expect(r.left).toEqual([]);
  });

  if (c.refused) {
    const [request, reason] = c.refused;
    it(`refuses ${request.join(' → ')} with the recipe's reason`, () => {
      expect(() => planRecipe(matchRecipe(recipes, config(c.folder)), config(c.folder), request)).toThrow(reason);
    });
  }
});

it('qwen3.5: gqa is allowed and leaves the six GroupQueryAttention layers as they are', () => {
  const cfg = config('qwen3.5-0.8b-onnx-community-q4-graph-only');
  const plan = planRecipe(matchRecipe(recipes, cfg), cfg, 'gqa');
  const model = loadModelFile(shared('qwen3.5-0.8b-onnx-community-q4-graph-only', 'decoder_model_merged_q4.onnx'), { allowMissingExternalData: true });
  const [report] = applyPatches(model, plan.specs);
  expect(report!.patched.map((p) => [p.layer, p.to])).toEqual([3, 7, 11, 15, 19, 23].map((l) => [l, 'GroupQueryAttention (unchanged)']));
});
