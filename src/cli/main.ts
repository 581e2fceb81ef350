/**
 * @file The `attnpatch` command line: builds the commander program from one module per command
 * (`commands/*.ts`, each exporting `register`) and runs it. `bin/attnpatch.js` calls {@link main}.
 */
import { createRequire } from 'node:module';
import { Command } from 'commander';
import { register as registerConvert } from './commands/convert.js';
import { register as registerDemo } from './commands/demo.js';
import { register as registerEval } from './commands/eval.js';
import { register as registerInspect } from './commands/inspect.js';
import { register as registerRecipes } from './commands/recipes.js';
import { register as registerVerify } from './commands/verify.js';

// NOTE: ../../package.json is the package root both from src/cli (tests) and from dist/cli (built).
const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

/** Every command, in the order `--help` lists them. */
const COMMANDS: readonly ((program: Command) => void)[] = [registerDemo, registerInspect, registerConvert, registerVerify, registerEval, registerRecipes];

/** A fresh program with every command registered; tests drive it in-process. */
export function createProgram(): Command {
  const program = new Command('attnpatch')
    .description('Rewrite the attention of decoder LLMs inside ONNX files (GQA, Dual Chunk Attention, MLA).')
    .version(version);
  for (const register of COMMANDS) register(program);
  return program;
}

/** Runs the CLI on `argv` as Node gives it (`process.argv`: node, script, args…). */
export async function main(argv: string[]): Promise<void> {
  await createProgram().parseAsync(argv);
}
