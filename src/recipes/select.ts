/**
 * @file The one entry point the pipeline and the CLI use: a recipe reference ('auto', a built-in name, a file, an
 * object) and the model's config.json → the recipe, then the plan for what was asked.
 */
import type { PatchSpec } from '../patchers/spec.js';
import { builtinRecipes, namedRecipe } from './load.js';
import { matchRecipe, type ModelConfig } from './match.js';
import { planRecipe, type RecipePlan } from './plan.js';
import type { Recipe } from './schema.js';

/** How a caller names a recipe: 'auto' (matched from config.json), a built-in name, a .json path (Node), an object. */
export type RecipeRef = 'auto' | string | Recipe | Readonly<Record<string, unknown>>;

/** The recipe `ref` names; 'auto' matches the config among the built-in recipes (`file` names the config in errors). */
export async function selectRecipe(ref: RecipeRef, config: ModelConfig | undefined, file?: string): Promise<Recipe> {
  if (ref === 'auto') return matchRecipe(await builtinRecipes(), config, file);
  return namedRecipe(ref);
}

/** Selects the recipe and plans `requested` (undefined or 'auto': the recipe's default patches) under it. */
export async function recipePlan(ref: RecipeRef, config: ModelConfig | undefined, requested?: PatchSpec | readonly PatchSpec[], file?: string): Promise<RecipePlan> {
  return planRecipe(await selectRecipe(ref, config, file), config, requested);
}
