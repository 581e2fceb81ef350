/** Runs the attnpatch CLI program in-process and captures stdout, stderr and the exit code. */
import type { Command } from 'commander';
import { vi } from 'vitest';
import { createProgram } from '../../src/cli/main.js';

export interface CliResult {
  out: string;
  err: string;
  code: number;
}

/** `attnpatch …args`; commander's own exits (usage errors, --help) throw, as commander does. */
export async function runCli(...args: string[]): Promise<CliResult> {
  return capture(args, false);
}

/** `attnpatch …args` as a shell would see it: commander's usage errors and help become output and an exit code. */
export async function runCliLikeShell(args: readonly string[]): Promise<CliResult> {
  return capture(args, true);
}

async function capture(args: readonly string[], likeShell: boolean): Promise<CliResult> {
  let out = '';
  let err = '';
  const program = createProgram();
  const all = (c: Command): Command[] => [c, ...c.commands.flatMap(all)];
  if (likeShell) for (const c of all(program)) c.configureOutput({ writeOut: (t) => void (out += t), writeErr: (t) => void (err += t) });
  for (const c of likeShell ? all(program) : [program]) c.exitOverride();
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  process.exitCode = 0;
  try {
    await program.parseAsync(['node', 'attnpatch', ...args]);
  } catch (x) {
    if (!likeShell || !(x instanceof Error && 'exitCode' in x)) throw x;
    process.exitCode = Number(x.exitCode);
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return { out, err, code };
}
