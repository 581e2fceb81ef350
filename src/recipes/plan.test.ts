/** Planning a request under a recipe: defaults under the request, refusals with the recipe's reason, 'auto'. */
import { beforeAll, describe, expect, it } from 'vitest';
import { builtinRecipes } from './load.js';
import { parseRecipe } from './parse.js';
import { checkForms, isAuto, planRecipe, resolveNumber } from './plan.js';
import type { Recipe } from './schema.js';

let byName: (name: string) => Recipe;
beforeAll(async () => {
  const recipes = await builtinRecipes();
  byName = (name) => recipes.find((r) => r.name === name)!;
});

const MISTRAL_V01 = { model_type: 'mistral', sliding_window: 4096, max_position_embeddings: 32768 };
const MISTRAL_V03 = { model_type: 'mistral', sliding_window: null, max_position_embeddings: 32768 };

describe('planRecipe', () => {
  it("'auto' (or nothing) is the recipe's default list, with the trained length handed to dca", () => {
    expect(planRecipe(byName('tinystories'), undefined)).toMatchObject({ specs: [{ dca: { trainedLength: 512 } }], auto: true, trainedLength: 512 });
    expect(planRecipe(byName('llama'), { max_position_embeddings: 4096 }, 'auto')).toMatchObject({ specs: [{ gqa: {} }], trainedLength: 4096 });
    expect(planRecipe(byName('gemma2'), { max_position_embeddings: 8192 }).specs).toEqual([{ gqa: {} }]);
    expect(planRecipe(byName('qwen3_5'), { text_config: { max_position_embeddings: 262144 } }).specs).toEqual([]);
  });

  it("the request's own options win over the recipe's defaults", () => {
    expect(planRecipe(byName('llama'), { max_position_embeddings: 4096 }, ['gqa:kvHeads=2', 'dca:trainedLength=2048,interBias=1']).specs).toEqual([
      { gqa: { kvHeads: 2 } },
      { dca: { trainedLength: 2048, interBias: 1 } },
    ]);
  });

  it('a sliding window stays on under gqa, and refuses dca while it binds', () => {
    expect(planRecipe(byName('mistral'), MISTRAL_V01, 'gqa')).toMatchObject({ specs: [{ gqa: { window: 4096 } }], window: 4096 });
    expect(() => planRecipe(byName('mistral'), MISTRAL_V01, 'dca')).toThrow(/^recipe mistral refuses dca: this checkpoint attends through a sliding window .* \[field=patch\]$/);
    expect(() => planRecipe(byName('mistral'), MISTRAL_V01, ['gqa', 'dca'])).toThrow(/^recipe mistral refuses dca:/);
    expect(planRecipe(byName('mistral'), MISTRAL_V03, ['gqa', 'dca']).specs).toEqual([{ gqa: {} }, { dca: { trainedLength: 32768 } }]);
    // Phi-3.5: a 262144 window over a 131072 context never binds, so it is neither set nor a reason to refuse.
    const phi35 = { model_type: 'phi3', sliding_window: 262144, max_position_embeddings: 131072 };
    expect(planRecipe(byName('phi3'), phi35, ['gqa', 'dca'])).toMatchObject({ specs: [{ gqa: {} }, { dca: { trainedLength: 131072 } }], window: undefined });
    expect(() => planRecipe(byName('phi3'), { model_type: 'phi3', sliding_window: 2047, max_position_embeddings: 4096 }, 'dca')).toThrow(/recipe phi3 refuses dca/);
  });

  it('config-conditioned refusals apply only when the field is set', () => {
    expect(planRecipe(byName('qwen2'), { use_sliding_window: false, max_position_embeddings: 32768 }, 'dca').specs).toEqual([{ dca: { trainedLength: 32768 } }]);
    expect(() => planRecipe(byName('qwen2'), { use_sliding_window: true, max_position_embeddings: 32768 }, 'gqa')).toThrow(/^recipe qwen2 refuses gqa: with use_sliding_window Qwen2 windows only the layers from max_window_layers on/);
  });

  it('option-conditioned and unconditional refusals, and combinations the recipe does not list', () => {
    expect(() => planRecipe(byName('gemma2'), {}, 'gqa:window=512')).toThrow(/^recipe gemma2 refuses gqa: Gemma 2 alternates sliding-window \(4096\) and global layers/);
    expect(planRecipe(byName('gemma2'), {}, 'gqa').specs).toEqual([{ gqa: {} }]);
    expect(() => planRecipe(byName('gpt2'), { n_positions: 1024 }, 'dca')).toThrow(/^recipe gpt2 refuses dca: GPT-2 adds learned absolute position embeddings \(wpe\)/);
    expect(() => planRecipe(byName('llama'), {}, ['dca', 'gqa'])).toThrow('recipe llama allows gqa, dca, gqa → dca, mla, gqa → mla, dca → mla; not dca → gqa [field=patch]');
    // Every family: a gqa window would vanish under dca.
    expect(() => planRecipe(byName('llama'), { max_position_embeddings: 4096 }, ['gqa:window=256', 'dca'])).toThrow(/^recipe llama refuses gqa → dca: DualChunkAttention has no window, so dca leaves every block gqa gives a window/);
  });

  it('form-conditioned refusals wait for the graph', () => {
    const reason = 'in Optimum exports the quirk sits between the projections and rope';
    const recipe = parseRecipe({ ...byName('qwen3'), name: 'formy', refuse: [{ patches: ['dca'], when: { forms: ['unfused', 'sdpa'] }, reason }] }, 'formy.json');
    const plan = planRecipe(recipe, { max_position_embeddings: 40960 }, 'dca');
    expect(plan.pending).toHaveLength(1);
    expect(() => checkForms(plan, ['gqa'])).not.toThrow();
    expect(() => checkForms(plan, ['sdpa', 'gqa'])).toThrow(/^recipe formy refuses dca on sdpa attention: in Optimum exports the quirk sits between the projections and rope/);
    expect(planRecipe(recipe, {}, 'gqa').pending).toEqual([]);
  });

  it("'auto' stands alone; unknown patches fail as usual", () => {
    expect(isAuto('auto')).toBe(true);
    expect(isAuto(['auto'])).toBe(true);
    expect(isAuto(['gqa'])).toBe(false);
    expect(isAuto(undefined)).toBe(false);
    expect(() => isAuto(['auto', 'gqa'])).toThrow(/^'auto' stands alone/);
    expect(() => planRecipe(byName('llama'), {}, 'gqaa')).toThrow(/unknown patch "gqaa"/);
  });

  it('numbers from config: the first listed field that holds one', () => {
    expect(resolveNumber({ config: ['text_config.max_position_embeddings', 'max_position_embeddings'] }, { max_position_embeddings: 8 })).toBe(8);
    expect(resolveNumber({ config: ['text_config.max_position_embeddings', 'max_position_embeddings'] }, { text_config: { max_position_embeddings: 9 }, max_position_embeddings: 8 })).toBe(9);
    expect(resolveNumber({ config: 'sliding_window' }, { sliding_window: null })).toBeUndefined();
    expect(resolveNumber(12, undefined)).toBe(12);
  });
});

describe('common refusals (patch interactions, every family)', () => {
  it('mla → dca waits until dca lowers latent attention', () => {
    expect(() => planRecipe(byName('llama'), { max_position_embeddings: 4096 }, ['mla:rank=8', 'dca'])).toThrow(/^recipe llama refuses mla → dca: dca does not lower latent-attention \(mla\) blocks yet/);
    expect(planRecipe(byName('llama'), {}, 'mla:rank=8').specs).toEqual([{ mla: { rank: 8 } }]);
    // The other order composes (LatentDualChunkAttention): refusals name an order.
    expect(planRecipe(byName('llama'), { max_position_embeddings: 4096 }, ['dca', 'mla:rank=8']).specs).toEqual([{ dca: { trainedLength: 4096 } }, { mla: { rank: 8 } }]);
  });
});
