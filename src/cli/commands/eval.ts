/**
 * @file `attnpatch eval ppl <model> --text FILE --context N [--windows K] [--patch SPEC]... [--json]`: perplexity of
 * a model (optionally patched in memory first) on a text, in non-overlapping windows of N tokens.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { AttnpatchError, withContext } from '../../errors.js';
import { loadModelFile, saveModelFile } from '../../graph/io/fs.js';
import { applyPatches, type PatchSpec } from '../../patchers/spec.js';
import { resolveCalibration } from '../../runtime/eval/calibrate.js';
import { refitPatched } from '../../runtime/eval/mla-refit.js';
import { evaluatePerplexity, type PerplexityResult } from '../../runtime/eval/perplexity.js';
import { locateModel, patchContextOf, readConfig } from '../../runtime/model-folder.js';
import { evaluatePasskey, type PasskeyResult } from '../../runtime/eval/passkey.js';
import { progress } from '../progress.js';
import { runCommand } from '../run.js';

export type EvalPplOptions = {
  readonly text: string;
  readonly context: number;
  readonly windows?: number;
  readonly patch?: readonly string[];
  readonly bos?: boolean;
  readonly partial?: boolean;
  readonly prefillChunk?: number;
  readonly tokenizer?: string;
  readonly json?: boolean;
};

/** The tokenizer folder: --tokenizer, else the model folder, else the .onnx file's folder or its parent. */
export function tokenizerFolder(model: string, given: string | undefined): string {
  if (given) return given;
  const loc = locateModel(model);
  const candidates = loc.folder ? [loc.folder] : [dirname(loc.file), dirname(dirname(loc.file))];
  const found = candidates.find((d) => existsSync(join(d, 'tokenizer.json')));
  if (!found) throw new AttnpatchError('USAGE', 'no tokenizer.json beside the model; give the model folder or --tokenizer FOLDER', { file: model });
  return found;
}

