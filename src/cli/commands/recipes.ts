/**
 * @file `attnpatch recipes list | show NAME|FILE | validate FILE... | match MODEL`: the built-in recipes, one recipe in
 * full, checking recipe files as they are written, and which recipe `--recipe auto` picks for a model.
 */
import type { Command } from 'commander';
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isAttnpatchError } from '../../errors.js';
import { builtinRecipes, loadRecipeFile, namedRecipe } from '../../recipes/load.js';
import { identify, matchRecipe } from '../../recipes/match.js';
import { planRecipe } from '../../recipes/plan.js';
import type { Recipe, Refusal } from '../../recipes/schema.js';
import { locateModel, readConfig } from '../../runtime/model-folder.js';
import { table } from '../format.js';
import { runCommand } from '../run.js';

type JsonOption = { readonly json?: boolean };

const arrow = (names: readonly string[]) => names.join(' → ') || '(none)';
const trained = (r: Recipe) => (typeof r.trainedLength === 'number' ? String(r.trainedLength) : `config ${[r.trainedLength.config].flat().join(' | ')}`);
const out = (text: string) => process.stdout.write(`${text}\n`);

function when(f: Refusal): string {
  const w = f.when;
  if (!w) return 'always';
  const parts = [w.config && `config ${w.config} is set`, w.slidingWindow && 'the sliding window binds', w.option && `${w.option} is given`, w.forms && `${w.forms.join('/')} exports`];
  return parts.filter(Boolean).join(' and ');
}

/** A recipe as text: what it matches, defaults, combinations, refusals, tolerances, notes. */
export function formatRecipe(r: Recipe): string {
  const m = r.match;
  const lines = [`${r.name}: ${r.description}`, ''];
  lines.push(`  matches      ${[m.modelTypes?.length && `model_type ${m.modelTypes.join(', ')}`, m.architectures?.length && `architectures ${m.architectures.join(', ')}`].filter(Boolean).join('; ')}`);
  if (m.config) lines.push(`  and config   ${Object.entries(m.config).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ')}`);
  lines.push(`  exports      ${m.exports.join(', ')}`, `  trained      ${trained(r)}`, `  auto         ${arrow(r.auto)}`);
  lines.push(`  allowed      ${r.combinations.map(arrow).join(', ')}`);
  const d = r.defaults;
  const defaults = [d.gqa && `gqa ${JSON.stringify(d.gqa)}`, d.window != null && `window ${JSON.stringify(d.window)}`, d.dca && `dca ${JSON.stringify(d.dca)}`, d.mla && `mla ${JSON.stringify(d.mla)}`].filter(Boolean);
  if (defaults.length) lines.push(`  defaults     ${defaults.join('; ')}`);
  lines.push(`  verify       fp32 ≤ ${r.verify.fp32}, fp16 ≤ ${r.verify.fp16}`);
  if (r.refuse.length) {
    lines.push('', '  refused:');
    for (const f of r.refuse) lines.push(`  - ${arrow(f.patches)} (${when(f)}): ${f.reason}`);
  }
  lines.push('', '  notes:', ...r.notes.map((n) => `  - ${n}`));
  return lines.join('\n');
}

async function list(options: JsonOption): Promise<void> {
  const recipes = await builtinRecipes();
  if (options.json) {
    out(JSON.stringify(recipes, null, 2));
    return;
  }
  const rows = [['name', 'matches', 'trained', 'auto', 'allowed']];
  for (const r of recipes) {
    const matches = [...(r.match.modelTypes ?? r.match.architectures ?? []), ...(r.match.config ? ['+ config'] : [])].join(' ');
    rows.push([r.name, matches, trained(r), arrow(r.auto), r.combinations.map(arrow).join(', ')]);
  }
  out(table(rows));
}

async function show(ref: string, options: JsonOption): Promise<void> {
  const r = await namedRecipe(ref);
  out(options.json ? JSON.stringify(r, null, 2) : formatRecipe(r));
}

async function validate(files: string[]): Promise<void> {
  for (const file of files) {
    try {
      const r = await loadRecipeFile(file);
      out(`ok ${file}: recipe ${r.name} (${[...(r.match.modelTypes ?? []), ...(r.match.architectures ?? [])].join(', ')}); auto ${arrow(r.auto)}`);
    } catch (e) {
      if (!isAttnpatchError(e)) throw e;
      process.stderr.write(`attnpatch: ${e.message}\n`);
      process.exitCode = 1;
    }
  }
}

async function match(model: string, options: JsonOption): Promise<void> {
  // Only config.json matters here: a folder need not have exactly one .onnx file.
  const location = existsSync(model) && statSync(model).isDirectory() ? { folder: resolve(model), file: join(resolve(model), 'config.json') } : locateModel(model);
  const config = readConfig(location);
  const recipe = matchRecipe(await builtinRecipes(), config, location.file);
  const plan = planRecipe(recipe, config);
  if (options.json) {
    out(JSON.stringify({ recipe: recipe.name, identity: identify(config ?? {}), patches: plan.specs, trainedLength: plan.trainedLength ?? null, window: plan.window ?? null }, null, 2));
    return;
  }
  out(`${model}: recipe ${recipe.name}; auto ${arrow(recipe.auto)} → ${JSON.stringify(plan.specs)}`);
}

export function register(program: Command): void {
  const recipes = program.command('recipes').description('model-family recipes: defaults, allowed patches and quirks (docs/recipes.md)');
  recipes.command('list').description('the built-in recipes').option('--json', 'print JSON').action(runCommand((o: JsonOption) => list(o)));
  recipes
    .command('show')
    .description('one recipe in full')
    .argument('<recipe>', 'a built-in name or a recipe .json file')
    .option('--json', 'print the validated recipe as JSON')
    .action(runCommand((ref: string, o: JsonOption) => show(ref, o)));
  recipes
    .command('validate')
    .description('check recipe files against the schema and its rules (exit 1 if any is bad)')
    .argument('<files...>', 'recipe .json files')
    .action(runCommand((files: string[]) => validate(files)));
  recipes
    .command('match')
    .description("which recipe --recipe auto picks for a model, and the patches it would apply")
    .argument('<model>', 'a transformers.js model folder (or a .onnx file beside its config.json)')
    .option('--json', 'print JSON')
    .action(runCommand((model: string, o: JsonOption) => match(model, o)));
}
