/**
 * @file `pipeline(task, model, { patch })`: transformers.js's `pipeline` with one more option. While a patched
 * pipeline loads, attnpatch's cache is installed as `env.customCache` (the previous custom cache, if any,
 * becomes its base) and restored afterwards; the same code runs in Node and in the browser.
 */
import { AutoConfig, env, pipeline as transformersPipeline } from '@huggingface/transformers';
import type { PatchReport } from '../../patchers/patch.js';
import { parsePatchSpec, type PatchSpec, type PatchStep } from '../../patchers/spec.js';
import { mergeGenaiConfig } from '../../recipes/genai.js';
import type { ModelConfig } from '../../recipes/match.js';
import { checkForms, isAuto, type RecipePlan } from '../../recipes/plan.js';
import { recipePlan, type RecipeRef } from '../../recipes/select.js';
import { IS_NODE } from '../hash.js';
import { chunkPrefill } from '../prefill.js';
import { guardPadding } from '../padding-guard.js';
import { PatchingCache, type CacheLike } from './custom-cache.js';

type TransformersPipeline = typeof transformersPipeline;
type Task = Parameters<TransformersPipeline>[0];
type TransformersOptions = NonNullable<Parameters<TransformersPipeline>[2]>;

/** What attnpatch adds to transformers.js's pipeline options. */
export interface PatchOptions {
  /**
   * Patches to apply as the model loads, in order: `'gqa'`, `'gqa:kvHeads=2'`, `{ gqa: { window: 256 } }`, a list,
   * or `'auto'`: the default patches of the recipe matched from config.json (see docs/recipes.md).
   */
  patch?: PatchSpec | readonly PatchSpec[];
  /**
   * The recipe that checks `patch` and adds its family defaults: `'auto'` (matched from config.json), a built-in
   * name, a recipe .json path (Node) or object. Without `patch`, its default patches are applied.
   */
  recipe?: RecipeRef;
  /** Node: folder for patched models (default ~/.cache/attnpatch); false keeps them in memory. */
  cacheDir?: string | false;
  /** Called with each patched file's reports (blocks patched, left and why, warnings). */
  onReport?: (file: string, reports: PatchReport[]) => void;
  /**
   * Feed long prompts in calls of at most this many tokens (memory O(T·n) instead of O(T²)). Default: the
   * chunk length of a dca patch, otherwise off; false turns it off.
   */
  prefillChunk?: number | false;
}

let cache: PatchingCache | undefined;
let installed = 0;
let saved: { useCustomCache: boolean; customCache: unknown } | undefined;

async function sharedCache(): Promise<PatchingCache> {
  if (cache) return cache;
  // NOTE: dynamic imports keep node:fs out of browser bundles.
  if (IS_NODE) {
    const { nodeOriginals, nodeStore } = await import('./node-store.js');
    cache = new PatchingCache(nodeOriginals, nodeStore());
  } else {
    const { webOriginals, webStore } = await import('./web-store.js');
    cache = new PatchingCache(webOriginals(() => cache?.base), webStore());
  }
  return cache;
}

async function install(c: PatchingCache): Promise<void> {
  if (installed++ > 0) return;
  saved = { useCustomCache: env.useCustomCache, customCache: env.customCache };
  let base: CacheLike | undefined = saved.useCustomCache ? (saved.customCache as CacheLike) : undefined;
  if (!base && !IS_NODE && env.useBrowserCache && typeof caches !== 'undefined') base = await caches.open(env.cacheKey).catch(() => undefined);
  c.base = base;
  env.useCustomCache = true;
  env.customCache = c as unknown as typeof env.customCache;
}

function uninstall(): void {
  if (--installed > 0 || !saved) return;
  env.useCustomCache = saved.useCustomCache;
  env.customCache = saved.customCache as typeof env.customCache;
  saved = undefined;
}

/** The pipeline's decoder session. */
function decoderSession(pipe: unknown): { run: never } | undefined {
  const sessions = (pipe as { model?: { sessions?: Record<string, { run: never }> } }).model?.sessions;
  return sessions?.decoder_model_merged ?? sessions?.model;
}

/** Installs chunked prefill on the pipeline's decoder session. */
function withPrefill<P>(pipe: P, chunk: number | undefined): P {
  const session = decoderSession(pipe);
  if (chunk && session) chunkPrefill(session as Parameters<typeof chunkPrefill>[0], chunk);
  return pipe;
}

/** Gives the gqa patch the pipeline's device as its target (unless the spec names one). */
function withTarget(step: PatchStep, device: string | undefined): PatchSpec {
  const target = device === 'cpu' || device === 'wasm' || device === 'webgpu' || device === 'cuda' ? device : undefined;
  if (step.name !== 'gqa' || !target || step.options.target !== undefined) return { [step.name]: step.options };
  return { [step.name]: { ...step.options, target } };
}

