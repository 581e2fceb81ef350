/**
 * Each test family (`test/support/families.ts`: llama, smollm, qwen2, qwen3, mistral, phi3, gemma2, gemma3) built in
 * its Optimum (unfused) and GenAI (fused GroupQueryAttention) export forms with random weights: the graph matches a
 * from-scratch forward (also across the sliding window, and the window / softcap measurably matter), the recipe
 * picked from its config.json applies its default patches (lossless ones still match), dca — where the recipe allows
 * it — matches the reference under Dual Chunk Attention positions past the chunk size, and where the recipe refuses a
 * patch, the refusal says why (and the patch itself leaves the blocks with the reason).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { saveModelToBytes } from '../../src/graph/io/bytes.js';
import type { Model } from '../../src/graph/ir/model.js';
import { inspectModel } from '../../src/patchers/inspect.js';
import { applyDca } from '../../src/patchers/dca/index.js';
import { applyMla } from '../../src/patchers/mla/index.js';
import { applyPatches } from '../../src/patchers/spec.js';
import { builtinRecipes } from '../../src/recipes/load.js';
import { matchRecipe } from '../../src/recipes/match.js';
import { checkForms, planRecipe } from '../../src/recipes/plan.js';
import type { Recipe } from '../../src/recipes/schema.js';
import { patchContextOf } from '../../src/runtime/model-folder.js';
import { buildFamily, type ExportForm } from '../support/family-graphs.js';
import { logitsInCalls } from '../support/ort-calls.js';
import { familyForward } from '../support/family-reference.js';
import { FAMILIES, familyConfig, familyWeights, WINDOW, type FamilyName, type FamilySpec } from '../support/families.js';
import { dcaPositions, type Positions } from '../support/llama-reference.js';

/** Token ids: a prefill of all but the last, then one decode step (the cache path). */
const IDS = [5, 17, 2, 40, 33, 8, 59, 21, 13];
/** Long enough to span three DCA chunks with trained length 16 (CS 12, LW 2, L 10), and four sliding windows of 6. */
const LONG = Array.from({ length: 26 }, (_, i) => (i * 23 + 7) % 61);
const TOL = 1e-4;

/** What each family's recipe does with its default patches and with dca / mla. */
interface Expected {
  /** The recipe config.json picks (default: the family's name). */
  recipe?: string;
  /** The recipe's default specs. */
  specs: object[];
  /** `to` of each patched block under the default patches, per form. */
  to: Record<ExportForm, string[]>;
  /** dca: exact, or the recipe's refusal and the reasons dca itself gives per block (null: lowered). */
  dca: 'exact' | { refusal: RegExp; left: (RegExp | null)[] };
  /** mla: the recipe's refusal, and the reason the patch gives for each block. */
  mla?: { refusal: RegExp; left: RegExp };
  /** gqa:window: the recipe's refusal (alternating sliding / global layers). */
  gqaWindow?: RegExp;
}

const fused = (...extra: string[]) => `GroupQueryAttention(${['do_rotary=1', ...extra].join(', ')})`;
const UNCHANGED = ['GroupQueryAttention (unchanged)', 'GroupQueryAttention (unchanged)'];
const PLAIN: Expected = { specs: [{ gqa: {} }], to: { optimum: [fused(), fused()], genai: UNCHANGED }, dca: 'exact' };
const EXPECTED: Record<FamilyName, Expected> = {
  llama: PLAIN,
  llama3: { ...PLAIN, recipe: 'llama' },
  smollm: PLAIN,
  qwen2: PLAIN,
  qwen3: PLAIN,
  phi3: {
    ...PLAIN,
    mla: { refusal: /^recipe phi3 refuses mla: the mla patch factors separate k\/v projections only/, left: /^(packed QKV projections are not factored yet|its q projection was not lifted as a separate graph value)$/ },
  },
  mistral: {
    specs: [{ gqa: { window: WINDOW } }],
    to: { optimum: [fused(`window=${WINDOW}`), fused(`window=${WINDOW}`)], genai: [`GroupQueryAttention(window=${WINDOW})`, `GroupQueryAttention(window=${WINDOW})`] },
    dca: { refusal: /^recipe mistral refuses dca: this checkpoint attends through a sliding window/, left: [/^it has sliding-window=6, which Dual Chunk Attention would drop$/, /^it has sliding-window=6/] },
    mla: { refusal: /^recipe mistral refuses mla: the MLA attention function has no window/, left: /^it uses sliding-window=6, which the MLA attention does not implement$/ },
  },
  gemma2: {
    specs: [{ gqa: {} }],
    to: { optimum: [fused(`window=${WINDOW}`, 'softcap=0.5'), fused('softcap=0.5')], genai: UNCHANGED },
    dca: { refusal: /^recipe gemma2 refuses dca: DualChunkAttention has neither the attention logit softcap/, left: [/^it has sliding-window=6, which Dual Chunk Attention would drop$/, /^it has softcap=0\.5, which Dual Chunk Attention would drop$/] },
    mla: { refusal: /^recipe gemma2 refuses mla: the MLA attention function has neither the logit softcap nor a window/, left: /^it uses (sliding-window=6|softcap=0\.5), which the MLA attention does not implement$/ },
    gqaWindow: /^recipe gemma2 refuses gqa: Gemma 2 alternates sliding-window \(4096\) and global layers, and gqa sets one window on every layer/,
  },
  gemma3: {
    specs: [{ gqa: {} }],
    to: { optimum: [fused(`window=${WINDOW}`), fused()], genai: UNCHANGED },
    dca: { refusal: /^recipe gemma3 refuses dca: five of every six layers attend through a sliding window/, left: [/^it has sliding-window=6, which Dual Chunk Attention would drop$/, null] },
    mla: { refusal: /^recipe gemma3 refuses mla: the MLA attention function has no window and no q\/k norm/, left: /^it uses (sliding-window=6|qk-norm), which the MLA attention does not implement$/ },
    gqaWindow: /^recipe gemma3 refuses gqa: Gemma 3 has five sliding-window layers \(512 or 1024\) to each global layer/,
  },
};

