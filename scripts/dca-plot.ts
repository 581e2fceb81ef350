/**
 * @file Perplexity vs context for the dca patch (`node --import tsx scripts/dca-plot.ts [--windows K] [--quick]`).
 *
 * TinyStories-656K (trained 512), the TinyStories validation text tokenized once (no special tokens), scored as
 * `attnpatch eval ppl` does (non-overlapping windows of N tokens, each from an empty cache; DCA windows fed in calls
 * of the patch's chunk length L, every other model in one call per window), for:
 *   unpatched at 512, 1024, 2048, 4096;
 *   DCA (CS 384, LW 64, L 320), DCA + chunkllama temperature, DCA + interBias 1, and the gqa patch's sliding window
 *   of 256 (`applyGqa(m, { window: 256, maxContext: 8192 })`) at 512 … 8192.
 * Writes docs/data/dca-ppl.json and docs/img/dca-ppl.svg (scripts/svg.ts's line plot: log2 x-axis, the
 * unpatched curve clipped above the panel with its values printed, the trained length marked). Checks the cells
 * that have reference values (measured with the CLI on the full text) when no window cap is in force.
 *
 * Options: --windows K (score at most K windows per cell; the output then goes to bench/out/dca-ppl.{json,svg}
 * unless --docs), --quick (= --windows 2), --docs, --svg-only (redraw the SVG from the JSON). The full run
 * (every window the text holds: 115,416 tokens per cell, 24 cells) takes ~20 min on this 2-core box; --quick ~1.5 min.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { saveModelToBytes } from '../src/graph/io/bytes.js';
import { loadModelFile } from '../src/graph/io/fs.js';
import type { Model } from '../src/graph/ir/model.js';
import { applyDca, type DcaOptions } from '../src/patchers/dca/index.js';
import { applyGqa } from '../src/patchers/gqa/index.js';
import type { PatchReport } from '../src/patchers/patch.js';
import { evaluatePerplexityIds } from '../src/runtime/eval/perplexity.js';
import { tokenizeText } from '../src/runtime/eval/tokenize.js';
import { argReader } from '../bench/args.js';
import { linePlot } from './svg.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const MODEL_DIR = join(ROOT, 'models', 'tinystories-656k');
const MODEL = join(MODEL_DIR, 'onnx', 'model.onnx');
const TEXT = join(ROOT, '..', 'shared', 'models', 'corpus-tinystories-val', 'tinystories_val.txt');
const TRAINED = 512;
const ALL = [512, 1024, 2048, 4096, 8192];

interface Series {
  key: string;
  label: string;
  /** The equivalent `attnpatch eval ppl --patch` spec ('' = none). */
  cli: string;
  contexts: number[];
  patch: (m: Model) => PatchReport | undefined;
  color: string;
}

const DCA: DcaOptions = { chunkSize: 384, localWindow: 64 };
const SERIES: Series[] = [
  { key: 'unpatched', label: 'unpatched', cli: '', contexts: [512, 1024, 2048, 4096], patch: () => undefined, color: '#6b7280' },
  { key: 'dca', label: 'DCA (CS 384, LW 64)', cli: 'dca:chunkSize=384,localWindow=64,temperature=none', contexts: ALL, patch: (m) => applyDca(m, DCA, TRAINED), color: '#2563eb' },
  {
    key: 'dca-chunkllama',
    label: 'DCA + chunkllama temperature',
    cli: 'dca:chunkSize=384,localWindow=64,temperature=chunkllama',
    contexts: ALL,
    patch: (m) => applyDca(m, { ...DCA, temperature: 'chunkllama' }, TRAINED),
    color: '#d97706',
  },
  { key: 'dca-interbias1', label: 'DCA + interBias 1', cli: 'dca:chunkSize=384,localWindow=64,interBias=1', contexts: ALL, patch: (m) => applyDca(m, { ...DCA, interBias: 1 }, TRAINED), color: '#059669' },
  { key: 'gqa-window256', label: 'sliding window 256 (gqa)', cli: 'gqa:window=256,maxContext=8192', contexts: ALL, patch: (m) => applyGqa(m, { window: 256, maxContext: 8192 }), color: '#9333ea' },
];

/** Values measured with `attnpatch eval ppl` on the full text (the brief's figures); the full run must give them. */
const REFERENCE: Record<string, Record<number, number>> = {
  unpatched: { 512: 35.71, 2048: 140.3, 4096: 329.4 },
  dca: { 512: 35.39, 2048: 43.42, 4096: 50.54, 8192: 59.72 },
  'dca-chunkllama': { 4096: 47.67 },
  'dca-interbias1': { 4096: 39.87 },
};

interface Cell {
  context: number;
  ppl: number;
  tokens: number;
  windows: number;
  prefillChunk: number | null;
  ms: number;
}

interface Result {
  date: string;
  machine: { node: string; cpus: number; cpu: string; loadavgStart: number[]; loadavgEnd: number[] };
  model: string;
  text: string;
  textTokens: number;
  trainedLength: number;
  windowsCap: number | null;
  series: { key: string; label: string; cli: string; color: string; cells: Cell[] }[];
  reference: { series: string; context: number; expected: number; got: number; matches: boolean }[];
  totalMs: number;
}

const log = (s: string) => process.stderr.write(`${s}\n`);

/** Equal at the reference's printed precision (4 significant digits). */
const samePrinted = (expected: number, got: number) => Number(got.toPrecision(4)) === expected;

