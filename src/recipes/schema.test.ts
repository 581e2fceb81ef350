/** The recipe schema: every built-in recipe is valid, the JSON Schema file is current, bad recipes fail readably. */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isAttnpatchError } from '../errors.js';
import { recipeJsonSchema } from './json-schema.js';
import { BUILTIN_RECIPES, builtinRecipes } from './load.js';
import { parseRecipe } from './parse.js';

const root = new URL('../../', import.meta.url);
const llama = () => JSON.parse(readFileSync(new URL('recipes/llama.json', root), 'utf8')) as Record<string, unknown>;

/** The message parseRecipe throws for `data`. */
function failure(data: unknown): { message: string; field: string | undefined } {
  try {
    parseRecipe(data, 'recipes/bad.json');
  } catch (e) {
    if (!isAttnpatchError(e)) throw e;
    expect(e.code).toBe('USAGE');
    expect(e.where.file).toBe('recipes/bad.json');
    return { message: e.message, field: e.where.field };
  }
  throw new Error('expected the recipe to be rejected');
}

describe('built-in recipes', () => {
  it('recipes/ holds exactly the listed files, and each one is valid and named after its file', async () => {
    const files = readdirSync(new URL('recipes/', root)).filter((f) => f.endsWith('.json'));
    expect(files.map((f) => f.replace(/\.json$/, '')).sort()).toEqual([...BUILTIN_RECIPES].sort());
    const recipes = await builtinRecipes();
    expect(recipes.map((r) => r.name)).toEqual([...BUILTIN_RECIPES]);
    for (const r of recipes) expect(r.notes.length).toBeGreaterThan(0);
  });

  it('every recipe points its editor at docs/recipe.schema.json, and that file is what the schema generates', () => {
    for (const name of BUILTIN_RECIPES) expect(JSON.parse(readFileSync(new URL(`recipes/${name}.json`, root), 'utf8')).$schema).toBe('../docs/recipe.schema.json');
    // Regenerate with `npm run recipe-schema` when this fails.
    expect(readFileSync(new URL('docs/recipe.schema.json', root), 'utf8')).toBe(recipeJsonSchema());
  });
});

describe('bad recipes name the file, the field and what was expected', () => {
  it('pinned: a trained length given as a string', () => {
    const { message, field } = failure({ ...llama(), trainedLength: '512' });
    expect(message).toBe('invalid recipe: trainedLength: expected a positive integer or {"config": "<config.json field>"}, got "512" [file=recipes/bad.json field=trainedLength]');
    expect(field).toBe('trainedLength');
  });

  it('every problem is listed; where.field is the first', () => {
    const { message, field } = failure({ ...llama(), auto: ['gqa', 'x'], verify: { fp32: 1e-4 }, extra: true });
    expect(message).toContain('auto[1]: expected one of "gqa", "dca", "mla", got "x"');
    expect(message).toContain('verify.fp16: missing; expected number');
    expect(message).toContain('(recipe): unknown field "extra"');
    expect(field).toBe('auto[1]'); // the first problem in schema order
  });

  it.each([
    [{ match: { exports: ['unfused'] } }, 'match: expected at least one of modelTypes or architectures'],
    [{ match: { modelTypes: ['llama'], exports: ['onnx'] } }, 'match.exports[0]: expected one of "unfused", "sdpa", "mha", "gqa", "ort-attention", "onnx-attention", got "onnx"'],
    [{ trainedLength: { config: 'max position' } }, 'trainedLength.config: expected a config.json field name such as "sliding_window"'],
    [{ name: 'Llama 3' }, 'name: expected a lower-case name like "llama" or "qwen2", got "Llama 3"'],
    [{ defaults: { gqa: { kvHeads: 0 } } }, 'defaults.gqa.kvHeads: expected a positive integer, got 0'],
    [{ defaults: { gqa: { window: 256 } } }, 'defaults.gqa: unknown field "window"'],
    [{ defaults: { dca: { temperature: 'hot' } } }, 'defaults.dca.temperature: expected "none", "chunkllama", "qwen" or a coefficient ≥ 0, got "hot"'],
    [{ defaults: { window: 'config' } }, 'defaults.window: expected a positive integer or {"config": "<config.json field>"} or null, got "config"'],
    [{ notes: [] }, 'notes: expected at least 1 entry'],
  ])('%j', (patch, text) => {
    expect(failure({ ...llama(), ...patch }).message).toContain(text);
  });

  it('cross-field rules: auto among the combinations, no duplicates, no outright refusal of an allowed combination', () => {
    expect(failure({ ...llama(), auto: ['dca', 'gqa'] }).message).toContain('auto: expected one of combinations (gqa, dca, gqa → dca, mla, gqa → mla, dca → mla), got dca → gqa');
    expect(failure({ ...llama(), combinations: [['gqa', 'gqa']], auto: [] }).message).toContain('combinations[0]: names a patch twice: gqa → gqa');
    expect(failure({ ...llama(), refuse: [{ patches: ['dca'], reason: 'never for this family' }] }).message).toContain('refuse[0]: refuses dca outright, but combinations[1] allows dca');
    expect(failure({ ...llama(), refuse: [{ patches: ['dca'], when: { option: 'gqa.window' }, reason: 'never for this family' }] }).message).toContain(
      "refuse[0].when.option: names gqa, which is not among this refusal's patches",
    );
  });

  it('defaults are filled in: no refusals, no patch defaults', () => {
    const { refuse, defaults, ...rest } = llama();
    void refuse;
    void defaults;
    const r = parseRecipe(rest, 'x.json');
    expect(r.refuse).toEqual([]);
    expect(r.defaults).toEqual({});
  });
});
