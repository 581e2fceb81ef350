/**
 * @file Code samples in README.md and docs/*.md, and the annotations that say how the docs test runs them
 * (test/docs/samples.test.ts). An annotation is an HTML comment on the line(s) right above a fence:
 *
 *   <!-- docs-test: skip: REASON -->           not run (needs another model, installs, …); listed and parsed
 *   <!-- docs-test: browser -->                a browser sample: parsed here, run as a module in the test page by
 *                                              test/browser (its import map, the repo served at /)
 *   <!-- docs-test: replace "FROM" => "TO" --> literal replacement before running; TO may use $MODEL (the shipped
 *                                              models/tinystories-656k, absolute) and $REPO (the repo root)
 *   <!-- docs-test: file NAME = PATH -->       copy PATH (repo-relative) to NAME in the sample's working folder
 *   <!-- docs-test: expect-error "TEXT" -->    the sample must fail (sh: its last command exits non-zero) with
 *                                              TEXT in the error message (sh: stderr)
 *
 * Several comments may be stacked, one per line. Samples are ```sh/```bash/```shell blocks (runnable when every
 * command in them starts with `npx attnpatch`) and ```js/```ts/```mjs blocks (run in Node with `attnpatch` imports
 * resolved to src/); ```html blocks are browser-only. Other fences (text, json, none) are output, not samples.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

export type SampleKind = 'sh' | 'js' | 'html';

export interface Directives {
  skip?: string;
  /** Runs in test/browser's page instead of Node. */
  browser?: boolean;
  replace: [from: string, to: string][];
  files: [name: string, path: string][];
  expectError?: string;
}

export interface Sample {
  /** Repo-relative markdown file. */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  kind: SampleKind;
  code: string;
  directives: Directives;
  /** Malformed annotations (each one fails the test). */
  problems: string[];
}

const KINDS: Record<string, SampleKind> = {
  sh: 'sh', bash: 'sh', shell: 'sh',
  js: 'js', javascript: 'js', mjs: 'js', ts: 'js', typescript: 'js',
  html: 'html',
};

const ANNOTATION = /^\s*<!--\s*docs-test:\s*(.*?)\s*-->\s*$/;

/** Reads one annotation's text into `d`; returns a problem when it cannot. */
function parseDirective(text: string, d: Directives): string | undefined {
  let m: RegExpExecArray | null;
  if ((m = /^skip:\s*(\S.*)$/.exec(text))) d.skip = m[1]!;
  else if (text === 'browser') d.browser = true;
  else if ((m = /^replace\s+"((?:[^"\\]|\\.)*)"\s*=>\s*"((?:[^"\\]|\\.)*)"$/.exec(text))) d.replace.push([JSON.parse(`"${m[1]}"`), JSON.parse(`"${m[2]}"`)]);
  else if ((m = /^file\s+(\S+)\s*=\s*(\S+)$/.exec(text))) d.files.push([m[1]!, m[2]!]);
  else if ((m = /^expect-error\s+"((?:[^"\\]|\\.)*)"$/.exec(text))) d.expectError = JSON.parse(`"${m[1]}"`);
  else return `unknown docs-test annotation "${text}" (skip: REASON | browser | replace "A" => "B" | file NAME = PATH | expect-error "TEXT")`;
  return undefined;
}

/** Every fenced code sample of one markdown text, with the annotations above it. */
export function extractSamples(markdown: string, file: string): Sample[] {
  const lines = markdown.split('\n');
  const out: Sample[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w-]*)/.exec(lines[i]!);
    if (!open) continue;
    const fence = open[2]!;
    const lang = open[3]!.toLowerCase();
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !lines[j]!.trimStart().startsWith(fence); j++) body.push(lines[j]!.slice(open[1]!.length));
    const kind = KINDS[lang];
    if (kind) {
      const directives: Directives = { replace: [], files: [] };
      const problems: string[] = [];
      const above: string[] = [];
      for (let k = i - 1; k >= 0 && ANNOTATION.test(lines[k]!); k--) above.unshift(ANNOTATION.exec(lines[k]!)![1]!);
      for (const text of above) {
        const p = parseDirective(text, directives);
        if (p) problems.push(p);
      }
      out.push({ file, line: i + 1, lang, kind, code: body.join('\n'), directives, problems });
    }
    i = j;
  }
  return out;
}