async function run(cap: number | undefined): Promise<Result> {
  const started = performance.now();
  const loadStart = loadavg();
  const { ids } = await tokenizeText(MODEL_DIR, readFileSync(TEXT, 'utf8'));
  log(`${ids.length} tokens`);
  const out: Result['series'] = [];
  for (const s of SERIES) {
    const m = loadModelFile(MODEL);
    const report = s.patch(m);
    if (report?.left.length) throw new Error(`${s.key}: blocks left unpatched: ${JSON.stringify(report.left)}`);
    const chunk = report?.details?.chunkLength;
    const prefillChunk = typeof chunk === 'number' ? chunk : undefined;
    const bytes = saveModelToBytes(m);
    const cells: Cell[] = [];
    for (const context of s.contexts) {
      const t0 = performance.now();
      const r = await evaluatePerplexityIds({ model: bytes, ids, context, ...(cap !== undefined ? { windows: cap } : {}), ...(prefillChunk !== undefined ? { prefillChunk } : {}) });
      const ms = performance.now() - t0;
      cells.push({ context, ppl: r.ppl, tokens: r.tokens, windows: r.windows, prefillChunk: prefillChunk ?? null, ms });
      log(`${s.key} @${context}: ppl ${r.ppl.toFixed(3)} over ${r.tokens} tokens (${r.windows} windows) in ${(ms / 1000).toFixed(1)} s`);
    }
    out.push({ key: s.key, label: s.label, cli: s.cli, color: s.color, cells });
  }
  const reference: Result['reference'] = [];
  for (const [key, byCtx] of Object.entries(REFERENCE)) {
    for (const [c, expected] of Object.entries(byCtx)) {
      const got = out.find((x) => x.key === key)?.cells.find((x) => x.context === Number(c))?.ppl;
      if (got !== undefined) reference.push({ series: key, context: Number(c), expected, got, matches: samePrinted(expected, got) });
    }
  }
  return {
    date: new Date().toISOString(),
    machine: { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model ?? '', loadavgStart: loadStart, loadavgEnd: loadavg() },
    model: 'models/tinystories-656k/onnx/model.onnx',
    text: 'shared/models/corpus-tinystories-val/tinystories_val.txt',
    textTokens: ids.length,
    trainedLength: TRAINED,
    windowsCap: cap ?? null,
    series: out,
    reference,
    totalMs: performance.now() - started,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// SVG

export function renderSvg(r: Result): string {
  // The y range fits every series but the unpatched one (which leaves the panel above the trained length).
  const others = r.series.filter((s) => s.key !== 'unpatched').flatMap((s) => s.cells.map((c) => c.ppl));
  const lowAll = Math.min(...r.series.flatMap((s) => s.cells.map((c) => c.ppl)));
  return linePlot({
    title: 'TinyStories-656K (trained 512): perplexity vs context',
    subtitles: [
      `${r.textTokens.toLocaleString('en-US')}-token TinyStories validation text, non-overlapping windows${r.windowsCap ? `, only the first ${r.windowsCap} window(s) per cell` : ', every full window'}`,
      'DCA: CS 384, LW 64 (L 320), fed L tokens per call · produced by scripts/dca-plot.ts',
    ],
    xTicks: ALL,
    xLabel: 'context (tokens per window, log₂ scale)',
    yLabel: 'perplexity (lower is better)',
    yFit: [lowAll, Math.max(...others)],
    series: r.series.map((s) => ({
      label: s.label,
      color: s.color,
      points: s.cells.map((c) => ({ x: c.context, y: c.ppl, title: `${s.label} @${c.context}: ${c.ppl.toFixed(2)}` })),
      legendNote: (p) => `${p.y.toFixed(1)} @${p.x}`,
    })),
    marker: { x: TRAINED, label: 'trained length 512' },
    footnote: ['Unpatched values above the', 'panel are printed at its top.'],
  });
}

function markdownTable(r: Result): string {
  const L = ['| series | ' + ALL.join(' | ') + ' |', '|---|' + ALL.map(() => '---|').join('')];
  for (const s of r.series) L.push(`| ${s.label} | ${ALL.map((c) => s.cells.find((x) => x.context === c)?.ppl.toFixed(2) ?? '–').join(' | ')} |`);
  return L.join('\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const { val } = argReader(argv);
  const cap = argv.includes('--quick') ? 2 : val('--windows') !== undefined ? Number(val('--windows')) : undefined;
  if (cap !== undefined && !(Number.isInteger(cap) && cap >= 1)) throw new Error('--windows needs a positive integer');
  const toDocs = cap === undefined || argv.includes('--docs');
  const json = toDocs ? join(ROOT, 'docs', 'data', 'dca-ppl.json') : join(ROOT, 'bench', 'out', 'dca-ppl.json');
  const svg = toDocs ? join(ROOT, 'docs', 'img', 'dca-ppl.svg') : join(ROOT, 'bench', 'out', 'dca-ppl.svg');
  const r = argv.includes('--svg-only') ? (JSON.parse(readFileSync(json, 'utf8')) as Result) : await run(cap);
  mkdirSync(dirname(json), { recursive: true });
  mkdirSync(dirname(svg), { recursive: true });
  if (!argv.includes('--svg-only')) writeFileSync(json, `${JSON.stringify(r, null, 2)}\n`);
  writeFileSync(svg, renderSvg(r));
  console.log(markdownTable(r));
  for (const c of r.reference) console.log(`reference ${c.series} @${c.context}: expected ${c.expected}, got ${c.got.toFixed(3)} — ${c.matches ? 'matches' : r.windowsCap ? 'differs (windows capped)' : 'DIFFERS'}`);
  console.log(`wrote ${json} and ${svg}; run took ${(r.totalMs / 60000).toFixed(1)} min`);
  if (!r.windowsCap && r.reference.some((c) => !c.matches)) process.exitCode = 1;
}

await main();
