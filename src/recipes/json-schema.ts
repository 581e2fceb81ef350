/** @file The recipe schema as JSON Schema text (zod 4's `z.toJSONSchema`), for docs/recipe.schema.json. */
import { z } from 'zod';
import { RecipeSchema } from './schema.js';

/** docs/recipe.schema.json's exact text: the input form (fields with defaults are optional), 2-space JSON. */
export function recipeJsonSchema(): string {
  const schema = z.toJSONSchema(RecipeSchema, { io: 'input', target: 'draft-2020-12' });
  const doc = { ...schema, title: 'attnpatch recipe', description: 'One model family: matching, trained length, patch defaults, allowed combinations, refusals, verify tolerances, notes. See docs/recipes.md.' };
  return `${JSON.stringify(doc, null, 2)}\n`;
}