/** Runs the evaluation and returns the result (the command prints it). */
export async function evalPpl(model: string, options: EvalPplOptions): Promise<PerplexityResult> {
  const location = locateModel(model);
  const tokenizer = tokenizerFolder(model, options.tokenizer);
  let text: string;
  try {
    text = readFileSync(options.text, 'utf8');
  } catch (e) {
    throw withContext(e, { file: options.text });
  }
  const specs: PatchSpec[] = [...(options.patch ?? [])];
  let tmp: string | undefined;
  let target = location.file;
  // DCA models are fed chunk by chunk (as the pipeline does): exact, and memory stays O(T·L).
  let prefillChunk: number | undefined = options.prefillChunk;
  const bar = progress('ppl windows');
  try {
    if (specs.length) {
      const m = loadModelFile(location.file);
      const calib = progress('calibration windows');
      const resolved = await resolveCalibration(specs, { model: m, tokenizerFolder: tokenizer, onProgress: (d, t) => calib.update(d, t) }).finally(() => calib.stop());
      for (const report of applyPatches(m, resolved, patchContextOf(readConfig(location)))) {
        if (typeof report.details?.chunkLength === 'number') prefillChunk ??= report.details.chunkLength;
        for (const w of report.warnings) process.stderr.write(`attnpatch: ${w}\n`);
        for (const l of report.left) process.stderr.write(`attnpatch: ${report.patch} left layer ${l.layer} (${l.form}) as it was: ${l.reason}\n`);
      }
      const refit = await refitPatched(resolved, { original: () => loadModelFile(location.file), patched: m });
      if (refit?.layers.length) process.stderr.write(`attnpatch: mla refit the folded output projections of layers ${refit.layers.join(', ')} on ${refit.tokens} calibration tokens\n`);
      for (const s of refit?.skipped ?? []) process.stderr.write(`attnpatch: mla did not refit layer ${s.layer}: ${s.reason}\n`);
      // NOTE: through a file, not bytes, so models with external data keep it (saveModelFile writes it beside).
      tmp = mkdtempSync(join(tmpdir(), 'attnpatch-eval-'));
      target = join(tmp, 'model.onnx');
      saveModelFile(m, target);
    }
    return await evaluatePerplexity({
      model: target,
      tokenizerFolder: tokenizer,
      text,
      context: options.context,
      ...(options.windows !== undefined ? { windows: options.windows } : {}),
      ...(options.bos ? { bos: true } : {}),
      ...(options.partial ? { partial: true } : {}),
      ...(prefillChunk !== undefined ? { prefillChunk } : {}),
      onProgress: (d, t) => bar.update(d, t),
    });
  } finally {
    bar.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

function positiveInt(name: string) {
  return (s: string): number => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer`);
    return n;
  };
}

export function register(program: Command): void {
  const evalCmd = program.command('eval').description('measure model quality (perplexity, passkey retrieval)');
  evalCmd
    .command('ppl')
    .description('perplexity on a text in non-overlapping windows of --context tokens (ONNX Runtime, CPU)')
    .argument('<model>', 'a transformers.js model folder (its tokenizer reads the text), or a .onnx file with --tokenizer')
    .requiredOption('--text <file>', 'UTF-8 text to score (tokenized whole, no special tokens)')
    .requiredOption('--context <n>', 'tokens per window', positiveInt('--context'))
    .option('--windows <k>', 'score only the first k windows', positiveInt('--windows'))
    .option('--patch <spec>', "apply a patch in memory first, e.g. 'gqa:kvHeads=2,merge=aligned,calibration=calib.txt' or 'mla:kvRatio=0.5,calibration=calib.txt' (repeatable)", (s: string, prev: string[] = []) => [...prev, s])
    .option('--bos', 'start every window with BOS and score all its text tokens')
    .option('--partial', 'also score the trailing window shorter than --context')
    .option('--prefill-chunk <n>', 'feed each window in calls of at most n tokens (default: the dca chunk length, else whole windows)', positiveInt('--prefill-chunk'))
    .option('--tokenizer <folder>', 'model folder holding tokenizer.json (default: the model folder)')
    .option('--json', 'print {"ppl","tokens","context","windows"} as JSON')
    .action(
      runCommand(async (model: string, options: EvalPplOptions) => {
        const r = await evalPpl(model, options);
        const out = options.json
          ? JSON.stringify({ ppl: r.ppl, tokens: r.tokens, context: r.context, windows: r.windows })
          : `perplexity ${r.ppl.toFixed(3)} over ${r.tokens.toLocaleString('en-US')} tokens (${r.windows} window${r.windows === 1 ? '' : 's'} of ${r.context})`;
        process.stdout.write(`${out}\n`);
      }),
    );
  evalCmd
    .command('passkey')
    .description('passkey retrieval at a context length, plus the attention mass the final query puts on the key')
    .argument('<model>', 'a transformers.js model folder')
    .requiredOption('--context <n>', 'prompt length in tokens', positiveInt('--context'))
    .option('--depth <x>', 'where the key sits, 0 (start) … 1 (end)', '0.5')
    .option('--patch <spec>', 'apply a patch in memory first (repeatable)', (s: string, prev: string[] = []) => [...prev, s])
    .option('--json', 'print the full result as JSON')
    .action(
      runCommand(async (model: string, options: { context: number; depth: string; patch?: string[]; json?: boolean }) => {
        const r = await evalPasskey(model, options);
        const best = r.keyMass.reduce((a, b) => (b.mass > a.mass ? b : a), { layer: -1, mass: 0 });
        const out = options.json
          ? JSON.stringify(r, null, 2)
          : `key ${r.key} ${r.retrieved ? 'retrieved' : 'not retrieved'} (generated ${JSON.stringify(r.generated)}); ${r.promptTokens} prompt tokens; attention mass on the key: ${r.keyMass.map((k) => `layer ${k.layer} ${(k.mass * 100).toFixed(2)}% (lift ×${k.lift.toFixed(2)})`).join(', ')} (uniform ${(r.uniformMass * 100).toFixed(2)}%; best ×${(best.mass / r.uniformMass).toFixed(2)})`;
        process.stdout.write(`${out}\n`);
      }),
    );
}

/** `eval passkey`: patches in memory (DCA prompts are fed chunk by chunk) and runs the test. */
export async function evalPasskey(model: string, options: { context: number; depth: string; patch?: string[] }): Promise<PasskeyResult> {
  const location = locateModel(model);
  const m = loadModelFile(location.file);
  let prefillChunk: number | undefined;
  for (const report of applyPatches(m, [...(options.patch ?? [])], patchContextOf(readConfig(location)))) {
    if (typeof report.details?.chunkLength === 'number') prefillChunk = report.details.chunkLength;
  }
  return evaluatePasskey({
    model: m,
    tokenizerFolder: tokenizerFolder(model, undefined),
    context: options.context,
    depth: Number(options.depth),
    ...(prefillChunk !== undefined ? { prefillChunk } : {}),
  });
}
