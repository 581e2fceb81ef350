/**
 * @file Reading recipes: the built-in ones shipped in the package's `recipes/` folder (read from disk in Node,
 * fetched beside the module in the browser), a recipe file given by path (Node), or an object. Every recipe passes
 * `parseRecipe`, so a bad file fails with its name and the field at fault.
 */
import { AttnpatchError } from '../errors.js';
import { parseRecipe } from './parse.js';
import type { Recipe } from './schema.js';

/** The built-in recipes, one `recipes/<name>.json` each (a test checks the folder holds exactly these). */
export const BUILTIN_RECIPES = Object.freeze(['gemma2', 'gemma3', 'gpt2', 'llama', 'mistral', 'phi3', 'qwen2', 'qwen3', 'qwen3_5', 'smollm', 'tinystories'] as const);

// NOTE: ../../recipes/ is the package root's recipes/ both from src/recipes (tests) and from dist/recipes (built).
const FOLDER = new URL('../../recipes/', import.meta.url);
// NOTE: the same test as runtime/hash.ts's IS_NODE, repeated so that recipes (below runtime) never import runtime.
const IS_NODE = typeof process !== 'undefined' && typeof process.versions?.node === 'string';

let builtins: Promise<readonly Recipe[]> | undefined;

async function readText(url: URL): Promise<string> {
  if (IS_NODE && url.protocol === 'file:') {
    const { readFile } = await import('node:fs/promises');
    return readFile(url, 'utf8');
  }
  const r = await fetch(url);
  if (!r.ok) throw new AttnpatchError('IO', `fetch failed with status ${r.status}`, { file: url.href });
  return r.text();
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new AttnpatchError('USAGE', `invalid recipe: not JSON (${(e as Error).message})`, { file });
  }
}

/** Every built-in recipe (read once). */
export function builtinRecipes(): Promise<readonly Recipe[]> {
  builtins ??= Promise.all(
    BUILTIN_RECIPES.map(async (name) => {
      const url = new URL(`${name}.json`, FOLDER);
      const file = IS_NODE ? `recipes/${name}.json` : url.href;
      const recipe = parseRecipe(parseJson(await readText(url), file), file);
      if (recipe.name !== name) throw new AttnpatchError('USAGE', `invalid recipe: name: expected "${name}" (the file name), got "${recipe.name}"`, { file, field: 'name' });
      return recipe;
    }),
  );
  // A failure is not kept: the next call reads again.
  builtins.catch(() => (builtins = undefined));
  return builtins;
}

/** The built-in recipe called `name`, or undefined. */
export async function builtinRecipe(name: string): Promise<Recipe | undefined> {
  return (await builtinRecipes()).find((r) => r.name === name);
}

/** Reads and validates a recipe file (Node). */
export async function loadRecipeFile(path: string): Promise<Recipe> {
  const { readFile } = await import('node:fs/promises');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new AttnpatchError('IO', `cannot read recipe: ${(e as Error).message}`, { file: path });
  }
  return parseRecipe(parseJson(text, path), path);
}

/**
 * A recipe from what a user named: a built-in name, a path to a JSON file (Node), or a recipe object.
 * ('auto' is not handled here: it needs the model's config, see `match.ts`.)
 */
export async function namedRecipe(ref: string | object): Promise<Recipe> {
  if (typeof ref === 'object') return parseRecipe(ref, '(recipe object)');
  const builtin = await builtinRecipe(ref);
  if (builtin) return builtin;
  if (IS_NODE && (ref.endsWith('.json') || ref.includes('/') || ref.includes('\\'))) return loadRecipeFile(ref);
  throw new AttnpatchError('USAGE', `no recipe ${JSON.stringify(ref)}: expected 'auto', a built-in recipe (${BUILTIN_RECIPES.join(', ')}) or a path to a recipe .json file`, { field: 'recipe' });
}
