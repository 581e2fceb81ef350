/** docs/cli.md is the CLI's own help, rendered by scripts/cli-reference.ts; it must not go stale. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CLI_REFERENCE, REGENERATE, renderCliReference } from '../../scripts/cli-reference.js';

describe('docs/cli.md', () => {
  it('equals the CLI help as scripts/cli-reference.ts renders it', () => {
    const expected = renderCliReference();
    let actual = '';
    try {
      actual = readFileSync(CLI_REFERENCE, 'utf8');
    } catch {
      // missing: reported below
    }
    // NOTE: the message names the command; the diff vitest prints shows what changed.
    expect(actual, `docs/cli.md is stale (the CLI's options or descriptions changed): run \`${REGENERATE}\` and commit docs/cli.md`).toBe(expected);
  });

  it('covers every command and subcommand, with its options', () => {
    const text = renderCliReference();
    for (const c of ['attnpatch', 'attnpatch convert', 'attnpatch verify', 'attnpatch eval ppl', 'attnpatch eval passkey', 'attnpatch recipes match']) expect(text).toContain(`\n## ${c}\n`);
    expect(text).toMatch(/Usage: attnpatch verify \[options\] <original> <patched>/);
    expect(text).toMatch(/-r, --recipe <recipe>/);
  });
});
