/**
 * @file The recipe format (zod 4): what a model family's `recipes/<name>.json` says — which configs it matches, the
 * trained context, defaults for each patch, which patch combinations are allowed and which are refused (with the
 * reason), the default patches of `patch: 'auto'`, verify tolerances and notes on the family's quirks.
 * `scripts/recipe-schema.ts` exports it as JSON Schema (`docs/recipe.schema.json`); cross-field rules that JSON
 * Schema cannot say live in `checkRecipe` below and run on every parse.
 */
import { z } from 'zod';

/** Patches a recipe may name (mla lands later; a recipe can already say what it allows). */
export const PATCH_NAMES = ['gqa', 'dca', 'mla'] as const;
export type PatchName = (typeof PATCH_NAMES)[number];

/** Attention export forms (AttentionForm without attnpatch's own 'dca'). */
export const EXPORT_FORMS = ['unfused', 'sdpa', 'mha', 'gqa', 'ort-attention', 'onnx-attention'] as const;

const patchName = z.enum(PATCH_NAMES);
const exportForm = z.enum(EXPORT_FORMS);
const positiveInt = z.number({ error: 'expected a positive integer' }).int('expected a positive integer').positive('expected a positive integer');

/** A config.json field, dotted for nested objects (`text_config.max_position_embeddings`). */
export const configPath = z
  .string()
  .regex(/^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$/, 'expected a config.json field name such as "sliding_window" or "text_config.max_position_embeddings"')
  .describe('a config.json field, dotted for nested objects');

/** A number read from config.json: the first of the listed fields that holds one. */
export const fromConfig = z
  .strictObject({ config: z.union([configPath, z.array(configPath).min(1)]) })
  .describe('read from config.json: the first listed field that holds a number');

const fromConfigError = 'expected a positive integer or {"config": "<config.json field>"}';

const gqaDefaults = z
  .strictObject({
    kvHeads: positiveInt.optional(),
    merge: z.enum(['mean', 'aligned']).optional(),
    maxContext: positiveInt.optional(),
    rotary: z.enum(['auto', 'fused', 'keep']).optional(),
    strict: z.boolean().optional(),
  })
  .describe('gqa options applied unless the request gives them (the target comes from the device, the window from `window`)');

const dcaDefaults = z
  .strictObject({
    chunkSize: positiveInt.optional(),
    localWindow: z.number().int().nonnegative().optional(),
    temperature: z.union([z.enum(['none', 'chunkllama', 'qwen']), z.number().nonnegative()], { error: 'expected "none", "chunkllama", "qwen" or a coefficient ≥ 0' }).optional(),
    interBias: z.number().nonnegative().optional(),
    strict: z.boolean().optional(),
  })
  .describe('dca options applied unless the request gives them (trainedLength comes from the recipe)');

// NOTE: the mla patch's options are not settled yet (src/patchers/mla is in progress); scalars only until then.
const mlaDefaults = z.record(z.string(), z.union([z.number(), z.string(), z.boolean()])).describe('mla options (the patch is in progress)');

const condition = z
  .strictObject({
    config: configPath.optional().describe('only when this config.json field is set (present, not null, not false)'),
    slidingWindow: z.literal(true).optional().describe("only when the family's sliding window (defaults.window) is set and shorter than the trained length"),
    option: z
      .string()
      .regex(/^(gqa|dca|mla)\.\w+$/, 'expected "<patch>.<option>", e.g. "gqa.window"')
      .optional()
      .describe('only when the request (with the recipe defaults) gives this patch option'),
    forms: z.array(exportForm).min(1).optional().describe('only when the model has attention blocks of these forms (checked once the graph is loaded)'),
  })
  .describe('all given conditions must hold');

const refusal = z.strictObject({
  patches: z.array(patchName).min(1).describe('refused when the request contains all of these'),
  when: condition.optional(),
  reason: z.string().min(10, 'expected a sentence saying why'),
});

/** The recipe object as written in JSON (before cross-field checks). */
export const recipeShape = z.strictObject({
  $schema: z.string().optional(),
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'expected a lower-case name like "llama" or "qwen2"'),
  description: z.string().min(1),
  match: z
    .strictObject({
      modelTypes: z.array(z.string().min(1)).optional().describe('config.json model_type (also text_config.model_type, GenAI model.type)'),
      architectures: z.array(z.string().min(1)).optional().describe('config.json architectures'),
      config: z
        .record(configPath, z.union([z.string(), z.number(), z.boolean(), z.null()]))
        .optional()
        .describe('exact config.json values that must also hold (a specific checkpoint); each one makes the match more specific'),
      exports: z.array(exportForm).min(1).describe('attention export forms this recipe was written for'),
    })
    .describe('which config.json this recipe is for'),
  trainedLength: z.union([positiveInt, fromConfig], { error: fromConfigError }).describe('the context the model was trained on (feeds dca defaults)'),
  defaults: z
    .strictObject({
      gqa: gqaDefaults.optional(),
      window: z.union([positiveInt, fromConfig, z.null()], { error: `${fromConfigError} or null` }).optional().describe('gqa sliding window: the family’s own window'),
      dca: dcaDefaults.optional(),
      mla: mlaDefaults.optional(),
    })
    .default({}),
  combinations: z.array(z.array(patchName).min(1)).min(1).describe('the patch lists allowed, in application order'),
  auto: z.array(patchName).describe("the patches of patch: 'auto' (one of combinations, or empty for none)"),
  refuse: z.array(refusal).default([]).describe('requests refused, with the reason the user sees'),
  verify: z
    .strictObject({ fp32: z.number().positive(), fp16: z.number().positive() })
    .describe('largest |Δlogit| a lossless patch may show against the original, per dtype'),
  notes: z.array(z.string().min(1)).min(1).describe("the family's quirks and what each patch does with them"),
});

type Shape = z.output<typeof recipeShape>;

const key = (patches: readonly string[]) => patches.join(' → ');

/** Cross-field rules: consistent combinations, auto among them, no refusal of an allowed combination outright. */
function checkRecipe(r: Shape, ctx: z.RefinementCtx): void {
  const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
  if (!r.match.modelTypes?.length && !r.match.architectures?.length) issue(['match'], 'expected at least one of modelTypes or architectures');
  const seen = new Set<string>();
  r.combinations.forEach((c, i) => {
    if (new Set(c).size !== c.length) issue(['combinations', i], `names a patch twice: ${key(c)}`);
    if (seen.has(key(c))) issue(['combinations', i], `repeats ${key(c)}`);
    seen.add(key(c));
  });
  if (r.auto.length && !seen.has(key(r.auto))) issue(['auto'], `expected one of combinations (${[...seen].join(', ')}), got ${key(r.auto) || 'nothing'}`);
  r.refuse.forEach((f, i) => {
    const option = f.when?.option?.split('.')[0];
    if (option && !f.patches.includes(option as PatchName)) issue(['refuse', i, 'when', 'option'], `names ${option}, which is not among this refusal's patches`);
    if (f.when) return;
    r.combinations.forEach((c, j) => {
      if (f.patches.every((p) => c.includes(p))) issue(['refuse', i], `refuses ${key(f.patches)} outright, but combinations[${j}] allows ${key(c)}`);
    });
  });
}

/** The full recipe schema: shape plus cross-field rules. */
export const RecipeSchema = recipeShape.superRefine(checkRecipe);

/** A validated recipe. */
export type Recipe = z.output<typeof RecipeSchema>;
export type Refusal = Recipe['refuse'][number];
export type FromConfig = z.output<typeof fromConfig>;
export type ExportForm = (typeof EXPORT_FORMS)[number];
