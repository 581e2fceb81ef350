/**
 * @file Picking a recipe from a model's config.json. A recipe matches when one of its `modelTypes` or
 * `architectures` is the config's and every `match.config` value holds; the most specific match wins (each
 * `match.config` value counts more than the type and architecture together), so `tinystories` (llama + its exact
 * sizes) beats `llama`. A tie between two recipes, or no match, is an error that says what to do.
 */
import { AttnpatchError } from '../errors.js';
import type { Recipe } from './schema.js';

/** config.json as read (any JSON object). */
export type ModelConfig = Readonly<Record<string, unknown>>;

/** The names a config goes by. */
export interface ConfigIdentity {
  /** model_type, text_config.model_type (multimodal wrappers), model.type (a GenAI genai_config merged in). */
  modelTypes: string[];
  architectures: string[];
}

/** The value at a dotted path of a config (`text_config.sliding_window`). */
export function configValue(config: ModelConfig | undefined, path: string): unknown {
  let v: unknown = config;
  for (const part of path.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/** What a config says it is. */
export function identify(config: ModelConfig): ConfigIdentity {
  const str = (v: unknown) => (typeof v === 'string' && v ? [v] : []);
  const modelTypes = [...str(config.model_type), ...str(configValue(config, 'text_config.model_type')), ...str(configValue(config, 'model.type'))];
  const archs = Array.isArray(config.architectures) ? config.architectures.filter((a): a is string => typeof a === 'string') : [];
  return { modelTypes: [...new Set(modelTypes)], architectures: archs };
}

/** How specifically `recipe` matches `config` (0: not at all). */
export function matchScore(recipe: Recipe, config: ModelConfig): number {
  const id = identify(config);
  const byType = recipe.match.modelTypes?.some((t) => id.modelTypes.includes(t)) ?? false;
  const byArch = recipe.match.architectures?.some((a) => id.architectures.includes(a)) ?? false;
  if (!byType && !byArch) return 0;
  const pinned = Object.entries(recipe.match.config ?? {});
  if (!pinned.every(([path, want]) => configValue(config, path) === want)) return 0;
  return pinned.length * 4 + (byType ? 2 : 0) + (byArch ? 1 : 0);
}

function describeConfig(id: ConfigIdentity): string {
  const types = id.modelTypes.length ? `model_type ${id.modelTypes.map((t) => JSON.stringify(t)).join(' / ')}` : 'no model_type';
  return id.architectures.length ? `${types} (architectures ${id.architectures.join(', ')})` : types;
}

/** The recipe for `config` among `recipes`; `file` names the config in errors. */
export function matchRecipe(recipes: readonly Recipe[], config: ModelConfig | undefined, file?: string): Recipe {
  const where = file ? { file } : {};
  if (!config) {
    throw new AttnpatchError('USAGE', "patch 'auto' picks a recipe from the model's config.json (model_type, architectures), and there is none; name the patches, or give a recipe (--recipe FILE, { recipe })", where);
  }
  const scored = recipes.map((r) => ({ r, score: matchScore(r, config) })).filter((x) => x.score > 0);
  scored.sort((a, b) => b.score - a.score);
  const [best, next] = scored;
  if (best && next && next.score === best.score) {
    throw new AttnpatchError('USAGE', `recipes ${best.r.name} and ${next.r.name} match this config equally; give one with --recipe NAME, or make one more specific (match.config)`, where);
  }
  if (best) return best.r;
  const known = recipes.map((r) => `${r.name} (${(r.match.modelTypes ?? r.match.architectures ?? []).join('/')})`).join(', ');
  throw new AttnpatchError(
    'USAGE',
    `no recipe for ${describeConfig(identify(config))}. Recipes exist for: ${known}. ` +
      'If the family has the same attention as one of these, write a recipe: copy recipes/llama.json, set name and match, ' +
      'record the quirks, check it with `attnpatch recipes validate FILE` and pass it with --recipe FILE (or { recipe: FILE }); see docs/recipes.md',
    where,
  );
}
