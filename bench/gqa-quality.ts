/**
 * @file Quality of the lossy gqa options on TinyStories-656K (`npx tsx bench/gqa-quality.ts`): perplexity on the
 * held-out TinyStories text (corpus-tinystories-val/tinystories_val_part2.txt; calibration uses part 1 only).
 *
 *   - kvHeads table: KV-cache bytes per token and perplexity at context 512 for 4 (original), 2 and 1 KV heads,
 *     mean-pooled vs aligned (align-then-merge, calibrated on part 1; and aligned on the weights alone).
 *   - window table: perplexity at contexts 512, 2048, 4096 with sliding windows 128, 256, 384 and without a
 *     window (gqa patch, maxContext 4096 ≥ every context), plus the unpatched model.
 *
 * Windows are consecutive, non-overlapping, from the start of part 2, capped at `--max-tokens` scored tokens per
 * cell (default 40,000), scored with no special tokens (the `eval ppl` default); `--bos` adds a second
 * measurement of every cell with BOS starting each window (the convention of the model's reference figures;
 * doubles the runtime). Writes bench/out/gqa-quality.{json,md}.
 *
 * Options: `--max-tokens N`, `--calibration-tokens N` (default 16384), `--bos`, `--contexts a,b,c` (window table
 * contexts, default 512,2048,4096; maxContext becomes max(4096, largest context)), `--no-kv-heads` (window table only).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { saveModelToBytes } from '../src/graph/io/bytes.js';
import { loadModelFile } from '../src/graph/io/fs.js';
import { applyGqa, type GqaOptions } from '../src/patchers/gqa/index.js';
import { inspectModel } from '../src/patchers/inspect.js';
import { collectKvCalibrationFromText } from '../src/runtime/eval/calibrate.js';
import { evaluatePerplexityIds, type PerplexityResult } from '../src/runtime/eval/perplexity.js';
import { tokenizeText } from '../src/runtime/eval/tokenize.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');
const FOLDER = join(ROOT, 'models', 'tinystories-656k');
const CORPUS = process.env.ATTNPATCH_SHARED_MODELS ? join(process.env.ATTNPATCH_SHARED_MODELS, 'corpus-tinystories-val') : join(ROOT, '..', 'shared', 'models', 'corpus-tinystories-val');

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const MAX_TOKENS = flag('max-tokens', 40_000);
const CALIBRATION_TOKENS = flag('calibration-tokens', 16_384);
const BOS = process.argv.includes('--bos');
const contextsArg = process.argv.indexOf('--contexts');
const CONTEXTS: readonly number[] = contextsArg >= 0 ? process.argv[contextsArg + 1]!.split(',').map(Number) : [512, 2048, 4096];
if (!CONTEXTS.every((c) => Number.isInteger(c) && c >= 2)) throw new Error('--contexts needs integers ≥ 2, comma-separated');
const MAX_CONTEXT = Math.max(4096, ...CONTEXTS);
const KV_HEADS = !process.argv.includes('--no-kv-heads');

const started = performance.now();
const log = (s: string) => process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)}s] ${s}\n`);

const part2 = readFileSync(join(CORPUS, 'tinystories_val_part2.txt'), 'utf8');
const { ids, bos } = await tokenizeText(FOLDER, part2);
log(`part 2: ${part2.length} characters, ${ids.length} tokens`);
const calibration = await collectKvCalibrationFromText({
  model: loadModelFile(FOLDER),
  tokenizerFolder: FOLDER,
  text: readFileSync(join(CORPUS, 'tinystories_val.txt'), 'utf8'),
  tokens: CALIBRATION_TOKENS,
  context: 512,
});
log(`calibration: ${calibration.tokens} tokens of part 1`);

interface Variant {
  model: Uint8Array;
  kvBytesPerToken: number;
}

/** The model with the gqa patch (or none), as bytes, and its KV bytes per token. */
function variant(options: GqaOptions | null): Variant {
  const m = loadModelFile(FOLDER);
  if (options) {
    const r = applyGqa(m, { strict: true, ...options });
    if (r.left.length) throw new Error(`gqa left blocks: ${JSON.stringify(r.left)}`);
  }
  return { model: saveModelToBytes(m), kvBytesPerToken: inspectModel(m).kvCacheBytesPerToken };
}

interface Cell {
  ppl: number;
  /** With --bos: BOS + (context − 1) text tokens per window. */
  pplBos?: number;
  tokens: number;
  windows: number;
  seconds: number;
}

async function measure(v: Variant, context: number): Promise<Cell> {
  const t0 = performance.now();
  const windows = Math.max(1, Math.min(Math.floor(ids.length / context), Math.floor(MAX_TOKENS / (context - 1))));
  const run = (withBos: boolean): Promise<PerplexityResult> =>
    evaluatePerplexityIds({ model: v.model, ids, context, windows, ...(withBos ? { bos: true, bosId: bos! } : {}) });
  const plain = await run(false);
  const withBos = BOS ? await run(true) : undefined;
  return { ppl: plain.ppl, ...(withBos ? { pplBos: withBos.ppl } : {}), tokens: plain.tokens, windows: plain.windows, seconds: (performance.now() - t0) / 1000 };
}

const show = (c: Cell) => `${c.ppl.toFixed(2)}${c.pplBos !== undefined ? ` / BOS ${c.pplBos.toFixed(2)}` : ''}`;

// ---------------------------------------------------------------------------------------------------------------
// kvHeads table (context 512)

