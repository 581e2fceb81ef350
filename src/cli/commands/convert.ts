/** @file `attnpatch convert <in> -o <out>`: load a model (file or transformers.js folder), patch it, write it. */
import type { Command } from 'commander';
import { inspectModel } from '../../patchers/inspect.js';
import { loadLocated, writeModelLike } from '../../runtime/model-folder.js';
import { runCommand } from '../run.js';

export type ConvertOptions = { readonly output: string; readonly json?: boolean };

export async function convert(input: string, options: ConvertOptions): Promise<void> {
  const { model, location } = loadLocated(input);
  const before = inspectModel(model);
  // No patches yet: a load → save round trip, byte-identical to the input.
  const target = writeModelLike(model, location, options.output);
  const report = {
    input: location.file,
    output: target.file,
    blocks: before.attention.length,
    patched: [] as string[],
    left: before.unsupported,
    kvCacheBytesPerToken: { before: before.kvCacheBytesPerToken, after: before.kvCacheBytesPerToken },
  };
  process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `wrote ${target.file} (${report.blocks} attention blocks, none patched)\n`);
}

export function register(program: Command): void {
  program
    .command('convert')
    .description('patch a model and write the patched copy (a folder gives a complete folder)')
    .argument('<in>', 'a .onnx file or a transformers.js model folder')
    .requiredOption('-o, --output <out>', 'where to write the patched model')
    .option('--json', 'print a JSON report instead of text')
    .action(runCommand((input: string, options: ConvertOptions) => convert(input, options)));
}
