/**
 * @file `attnpatch verify <original> <patched>`: both models on ONNX Runtime over a fixed prompt and N greedy
 * decode steps; exit 1 when a patch meant to be lossless moved a logit by more than 1e-4.
 */
import type { Command } from 'commander';
import { AttnpatchError } from '../../errors.js';
import { loadModelFile } from '../../graph/io/fs.js';
import { locateModel } from '../../runtime/model-folder.js';
import { losslessTolerance, verifyModels } from '../../runtime/verify.js';
import { progress } from '../progress.js';
import { runCommand } from '../run.js';
import { META_LOSSY, META_PATCHES } from './convert.js';

export type VerifyCliOptions = { readonly tokens: string; readonly device?: string; readonly json?: boolean; readonly tolerance: string };

export const LOSSLESS_TOLERANCE = 1e-4;

export async function verify(original: string, patched: string, options: VerifyCliOptions): Promise<void> {
  const tokens = Number(options.tokens);
  if (!Number.isInteger(tokens) || tokens < 0) throw new AttnpatchError('USAGE', `--tokens must be a whole number, got ${options.tokens}`, { field: 'tokens' });
  const device = (options.device ?? 'cpu') as 'cpu' | 'webgpu' | 'cuda';
  if (!['cpu', 'webgpu', 'cuda'].includes(device)) throw new AttnpatchError('USAGE', `--device must be one of cpu, webgpu, cuda; got ${device}`, { field: 'device' });
  const a = locateModel(original).file;
  const b = locateModel(patched).file;
  const meta = loadModelFile(b, { allowMissingExternalData: true }).metadata;
  const lossy = meta.get(META_LOSSY) === 'true';
  const bar = progress('verify');
  const report = await verifyModels(a, b, { tokens, device, onProgress: (d, t) => bar.update(d, t) });
  bar.stop();
  const tolerance = options.tolerance === 'auto' ? losslessTolerance(report) : Number(options.tolerance);
  const result = { maxAbsDiff: report.maxAbsDiff, maxAbsLogit: report.maxAbsLogit, logitsType: report.logitsType, greedyMatch: report.greedyMatch, tokens: report.tokens, firstMismatch: report.firstMismatch, lossy, patches: meta.get(META_PATCHES) ?? null, tolerance };
  process.stdout.write(
    options.json
      ? `${JSON.stringify(result, null, 2)}\n`
      : `max |Δlogit| ${report.maxAbsDiff.toExponential(2)} over ${tokens} greedy steps; greedy tokens ${report.greedyMatch ? 'match' : `differ from step ${report.firstMismatch}`}${lossy ? ' (lossy patch: no tolerance applied)' : ''}\n`,
  );
  if (!lossy && !(report.maxAbsDiff <= tolerance)) {
    throw new AttnpatchError('PATCH', `the patch is meant to be lossless but logits differ by ${report.maxAbsDiff.toExponential(2)} (> ${tolerance})`, { file: b });
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
    .option('--tolerance <x>', `largest logit difference a lossless patch may cause (auto: ${LOSSLESS_TOLERANCE} for float32 logits, 4 ulp of the largest logit for float16)`, 'auto')
    .option('--json', 'print a JSON report')
    .action(runCommand((original: string, patched: string, options: VerifyCliOptions) => verify(original, patched, options)));
}
