/**
 * Writes docs/recipe.schema.json from the zod schema (`npm run recipe-schema`). Recipes point at it with "$schema" so
 * editors check them as they are written; `src/recipes/schema.test.ts` fails when the file is out of date.
 * Cross-field rules (auto among combinations, …) are not expressible in JSON Schema: `attnpatch recipes validate`.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { recipeJsonSchema } from '../src/recipes/json-schema.js';

const out = fileURLToPath(new URL('../docs/recipe.schema.json', import.meta.url));
writeFileSync(out, recipeJsonSchema());
console.log(`wrote ${out}`);
