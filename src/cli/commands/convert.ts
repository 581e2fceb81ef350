/**
 * @file `attnpatch convert <in> -o <out> [--patch SPEC]... [--recipe auto|NAME|FILE]`: load a model (file or folder),
 * patch it, write it. With a recipe (or `--patch auto`) the patches are checked against the family's recipe and get
 * its defaults; without `--patch`, the recipe's default patches are applied.
 */
import type { Command } from 'commander';
import { inspectModel } from '../../patchers/inspect.js';
import type { PatchReport } from '../../patchers/patch.js';
import { applyPatches, parsePatchSpec, specKey, type PatchSpec } from '../../patchers/spec.js';
import { checkForms, isAuto, type RecipePlan } from '../../recipes/plan.js';
import { recipePlan } from '../../recipes/select.js';
import { resolveCalibration } from '../../runtime/eval/calibrate.js';
import { refitPatched } from '../../runtime/eval/mla-refit.js';
import { loadLocated, locateModel, patchContextOf, readConfig, writeModelLike } from '../../runtime/model-folder.js';
import { tokenizerFolder } from './eval.js';
import { bytes } from '../format.js';
import { runCommand } from '../run.js';
import { withContext } from '../../errors.js';

export type ConvertOptions = { readonly output: string; readonly patch?: string[]; readonly recipe?: string; readonly json?: boolean; readonly tokenizer?: string };

/** Metadata keys stamped on patched models (read back by `verify`). */
export const META_PATCHES = 'ai.attnpatch.patches';
export const META_LOSSY = 'ai.attnpatch.lossy';

export async function convert(input: string, options: ConvertOptions): Promise<void> {
  let specs: readonly PatchSpec[] = options.patch ?? [];
  const auto = isAuto(specs);
  if (!auto) specs.forEach(parsePatchSpec);
  // A recipe refuses what it can from config.json before the model loads, and the rest once its blocks are lifted.
  const config = readConfig(locateModel(input));
  let plan: RecipePlan | undefined;
  if (options.recipe !== undefined || auto) plan = await recipePlan(options.recipe ?? 'auto', config, specs.length ? specs : undefined, input);
  const { model, location } = loadLocated(input);
  const before = inspectModel(model);
  if (plan) {
    checkForms(plan, before.attention.map((b) => b.form));
    specs = plan.specs;
  }
  // Patches calibrated on a text file (gqa merge=aligned, mla method=asvd) run the original model on it first.
  const needsText = specs.some((s) => typeof parsePatchSpec(s).options.calibration === 'string');
  const resolved = needsText ? await resolveCalibration(specs, { model, tokenizerFolder: tokenizerFolder(input, options.tokenizer) }) : specs;
  let reports: PatchReport[];
  try {
    reports = applyPatches(model, resolved, patchContextOf(config));
  } catch (e) {
    throw withContext(e, { file: location.file }); // strict patches name the graph they failed on
  }
  const refit = await refitPatched(resolved, { original: () => loadLocated(input).model, patched: model });
  const mlaReport = reports.find((r) => r.patch === 'mla');
  if (refit?.layers.length) mlaReport?.warnings.push(`mla: refit the folded output projections of layers ${refit.layers.join(', ')} on ${refit.tokens} calibration tokens`);
  for (const s of refit?.skipped ?? []) mlaReport?.warnings.push(`mla: did not refit layer ${s.layer}: ${s.reason}`);
  if (specs.length) {
    model.metadata.set(META_PATCHES, specKey(specs));
    model.metadata.set(META_LOSSY, String(reports.some((r) => r.lossy)));
  }
  const after = specs.length ? inspectModel(model) : before;
  const target = writeModelLike(model, location, options.output);
  const report = {
    input: location.file,
    output: target.file,
    blocks: before.attention.length,
    ...(plan ? { recipe: { name: plan.recipe.name, auto: plan.auto, trainedLength: plan.trainedLength ?? null, window: plan.window ?? null } } : {}),
    patches: reports.map((r) => ({ patch: r.patch, patched: r.patched, left: r.left, warnings: r.warnings, lossy: r.lossy })),
    notLifted: before.unsupported,
    kvCacheBytesPerToken: { before: before.kvCacheBytesPerToken, after: after.kvCacheBytesPerToken },
  };
  if (options.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  const lines = [`wrote ${target.file}`];
  if (plan) lines.push(`  recipe ${plan.recipe.name}: ${plan.auto ? 'default patches' : 'checked'} ${reports.map((r) => r.patch).join(' → ') || '(none)'}`);
  for (const r of reports) {
    lines.push(`  ${r.patch}: ${r.patched.length} of ${before.attention.length} blocks patched${r.lossy ? ' (lossy)' : ''}`);
    for (const l of r.left) lines.push(`    left layer ${l.layer} (${l.form}): ${l.reason}`);
    for (const w of r.warnings) lines.push(`    warning: ${w}`);
  }
  if (!specs.length) lines.push(`  no patches: ${before.attention.length} attention blocks copied unchanged`);
  if (plan && !specs.length) lines.push(`  (recipe ${plan.recipe.name} has no default patches; see \`attnpatch recipes show ${plan.recipe.name}\`)`);
  lines.push(`  KV cache: ${bytes(report.kvCacheBytesPerToken.before)} → ${bytes(report.kvCacheBytesPerToken.after)} per token`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function register(program: Command): void {
  program
    .command('convert')
    .description('patch a model and write the patched copy (a folder gives a complete folder)')
    .argument('<in>', 'a .onnx file or a transformers.js model folder')
    .requiredOption('-o, --output <out>', 'where to write the patched model')
    .option('-p, --patch <spec>', 'a patch to apply, e.g. gqa, gqa:kvHeads=2,window=256, dca, dca:chunkSize=384,localWindow=64, mla:rank=32 or mla:kvRatio=0.5,calibration=calib.txt (repeatable; applied in order)', collect)
    .option('-r, --recipe <recipe>', "check the patches against a recipe and add its defaults: auto (matched from config.json), a built-in name or a recipe .json; without --patch, apply its default patches (also: --patch auto)")
    .option('--tokenizer <folder>', 'model folder holding tokenizer.json, for patches calibrated on a text file (default: the model folder)')
    .option('--json', 'print a JSON report instead of text')
    .action(runCommand((input: string, options: ConvertOptions) => convert(input, options)));
}
