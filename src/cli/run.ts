/**
 * @file The one place CLI commands meet errors. An AttnpatchError is an expected failure (bad input, unsupported
 * model): one line on stderr, exit code 1. Anything else is a bug in attnpatch: full stack, exit code 2.
 */
import { isAttnpatchError } from '../errors.js';

/** Wraps a command action so that its errors become a message and an exit code instead of a crash. */
export function runCommand<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args) => {
    try {
      await fn(...args);
    } catch (err) {
      if (isAttnpatchError(err)) {
        process.stderr.write(`attnpatch: ${err.message}\n`);
        process.exitCode = 1;
      } else {
        process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
        process.exitCode = 2;
      }
    }
  };
}
