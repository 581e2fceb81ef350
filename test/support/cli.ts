/** Runs the attnpatch CLI program in-process and captures stdout, stderr and the exit code. */
import { vi } from 'vitest';
import { createProgram } from '../../src/cli/main.js';

export async function runCli(...args: string[]): Promise<{ out: string; err: string; code: number }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  process.exitCode = 0;
  try {
    await createProgram().exitOverride().parseAsync(['node', 'attnpatch', ...args]);
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return { out, err, code };
}
