/** @file `attnpatch inspect <model>`: what attnpatch finds in a model and what it could patch. */
import type { Command } from 'commander';
import { AttnpatchError } from '../../errors.js';
import { runCommand } from '../run.js';

export type InspectOptions = { readonly json?: boolean };

/** Placeholder until the runtime lands. */
export async function inspect(_model: string, _options: InspectOptions): Promise<void> {
  throw new AttnpatchError('USAGE', 'not implemented yet', {});
}

export function register(program: Command): void {
  program
    .command('inspect')
    .description('list the attention blocks of a model and which patches apply')
    .argument('<model>', 'a .onnx file or a transformers.js model folder')
    .option('--json', 'print a JSON report instead of text')
    .action(runCommand((model: string, options: InspectOptions) => inspect(model, options)));
}