/** A model folder given as a relative path in Node becomes absolute, so transformers.js reads it from disk. */
async function resolveModelId(model: string): Promise<string> {
  if (!IS_NODE) return model;
  const { existsSync, statSync } = await import('node:fs');
  const { resolve } = await import('node:path');
  return existsSync(model) && statSync(model).isDirectory() ? resolve(model) : model;
}

/**
 * config.json as transformers.js reads it (the `config` option wins), or undefined when there is none; in Node, a
 * local folder's genai_config.json is merged in (its `model`, see recipes/genai.ts), so a folder with only
 * genai_config.json still matches a recipe.
 */
async function modelConfig(id: string, o: TransformersOptions): Promise<ModelConfig | undefined> {
  if (o.config) return o.config as unknown as ModelConfig;
  const { cache_dir, local_files_only, revision } = o;
  const from = { ...(cache_dir !== undefined ? { cache_dir } : {}), ...(local_files_only !== undefined ? { local_files_only } : {}), ...(revision !== undefined ? { revision } : {}) };
  const config = await (AutoConfig.from_pretrained(id, from) as Promise<unknown>).then((c) => c as ModelConfig, () => undefined);
  return mergeGenaiConfig(config, await localGenaiConfig(id));
}

/** A local model folder's genai_config.json (Node), or undefined. */
async function localGenaiConfig(id: string): Promise<unknown> {
  if (!IS_NODE) return undefined;
  const { existsSync, readFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const file = join(id, 'genai_config.json');
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * transformers.js's `pipeline`, plus `patch`: the model's ONNX graph is rewritten as it loads (cached by content
 * hash, patch spec and attnpatch version). Without `patch` it is exactly transformers.js's pipeline.
 */
export async function pipeline<T extends Task>(task: T, model: string, options: TransformersOptions & PatchOptions = {}): ReturnType<typeof transformersPipeline<T>> {
  const { patch, recipe, cacheDir, onReport, prefillChunk, ...rest } = options;
  // A recipe (asked for, or implied by patch: 'auto') turns the request into specs before anything loads.
  let plan: RecipePlan | undefined;
  if (recipe !== undefined || isAuto(patch)) plan = await recipePlan(recipe ?? 'auto', await modelConfig(await resolveModelId(model), rest), patch, model);
  const patches: PatchSpec[] = plan ? plan.specs : patch === undefined ? [] : Array.isArray(patch) ? [...(patch as PatchSpec[])] : [patch as PatchSpec];
  if (patches.length === 0) return withPrefill(await transformersPipeline(task, model, rest), prefillChunk || undefined);
  // Bad specs fail before anything loads; patches that care learn which EP the model will run on.
  const device = typeof rest.device === 'string' ? rest.device : undefined;
  const targeted = patches.map((p) => withTarget(parsePatchSpec(p), device));
  const id = await resolveModelId(model);
  const c = await sharedCache();
  await install(c);
  let chunkLength: number | undefined;
  let gqa = false;
  const forms = new Set<string>();
  const report = (file: string, reports: PatchReport[]) => {
    for (const r of reports) if (typeof r.details?.chunkLength === 'number') chunkLength = r.details.chunkLength;
    const last = reports.at(-1);
    if (last?.patched.some((b) => b.to.startsWith('GroupQueryAttention'))) gqa = true;
    // The first patch saw the original graph: its blocks' forms are the export's (layer −1: not lifted, no form).
    for (const b of [...(reports[0]?.patched ?? []), ...(reports[0]?.left ?? [])]) if (b.layer >= 0) forms.add('from' in b ? b.from : b.form);
    onReport?.(file, reports);
  };
  c.register({ id, patches: targeted, ...(cacheDir !== undefined ? { cacheDir } : {}), onReport: report });
  try {
    const pipe = await transformersPipeline(task, id, rest);
    if (plan) {
      // NOTE: refusals that depend on the export form can only be decided once the graph was lifted (reports).
      try {
        checkForms(plan, forms);
      } catch (e) {
        await (pipe as { dispose?: () => Promise<void> }).dispose?.();
        throw e;
      }
    }
    const session = decoderSession(pipe);
    // Inside chunked prefill, so every call's mask is checked.
    if (gqa && session) guardPadding(session as Parameters<typeof guardPadding>[0]);
    return withPrefill(pipe, prefillChunk === false ? undefined : (prefillChunk ?? chunkLength));
  } finally {
    c.unregister(id);
    uninstall();
  }
}