let recipes: readonly Recipe[];
beforeAll(async () => {
  recipes = await builtinRecipes();
});

/** Logits of every position from ONNX Runtime, prefill then one decode step. */
const runOrt = (model: Model, ids: readonly number[]) => logitsInCalls(saveModelToBytes(model), ids, [ids.length - 1, 1]);

function maxDiff(got: Float32Array, want: Float32Array[]): number {
  const flat = Float32Array.from(want.flatMap((r) => [...r]));
  expect(got.length).toBe(flat.length);
  return got.reduce((m, v, i) => Math.max(m, Math.abs(v - flat[i]!)), 0);
}

const FORMS: ExportForm[] = ['optimum', 'genai'];
const cases = (Object.keys(FAMILIES) as FamilyName[]).flatMap((f) => FORMS.map((form): [FamilyName, ExportForm] => [f, form]));

describe.each(cases)('%s, %s export', (family, form) => {
  const spec = FAMILIES[family];
  const expected = EXPECTED[family];
  const weights = familyWeights(spec);
  const config = familyConfig(spec);
  const build = () => buildFamily(form, spec, weights);
  const reference = (ids: readonly number[], positions?: Positions, s: FamilySpec = spec) => familyForward(s, weights, ids, positions);

  it('the graph matches the from-scratch forward (prefill + one decode step, and 26 tokens across the window)', async () => {
    expect(maxDiff(await runOrt(build(), IDS), reference(IDS))).toBeLessThanOrEqual(TOL);
    const long = await runOrt(build(), LONG);
    expect(maxDiff(long, reference(LONG))).toBeLessThanOrEqual(TOL);
    // The quirks matter: a reference without the window (or the softcap) is far from the graph.
    if (spec.windows.some((w) => w !== undefined)) expect(maxDiff(long, reference(LONG, undefined, { ...spec, windows: spec.windows.map(() => undefined) }))).toBeGreaterThan(1e-2);
    if (spec.softcap) expect(maxDiff(long, reference(LONG, undefined, { ...spec, softcap: 0 }))).toBeGreaterThan(1e-2);
    const { ropeScaling, ...unscaled } = spec;
    if (ropeScaling) expect(maxDiff(long, reference(LONG, undefined, unscaled))).toBeGreaterThan(1e-2);
  });

  it("config.json picks the family's recipe, and its default patches apply losslessly", async () => {
    const recipe = matchRecipe(recipes, config);
    expect(recipe.name).toBe(expected.recipe ?? family);
    const plan = planRecipe(recipe, config);
    expect(plan.specs).toEqual(expected.specs);
    const model = build();
    checkForms(plan, inspectModel(model).attention.map((b) => b.form));
    const [report] = applyPatches(model, plan.specs, patchContextOf(config));
    expect(report!.left).toEqual([]);
    expect(report!.lossy).toBe(false);
    expect(report!.patched.map((p) => p.to)).toEqual(expected.to[form]);
    expect(maxDiff(await runOrt(model, LONG), reference(LONG))).toBeLessThanOrEqual(TOL);
  });

  it('dca where the recipe allows it: Dual Chunk Attention positions past the chunk size, as the reference computes them; refused with the reason elsewhere', async () => {
    const recipe = matchRecipe(recipes, config);
    const model = build();
    const forms = inspectModel(model).attention.map((b) => b.form);
    if (expected.dca !== 'exact') {
      expect(() => planRecipe(recipe, config, 'dca')).toThrow(expected.dca.refusal);
      // The patch itself leaves the blocks whose quirks it would drop, with the reason.
      const report = applyDca(model, { trainedLength: spec.maxPositions });
      const reasons = expected.dca.left;
      expect(report.left.map((l) => l.layer)).toEqual(reasons.flatMap((r, i) => (r ? [i] : [])));
      report.left.forEach((l) => expect(l.reason).toMatch(reasons[l.layer]!));
      return;
    }
    const plan = planRecipe(recipe, config, 'dca');
    expect(plan.specs).toEqual([{ dca: { trainedLength: spec.maxPositions } }]);
    checkForms(plan, forms);
    const [report] = applyPatches(model, plan.specs, patchContextOf(config));
    expect(report!.left).toEqual([]);
    expect(report!.details).toMatchObject({ chunkSize: 12, localWindow: 2, chunkLength: 10 });
    expect(maxDiff(await runOrt(model, LONG), reference(LONG, dcaPositions(12, 2)))).toBeLessThanOrEqual(TOL);
  });

  // Registered only for the families they concern (not skipped elsewhere).
  if (expected.gqaWindow) it('gqa:window: the recipe refuses one window for every layer', () => {
    expect(() => planRecipe(matchRecipe(recipes, config), config, `gqa:window=${WINDOW}`)).toThrow(expected.gqaWindow!);
  });

  if (expected.mla) it('mla: the recipe refuses it with the reason, and the patch leaves every block with it', () => {
    const { refusal, left } = expected.mla!;
    expect(() => planRecipe(matchRecipe(recipes, config), config, 'mla')).toThrow(refusal);
    const report = applyMla(build(), { rank: 8 });
    expect(report.patched).toEqual([]);
    expect(report.left).toHaveLength(spec.layers);
    for (const l of report.left) expect(l.reason).toMatch(left);
  });
});
