/**
 * @file `attnpatch verify <original> <patched>`: both models on ONNX Runtime over a fixed prompt and N greedy
 * decode steps; exit 1 when a patch meant to be lossless moved a logit by more than the tolerance: `--tolerance X`,
 * else the recipe's `verify` field for the logits' dtype (`--recipe auto|NAME|FILE`), else 1e-4 for float32 logits
 * and 4 ulp of the largest logit for float16.
 */
import type { Command } from 'commander';
import { AttnpatchError } from '../../errors.js';
import { loadModelFile } from '../../graph/io/fs.js';
import { selectRecipe } from '../../recipes/select.js';
import type { Recipe } from '../../recipes/schema.js';
import { locateModel, readConfig } from '../../runtime/model-folder.js';
import { losslessTolerance, verifyModels } from '../../runtime/verify.js';
import { progress } from '../progress.js';
import { runCommand } from '../run.js';
import { META_LOSSY, META_PATCHES } from './convert.js';

export type VerifyCliOptions = { readonly tokens: string; readonly device?: string; readonly json?: boolean; readonly tolerance?: string; readonly recipe?: string };

export const LOSSLESS_TOLERANCE = 1e-4;

/** Where verify's tolerance came from: `--tolerance X`, a recipe's `verify.fp32|fp16`, or the built-in auto rule. */
export type ToleranceSource =
  | { readonly kind: 'option' }
  | { readonly kind: 'recipe'; readonly recipe: string; readonly matched: boolean; readonly field: 'verify.fp32' | 'verify.fp16' }
  | { readonly kind: 'auto'; readonly rule: string };

/** The tolerance for a report: an explicit number wins, then the recipe's field for the logits' dtype, then auto. */
export function resolveTolerance(
  option: string | undefined,
  recipe: { recipe: Recipe; matched: boolean } | undefined,
  report: { maxAbsLogit: number; logitsType: string },
): { tolerance: number; source: ToleranceSource } {
  if (option !== undefined && option !== 'auto') {
    const t = Number(option);
    if (!(t >= 0)) throw new AttnpatchError('USAGE', `--tolerance must be auto or a number ≥ 0, got ${option}`, { field: 'tolerance' });
    return { tolerance: t, source: { kind: 'option' } };
  }
  const fp16 = report.logitsType === 'float16';
  if (recipe && option === undefined) {
    return { tolerance: fp16 ? recipe.recipe.verify.fp16 : recipe.recipe.verify.fp32, source: { kind: 'recipe', recipe: recipe.recipe.name, matched: recipe.matched, field: fp16 ? 'verify.fp16' : 'verify.fp32' } };
  }
  return { tolerance: losslessTolerance(report), source: { kind: 'auto', rule: fp16 ? '4 ulp of the largest float16 logit (at least 1e-4)' : `${LOSSLESS_TOLERANCE} for ${report.logitsType} logits` } };
}

/** One phrase: "recipe tinystories (verify.fp32, matched from config.json)". */
export function describeToleranceSource(s: ToleranceSource): string {
  if (s.kind === 'option') return '--tolerance';
  if (s.kind === 'recipe') return `recipe ${s.recipe} (${s.field}${s.matched ? ', matched from config.json' : ''})`;
  return `auto: ${s.rule}`;
}

export async function verify(original: string, patched: string, options: VerifyCliOptions): Promise<void> {
  const tokens = Number(options.tokens);
  if (!Number.isInteger(tokens) || tokens < 0) throw new AttnpatchError('USAGE', `--tokens must be a whole number, got ${options.tokens}`, { field: 'tokens' });
  const device = (options.device ?? 'cpu') as 'cpu' | 'webgpu' | 'cuda';
  if (!['cpu', 'webgpu', 'cuda'].includes(device)) throw new AttnpatchError('USAGE', `--device must be one of cpu, webgpu, cuda; got ${device}`, { field: 'device' });
  const origin = locateModel(original);
  const a = origin.file;
  const b = locateModel(patched).file;
  // The recipe resolves before the models run, so a bad name or file fails at once (as convert's --recipe does).
  const recipe = options.recipe === undefined ? undefined : { recipe: await selectRecipe(options.recipe, readConfig(origin) ?? readConfig(locateModel(patched)), original), matched: options.recipe === 'auto' };
  const meta = loadModelFile(b, { allowMissingExternalData: true }).metadata;
  const lossy = meta.get(META_LOSSY) === 'true';
  const bar = progress('verify');
  const report = await verifyModels(a, b, { tokens, device, onProgress: (d, t) => bar.update(d, t) });
  bar.stop();
  const { tolerance, source } = resolveTolerance(options.tolerance, recipe, report);
  const result = {
    maxAbsDiff: report.maxAbsDiff,
    maxAbsLogit: report.maxAbsLogit,
    logitsType: report.logitsType,
    greedyMatch: report.greedyMatch,
    tokens: report.tokens,
    firstMismatch: report.firstMismatch,
    lossy,
    patches: meta.get(META_PATCHES) ?? null,
    tolerance,
    toleranceSource: source,
  };
  process.stdout.write(
    options.json
      ? `${JSON.stringify(result, null, 2)}\n`
      : `max |Δlogit| ${report.maxAbsDiff.toExponential(2)} over ${tokens} greedy steps; greedy tokens ${report.greedyMatch ? 'match' : `differ from step ${report.firstMismatch}`}${lossy ? ' (lossy patch: no tolerance applied)' : ''}\n` +
          `tolerance ${tolerance} from ${describeToleranceSource(source)}\n`,
  );
  if (!lossy && !(report.maxAbsDiff <= tolerance)) {
    throw new AttnpatchError('PATCH', `the patch is meant to be lossless but logits differ by ${report.maxAbsDiff.toExponential(2)} (> ${tolerance}, from ${describeToleranceSource(source)})`, { file: b });
  }
}

export function register(program: Command): void {
  program
    .command('verify')
    .description('compare a patched model with its original on ONNX Runtime (logits and greedy tokens)')
    .argument('<original>', 'the original .onnx file or model folder')
    .argument('<patched>', 'the patched .onnx file or model folder')
    .option('-n, --tokens <n>', 'greedy decode steps after the prompt', '16')
    .option('--device <device>', 'onnxruntime-node execution provider: cpu, webgpu or cuda', 'cpu')
    .option('--tolerance <x>', `largest logit difference a lossless patch may cause; auto: ${LOSSLESS_TOLERANCE} for float32 logits, 4 ulp of the largest logit for float16 (default: the recipe's verify tolerance with --recipe, else auto)`)
    .option('-r, --recipe <recipe>', "take the tolerance from a recipe's verify field for the logits' dtype: auto (matched from the original's config.json), a built-in name or a recipe .json")
    .option('--json', 'print a JSON report')
    .action(runCommand((original: string, patched: string, options: VerifyCliOptions) => verify(original, patched, options)));
}
