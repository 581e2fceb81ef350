/**
 * @file From a recipe, the model's config and what was asked (named patches, or `'auto'`) to the patch specs to
 * apply: the recipe's defaults go under the request's own options (the family's sliding window into gqa, the trained
 * length into dca), and a request the recipe does not allow is refused with the recipe's reason before anything
 * loads. Refusals that depend on the export form wait for the graph (`checkForms`).
 */
import { AttnpatchError } from '../errors.js';
import { parsePatchSpec, type PatchSpec, type PatchStep } from '../patchers/spec.js';
import { genaiContextLength } from './genai.js';
import { configValue, type ModelConfig } from './match.js';
import type { FromConfig, Recipe, Refusal } from './schema.js';

/** What a recipe turns a request into. */
export interface RecipePlan {
  recipe: Recipe;
  /** The patches to apply, in order, each with the recipe's defaults under the request's options. */
  specs: PatchSpec[];
  /** True when `specs` is the recipe's `auto` list. */
  auto: boolean;
  /** The trained context (from the recipe or config.json), handed to dca as `trainedLength`. */
  trainedLength: number | undefined;
  /** The family's sliding window when it binds (shorter than the trained length), handed to gqa as `window`. */
  window: number | undefined;
  /** Refusals that apply if the model has attention of the given forms; `checkForms` decides once it is loaded. */
  pending: Refusal[];
}

/** True for the request `'auto'` (alone or as the only list entry). */
export function isAuto(patch: PatchSpec | readonly PatchSpec[] | undefined): boolean {
  const list = Array.isArray(patch) ? (patch as readonly PatchSpec[]) : patch === undefined ? [] : [patch as PatchSpec];
  if (!list.includes('auto')) return false;
  if (list.length > 1) throw new AttnpatchError('USAGE', "'auto' stands alone: it is the recipe's default patch list; name the patches instead to choose them", { field: 'patch' });
  return true;
}

/** A number from a recipe field: itself, or the first config.json field of the list that holds a positive number. */
export function resolveNumber(v: number | FromConfig | null | undefined, config: ModelConfig | undefined): number | undefined {
  if (typeof v === 'number') return v;
  if (!v) return undefined;
  for (const path of typeof v.config === 'string' ? [v.config] : v.config) {
    const n = configValue(config, path);
    if (typeof n === 'number' && n > 0) return n;
  }
  return undefined;
}

const arrow = (names: readonly string[]) => names.join(' → ');

/**
 * Refusals for every family: how the patches interact, not what a family is. Remove one when the patch learns it.
 * NOTE: DualChunkAttention has no window, so dca leaves every block gqa gave a window (noted sliding-window) and the
 * pair would patch nothing with dca; and no dca lowering reads mla's LatentAttention blocks yet.
 */
export const COMMON_REFUSALS: readonly Refusal[] = Object.freeze([
  {
    patches: ['gqa', 'dca'],
    when: { option: 'gqa.window' },
    reason: 'DualChunkAttention has no window, so dca leaves every block gqa gives a window (sliding-window); use the window or dca, not both',
  },
  {
    patches: ['mla', 'dca'],
    reason: 'dca does not lower latent-attention (mla) blocks yet, so every block would be left as mla made it; apply one of them',
  },
]);

const isSet = (v: unknown) => v !== undefined && v !== null && v !== false;

/** Does a refusal's condition hold, apart from `forms` (which needs the graph)? */
function holds(f: Refusal, names: readonly string[], steps: readonly PatchStep[], config: ModelConfig | undefined, window: number | undefined): boolean {
  // In this order: a refusal of mla → dca says nothing about dca → mla, which composes.
  let at = -1;
  for (const p of f.patches) if ((at = names.indexOf(p, at + 1)) < 0) return false;
  const w = f.when;
  if (!w) return true;
  if (w.config !== undefined && !isSet(configValue(config, w.config))) return false;
  if (w.slidingWindow && window === undefined) return false;
  if (w.option !== undefined) {
    const [patch, option] = w.option.split('.') as [string, string];
    if (!steps.some((s) => s.name === patch && s.options[option] !== undefined)) return false;
  }
  return true;
}

function refuse(recipe: Recipe, f: Refusal, formsSeen?: readonly string[]): never {
  const on = formsSeen ? ` on ${formsSeen.join('/')} attention` : '';
  throw new AttnpatchError('USAGE', `recipe ${recipe.name} refuses ${arrow(f.patches)}${on}: ${f.reason}`, { field: 'patch' });
}

/**
 * The patches to apply for `requested` (undefined or 'auto': the recipe's `auto` list) under `recipe`, or a USAGE
 * error with the recipe's reason when the request is not allowed.
 */
export function planRecipe(recipe: Recipe, config: ModelConfig | undefined, requested?: PatchSpec | readonly PatchSpec[]): RecipePlan {
  const auto = requested === undefined || isAuto(requested);
  const asked = auto ? recipe.auto.map((name): PatchStep => ({ name, options: {} })) : (Array.isArray(requested) ? (requested as readonly PatchSpec[]) : [requested as PatchSpec]).map(parsePatchSpec);
  // NOTE: a GenAI-only folder has no config.json fields; its genai_config's context_length stands in for them.
  const trainedLength = resolveNumber(recipe.trainedLength, config) ?? (typeof recipe.trainedLength === 'object' && recipe.trainedLength ? genaiContextLength(config) : undefined);
  const declared = resolveNumber(recipe.defaults.window, config);
  // NOTE: a window at least as long as the trained context never binds inside it (Phi-3.5: 262144 vs 131072).
  const window = declared !== undefined && (trainedLength === undefined || declared < trainedLength) ? declared : undefined;

  const steps = asked.map((s): PatchStep => {
    const d = recipe.defaults;
    if (s.name === 'gqa') return { name: s.name, options: { ...d.gqa, ...(window !== undefined ? { window } : {}), ...s.options } };
    if (s.name === 'dca') return { name: s.name, options: { ...d.dca, ...(trainedLength !== undefined ? { trainedLength } : {}), ...s.options } };
    if (s.name === 'mla') return { name: s.name, options: { ...d.mla, ...s.options } };
    return s;
  });
  const names = steps.map((s) => s.name);
  const pending: Refusal[] = [];
  for (const f of [...recipe.refuse, ...COMMON_REFUSALS]) {
    if (!holds(f, names, steps, config, window)) continue;
    if (f.when?.forms) pending.push(f);
    else refuse(recipe, f);
  }
  if (names.length && !recipe.combinations.some((c) => arrow(c) === arrow(names))) {
    throw new AttnpatchError('USAGE', `recipe ${recipe.name} allows ${recipe.combinations.map((c) => arrow(c)).join(', ')}; not ${arrow(names)}`, { field: 'patch' });
  }
  return { recipe, specs: steps.map((s) => ({ [s.name]: s.options })), auto, trainedLength, window, pending };
}

/** Refuses the plan when the model's attention (lifted forms) meets a pending refusal. */
export function checkForms(plan: RecipePlan, forms: Iterable<string>): void {
  const have = new Set(forms);
  for (const f of plan.pending) {
    const hit = f.when!.forms!.filter((x) => have.has(x));
    if (hit.length) refuse(plan.recipe, f, hit);
  }
}
