/**
 * @file Figures and plots for docs/gqa.md (`node --import tsx scripts/gqa-plot.ts [--quick] [--reuse] [--svg-only]`).
 *
 * Reruns the gqa benches in child processes, and the verify table in this process, and keeps what docs/gqa.md shows:
 *   - exactness: each shared fixture patched with `applyGqa(model)` and compared with the original by `verifyModels`
 *     over 64 greedy tokens (what `attnpatch convert M -o out --patch gqa && attnpatch verify M out --tokens 64` does);
 *   - quality (`bench/gqa-quality.ts --contexts 512,1024,2048,4096`): TinyStories-656K on held-out text, the kvHeads
 *     merge table at context 512 and the sliding-window perplexity vs context (windows 128/256/384, gqa without a
 *     window, unpatched), at most 40,000 scored tokens per cell;
 *   - speed (`bench/gqa.ts --no-floor --contexts 512,1024,2048,4096,8192`, run `--speed-runs` times, default 3):
 *     bench-llama-random prefill ms and decode tokens/s, original vs gqa, onnxruntime-node CPU and onnxruntime-web
 *     wasm (in Node), 1 thread. Each run is kept as bench/out/gqa-speed-run<i>.json; the docs show the median over
 *     runs of each run's medians (and of its interleaved gqa/orig ratios) with the range.
 * Writes docs/data/gqa.json (the numbers, the commands, dates, load and machine) and docs/img/gqa-window.svg,
 * docs/img/gqa-speed.svg (scripts/svg.ts). Checks the verify rows against their tolerances, the quality cells
 * against the figures of the gqa issue's closing note (the runs are deterministic: they must match at the printed
 * precision) and that the patched logits equal the original ones (≤ 1e-4) in every speed row with a measured
 * prefill; exits 1 otherwise.
 *
 * Options: --quick (small runs: 3,000 tokens per quality cell, 3 contexts, one `bench/gqa.ts --quick --no-floor`;
 * output to bench/out/gqa-plot.json and bench/out/gqa-*.svg unless --docs; the quality checks are skipped),
 * --speed-runs N, --reuse (read bench/out/gqa-quality.json and bench/out/gqa-speed-run*.json, else bench/out/gqa.json,
 * from an earlier run instead of running the benches), --svg-only (redraw the SVGs from the data JSON). The full run
 * takes ~15 min on this 2-core box (quality ~5 min, each speed run ~3 min); --quick ~35 s.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { argReader } from '../bench/args.js';
import { loadModelFile, saveModelFile } from '../src/graph/io/fs.js';
import { applyGqa } from '../src/patchers/gqa/index.js';
import { losslessTolerance, verifyModels } from '../src/runtime/verify.js';
import { linePlot, type PlotSeries } from './svg.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'bench', 'out');
const SHARED = process.env.ATTNPATCH_SHARED_MODELS ?? join(ROOT, '..', 'shared', 'models');

/** The verify table's models (shared fixtures, by path under shared/models) and what each one shows. */
const EXACTNESS_MODELS: { model: string; file: string; form: string }[] = [
  { model: 'tinystories-656k-optimum', file: 'tinystories-656k-optimum/onnx/model.onnx', form: 'unfused (Optimum), fp32, head size 16' },
  { model: 'bench-llama-random', file: 'bench-llama-random/onnx/model.onnx', form: 'unfused (Optimum), fp32, head size 64' },
  { model: 'tiny-random-llama-fp32-gqa', file: 'tiny-random-llama-fp32-gqa/model.onnx', form: 'already GroupQueryAttention (GenAI), fp32' },
  { model: 'tiny-random-gpt2-fp32-ortfused', file: 'tiny-random-gpt2-fp32-ortfused/past.onnx', form: 'ORT Attention, stacked past_N, fp32, no rope' },
  { model: 'tiny-random-llama-fp16-mha', file: 'tiny-random-llama-fp16-mha/model.onnx', form: 'MultiHeadAttention + RotaryEmbedding (GenAI), fp16' },
  { model: 'tiny-random-gpt2-fp16-ortfused', file: 'tiny-random-gpt2-fp16-ortfused/past.onnx', form: 'ORT Attention, stacked past_N, fp16' },
  { model: 'gpt2_past (ort-testdata)', file: 'ort-testdata-gpt2-unfused/gpt2_past.onnx', form: 'unfused GPT-2, head size 2' },
];
const EXACTNESS_TOKENS = 64;

