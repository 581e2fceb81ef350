/**
 * Links between the docs resolve: every relative link in README.md and docs/*.md points at a file that exists, and
 * a `#fragment` into a markdown file names one of its headings (GitHub's anchor rules).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/paths.js';
import { docFiles } from './samples.js';

/** The text outside fenced code blocks. */
function prose(markdown: string): string {
  return markdown.replace(/^([ \t]*)(`{3,}|~{3,})[^\n]*\n[\s\S]*?^\1\2[^\n]*$/gm, '');
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
export function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const m of prose(markdown).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const text = m[1]!.replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    const base = text.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n ? `${base}-${n}` : base);
  }
  return out;
}

describe('docs: links', () => {
  for (const file of docFiles(REPO_ROOT)) {
    it(`${relative(REPO_ROOT, file)}: relative links resolve`, () => {
      const text = prose(readFileSync(file, 'utf8'));
      const broken: string[] = [];
      for (const m of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
        const href = m[1]!;
        if (/^[a-z][a-z0-9+.-]*:/i.test(href)) continue; // http:, mailto:, …
        const [path = '', fragment] = href.split('#', 2);
        const target = path ? resolve(dirname(file), decodeURIComponent(path)) : file;
        if (!existsSync(target)) {
          broken.push(`${href}: no such file`);
          continue;
        }
        if (fragment && target.endsWith('.md') && !anchors(readFileSync(target, 'utf8')).has(fragment)) {
          broken.push(`${href}: no heading with anchor #${fragment} in ${relative(REPO_ROOT, target)}`);
        }
      }
      expect(broken).toEqual([]);
    });
  }
});
