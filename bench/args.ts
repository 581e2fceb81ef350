/** @file Command-line flags shared by the benches and plot scripts: `--name` switches and `--name value` options. */

/** Readers over argv: `has('--quick')`, `val('--contexts')` (the word after the flag, or undefined). */
export function argReader(argv: readonly string[]): { has(flag: string): boolean; val(flag: string): string | undefined } {
  return {
    has: (flag) => argv.includes(flag),
    val(flag) {
      const i = argv.indexOf(flag);
      return i >= 0 ? argv[i + 1] : undefined;
    },
  };
}
