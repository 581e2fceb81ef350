/**
 * A folder holding only an onnxruntime-genai export (the .onnx, its data and genai_config.json; no config.json) still
 * matches a recipe for `--recipe auto` / `--patch auto`, and its trained length comes from model.context_length.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { locateModel, patchContextOf, readConfig } from '../../src/runtime/model-folder.js';
import { runCli } from '../support/cli.js';
import { shared } from '../support/paths.js';

const tmp = mkdtempSync(join(tmpdir(), 'attnpatch-genai-'));
const LLAMA = join(tmp, 'llama-gqa');
const GPT2 = join(tmp, 'gpt2-fp16');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function copy(from: string, to: string, files: string[]): void {
  mkdirSync(to, { recursive: true });
  for (const f of files) copyFileSync(shared(from, f), join(to, f));
}

beforeAll(() => {
  // Fused GroupQueryAttention (do_rotary, packed QKV), context_length 2048, model.type llama.
  copy('tiny-random-llama-fp32-gqa', LLAMA, ['model.onnx', 'model.onnx.data', 'genai_config.json']);
  // Legacy ORT Attention with stacked past_N caches in past.onnx, context_length 512, model.type gpt2.
  copy('tiny-random-gpt2-fp16-ortfused', GPT2, ['past.onnx', 'genai_config.json']);
});

describe('GenAI-only folders', () => {
  it('readConfig merges genai_config.json under `model`; the patch context takes its context_length', () => {
    const config = readConfig(locateModel(LLAMA));
    expect(config).toMatchObject({ model: { type: 'llama', context_length: 2048, decoder: { filename: 'model.onnx' } } });
    expect(Object.keys(config!)).toEqual(['model']);
    expect(patchContextOf(config)).toEqual({ maxPositionEmbeddings: 2048 });
    expect(locateModel(GPT2).file).toBe(join(GPT2, 'past.onnx'));
  });

  it('recipes match picks the family from model.type, with the trained length from context_length', async () => {
    const llama = await runCli('recipes', 'match', LLAMA, '--json');
    expect(llama.code).toBe(0);
    expect(JSON.parse(llama.out)).toMatchObject({ recipe: 'llama', identity: { modelTypes: ['llama'] }, patches: [{ gqa: {} }], trainedLength: 2048 });
    const gpt2 = await runCli('recipes', 'match', GPT2, '--json');
    expect(JSON.parse(gpt2.out)).toMatchObject({ recipe: 'gpt2', trainedLength: 512 });
  });

  it('convert --patch auto applies the matched recipe; --recipe auto hands dca the GenAI context length', async () => {
    const auto = await runCli('convert', LLAMA, '-o', join(tmp, 'out-auto'), '--patch', 'auto', '--json');
    expect(auto.err).toBe('');
    expect(auto.code).toBe(0);
    const a = JSON.parse(auto.out);
    expect(a.recipe).toEqual({ name: 'llama', auto: true, trainedLength: 2048, window: null });
    expect(a.patches).toMatchObject([{ patch: 'gqa', left: [] }]);
    const dca = await runCli('convert', LLAMA, '-o', join(tmp, 'out-dca'), '--recipe', 'auto', '--patch', 'dca', '--json');
    expect(dca.code).toBe(0);
    const d = JSON.parse(dca.out);
    expect(d.recipe).toMatchObject({ name: 'llama', auto: false, trainedLength: 2048 });
    expect(d.patches[0]).toMatchObject({ patch: 'dca', left: [] });
    expect(d.patches[0].patched).toHaveLength(2);
    // The output folder keeps genai_config.json, so verify --recipe auto matches it too.
    const v = await runCli('verify', LLAMA, join(tmp, 'out-auto'), '--tokens', '4', '--recipe', 'auto', '--json');
    expect(v.code).toBe(0);
    expect(JSON.parse(v.out)).toMatchObject({ greedyMatch: true, toleranceSource: { kind: 'recipe', recipe: 'llama', field: 'verify.fp32' } });
  });

  it('gpt2 (past.onnx named by genai_config): --patch auto finds the decoder and the recipe', async () => {
    const r = await runCli('convert', GPT2, '-o', join(tmp, 'out-gpt2'), '--patch', 'auto', '--json');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ recipe: { name: 'gpt2', trainedLength: 512 }, output: join(tmp, 'out-gpt2', 'past.onnx') });
  });
});