const kvRows: { kvHeads: number; merge: string; kvBytesPerToken: number; cell: Cell }[] = [];
for (const [kvHeads, merge] of (KV_HEADS ? [[4, 'original'], [2, 'mean'], [2, 'aligned'], [2, 'aligned (weights only)'], [1, 'mean'], [1, 'aligned'], [1, 'aligned (weights only)']] as const : [])) {
  const options: GqaOptions | null =
    merge === 'original' ? null : merge === 'mean' ? { kvHeads } : merge === 'aligned' ? { kvHeads, merge: 'aligned', calibration } : { kvHeads, merge: 'aligned' };
  const v = variant(options);
  const cell = await measure(v, 512);
  kvRows.push({ kvHeads, merge, kvBytesPerToken: v.kvBytesPerToken, cell });
  log(`kvHeads ${kvHeads} ${merge}: ppl ${show(cell)} (${cell.tokens} tokens, ${cell.seconds.toFixed(1)} s)`);
}

// ---------------------------------------------------------------------------------------------------------------
// window table

const WINDOWS = [128, 256, 384, 'none', 'unpatched'] as const;
const windowRows: { window: (typeof WINDOWS)[number]; cells: Record<number, Cell> }[] = [];
for (const window of WINDOWS) {
  const v = variant(window === 'unpatched' ? null : { maxContext: MAX_CONTEXT, ...(window === 'none' ? {} : { window }) });
  const cells: Record<number, Cell> = {};
  for (const context of CONTEXTS) {
    cells[context] = await measure(v, context);
    log(`window ${window} context ${context}: ppl ${show(cells[context]!)} (${cells[context]!.tokens} tokens, ${cells[context]!.seconds.toFixed(1)} s)`);
  }
  windowRows.push({ window, cells });
}

// ---------------------------------------------------------------------------------------------------------------
// Reports

const seconds = (performance.now() - started) / 1000;
const f = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const both = (c: Cell) => `${f(c.ppl)}${c.pplBos !== undefined ? ` / ${f(c.pplBos)}` : ''}`;
const report = {
  date: new Date().toISOString(),
  model: 'tinystories-656k (models/tinystories-656k; 2 layers, 8 heads / 4 KV heads, head dim 16, fp32 cache, trained context 512)',
  text: `corpus-tinystories-val/tinystories_val_part2.txt (held out): ${ids.length} tokens`,
  calibration: `first ${calibration.tokens} tokens of corpus-tinystories-val/tinystories_val.txt (part 1), 512-token windows`,
  scoring: `consecutive non-overlapping windows from the start of part 2, at most ${MAX_TOKENS} scored tokens per cell; "ppl": no special tokens, every token after the first of a window scored${BOS ? '; "pplBos": BOS + (context − 1) text tokens per window, every text token scored' : ''}`,
  machine: `${cpus().length} × ${cpus()[0]?.model ?? '?'}, onnxruntime-node CPU`,
  seconds,
  argv: process.argv.slice(2),
  contexts: CONTEXTS,
  maxContext: MAX_CONTEXT,
  kvHeads: kvRows.map((r) => ({ kvHeads: r.kvHeads, merge: r.merge, kvBytesPerToken: r.kvBytesPerToken, ...r.cell })),
  window: windowRows.map((r) => ({ window: r.window, contexts: r.cells })),
};
const md = [
  '# gqa quality on TinyStories-656K',
  '',
  `Perplexity on held-out TinyStories text (part 2, ${ids.length.toLocaleString('en-US')} tokens), onnxruntime-node CPU, windows with no special tokens${BOS ? ' / windows started with BOS' : ''}.`,
  `At most ${MAX_TOKENS.toLocaleString('en-US')} scored tokens per cell (consecutive windows from the start of part 2). Aligned merges are calibrated on ${calibration.tokens.toLocaleString('en-US')} tokens of part 1.`,
  `Generated by \`npx tsx bench/gqa-quality.ts\` in ${seconds.toFixed(0)} s on ${cpus().length} CPU cores.`,
  '',
  '## KV heads (context 512)',
  '',
  `| KV heads | merge | KV bytes/token | ppl${BOS ? ' / BOS' : ''} | scored tokens |`,
  '|---:|---|---:|---:|---:|',
  ...kvRows.map((r) => `| ${r.kvHeads} | ${r.merge} | ${r.kvBytesPerToken} | ${both(r.cell)} | ${r.cell.tokens} |`),
  '',
  `## Sliding window (gqa \`window\`, maxContext ${MAX_CONTEXT})`,
  '',
  `| window | ${CONTEXTS.map((c) => `ctx ${c}`).join(' | ')} |`,
  `|---|${CONTEXTS.map(() => '---:').join('|')}|`,
  ...windowRows.map((r) => `| ${r.window === 'none' ? 'none (gqa, no window)' : r.window === 'unpatched' ? 'unpatched model' : r.window} | ${CONTEXTS.map((c) => both(r.cells[c]!)).join(' | ')} |`),
  '',
  `Scored tokens per cell: ${CONTEXTS.map((c) => `ctx ${c}: ${windowRows[0]!.cells[c]!.tokens} (${windowRows[0]!.cells[c]!.windows} windows)`).join('; ')}.`,
  '',
].join('\n');
const out = join(HERE, 'out');
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'gqa-quality.json'), `${JSON.stringify(report, null, 2)}\n`);
writeFileSync(join(out, 'gqa-quality.md'), md);
process.stdout.write(md);
