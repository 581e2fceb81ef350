/** The docs test's own machinery: extracting samples, reading annotations, splitting shell commands. */
import { describe, expect, it } from 'vitest';
import { extractSamples, notRunnable, resolveImports, shellCommands, substituted } from './samples.js';

const md = (...lines: string[]) => lines.join('\n');

describe('docs test: samples and annotations', () => {
  it('finds sh/js/ts/html fences with the annotations stacked right above them; text fences are not samples', () => {
    const samples = extractSamples(
      md(
        '<!-- docs-test: replace "MODEL" => "$MODEL" -->',
        '<!-- docs-test: file a.txt = models/x.txt -->',
        '```sh',
        'npx attnpatch inspect MODEL',
        '```',
        '```text',
        'output',
        '```',
        '<!-- docs-test: skip: browser-only -->',
        '',
        '```js',
        'x()',
        '```',
      ),
      'f.md',
    );
    expect(samples.map((s) => [s.line, s.kind])).toEqual([[3, 'sh'], [11, 'js']]);
    expect(samples[0]!.directives).toEqual({ replace: [['MODEL', '$MODEL']], files: [['a.txt', 'models/x.txt']] });
    // A blank line separates an annotation from the fence: it no longer applies.
    expect(samples[1]!.directives.skip).toBeUndefined();
    expect(substituted(samples[0]!, { MODEL: '/m' })).toBe('npx attnpatch inspect /m');
  });

  it('a malformed annotation is a problem; a replacement that matches nothing throws', () => {
    const [s] = extractSamples(md('<!-- docs-test: skipp: why -->', '<!-- docs-test: replace "zzz" => "y" -->', '```sh', 'npx attnpatch inspect m', '```'), 'f.md');
    expect(s!.problems).toEqual([expect.stringMatching(/^unknown docs-test annotation "skipp: why"/)]);
    expect(() => substituted(s!, {})).toThrow('f.md:3 (```sh): replace "zzz": not found in the sample');
  });

  it('shell commands: continuations joined, comments dropped, quotes honoured, other syntax flagged', () => {
    expect(shellCommands(md('npx attnpatch eval ppl m --text "a b.txt" \\', "    --patch 'dca' # comment", '', '# only a comment'))).toEqual([
      { text: 'npx attnpatch eval ppl m --text "a b.txt"      --patch \'dca\'', words: ['npx', 'attnpatch', 'eval', 'ppl', 'm', '--text', 'a b.txt', '--patch', 'dca'] },
    ]);
    expect(shellCommands('npx attnpatch recipes list | head')[0]!.unsupported).toBe('shell syntax "|"');
  });

  it('a sample is runnable only as npx attnpatch commands or js/ts; html never', () => {
    const sample = (lang: string, code: string) => extractSamples(md(`\`\`\`${lang}`, code, '```'), 'f.md')[0]!;
    expect(notRunnable(sample('sh', 'npx attnpatch inspect m'))).toBeUndefined();
    expect(notRunnable(sample('sh', 'npm ci'))).toBe('`npm ci` is not an `npx attnpatch` command');
    expect(notRunnable(sample('sh', 'npx attnpatch inspect m > out.txt'))).toMatch(/uses shell syntax ">"/);
    expect(notRunnable(sample('ts', 'const x: number = 1;'))).toBeUndefined();
    expect(notRunnable(sample('html', '<p>'))).toBe('an html sample runs only in a browser');
  });

  it('attnpatch imports point at the source entries; unknown subpaths are refused', () => {
    expect(resolveImports("import { pipeline } from 'attnpatch';\nconst n = await import(\"attnpatch/node\");", '/r')).toBe(
      "import { pipeline } from '/r/src/index.ts';\nconst n = await import(\"/r/src/node.ts\");",
    );
    expect(() => resolveImports("import x from 'attnpatch/cli';", '/r')).toThrow(/attnpatch\/cli: not an entry point/);
  });
});
