/**
 * @file `attnpatch demo`: on the TinyStories model the repo ships (trained on 512 tokens), inspect it, patch it
 * with Dual Chunk Attention, and continue a story from a prompt several times longer than the trained context,
 * with and without the patch: perplexity of the prompt, decode tokens/s and KV-cache memory side by side.
 * Offline, CPU, under a minute on two cores.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import * as ort from 'onnxruntime-node';
import { saveModelToBytes } from '../../graph/io/bytes.js';
import { loadModelFile } from '../../graph/io/fs.js';
import { applyDca } from '../../patchers/dca/index.js';
import { inspectModel } from '../../patchers/inspect.js';
import { windowNll } from '../../runtime/eval/perplexity.js';
import { loadTokenizer } from '../../runtime/eval/tokenize.js';
import { argmax, OrtDecoder, type OrtModule } from '../../runtime/ort/decoder.js';
import { bytes, table } from '../format.js';
import { progress } from '../progress.js';
import { runCommand } from '../run.js';
import { formatInspect } from './inspect.js';

/** The model folder shipped with the package (src/cli/commands or dist/cli/commands → ../../../models). */
export const DEMO_MODEL = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'models', 'tinystories-656k');

interface Run {
  ppl: number;
  tokensPerSecond: number;
  continuation: string;
  kvBytes: number;
}

/** Prompt perplexity (fed in chunks of `chunk`), then `steps` greedy tokens timed. */
async function run(model: Uint8Array, ids: number[], chunk: number, steps: number, kvPerToken: number, decode: (ids: number[]) => string, tick: () => void): Promise<Run> {
  const d = await OrtDecoder.create(ort as unknown as OrtModule, model, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
  try {
    let nll = 0;
    let last: Awaited<ReturnType<OrtDecoder['step']>> | undefined;
    for (let s = 0; s < ids.length; s += chunk) {
      const end = Math.min(ids.length, s + chunk);
      last = await d.step(ids.slice(s, end));
      nll += windowNll(last.logits, last.vocab, ids.slice(s, Math.min(ids.length, end + 1)));
      tick();
    }
    const out: number[] = [];
    let next = argmax(last!.logits, last!.vocab, last!.logits.length / last!.vocab - 1);
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) {
      out.push(next);
      const r = await d.step([next]);
      next = argmax(r.logits, r.vocab, 0);
      tick();
    }
    const seconds = (performance.now() - t0) / 1000;
    return { ppl: Math.exp(nll / (ids.length - 1)), tokensPerSecond: steps / seconds, continuation: decode(out), kvBytes: kvPerToken * (ids.length + steps) };
  } finally {
    await d.release();
  }
}

export async function demo(options: { model?: string; tokens: string; steps: string }): Promise<void> {
  const folder = resolve(options.model ?? DEMO_MODEL);
  const file = join(folder, 'onnx', 'model.onnx');
  const config = JSON.parse(readFileSync(join(folder, 'config.json'), 'utf8')) as { max_position_embeddings: number };
  const trained = config.max_position_embeddings;
  const say = (s = '') => process.stdout.write(`${s}\n`);

  const original = loadModelFile(file);
  const report = inspectModel(original);
  say(formatInspect(file, report));

  const patched = loadModelFile(file);
  const dca = applyDca(patched, {}, trained);
  // attnpatch's inter-chunk bias (docs/dca.md): perplexity stays flat far past the trained length.
  const biased = loadModelFile(file);
  applyDca(biased, { interBias: 1 }, trained);
  const chunk = Number(dca.details?.chunkLength);
  say('');
  say(`dca: ${dca.patched.length} of ${report.attention.length} blocks → ${dca.patched[0]?.to ?? '-'}; trained context ${trained}, prompt fed in chunks of ${chunk} tokens`);

  const tok = await loadTokenizer(folder);
  const text = readFileSync(join(folder, 'demo.txt'), 'utf8');
  const ids = tok.encode(text, { add_special_tokens: false }).slice(0, Number(options.tokens));
  const steps = Number(options.steps);
  say(`prompt: ${ids.length} tokens of TinyStories (${(ids.length / trained).toFixed(1)}× the trained context), then ${steps} greedy tokens`);
  say('');
  const bar = progress('demo');
  let done = 0;
  const total = 3 * (Math.ceil(ids.length / chunk) + steps);
  const tick = () => bar.update(++done, total);
  const decode = (out: number[]) => tok.decode(out, { skip_special_tokens: true });
  const kv = report.kvCacheBytesPerToken;
  const plain = await run(saveModelToBytes(original), ids, chunk, steps, kv, decode, tick);
  const withDca = await run(saveModelToBytes(patched), ids, chunk, steps, kv, decode, tick);
  const withBias = await run(saveModelToBytes(biased), ids, chunk, steps, kv, decode, tick);
  bar.stop();
  const runs = [plain, withDca, withBias];
  say(
    table([
      ['', 'unpatched', 'dca', 'dca:interBias=1'],
      ['prompt perplexity', ...runs.map((r) => r.ppl.toFixed(1))],
      ['decode tokens/s', ...runs.map((r) => r.tokensPerSecond.toFixed(0))],
      ['KV cache', ...runs.map((r) => bytes(r.kvBytes))],
    ]),
  );
  say('');
  say(`unpatched continues:       ${JSON.stringify(plain.continuation)}`);
  say(`dca continues:             ${JSON.stringify(withDca.continuation)}`);
  say(`dca:interBias=1 continues: ${JSON.stringify(withBias.continuation)}`);
}

export function register(program: Command): void {
  program
    .command('demo')
    .description('patch the shipped TinyStories model with DCA and compare it with the original far past its trained context')
    .option('--model <folder>', 'a transformers.js Llama folder with demo.txt (default: the shipped TinyStories-656K)')
    .option('--tokens <n>', 'prompt tokens', '1800')
    .option('--steps <n>', 'greedy tokens to generate', '48')
    .action(runCommand((options: { model?: string; tokens: string; steps: string }) => demo(options)));
}
