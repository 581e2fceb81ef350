/** `attnpatch verify --recipe`: the tolerance comes from the recipe's verify field unless --tolerance is given. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveTolerance } from '../../src/cli/commands/verify.js';
import { builtinRecipe } from '../../src/recipes/load.js';
import { REPO_ROOT } from '../support/paths.js';
import { runCli } from '../support/cli.js';

const MODEL = join(REPO_ROOT, 'models', 'tinystories-656k');
const tmp = mkdtempSync(join(tmpdir(), 'attnpatch-vr-'));
const OUT = join(tmp, 'gqa');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

beforeAll(async () => {
  const c = await runCli('convert', MODEL, '-o', OUT, '--patch', 'gqa', '--json');
  expect(c.code).toBe(0);
});

describe('verify --recipe', () => {
  it('auto: the matched recipe (tinystories) gives the float32 tolerance, and the report says so', async () => {
    const v = await runCli('verify', MODEL, OUT, '--tokens', '4', '--recipe', 'auto', '--json');
    expect(v.code).toBe(0);
    const r = JSON.parse(v.out);
    expect(r).toMatchObject({ logitsType: 'float32', tolerance: 1e-4, toleranceSource: { kind: 'recipe', recipe: 'tinystories', matched: true, field: 'verify.fp32' } });
    expect(r.maxAbsDiff).toBeLessThanOrEqual(1e-4);
    const text = await runCli('verify', MODEL, OUT, '--tokens', '2', '--recipe', 'tinystories');
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/^tolerance 0\.0001 from recipe tinystories \(verify\.fp32\)$/m);
  });

  it('a recipe file with a tight tolerance fails with exit 1 and names the recipe', async () => {
    const recipe = JSON.parse(readFileSync(join(REPO_ROOT, 'recipes', 'tinystories.json'), 'utf8'));
    const file = join(tmp, 'tight.json');
    writeFileSync(file, JSON.stringify({ ...recipe, $schema: undefined, name: 'tight', verify: { fp32: 1e-12, fp16: 1e-12 } }));
    const v = await runCli('verify', MODEL, OUT, '--tokens', '2', '--recipe', file);
    expect(v.code).toBe(1);
    expect(v.err).toMatch(/^attnpatch: the patch is meant to be lossless but logits differ by \S+ \(> 1e-12, from recipe tight \(verify\.fp32\)\)/);
    expect(v.out).toMatch(/tolerance 1e-12 from recipe tight \(verify\.fp32\)/);
  });

  it('--tolerance wins over the recipe; no recipe and no tolerance is the built-in auto rule', async () => {
    const v = await runCli('verify', MODEL, OUT, '--tokens', '2', '--recipe', 'auto', '--tolerance', '0.5', '--json');
    expect(v.code).toBe(0);
    expect(JSON.parse(v.out)).toMatchObject({ tolerance: 0.5, toleranceSource: { kind: 'option' } });
    const a = await runCli('verify', MODEL, OUT, '--tokens', '2', '--json');
    expect(JSON.parse(a.out)).toMatchObject({ tolerance: 1e-4, toleranceSource: { kind: 'auto' } });
  });

  it('an unknown recipe fails before the models run', async () => {
    const v = await runCli('verify', MODEL, OUT, '--recipe', 'nope');
    expect(v.code).toBe(1);
    expect(v.err).toMatch(/^attnpatch: no recipe "nope": expected 'auto', a built-in recipe/);
  });

  it('float16 logits take the fp16 field', async () => {
    const recipe = (await builtinRecipe('tinystories'))!;
    expect(resolveTolerance(undefined, { recipe, matched: false }, { maxAbsLogit: 10, logitsType: 'float16' })).toEqual({
      tolerance: recipe.verify.fp16,
      source: { kind: 'recipe', recipe: 'tinystories', matched: false, field: 'verify.fp16' },
    });
    expect(resolveTolerance('auto', { recipe, matched: false }, { maxAbsLogit: 10, logitsType: 'float16' }).source.kind).toBe('auto');
    expect(() => resolveTolerance('x', undefined, { maxAbsLogit: 1, logitsType: 'float32' })).toThrow(/--tolerance must be auto or a number/);
  });
});
