import { afterEach, describe, expect, it, vi } from 'vitest';
import { AttnpatchError } from '../errors.js';
import { createProgram } from './main.js';
import { runCommand } from './run.js';

/** Runs `attnpatch ...args` in-process and returns what it wrote and the exit code it set. */
async function runCli(program: ReturnType<typeof createProgram>, ...args: string[]) {
  let stdout = '';
  let stderr = '';
  const write = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((stderr += String(chunk)), true));
  // Settings are copied to subcommands when they are created, so set them on every command here.
  for (const command of [program, ...program.commands]) {
    command.exitOverride().configureOutput({ writeOut: (s) => (stdout += s), writeErr: (s) => (stderr += s) });
  }
  try {
    await program.parseAsync(['node', 'attnpatch', ...args]);
  } catch (err) {
    // exitOverride turns commander's own exits (--help, usage errors) into throws.
    if (!(err instanceof Error && 'exitCode' in err)) throw err;
    process.exitCode = err.exitCode as number;
  } finally {
    write.mockRestore();
  }
  const exitCode = process.exitCode ?? 0;
  return { stdout, stderr, exitCode };
}

afterEach(() => {
  process.exitCode = undefined;
});

describe('attnpatch CLI', () => {
  it('--help lists inspect and convert', async () => {
    const { stdout, exitCode } = await runCli(createProgram(), '--help');
    expect(exitCode).toBe(0);
    expect(stdout).toMatch(/^Usage: attnpatch /);
    expect(stdout).toMatch(/^\s+inspect \[options\] <model>/m);
    expect(stdout).toMatch(/^\s+convert \[options\] <in>/m);
  });

  it('an AttnpatchError becomes one line on stderr and exit code 1', async () => {
    const program = createProgram();
    program.command('boom').action(
      runCommand(async () => {
        throw new AttnpatchError('PARSE', 'truncated varint at byte 12', { file: 'a.onnx' });
      }),
    );
    const { stderr, exitCode } = await runCli(program, 'boom');
    expect(exitCode).toBe(1);
    expect(stderr).toBe('attnpatch: truncated varint at byte 12 [file=a.onnx]\n');
  });

  it('any other error prints its stack and exits with 2', async () => {
    const program = createProgram();
    program.command('bug').action(
      runCommand(async () => {
        throw new TypeError('oops');
      }),
    );
    const { stderr, exitCode } = await runCli(program, 'bug');
    expect(exitCode).toBe(2);
    expect(stderr).toMatch(/^TypeError: oops\n\s+at /);
  });
});
