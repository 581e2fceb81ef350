/**
 * @file Recipes: per-family knowledge as data (`recipes/*.json`). Pick one from a config.json, validate one, and
 * turn a request (`'auto'` or named patches) into patch specs with the family's defaults and refusals.
 */
export { RecipeSchema, PATCH_NAMES, EXPORT_FORMS, type Recipe, type Refusal, type PatchName, type ExportForm } from './schema.js';
export { parseRecipe } from './parse.js';
export { BUILTIN_RECIPES, builtinRecipes, builtinRecipe, loadRecipeFile, namedRecipe } from './load.js';
export { identify, matchRecipe, matchScore, configValue, type ModelConfig, type ConfigIdentity } from './match.js';
export { planRecipe, checkForms, isAuto, resolveNumber, type RecipePlan } from './plan.js';
export { selectRecipe, recipePlan, type RecipeRef } from './select.js';
export { mergeGenaiConfig, contextLengthOf, genaiContextLength } from './genai.js';
