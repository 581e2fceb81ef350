/** The attnpatch pipeline: a drop-in for transformers.js that patches the model as it loads (Node, CPU). */
import { env } from '@huggingface/transformers';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pipeline } from '../../src/runtime/transformers/pipeline.js';
import type { PatchReport } from '../../src/patchers/patch.js';
import { REPO_ROOT } from '../support/paths.js';

const MODEL = join(REPO_ROOT, 'models', 'tinystories-656k');
const PROMPT = 'Once upon a time, there was a little dog named';
const GREEDY = { max_new_tokens: 64, min_new_tokens: 64, do_sample: false } as const;
const cacheDir = mkdtempSync(join(tmpdir(), 'attnpatch-pipe-'));

beforeAll(() => {
  env.allowRemoteModels = false;
});
afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));

type Generator = (text: string, options: typeof GREEDY) => Promise<unknown>;
async function generate(options: Record<string, unknown>): Promise<string> {
  const p = (await pipeline('text-generation', MODEL, { device: 'cpu', dtype: 'fp32', ...options })) as unknown as Generator & { dispose(): Promise<void> };
  const out = (await p(PROMPT, GREEDY)) as { generated_text: string }[];
  await p.dispose();
  return out[0]!.generated_text;
}

describe('pipeline({ patch })', () => {
  let plain = '';
  it('without patch is transformers.js itself', async () => {
    plain = await generate({});
    expect(plain.length).toBeGreaterThan(PROMPT.length + 100);
  });

  it("patch: ['gqa'] generates the same 64 greedy tokens, from a cached patched graph", async () => {
    const reports: PatchReport[][] = [];
    const text = await generate({ patch: ['gqa'], cacheDir, onReport: (_f: string, r: PatchReport[]) => reports.push(r) });
    expect(text).toBe(plain);
    expect(reports[0]?.[0]).toMatchObject({ patch: 'gqa', left: [] });
    expect(reports[0]?.[0]?.patched).toHaveLength(2);
    const dirs = readdirSync(cacheDir);
    expect(dirs).toHaveLength(1);
    const file = join(cacheDir, dirs[0]!, 'model.onnx');
    const mtime = statSync(file).mtimeMs;
    // Second load: same content hash and spec → served from the cache, not patched again.
    expect(await generate({ patch: 'gqa', cacheDir })).toBe(plain);
    expect(statSync(file).mtimeMs).toBe(mtime);
    expect(env.useCustomCache).toBe(false); // restored after loading
  });

  it('the patch really reaches ONNX Runtime: a 2-token window changes the text', async () => {
    const text = await generate({ patch: { gqa: { window: 2 } }, cacheDir: false });
    expect(text).not.toBe(plain);
    expect(existsSync(cacheDir)).toBe(true);
  });

  it('a padded batch is refused on a gqa model (GroupQueryAttention would silently put keys at the wrong positions)', async () => {
    const p = (await pipeline('text-generation', MODEL, { device: 'cpu', dtype: 'fp32', patch: 'gqa', cacheDir })) as unknown as ((t: string[], o: object) => Promise<unknown>) & { dispose(): Promise<void> };
    try {
      await expect(p([PROMPT, 'Once'], { max_new_tokens: 2, do_sample: false })).rejects.toThrow(/attention_mask row 1 has padding before real tokens; this model runs GroupQueryAttention/);
      // One prompt at a time is fine.
      expect(((await p([PROMPT], { max_new_tokens: 64, min_new_tokens: 64, do_sample: false })) as { generated_text: string }[][])[0]![0]!.generated_text).toBe(plain);
    } finally {
      await p.dispose();
    }
  });

  it('a bad spec fails before anything loads', async () => {
    await expect(pipeline('text-generation', MODEL, { patch: 'gqaa' })).rejects.toThrow(/unknown patch "gqaa"; should be one of: gqa/);
    await expect(pipeline('text-generation', MODEL, { patch: 'gqa:window' })).rejects.toThrow(/write name=value/);
  });
});

describe('pipeline with dca and chunked prefill', () => {
  it('a 1000-token prompt gives the same greedy tokens with chunked prefill on (default for dca) and off', async () => {
    const { readFileSync } = await import('node:fs');
    const { shared } = await import('../support/paths.js');
    const text = readFileSync(shared('corpus-tinystories-val', 'tinystories_val_part2.txt'), 'utf8').slice(0, 4000);
    const run = async (options: Record<string, unknown>) => {
      const p = (await pipeline('text-generation', MODEL, { device: 'cpu', dtype: 'fp32', cacheDir: false, ...options })) as unknown as Generator & { dispose(): Promise<void>; tokenizer: { encode(t: string): number[] } };
      const out = (await p(text, { max_new_tokens: 16, min_new_tokens: 16, do_sample: false } as unknown as typeof GREEDY)) as { generated_text: string }[];
      const n = p.tokenizer.encode(text).length;
      const chunk = (p as unknown as { model: { sessions: { model: { run: { prefillChunk?: number } } } } }).model.sessions.model.run.prefillChunk;
      await p.dispose();
      return { tail: out[0]!.generated_text.slice(text.length), n, chunk };
    };
    const chunked = await run({ patch: 'dca' });
    const oneShot = await run({ patch: 'dca', prefillChunk: false });
    expect(chunked.n).toBeGreaterThan(900);
    expect(chunked.chunk).toBe(384 - 64); // L = CS − LW from the trained length 512
    expect(oneShot.chunk).toBeUndefined();
    expect(chunked.tail.length).toBeGreaterThan(0);
    expect(chunked.tail).toBe(oneShot.tail);
  });
});
