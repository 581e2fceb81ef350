/** Picking a recipe from config.json: by model_type / architectures, the most specific wins, unknowns say what to do. */
import { beforeAll, describe, expect, it } from 'vitest';
import { builtinRecipes } from './load.js';
import { identify, matchRecipe, matchScore } from './match.js';
import { parseRecipe } from './parse.js';
import type { Recipe } from './schema.js';

let recipes: readonly Recipe[];
beforeAll(async () => {
  recipes = await builtinRecipes();
});

const pick = (config: Record<string, unknown>) => matchRecipe(recipes, config).name;
const TINYSTORIES = { model_type: 'llama', architectures: ['LlamaForCausalLM'], hidden_size: 128, num_hidden_layers: 2, num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 2048, max_position_embeddings: 512 };

describe('matchRecipe', () => {
  it.each([
    [{ model_type: 'llama', architectures: ['LlamaForCausalLM'] }, 'llama'],
    [{ architectures: ['LlamaForCausalLM'] }, 'llama'],
    [{ model_type: 'qwen2' }, 'qwen2'],
    [{ model_type: 'qwen3', architectures: ['Qwen3ForCausalLM'] }, 'qwen3'],
    [{ model_type: 'mistral' }, 'mistral'],
    [{ model_type: 'phi3' }, 'phi3'],
    [{ model_type: 'gemma2' }, 'gemma2'],
    [{ model_type: 'gemma3_text' }, 'gemma3'],
    [{ model_type: 'gemma3', text_config: { model_type: 'gemma3_text' }, architectures: ['Gemma3ForConditionalGeneration'] }, 'gemma3'],
    [{ model_type: 'qwen3_5', text_config: { model_type: 'qwen3_5_text' } }, 'qwen3_5'],
    [{ model_type: 'gpt2', architectures: ['GPT2LMHeadModel'] }, 'gpt2'],
    [{ model: { type: 'gpt2' }, _name_or_path: 'hf-internal-testing/tiny-random-gpt2' }, 'gpt2'], // GenAI config merged in, no model_type
    [{ model_type: 'llama', architectures: ['LlamaForCausalLM'], vocab_size: 49152, max_position_embeddings: 8192 }, 'smollm'],
    [TINYSTORIES, 'tinystories'],
    [{ ...TINYSTORIES, max_position_embeddings: 4096 }, 'llama'],
  ])('%j → %s', (config, name) => {
    expect(pick(config)).toBe(name);
  });

  it('an exact-config recipe outranks the family recipe it refines', () => {
    const byName = (n: string) => recipes.find((r) => r.name === n)!;
    expect(matchScore(byName('tinystories'), TINYSTORIES)).toBeGreaterThan(matchScore(byName('llama'), TINYSTORIES));
    expect(matchScore(byName('qwen2'), TINYSTORIES)).toBe(0);
  });

  it('an unknown family lists the recipes and says how to write one', () => {
    expect(() => matchRecipe(recipes, { model_type: 'falcon', architectures: ['FalconForCausalLM'] }, '/m/config.json')).toThrow(
      /^no recipe for model_type "falcon" \(architectures FalconForCausalLM\)\. Recipes exist for: gemma2 \(gemma2\), .*llama \(llama\).*\. If the family has the same attention as one of these, write a recipe: .*attnpatch recipes validate FILE.*--recipe FILE.*see docs\/recipes\.md \[file=\/m\/config\.json\]$/,
    );
  });

  it('no config at all, and a tie between two recipes, are usage errors that say what to do', () => {
    expect(() => matchRecipe(recipes, undefined)).toThrow(/picks a recipe from the model's config\.json .* and there is none; name the patches, or give a recipe/);
    const twin = parseRecipe({ ...recipes.find((r) => r.name === 'qwen2')!, name: 'qwen2-copy' }, 'x.json');
    expect(() => matchRecipe([...recipes, twin], { model_type: 'qwen2' })).toThrow(/^recipes qwen2 and qwen2-copy match this config equally/);
  });

  it('identify reads model_type, text_config.model_type, GenAI model.type and architectures', () => {
    expect(identify({ model_type: 'gemma3', text_config: { model_type: 'gemma3_text' }, architectures: ['Gemma3ForConditionalGeneration', 7] })).toEqual({
      modelTypes: ['gemma3', 'gemma3_text'],
      architectures: ['Gemma3ForConditionalGeneration'],
    });
    expect(identify({ model_type: null, model: { type: 'gpt2' } })).toEqual({ modelTypes: ['gpt2'], architectures: [] });
  });
});