/**
 * README.md and every docs/*.md, in a stable order; `only` (comma-separated paths, repo-relative or absolute; the
 * test passes ATTNPATCH_DOCS_TEST_FILES) checks just those files.
 */
export function docFiles(repo: string, only?: string): string[] {
  if (only) return only.split(',').filter(Boolean).map((f) => resolve(repo, f.trim()));
  const docs = readdirSync(join(repo, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => join(repo, 'docs', f));
  return [join(repo, 'README.md'), ...docs];
}

export function samplesOf(repo: string, only?: string): Sample[] {
  return docFiles(repo, only).flatMap((f) => extractSamples(readFileSync(f, 'utf8'), relative(repo, f)));
}

/** The sample's code with its `replace` annotations applied ($MODEL, $REPO expanded in the replacement). */
export function substituted(s: Sample, vars: Record<string, string>): string {
  let code = s.code;
  for (const [from, to] of s.directives.replace) {
    if (!code.includes(from)) throw new Error(`${where(s)}: replace "${from}": not found in the sample`);
    const value = to.replace(/\$([A-Z]+)/g, (m, name: string) => vars[name] ?? m);
    code = code.split(from).join(value);
  }
  return code;
}

export const where = (s: Sample): string => `${s.file}:${s.line} (\`\`\`${s.lang})`;

/**
 * The commands of a shell sample: lines joined at trailing backslashes, `#` comments dropped. Each command is split
 * into words like a POSIX shell would for the simple forms docs use (quotes, no expansions); a command that needs
 * more (pipes, redirects, `$`, `&&`) is returned with `unsupported` set.
 */
export function shellCommands(code: string): { text: string; words: string[]; unsupported?: string }[] {
  const joined = code.replace(/\\\n/g, ' ');
  const out: { text: string; words: string[]; unsupported?: string }[] = [];
  for (const raw of joined.split('\n')) {
    const words: string[] = [];
    let word: string | undefined;
    let unsupported: string | undefined;
    let quote: '"' | "'" | undefined;
    let k = 0;
    for (; k < raw.length; k++) {
      const c = raw[k]!;
      if (quote) {
        if (c === quote) quote = undefined;
        else word = (word ?? '') + c;
        continue;
      }
      if (c === '"' || c === "'") {
        quote = c;
        word ??= '';
      } else if (/\s/.test(c)) {
        if (word !== undefined) words.push(word);
        word = undefined;
      } else if (c === '#' && word === undefined) {
        break;
      } else {
        if ('|&;<>$`(){}*?'.includes(c)) unsupported ??= `shell syntax "${c}"`;
        word = (word ?? '') + c;
      }
    }
    if (word !== undefined) words.push(word);
    if (quote) unsupported ??= 'unclosed quote';
    const text = raw.slice(0, k).trim();
    if (words.length) out.push({ text, words, ...(unsupported ? { unsupported } : {}) });
  }
  return out;
}

/** Why a sample cannot run as written (no skip annotation): undefined when it can. */
export function notRunnable(s: Sample): string | undefined {
  if (s.kind === 'html') return 'an html sample runs only in a browser';
  if (s.kind === 'sh') {
    const commands = shellCommands(s.code);
    if (!commands.length) return 'a shell sample with no command';
    const other = commands.find((c) => c.words[0] !== 'npx' || c.words[1] !== 'attnpatch');
    if (other) return `\`${other.text}\` is not an \`npx attnpatch\` command`;
    const odd = commands.find((c) => c.unsupported);
    if (odd) return `\`${odd.text}\` uses ${odd.unsupported}, which the docs test does not run`;
  }
  return undefined;
}

/** Rewrites `attnpatch`, `attnpatch/node`, `attnpatch/graph`, `attnpatch/patchers` imports to the source entries. */
export function resolveImports(code: string, repo: string): string {
  const entries: Record<string, string> = {
    attnpatch: 'src/index.ts',
    'attnpatch/node': 'src/node.ts',
    'attnpatch/graph': 'src/graph/index.ts',
    'attnpatch/patchers': 'src/patchers/index.ts',
  };
  return code.replace(/(\bfrom\s*|\bimport\s*\(?\s*)(['"])(attnpatch(?:\/[\w-]+)?)\2/g, (m, pre: string, q: string, spec: string) => {
    const entry = entries[spec];
    if (!entry) throw new Error(`import of ${spec}: not an entry point of the package (${Object.keys(entries).join(', ')})`);
    return `${pre}${q}${join(repo, entry)}${q}`;
  });
}
