/** @file `attnpatch convert <in> -o <out>`: patch a model and write the result. */
import type { Command } from 'commander';
import { AttnpatchError } from '../../errors.js';
import { runCommand } from '../run.js';

export type ConvertOptions = { readonly output: string; readonly json?: boolean };

/** Placeholder until the runtime lands. */
export async function convert(_input: string, _options: ConvertOptions): Promise<void> {
  throw new AttnpatchError('USAGE', 'not implemented yet', {});
}

export function register(program: Command): void {
  program
    .command('convert')
    .description('patch a model and write the patched copy')
    .argument('<in>', 'a .onnx file or a transformers.js model folder')
    .requiredOption('-o, --output <out>', 'where to write the patched model')
    .option('--json', 'print a JSON report instead of text')
    .action(runCommand((input: string, options: ConvertOptions) => convert(input, options)));
}
