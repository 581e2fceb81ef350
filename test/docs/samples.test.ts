/**
 * The docs test: every code sample in README.md and docs/*.md runs, or says why it cannot (test/docs/samples.ts
 * lists the annotations). Shell samples run `npx attnpatch …` as the CLI program from src/ (in-process, in a fresh
 * folder holding a `models` link to the shipped models and the files the sample's annotations name); js/ts samples
 * run in Node with their `attnpatch` imports pointed at src/; skipped samples are parsed (js/ts syntax, `bash -n`,
 * html inline scripts and import maps). Runs offline: transformers.js may not fetch, and patched graphs go to a
 * temporary cache folder. `ATTNPATCH_DOCS_TEST_FILES=a.md,b.md` limits the run to those files.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliLikeShell } from '../support/cli.js';
import { REPO_ROOT } from '../support/paths.js';
import { notRunnable, resolveImports, samplesOf, shellCommands, substituted, where, type Sample } from './samples.js';

const VARS = { MODEL: join(REPO_ROOT, 'models', 'tinystories-656k'), REPO: REPO_ROOT };
// NOTE: inside the repo tree, so the samples' imports of node_modules packages resolve as they do for src/.
const work = join(REPO_ROOT, 'tmp', `docs-test-${process.pid}`);
const cwd = process.cwd();
const cacheHome = process.env.XDG_CACHE_HOME;

beforeAll(async () => {
  mkdirSync(work, { recursive: true });
  process.env.XDG_CACHE_HOME = join(work, 'cache'); // the pipeline's patched-graph cache (~/.cache/attnpatch)
  const { env } = await import('@huggingface/transformers');
  env.allowRemoteModels = false;
});
afterAll(() => {
  process.chdir(cwd);
  if (cacheHome === undefined) delete process.env.XDG_CACHE_HOME;
  else process.env.XDG_CACHE_HOME = cacheHome;
  rmSync(work, { recursive: true, force: true });
});

/** A fresh folder for one sample: `models` → the repo's models, plus the files its annotations name. */
function folderFor(s: Sample, n: number): string {
  const dir = mkdtempSync(join(work, `s${n}-`));
  symlinkSync(join(REPO_ROOT, 'models'), join(dir, 'models'));
  for (const [name, path] of s.directives.files) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    copyFileSync(join(REPO_ROOT, path), join(dir, name));
  }
  return dir;
}

async function runShell(s: Sample, n: number): Promise<void> {
  const dir = folderFor(s, n);
  const commands = shellCommands(substituted(s, VARS));
  const expectError = s.directives.expectError;
  process.chdir(dir);
  try {
    for (const [i, c] of commands.entries()) {
      const last = i === commands.length - 1;
      const r = await runCliLikeShell(c.words.slice(2));
      if (last && expectError !== undefined) {
        expect(r.code, `${where(s)}: \`${c.text}\` should fail`).not.toBe(0);
        expect(r.err, `${where(s)}: \`${c.text}\`'s error`).toContain(expectError);
      } else {
        expect(r.code, `${where(s)}: \`${c.text}\` exited with ${r.code}\n${r.err}`).toBe(0);
      }
    }
  } finally {
    process.chdir(cwd);
  }
}

async function runScript(s: Sample, n: number): Promise<void> {
  const dir = folderFor(s, n);
  const file = join(dir, 'sample.ts');
  writeFileSync(file, `${resolveImports(substituted(s, VARS), REPO_ROOT)}\nexport {};\n`);
  process.chdir(dir);
  try {
    const run = import(/* @vite-ignore */ pathToFileURL(file).href);
    if (s.directives.expectError !== undefined) await expect(run, where(s)).rejects.toThrow(s.directives.expectError);
    else await run;
  } finally {
    process.chdir(cwd);
  }
}

/** Syntax problems of a sample that is not run (the test still reads it). */
function parseProblems(s: Sample): string[] {
  const syntax = (code: string, name: string) =>
    (ts.transpileModule(code, { reportDiagnostics: true, fileName: name, compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).diagnostics ?? []).map(
      (d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'),
    );
  if (s.kind === 'js') return syntax(s.code, s.lang.startsWith('t') ? 'sample.ts' : 'sample.js');
  if (s.kind === 'sh') {
    const r = spawnSync('bash', ['-n'], { input: s.code, encoding: 'utf8' });
    return r.status === 0 ? [] : [r.stderr.trim()];
  }
  const problems: string[] = [];
  for (const m of s.code.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)) {
    const [, attrs = '', body = ''] = m;
    if (/type=["']importmap["']/.test(attrs)) {
      try {
        JSON.parse(body);
      } catch (e) {
        problems.push(`import map: ${(e as Error).message}`);
      }
    } else if (body.trim()) problems.push(...syntax(body, 'inline.js'));
  }
  return problems;
}

// ATTNPATCH_DOCS_TEST_FILES=docs/gqa.md,README.md checks only those files (while writing a page).
const samples = samplesOf(REPO_ROOT, process.env.ATTNPATCH_DOCS_TEST_FILES);
const skipped = samples.filter((s) => s.directives.skip !== undefined);
const inBrowser = samples.filter((s) => s.directives.browser);

describe('docs: code samples in README.md and docs/*.md', () => {
  it('finds samples', () => {
    expect(samples.length).toBeGreaterThan(0);
    console.info(`docs samples: ${samples.length}, skipped ${skipped.length}:\n${skipped.map((s) => `  ${where(s)}: ${s.directives.skip}`).join('\n')}`);
    console.info(`run by test/browser: ${inBrowser.map(where).join(', ')}`);
  });

  samples.forEach((s, n) => {
    const label = s.directives.skip !== undefined ? `${where(s)} parses (skip: ${s.directives.skip})` : s.directives.browser ? `${where(s)} parses (test/browser runs it)` : `${where(s)} runs`;
    it(label, async () => {
      expect(s.problems, where(s)).toEqual([]);
      if (s.directives.skip !== undefined || s.directives.browser) {
        expect(parseProblems(s), `${where(s)} does not parse`).toEqual([]);
        return;
      }
      const why = notRunnable(s);
      if (why) throw new Error(`${where(s)} cannot run here: ${why}. Make it runnable, or put <!-- docs-test: skip: REASON --> on the line above the fence (test/docs/samples.ts).`);
      if (s.kind === 'sh') await runShell(s, n);
      else await runScript(s, n);
    }, 60_000);
  });
});
