/** `patch: 'auto'` through the pipeline, `convert --recipe auto|NAME|FILE` / `--patch auto`, and `attnpatch recipes`. */
import { env } from '@huggingface/transformers';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PatchReport } from '../../src/patchers/patch.js';
import { pipeline } from '../../src/runtime/transformers/pipeline.js';
import { runCli } from '../support/cli.js';
import { REPO_ROOT } from '../support/paths.js';

const MODEL = join(REPO_ROOT, 'models', 'tinystories-656k');
const PROMPT = 'Once upon a time, there was a little dog named';
const tmp = mkdtempSync(join(tmpdir(), 'attnpatch-recipes-'));
beforeAll(() => {
  env.allowRemoteModels = false;
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

type Generator = ((text: string, options: object) => Promise<{ generated_text: string }[]>) & { dispose(): Promise<void> };

describe("pipeline({ patch: 'auto' })", () => {
  it('tinystories-656k: the tinystories recipe applies dca (trained length 512) and the model generates', async () => {
    const reports: PatchReport[] = [];
    const pipe = (await pipeline('text-generation', MODEL, { device: 'cpu', dtype: 'fp32', patch: 'auto', cacheDir: false, onReport: (_f, r) => reports.push(...r) })) as unknown as Generator;
    const out = await pipe(PROMPT, { max_new_tokens: 24, min_new_tokens: 24, do_sample: false });
    await pipe.dispose();
    expect(out[0]!.generated_text.length).toBeGreaterThan(PROMPT.length + 40);
    expect(reports.map((r) => r.patch)).toEqual(['dca']);
    expect(reports[0]).toMatchObject({ left: [], details: { trainedLength: 512, chunkSize: 384, localWindow: 64, chunkLength: 320 } });
    expect(reports[0]!.patched.map((p) => p.from)).toEqual(['unfused', 'unfused']);
  });

  it('a request the recipe refuses fails before anything loads, with its reason', async () => {
    await expect(pipeline('text-generation', MODEL, { recipe: 'gpt2', patch: 'dca' })).rejects.toThrow(/^recipe gpt2 refuses dca: GPT-2 adds learned absolute position embeddings/);
    await expect(pipeline('text-generation', MODEL, { patch: ['auto', 'gqa'] })).rejects.toThrow(/^'auto' stands alone/);
  });

  it('an unknown family says what is supported and points at docs/recipes.md', async () => {
    const config = { model_type: 'falcon', architectures: ['FalconForCausalLM'] } as never;
    await expect(pipeline('text-generation', MODEL, { patch: 'auto', config })).rejects.toThrow(/^no recipe for model_type "falcon" .*Recipes exist for: .*see docs\/recipes\.md/);
  });
});

describe('attnpatch convert with a recipe', () => {
  it('--recipe auto picks tinystories and applies its default patches (dca)', async () => {
    const c = await runCli('convert', MODEL, '-o', join(tmp, 'auto'), '--recipe', 'auto', '--json');
    expect(c.code).toBe(0);
    const report = JSON.parse(c.out);
    expect(report.recipe).toEqual({ name: 'tinystories', auto: true, trainedLength: 512, window: null });
    expect(report.patches).toHaveLength(1);
    expect(report.patches[0]).toMatchObject({ patch: 'dca', left: [], lossy: true });
    expect(report.patches[0].patched).toHaveLength(2);
  });

  it('--patch auto is the same; the text report names the recipe', async () => {
    const c = await runCli('convert', MODEL, '-o', join(tmp, 'auto2'), '--patch', 'auto');
    expect(c.code).toBe(0);
    expect(c.out).toMatch(/^ {2}recipe tinystories: default patches dca$/m);
    expect(c.out).toMatch(/^ {2}dca: 2 of 2 blocks patched \(lossy\)$/m);
  });

  it('--recipe FILE applies that recipe’s default patches, and verify passes the lossless result', async () => {
    const mine = { ...JSON.parse(readFileSync(join(REPO_ROOT, 'recipes', 'llama.json'), 'utf8')), name: 'my-llama', auto: ['gqa'] };
    const file = join(tmp, 'my-llama.json');
    writeFileSync(file, JSON.stringify(mine));
    const out = join(tmp, 'mine');
    const c = await runCli('convert', MODEL, '-o', out, '--recipe', file, '--json');
    expect(c.code).toBe(0);
    const report = JSON.parse(c.out);
    expect(report.recipe.name).toBe('my-llama');
    expect(report.patches[0]).toMatchObject({ patch: 'gqa', left: [], lossy: false });
    const v = await runCli('verify', MODEL, out, '--tokens', '8', '--json');
    expect(v.code).toBe(0);
    expect(JSON.parse(v.out).maxAbsDiff).toBeLessThanOrEqual(1e-4);
  });

  it('a refused request exits 1 with the reason; a bad recipe file names its field', async () => {
    const c = await runCli('convert', MODEL, '-o', join(tmp, 'x'), '--recipe', 'tinystories', '--patch', 'gqa:window=64', '--patch', 'dca');
    expect(c.code).toBe(1);
    expect(c.err).toMatch(/^attnpatch: recipe tinystories refuses gqa → dca: DualChunkAttention has no window, so dca leaves every block gqa gives a window/);
    const bad = join(tmp, 'bad.json');
    writeFileSync(bad, JSON.stringify({ name: 'bad' }));
    const b = await runCli('convert', MODEL, '-o', join(tmp, 'y'), '--recipe', bad);
    expect(b.code).toBe(1);
    expect(b.err).toMatch(/^attnpatch: invalid recipe: description: missing; expected string; .* \[file=.*bad\.json field=description\]$/m);
  });
});

describe('attnpatch recipes', () => {
  it('list names every built-in recipe with its default patches', async () => {
    const c = await runCli('recipes', 'list');
    expect(c.code).toBe(0);
    expect(c.out).toMatch(/^name\s+matches\s+trained\s+auto\s+allowed$/m);
    expect(c.out).toMatch(/^tinystories\s+llama \+ config\s+512\s+dca\s+gqa, dca, gqa → dca, mla, gqa → mla, dca → mla$/m);
    expect(c.out).toMatch(/^gemma2\s+gemma2\s+config max_position_embeddings\s+gqa\s+gqa$/m);
    expect(c.out).toMatch(/^qwen3_5\s+qwen3_5 qwen3_5_text\s+config text_config\.max_position_embeddings \| max_position_embeddings\s+\(none\)\s+gqa$/m);
  });

  it('show prints a recipe with its refusals and notes; --json the validated object', async () => {
    const c = await runCli('recipes', 'show', 'mistral');
    expect(c.out).toMatch(/^mistral: Mistral 7B/);
    expect(c.out).toContain('  defaults     window {"config":"sliding_window"}');
    expect(c.out).toContain('  - dca (the sliding window binds): this checkpoint attends through a sliding window');
    const j = await runCli('recipes', 'show', 'qwen2', '--json');
    expect(JSON.parse(j.out)).toMatchObject({ name: 'qwen2', auto: ['gqa'], verify: { fp32: 1e-4 } });
    const none = await runCli('recipes', 'show', 'falcon');
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/^attnpatch: no recipe "falcon": expected 'auto', a built-in recipe \(gemma2, /);
  });

  it('validate accepts good files and reports each bad one (exit 1)', async () => {
    const good = await runCli('recipes', 'validate', join(REPO_ROOT, 'recipes', 'qwen3.json'));
    expect(good.code).toBe(0);
    expect(good.out).toMatch(/^ok .*qwen3\.json: recipe qwen3 \(qwen3, Qwen3ForCausalLM\); auto gqa$/m);
    const bad = join(tmp, 'bad-auto.json');
    writeFileSync(bad, JSON.stringify({ ...JSON.parse(readFileSync(join(REPO_ROOT, 'recipes', 'gpt2.json'), 'utf8')), auto: ['dca'] }));
    const c = await runCli('recipes', 'validate', bad);
    expect(c.code).toBe(1);
    expect(c.err).toMatch(/^attnpatch: invalid recipe: auto: expected one of combinations \(gqa\), got dca \[file=.*bad-auto\.json field=auto\]$/m);
  });

  it('match tells which recipe auto picks for a model folder', async () => {
    const c = await runCli('recipes', 'match', MODEL, '--json');
    expect(JSON.parse(c.out)).toMatchObject({ recipe: 'tinystories', patches: [{ dca: { trainedLength: 512 } }], trainedLength: 512 });
  });
});