interface ExactnessRow {
  model: string;
  form: string;
  patched: number;
  left: { layer: number; reason: string }[];
  to: string[];
  maxAbsDiff: number | null;
  maxAbsLogit: number | null;
  logitsType: string | null;
  tolerance: number | null;
  greedyMatch: boolean | null;
}

/** Each model patched with `applyGqa(model)` and compared with `verifyModels` over 64 greedy tokens (the CLI's verify). */
async function exactness(): Promise<ExactnessRow[]> {
  const tmp = mkdtempSync(join(tmpdir(), 'attnpatch-gqa-plot-'));
  const rows: ExactnessRow[] = [];
  try {
    for (const [i, e] of EXACTNESS_MODELS.entries()) {
      const source = join(SHARED, e.file);
      const m = loadModelFile(source);
      const r = applyGqa(m);
      const row: ExactnessRow = { model: e.model, form: e.form, patched: r.patched.length, left: r.left.map((l) => ({ layer: l.layer, reason: l.reason })), to: [...new Set(r.patched.map((p) => p.to))], maxAbsDiff: null, maxAbsLogit: null, logitsType: null, tolerance: null, greedyMatch: null };
      if (r.patched.length) {
        const out = join(tmp, String(i), 'model.onnx');
        mkdirSync(dirname(out), { recursive: true });
        saveModelFile(m, out);
        const v = await verifyModels(source, out, { tokens: EXACTNESS_TOKENS });
        Object.assign(row, { maxAbsDiff: v.maxAbsDiff, maxAbsLogit: v.maxAbsLogit, logitsType: v.logitsType, tolerance: losslessTolerance(v), greedyMatch: v.greedyMatch });
      }
      log(`exactness ${e.model}: ${row.patched} patched, ${row.left.length} left, max |Δ| ${row.maxAbsDiff?.toExponential(2) ?? '–'}`);
      rows.push(row);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return rows;
}

interface QualityCell { ppl: number; tokens: number; windows: number; seconds: number }
interface QualityJson {
  date?: string;
  argv?: string[];
  model: string;
  text: string;
  calibration: string;
  scoring: string;
  machine: string;
  seconds: number;
  contexts?: number[];
  maxContext?: number;
  kvHeads: ({ kvHeads: number; merge: string; kvBytesPerToken: number } & QualityCell)[];
  window: { window: number | 'none' | 'unpatched'; contexts: Record<string, QualityCell> }[];
}
interface SpeedRow {
  backend: 'node' | 'wasm';
  context: number;
  prompt: number;
  prefillMeasured: boolean;
  syntheticCache: boolean;
  median: { prefillMs: { orig: number; gqa: number }; decodeMs: { orig: number; gqa: number }; decodeTokPerS: { orig: number; gqa: number } };
  ratio: { prefillMs: number; decodeTokPerS: number };
  logitsMaxAbsDiff?: number;
}
interface Spread {
  median: number;
  min: number;
  max: number;
}
export interface SpeedCell {
  backend: 'node' | 'wasm';
  context: number;
  prompt: number;
  prefillMeasured: boolean;
  prefillMs: { orig: Spread; gqa: Spread } | null;
  decodeTokPerS: { orig: Spread; gqa: Spread };
  ratio: { prefillMs: Spread | null; decodeTokPerS: Spread };
  /** Largest over runs. */
  logitsMaxAbsDiff: number | null;
}

function spread(xs: number[]): Spread {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return { median: s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2, min: s[0]!, max: s.at(-1)! };
}

/** One cell per backend and context over several runs of bench/gqa.ts. */
function combine(runs: SpeedJson[]): SpeedCell[] {
  const cells: SpeedCell[] = [];
  for (const first of runs[0]!.main) {
    const same = runs.map((r) => r.main.find((x) => x.backend === first.backend && x.context === first.context)).filter((x): x is SpeedRow => x !== undefined);
    const measured = same.every((r) => r.prefillMeasured);
    const diffs = same.map((r) => r.logitsMaxAbsDiff).filter((x): x is number => x !== undefined);
    cells.push({
      backend: first.backend,
      context: first.context,
      prompt: first.prompt,
      prefillMeasured: measured,
      prefillMs: measured ? { orig: spread(same.map((r) => r.median.prefillMs.orig)), gqa: spread(same.map((r) => r.median.prefillMs.gqa)) } : null,
      decodeTokPerS: { orig: spread(same.map((r) => r.median.decodeTokPerS.orig)), gqa: spread(same.map((r) => r.median.decodeTokPerS.gqa)) },
      ratio: { prefillMs: measured ? spread(same.map((r) => r.ratio.prefillMs)) : null, decodeTokPerS: spread(same.map((r) => r.ratio.decodeTokPerS)) },
      logitsMaxAbsDiff: diffs.length ? Math.max(...diffs) : null,
    });
  }
  return cells;
}

interface SpeedJson {
  date: string;
  machine: { node: string; cpus: number; cpu: string; memGiB: number; loadavgStart: number[]; loadavgEnd: number[] };
  options: { threads: number; decode: number; contexts: number[]; wasmPrefillMax: number; quick: boolean };
  model: { source: string; patch: unknown };
  main: SpeedRow[];
  wallS: number;
}

export interface GqaData {
  date: string;
  machine: { node: string; cpus: number; cpu: string; memGiB: number; loadavgStart: number[]; loadavgEnd: number[] };
  quick: boolean;
  /** True when the bench outputs were read from an earlier run (--reuse) rather than produced by this one. */
  reused: boolean;
  quality: {
    command: string;
    date: string | null;
    model: string;
    text: string;
    calibration: string;
    scoring: string;
    seconds: number;
    contexts: number[];
    maxContext: number;
    kvHeads: QualityJson['kvHeads'];
    window: QualityJson['window'];
  };
  speed: {
    command: string;
    model: string;
    threads: number;
    decodeSteps: number;
    wasmPrefillMax: number;
    /** Each run of the bench (the same command), in order. */
    runs: { date: string; wallS: number; loadavgStart: number[]; loadavgEnd: number[] }[];
    /** Per backend and context: the median over runs of each run's medians (and of its interleaved gqa/orig ratios), with the range. */
    rows: SpeedCell[];
  };
  exactness: { command: string; tokens: number; rows: ExactnessRow[] };
  checks: { what: string; expected: string; got: string; ok: boolean }[];
}

const log = (s: string) => process.stderr.write(`${s}\n`);

const QUALITY_ARGS = { full: ['--contexts', '512,1024,2048,4096'], quick: ['--contexts', '512,1024,2048', '--max-tokens', '3000', '--calibration-tokens', '2048'] };
const SPEED_ARGS = { full: ['--no-floor', '--contexts', '512,1024,2048,4096,8192'], quick: ['--quick', '--no-floor'] };

function runBench(nodeArgs: string[], script: string, args: string[]): string {
  const command = `node ${[...nodeArgs, script, ...args].join(' ')}`;
  log(`$ ${command}`);
  const r = spawnSync(process.execPath, [...nodeArgs, join(ROOT, script), ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error(`${command} failed (exit ${r.status ?? r.signal})`);
  return command;
}

/** The issue-3 closing note's figures (bench/gqa-quality.ts, 40,000 tokens per cell), printed like the bench prints. */
const QUALITY_REFERENCE = {
  kvHeads: { '4 original': '40.0', '2 mean': '508', '2 aligned': '137', '1 mean': '2371', '1 aligned': '330' } as Record<string, string>,
  window: {
    128: { 512: '35.9', 2048: '34.3', 4096: '34.6' },
    256: { 512: '38.0', 2048: '37.0', 4096: '37.4' },
    384: { 512: '39.5', 2048: '40.8', 4096: '41.4' },
    none: { 512: '40.0', 2048: '142', 4096: '316' },
  } as Record<string, Record<number, string>>,
};
const printed = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));

function checks(q: QualityJson, s: SpeedCell[], x: ExactnessRow[], quick: boolean): GqaData['checks'] {
  const out: GqaData['checks'] = [];
  for (const r of x) {
    if (r.maxAbsDiff === null) continue;
    out.push({ what: `${r.model} verify, ${EXACTNESS_TOKENS} greedy tokens`, expected: `max |Δ| ≤ ${r.tolerance}, greedy match`, got: `${r.maxAbsDiff.toExponential(2)}, ${r.greedyMatch ? 'match' : 'differ'}`, ok: r.maxAbsDiff <= r.tolerance! && r.greedyMatch === true });
  }
  if (!quick) {
    for (const r of q.kvHeads) {
      const expected = QUALITY_REFERENCE.kvHeads[`${r.kvHeads} ${r.merge}`];
      if (expected) out.push({ what: `kvHeads ${r.kvHeads} ${r.merge} @512 ppl`, expected, got: printed(r.ppl), ok: printed(r.ppl) === expected });
    }
    for (const r of q.window) {
      for (const [c, expected] of Object.entries(QUALITY_REFERENCE.window[String(r.window)] ?? {})) {
        const cell = r.contexts[c];
        if (cell) out.push({ what: `window ${r.window} @${c} ppl`, expected, got: printed(cell.ppl), ok: printed(cell.ppl) === expected });
      }
    }
  }
  for (const r of s) {
    if (r.logitsMaxAbsDiff !== null) out.push({ what: `${r.backend}@${r.prompt} last-row logits, gqa vs original`, expected: '≤ 1e-4', got: r.logitsMaxAbsDiff.toExponential(1), ok: r.logitsMaxAbsDiff <= 1e-4 });
  }
  return out;
}

/** The runs of bench/gqa.ts kept in bench/out/gqa-speed-run<i>.json (this script's own), else bench/out/gqa.json. */
function speedRuns(): SpeedJson[] {
  const kept = readdirSync(OUT).filter((f) => /^gqa-speed-run\d+\.json$/.test(f)).sort((a, b) => Number(a.match(/\d+/)![0]) - Number(b.match(/\d+/)![0]));
  const files = kept.length ? kept : ['gqa.json'];
  log(`speed runs: ${files.join(', ')}`);
  return files.map((f) => JSON.parse(readFileSync(join(OUT, f), 'utf8')) as SpeedJson);
}

async function collect(quick: boolean, reuse: boolean, speedRunCount: number): Promise<GqaData> {
  const loadavgStart = loadavg();
  const x = await exactness();
  const mode = quick ? 'quick' : 'full';
  const qCmd = reuse ? undefined : runBench(['--import', 'tsx'], 'bench/gqa-quality.ts', QUALITY_ARGS[mode]);
  const q = JSON.parse(readFileSync(join(OUT, 'gqa-quality.json'), 'utf8')) as QualityJson;
  let sCmd: string | undefined;
  if (!reuse) {
    for (const f of readdirSync(OUT).filter((f) => /^gqa-speed-run\d+\.json$/.test(f))) rmSync(join(OUT, f));
    for (let i = 1; i <= speedRunCount; i++) {
      sCmd = runBench(['--expose-gc', '--import', 'tsx'], 'bench/gqa.ts', SPEED_ARGS[mode]);
      copyFileSync(join(OUT, 'gqa.json'), join(OUT, `gqa-speed-run${i}.json`));
    }
  }
  const runs = speedRuns();
  const s = runs[0]!;
  const cells = combine(runs);
  const contexts = q.contexts ?? [...new Set(q.window.flatMap((r) => Object.keys(r.contexts).map(Number)))];
  return {
    date: new Date().toISOString(),
    machine: { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model ?? '', memGiB: Math.round(totalmem() / 2 ** 30), loadavgStart, loadavgEnd: loadavg() },
    quick,
    reused: reuse,
    quality: {
      command: qCmd ?? `node --import tsx bench/gqa-quality.ts ${(q.argv ?? []).join(' ')}`.trim(),
      date: q.date ?? null,
      model: q.model,
      text: q.text,
      calibration: q.calibration,
      scoring: q.scoring,
      seconds: q.seconds,
      contexts,
      maxContext: q.maxContext ?? 4096,
      kvHeads: q.kvHeads,
      window: q.window,
    },
    speed: {
      command:
        sCmd ??
        `node --expose-gc --import tsx bench/gqa.ts${s.options.quick ? ' --quick' : ''} --no-floor --contexts ${s.options.contexts.join(',')}${s.options.threads !== 1 ? ` --threads ${s.options.threads}` : ''}`,
      model: 'bench-llama-random (shared/models/bench-llama-random: 4 layers, 4 heads / 2 KV heads, head dim 64, 8192 positions); patched with applyGqa(model, { maxContext: 8192 })',
      threads: s.options.threads,
      decodeSteps: s.options.decode,
      wasmPrefillMax: s.options.wasmPrefillMax,
      runs: runs.map((r) => ({ date: r.date, wallS: r.wallS, loadavgStart: r.machine.loadavgStart, loadavgEnd: r.machine.loadavgEnd })),
      rows: cells,
    },
    exactness: { command: `applyGqa(model) and verifyModels(original, patched, { tokens: ${EXACTNESS_TOKENS} }) — what \`attnpatch convert M -o out --patch gqa && attnpatch verify M out --tokens ${EXACTNESS_TOKENS} --json\` runs`, tokens: EXACTNESS_TOKENS, rows: x },
    checks: checks(q, cells, x, quick),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// SVGs

const WINDOW_COLORS: Record<string, string> = { '128': '#2563eb', '256': '#9333ea', '384': '#059669', none: '#d97706', unpatched: '#6b7280' };

export function windowSvg(d: GqaData): string {
  const contexts = d.quality.contexts;
  const series: PlotSeries[] = d.quality.window.map((r) => ({
    label: r.window === 'unpatched' ? 'unpatched model' : r.window === 'none' ? 'gqa, no window' : `gqa window ${r.window}`,
    color: WINDOW_COLORS[String(r.window)] ?? '#111',
    ...(r.window === 'unpatched' ? { dash: '6 4' } : {}),
    points: contexts.filter((c) => r.contexts[c]).map((c) => ({ x: c, y: r.contexts[c]!.ppl, title: `${r.window} @${c}: ${r.contexts[c]!.ppl.toFixed(2)}` })),
    legendNote: (p) => `${p.y.toFixed(1)} @${p.x}`,
  }));
  // The y range fits the windowed series; the unwindowed ones leave the panel above the trained length.
  const fit = series.filter((s) => s.label.startsWith('gqa window')).flatMap((s) => s.points.map((p) => p.y));
  const first = d.quality.window[0]!.contexts;
  return linePlot({
    title: 'gqa sliding window on TinyStories-656K (trained 512): perplexity vs context',
    subtitles: [
      `held-out TinyStories text, non-overlapping windows, ≤ ${Object.values(first)[0]?.tokens.toLocaleString('en-US') ?? '?'} scored tokens per cell${d.quick ? ' (quick run)' : ''}`,
      `applyGqa(m, { window, maxContext: ${d.quality.maxContext} }) · produced by scripts/gqa-plot.ts`,
    ],
    xTicks: contexts,
    xLabel: 'context (tokens per window, log₂ scale)',
    yLabel: 'perplexity (lower is better)',
    yFit: [Math.min(...series.flatMap((s) => s.points.map((p) => p.y))), Math.max(...fit)],
    series,
    marker: { x: 512, label: 'trained length 512' },
    footnote: ['Values above the panel are', 'printed at its top.'],
  });
}

const SPEED_COLORS = { node: { orig: '#93c5fd', gqa: '#1d4ed8' }, wasm: { orig: '#fcd34d', gqa: '#b45309' } };

export function speedSvg(d: GqaData): string {
  const series: PlotSeries[] = [];
  for (const backend of ['node', 'wasm'] as const) {
    for (const m of ['orig', 'gqa'] as const) {
      const rows = d.speed.rows.filter((r) => r.backend === backend);
      if (!rows.length) continue;
      series.push({
        label: `${backend === 'node' ? 'node CPU' : 'web wasm'}, ${m === 'orig' ? 'original' : 'gqa'}`,
        color: SPEED_COLORS[backend][m],
        ...(m === 'orig' ? { dash: '6 4' } : {}),
        points: rows.map((r) => {
          const v = r.decodeTokPerS[m];
          return { x: r.context, y: v.median, range: [v.min, v.max] as [number, number], title: `${backend} ${m} @${r.context}: ${v.median.toFixed(1)} tok/s (runs ${v.min.toFixed(1)}–${v.max.toFixed(1)})` };
        }),
        legendNote: (p) => {
          const r = rows.find((x) => x.context === p.x)!;
          return m === 'gqa' ? `${p.y.toFixed(0)} tok/s @${p.x} (${r.ratio.decodeTokPerS.median.toFixed(2)}×)` : `${p.y.toFixed(0)} tok/s @${p.x}`;
        },
      });
    }
  }
  const contexts = [...new Set(d.speed.rows.map((r) => r.context))].sort((a, b) => a - b);
  const all = series.flatMap((s) => s.points.map((p) => p.range?.[1] ?? p.y));
  const runs = d.speed.runs;
  const loads = runs.flatMap((r) => [r.loadavgStart[0]!, r.loadavgEnd[0]!]);
  return linePlot({
    title: 'gqa decode speed on bench-llama-random: tokens/s vs context',
    subtitles: [
      `4 layers, 4 heads / 2 KV heads, head dim 64; ${d.speed.threads} thread; per run the median of ${d.speed.decodeSteps} steps after a prompt of that length${d.quick ? ' (quick run)' : ''}`,
      `${runs.length} run${runs.length > 1 ? 's' : ''}: the line is the median, the bars the range · wasm: onnxruntime-web in Node, synthetic cache above ${d.speed.wasmPrefillMax} tokens`,
    ],
    xTicks: contexts,
    xLabel: 'context (cached tokens, log₂ scale)',
    yLabel: 'decode tokens/s (higher is better)',
    yFit: [0, Math.max(...all)],
    series,
    footnote: [`Shared 2-core box, load ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}:`, 'expect ±20–50% between runs.', 'produced by scripts/gqa-plot.ts'],
    height: 505,
    margin: { left: 64, right: 300, top: 79, bottom: 58 },
  });
}

function markdown(d: GqaData): string {
  const L: string[] = [];
  const f = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
  L.push('| model | blocks patched | left | max |Δlogit| | logits | tolerance | greedy |', '|---|---:|---|---:|---|---:|---|');
  for (const r of d.exactness.rows) {
    const reasons = [...new Set(r.left.map((l) => l.reason))];
    const left = reasons.map((why) => `layers ${r.left.filter((l) => l.reason === why).map((l) => l.layer).join(', ')}: ${why}`).join('; ') || '–';
    L.push(`| ${r.model} | ${r.patched} | ${left} | ${r.maxAbsDiff?.toExponential(2) ?? '–'} | ${r.logitsType ?? '–'} | ${r.tolerance?.toExponential(2) ?? '–'} | ${r.greedyMatch === null ? '–' : r.greedyMatch ? 'match' : 'differ'} |`);
  }
  L.push('');
  L.push('| KV heads | merge | KV bytes/token | ppl @512 |', '|---:|---|---:|---:|');
  for (const r of d.quality.kvHeads) L.push(`| ${r.kvHeads} | ${r.merge} | ${r.kvBytesPerToken} | ${f(r.ppl)} |`);
  L.push('', `| window | ${d.quality.contexts.join(' | ')} |`, `|---|${d.quality.contexts.map(() => '---:').join('|')}|`);
  for (const r of d.quality.window) L.push(`| ${r.window} | ${d.quality.contexts.map((c) => (r.contexts[c] ? f(r.contexts[c]!.ppl) : '–')).join(' | ')} |`);
  const rng = (x: Spread, d = 2) => `${x.median.toFixed(d)} (${x.min.toFixed(d)}–${x.max.toFixed(d)})`;
  L.push('', '| backend | context | prefill ms orig → gqa | prefill gqa/orig | decode tok/s orig → gqa | decode gqa/orig |', '|---|---:|---|---|---|---|');
  for (const r of d.speed.rows) {
    const pre = r.prefillMs ? `${r.prefillMs.orig.median.toFixed(0)} → ${r.prefillMs.gqa.median.toFixed(0)}` : '— (synthetic cache)';
    L.push(`| ${r.backend} | ${r.context} | ${pre} | ${r.ratio.prefillMs ? rng(r.ratio.prefillMs) : '–'} | ${r.decodeTokPerS.orig.median.toFixed(1)} → ${r.decodeTokPerS.gqa.median.toFixed(1)} | ${rng(r.ratio.decodeTokPerS)} |`);
  }
  return L.join('\n');
}

async function main(): Promise<void> {
  const { has } = argReader(process.argv.slice(2));
  const quick = has('--quick');
  const toDocs = !quick || has('--docs');
  const json = toDocs ? join(ROOT, 'docs', 'data', 'gqa.json') : join(OUT, 'gqa-plot.json');
  const imgDir = toDocs ? join(ROOT, 'docs', 'img') : OUT;
  const d = has('--svg-only') ? (JSON.parse(readFileSync(json, 'utf8')) as GqaData) : await collect(quick, has('--reuse'), Number(argReader(process.argv.slice(2)).val('--speed-runs') ?? (quick ? 1 : 3)));
  mkdirSync(dirname(json), { recursive: true });
  mkdirSync(imgDir, { recursive: true });
  if (!has('--svg-only')) writeFileSync(json, `${JSON.stringify(d, null, 2)}\n`);
  writeFileSync(join(imgDir, 'gqa-window.svg'), windowSvg(d));
  writeFileSync(join(imgDir, 'gqa-speed.svg'), speedSvg(d));
  console.log(markdown(d));
  for (const c of d.checks) console.log(`check ${c.what}: expected ${c.expected}, got ${c.got} — ${c.ok ? 'ok' : 'DIFFERS'}`);
  console.log(`wrote ${json}, ${join(imgDir, 'gqa-window.svg')}, ${join(imgDir, 'gqa-speed.svg')}`);
  if (d.checks.some((c) => !c.ok)) process.exitCode = 1;
}

await main();
