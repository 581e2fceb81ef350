/**
 * @file Quality of the mla patch on TinyStories-656K (`npx tsx bench/mla-quality.ts`): KV-cache bytes per token and
 * perplexity at context 512 on held-out text, for weight-only (svd) and activation-aware (asvd) factorizations, joint
 * and split latents, uniform and energy-allocated ranks, with and without the least-squares refit of the folded
 * output projections.
 *
 * Protocol (the reference figures' own): calibration on the first `--calibration-tokens` (default 16384) tokens of
 * corpus-tinystories-val/tinystories_val.txt (part 1) in 512-token windows; evaluation on all of
 * tinystories_val_part2.txt, consecutive non-overlapping 512-token windows, no BOS, every token after the first of a
 * window scored. Writes bench/out/mla-quality.{json,md}; `scripts/mla-plot.ts` draws the plot from the JSON.
 *
 * Options: `--windows N` (evaluate only the first N windows, for a quick look), `--calibration-tokens N`.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { saveModelToBytes } from '../src/graph/io/bytes.js';
import { loadModelFile } from '../src/graph/io/fs.js';
import type { KvCalibration } from '../src/patchers/gqa/align.js';
import { inspectModel } from '../src/patchers/inspect.js';
import { applyMla, type MlaOptions } from '../src/patchers/mla/index.js';
import { collectHiddenCalibration } from '../src/runtime/eval/calibrate.js';
import { refitMlaOutputs } from '../src/runtime/eval/mla-refit.js';
import { evaluatePerplexityIds } from '../src/runtime/eval/perplexity.js';
import { tokenizeText } from '../src/runtime/eval/tokenize.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const FOLDER = join(HERE, '..', 'models', 'tinystories-656k');
const CORPUS = join(process.env.ATTNPATCH_SHARED_MODELS ?? join(HERE, '..', '..', 'shared', 'models'), 'corpus-tinystories-val');
const flag = (name: string, fallback?: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const WINDOWS = flag('windows');
const CAL_TOKENS = flag('calibration-tokens', 16384)!;
const started = performance.now();
const log = (s: string) => process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(0).padStart(5)}s] ${s}\n`);

const { ids } = await tokenizeText(FOLDER, readFileSync(join(CORPUS, 'tinystories_val_part2.txt'), 'utf8'));
const { ids: part1 } = await tokenizeText(FOLDER, readFileSync(join(CORPUS, 'tinystories_val.txt'), 'utf8'));
const calibrations = new Map<number, KvCalibration>();
async function calibration(tokens: number): Promise<KvCalibration> {
  if (!calibrations.has(tokens)) calibrations.set(tokens, await collectHiddenCalibration({ model: loadModelFile(FOLDER), ids: part1, tokens }));
  return calibrations.get(tokens)!;
}

interface Variant {
  label: string;
  layout: 'joint' | 'split';
  method: 'svd' | 'asvd';
  allocation: 'uniform' | 'energy' | 'fixed';
  refit: boolean;
}
interface Cell extends Variant {
  options: Omit<MlaOptions, 'calibration'> | null;
  kvBytesPerToken: number;
  kvRatio: number;
  ranks: string;
  ppl: number;
  tokens: number;
  calibrationTokens: number;
  seconds: number;
}

const cells: Cell[] = [];
let baseline: Cell | undefined;

async function measure(v: Variant, options: Omit<MlaOptions, 'calibration'> | null, calTokens = CAL_TOKENS): Promise<Cell> {
  const t0 = performance.now();
  const m = loadModelFile(FOLDER);
  let ranks = '';
  const cal = v.method === 'asvd' ? await calibration(calTokens) : undefined;
  if (options) {
    const r = applyMla(m, { ...options, ...(cal ? { calibration: cal } : {}), strict: true });
    ranks = String(r.details?.ranks ?? '');
    if (v.refit) await refitMlaOutputs({ original: loadModelFile(FOLDER), patched: m, ids: cal!.ids!, tokens: calTokens });
  }
  const kvBytesPerToken = inspectModel(m).kvCacheBytesPerToken;
  const res = await evaluatePerplexityIds({ model: saveModelToBytes(m), ids, context: 512, ...(WINDOWS ? { windows: WINDOWS } : {}) });
  const cell: Cell = { ...v, options, kvBytesPerToken, kvRatio: baseline ? kvBytesPerToken / baseline.kvBytesPerToken : 1, ranks, ppl: res.ppl, tokens: res.tokens, calibrationTokens: cal?.tokens ?? 0, seconds: (performance.now() - t0) / 1000 };
  cells.push(cell);
  log(`${v.label.padEnd(34)} ${options ? JSON.stringify(options) : ''}: KV ${cell.kvRatio.toFixed(3)}× ppl ${cell.ppl.toFixed(2)} (${ranks}; ${cell.seconds.toFixed(0)} s)`);
  return cell;
}

baseline = await measure({ label: 'original', layout: 'joint', method: 'svd', allocation: 'fixed', refit: false }, null);

// 1. The reference figures' settings (fixed ranks, uniform ratios).
const reference: [Variant, Omit<MlaOptions, 'calibration'>, number][] = [
  [{ label: 'split svd', layout: 'split', method: 'svd', allocation: 'fixed', refit: false }, { layout: 'split', rank: 32 }, 67.9],
  [{ label: 'split asvd', layout: 'split', method: 'asvd', allocation: 'fixed', refit: false }, { layout: 'split', rank: 48, method: 'asvd' }, 42.6],
  [{ label: 'split asvd', layout: 'split', method: 'asvd', allocation: 'fixed', refit: false }, { layout: 'split', rank: 32, method: 'asvd' }, 49.2],
  [{ label: 'split asvd', layout: 'split', method: 'asvd', allocation: 'fixed', refit: false }, { layout: 'split', rankK: 24, rankV: 40, method: 'asvd' }, 47.0],
  [{ label: 'split asvd', layout: 'split', method: 'asvd', allocation: 'fixed', refit: false }, { layout: 'split', rank: 16, method: 'asvd' }, 81],
  [{ label: 'joint asvd', layout: 'joint', method: 'asvd', allocation: 'uniform', refit: false }, { kvRatio: 0.5, allocation: 'uniform', method: 'asvd' }, 41.9],
  [{ label: 'joint asvd', layout: 'joint', method: 'asvd', allocation: 'uniform', refit: false }, { kvRatio: 0.25, allocation: 'uniform', method: 'asvd' }, 55.2],
];
const referenceRows: { cell: Cell; expected: number }[] = [];
for (const [v, o, expected] of reference) referenceRows.push({ cell: await measure(v, o), expected });

// 2. The sweep over KV ratios (the plot's data).
const RATIOS = [0.75, 0.5, 0.375, 0.25, 0.125];
const SWEEP: Variant[] = [
  { label: 'joint svd uniform', layout: 'joint', method: 'svd', allocation: 'uniform', refit: false },
  { label: 'split svd uniform', layout: 'split', method: 'svd', allocation: 'uniform', refit: false },
  { label: 'split asvd uniform', layout: 'split', method: 'asvd', allocation: 'uniform', refit: false },
  { label: 'split asvd energy', layout: 'split', method: 'asvd', allocation: 'energy', refit: false },
  { label: 'joint asvd uniform', layout: 'joint', method: 'asvd', allocation: 'uniform', refit: false },
  { label: 'joint asvd energy', layout: 'joint', method: 'asvd', allocation: 'energy', refit: false },
  { label: 'joint asvd uniform + refit', layout: 'joint', method: 'asvd', allocation: 'uniform', refit: true },
  { label: 'joint asvd energy + refit', layout: 'joint', method: 'asvd', allocation: 'energy', refit: true },
];
for (const v of SWEEP) {
  for (const kvRatio of RATIOS) await measure(v, { layout: v.layout, method: v.method, kvRatio, allocation: v.allocation as 'uniform' | 'energy' });
}

// 3. How many calibration tokens are enough (joint asvd, 0.5×, uniform).
const calibrationRows: Cell[] = [];
for (const tokens of [1024, 2048, 5120, CAL_TOKENS]) {
  calibrationRows.push(await measure({ label: `joint asvd uniform (${tokens} cal.)`, layout: 'joint', method: 'asvd', allocation: 'uniform', refit: false }, { kvRatio: 0.5, allocation: 'uniform', method: 'asvd' }, tokens));
}

// ---------------------------------------------------------------------------------------------------------------
const seconds = (performance.now() - started) / 1000;
const base = baseline.ppl;
const pct = (p: number) => `${p >= base ? '+' : ''}${((100 * (p - base)) / base).toFixed(1)}%`;
const sweepCell = (label: string, r: number) => cells.find((c) => c.label === label && Math.abs((c.options?.kvRatio ?? -1) - r) < 1e-9)!;
const best = (limit: number) =>
  cells.filter((c) => c.options && c.kvRatio <= limit + 1e-9).reduce((a, b) => (b.ppl < a.ppl ? b : a));
const report = {
  model: 'tinystories-656k (2 layers, 8 heads / 4 KV heads, head dim 16, d_model 128, fp32 cache: 1024 B/token)',
  text: `corpus-tinystories-val/tinystories_val_part2.txt (held out): ${ids.length} tokens, 512-token windows, no BOS${WINDOWS ? `, first ${WINDOWS} windows` : ''}`,
  calibration: `first ${CAL_TOKENS} tokens of corpus-tinystories-val/tinystories_val.txt (part 1), 512-token windows`,
  machine: `${cpus().length} × ${cpus()[0]?.model ?? '?'}, onnxruntime-node CPU`,
  seconds,
  baseline: { ppl: base, tokens: baseline.tokens, kvBytesPerToken: baseline.kvBytesPerToken },
  reference: referenceRows.map((r) => ({ ...r.cell, expected: r.expected, deviation: (r.cell.ppl - r.expected) / r.expected })),
  sweep: cells.filter((c) => SWEEP.some((v) => v.label === c.label)),
  calibrationTokens: calibrationRows,
  targets: { halfKv: best(0.5), quarterKv: best(0.25) },
};
const md = [
  '# mla quality on TinyStories-656K',
  '',
  `Perplexity on held-out TinyStories text (part 2, ${ids.length.toLocaleString('en-US')} tokens; ${baseline.tokens.toLocaleString('en-US')} scored in 512-token windows, no BOS), onnxruntime-node CPU.`,
  `Calibration: the first ${CAL_TOKENS.toLocaleString('en-US')} tokens of part 1. Generated by \`npx tsx bench/mla-quality.ts\` in ${seconds.toFixed(0)} s on ${cpus().length} CPU cores.`,
  `Original model: perplexity **${base.toFixed(2)}**, ${baseline.kvBytesPerToken} KV bytes per token.`,
  '',
  '## The reference settings',
  '',
  '| layout | method | ranks per layer (K/V) | KV ratio | ppl | reference | deviation |',
  '|---|---|---|---:|---:|---:|---:|',
  ...referenceRows.map(({ cell: c, expected }) => `| ${c.layout} | ${c.method} | ${c.ranks} | ${c.kvRatio.toFixed(2)}× | ${c.ppl.toFixed(2)} | ~${expected} | ${(((c.ppl - expected) / expected) * 100).toFixed(1)}% |`),
  '',
  '## KV ratio sweep (ranks from kvRatio)',
  '',
  `| variant | ${RATIOS.map((r) => `${r}×`).join(' | ')} |`,
  `|---|${RATIOS.map(() => '---:').join('|')}|`,
  ...SWEEP.map((v) => `| ${v.label} | ${RATIOS.map((r) => `${sweepCell(v.label, r).ppl.toFixed(2)} (${pct(sweepCell(v.label, r).ppl)})`).join(' | ')} |`),
  '',
  'Ranks chosen (layer:rank or layer:r_k/r_v):',
  '',
  ...SWEEP.filter((v) => v.allocation === 'energy' && !v.refit).map((v) => `- ${v.label}: ${RATIOS.map((r) => `${r}× → ${sweepCell(v.label, r).ranks}`).join('; ')}`),
  '',
  '## Targets',
  '',
  `- ≤ 0.5× KV at ≤ +3%: best ${report.targets.halfKv.label} at ${report.targets.halfKv.kvRatio.toFixed(3)}× → ${report.targets.halfKv.ppl.toFixed(2)} (${pct(report.targets.halfKv.ppl)})`,
  `- ≤ 0.25× KV at ≤ +30%: best ${report.targets.quarterKv.label} at ${report.targets.quarterKv.kvRatio.toFixed(3)}× → ${report.targets.quarterKv.ppl.toFixed(2)} (${pct(report.targets.quarterKv.ppl)})`,
  '',
  '## Calibration tokens (joint asvd, uniform, 0.5×)',
  '',
  '| calibration tokens | ppl |',
  '|---:|---:|',
  ...calibrationRows.map((c) => `| ${c.calibrationTokens} | ${c.ppl.toFixed(2)} (${pct(c.ppl)}) |`),
  '',
].join('\n');
const out = join(HERE, 'out');
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'mla-quality.json'), `${JSON.stringify(report, null, 2)}\n`);
writeFileSync(join(out, 'mla-quality.md'), md);
process.stdout.write(md);
