/**
 * @file DCA benchmark (`node --expose-gc --import tsx bench/dca.ts [--quick]`): bench-llama-random (4 layers,
 * 4 heads / 2 KV heads, head dim 64, vocab 2048), unpatched vs `applyDca(model, { trainedLength: 1024 })`
 * (CS 768, LW 128, L = 640), onnxruntime-node CPU, 1 intra-op thread (--threads N to change).
 *
 * 1. decode: at contexts 2k/8k/16k, ms per decode step on a synthetic cache of that many tokens (a step's cost does
 *    not depend on cache values; each prefill child below also times 8 steps after its real prefill as a cross-check),
 *    unpatched and DCA in one process, steps interleaved, 2 warm-up steps then D (32; --quick 16) measured steps.
 * 2. prefill: each (model, mode, context, rep) in a fresh child process: wall time of the prefill and the process's
 *    peak RSS (VmHWM, reset through /proc/self/clear_refs once ORT is imported and warmed up with a session on the
 *    tiny TinyStories model, created and released, so ORT's code pages are not counted; the measured session is
 *    created after the reset, so the peak includes the weights as ORT holds them). Modes: DCA chunked (L = 640 tokens per call, through
 *    `chunkPrefill` of src/runtime/prefill.ts, the path the pipeline takes), unpatched chunked (640) and unpatched
 *    one-shot; the unpatched one-shot at 16k runs only when the 8k one-shot's measured peak, scaled ×4 (the T² score
 *    tensors dominate), fits in 16 GiB and in the memory available, otherwise it is reported as skipped with that
 *    estimate. Children run interleaved (order alternates per rep).
 * 3. profile: per-op-type kernel time of D decode steps (ORT profiler) for both models at one context (2k quick,
 *    2k and 16k full), to show where a DCA step goes.
 * 4. pipeline: TinyStories-656K (trained 512; DCA defaults CS 384, LW 64, L 320) through
 *    `pipeline('text-generation', <abs path>, { patch: 'dca', prefillChunk })` with a ~1500-token prompt and 16
 *    greedy tokens, chunked prefill on (default) vs off (`prefillChunk: false`), each in its own child: peak RSS and
 *    the greedy tokens (must be equal).
 * Writes bench/out/dca.{json,md}.
 *
 * Prefill extras (memory levers, once, at the largest context): DCA with chunk 160 (= L/4, still one chunk per call),
 * with a forced V8 gc() before every call (how much of the peak is JS garbage), with preallocated outputs
 * (`run(feeds, fetches)`: no copy-out of the presents), and with `enableCpuMemArena: false`.
 *
 * Options: --quick (contexts 2048,8192, 1 prefill rep, no unpatched one-shot above 2048, no extras, decode 16 steps,
 * profile at 2k only; ~1 min), --contexts a,b,c, --reps N (prefill reps at ≤ 2k; default 3, 8k: 2, 16k: 1),
 * --threads N, --decode N, --variants k1,k2 (prefill variants by key, at every context), --no-extras, --no-decode,
 * --no-prefill, --no-profile, --no-pipeline, --max-oneshot-gib X (default 16), --keep. The full run took 6.9 min on
 * this 2-core shared box (load ~4); the unpatched 16k one-shot is skipped there (its 8k peak, 6.8 GiB, × 4 > 16 GiB),
 * and would take several minutes if allowed.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as OrtNs from 'onnxruntime-common';
import { loadModelFile, saveModelFile } from '../src/graph/io/fs.js';
import { applyDca } from '../src/patchers/dca/index.js';
import type { OrtModule } from '../src/runtime/ort/decoder.js';
import { cacheShapeOf, DynamicStepper, maxAbsDiff, median, promptIds, tokenFeeds } from './gqa-cache.js';
import { argReader } from './args.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const SOURCE = join(HERE, '..', '..', 'shared', 'models', 'bench-llama-random', 'onnx', 'model.onnx');
const TINY = resolve(HERE, '..', 'models', 'tinystories-656k');
const PROMPT_TEXT = join(HERE, '..', '..', 'shared', 'models', 'corpus-tinystories-val', 'tinystories_val_part2.txt');
const TRAINED = 1024;
/** Tiny model ORT is warmed up with in each prefill child before the baseline. */
const WARMUP_MODEL = join(TINY, 'onnx', 'model.onnx');
const WARMUP_STEPS = 2;
const MiB = 2 ** 20;
const GiB = 2 ** 30;

type Session = OrtNs.InferenceSession;
type ModelKey = 'orig' | 'dca';

interface Options {
  quick: boolean;
  threads: number;
  decode: number;
  contexts: number[];
  reps: number;
  sections: { decode: boolean; prefill: boolean; profile: boolean; pipeline: boolean };
  profileContexts: number[];
  oneShotMax: number;
  maxOneShotGiB: number;
  /** Run the extra memory-lever variants at the largest context. */
  extras: boolean;
  /** Prefill variants to run (default: the main three everywhere, extras at the largest context). */
  variants: string[] | undefined;
  keep: boolean;
}

function parseArgs(argv: string[]): Options {
  const { has, val } = argReader(argv);
  const quick = has('--quick');
  const contexts = (val('--contexts') ?? (quick ? '2048,8192' : '2048,8192,16384')).split(',').map(Number);
  return {
    quick,
    threads: Number(val('--threads') ?? 1),
    decode: Number(val('--decode') ?? (quick ? 16 : 32)),
    contexts,
    reps: Number(val('--reps') ?? (quick ? 1 : 3)),
    sections: { decode: !has('--no-decode'), prefill: !has('--no-prefill'), profile: !has('--no-profile'), pipeline: !has('--no-pipeline') },
    profileContexts: quick ? [contexts[0]!] : [contexts[0]!, contexts.at(-1)!].filter((x, i, a) => a.indexOf(x) === i),
    oneShotMax: quick ? 2048 : Infinity,
    maxOneShotGiB: Number(val('--max-oneshot-gib') ?? 16),
    variants: val('--variants')?.split(','),
    extras: !quick && !has('--no-extras'),
    keep: has('--keep'),
  };
}

const fmt = (x: number | undefined, d = 1) => (x !== undefined && Number.isFinite(x) ? x.toFixed(d) : '–');
const log = (s: string) => process.stderr.write(`${s}\n`);
const gc = (globalThis as { gc?: () => void }).gc;

/** A field of /proc/self/status in bytes (VmRSS, VmHWM, …). */
function status(key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error(`no ${key} in /proc/self/status`);
  return Number(m[1]) * 1024;
}

/** MemAvailable of the machine, bytes. */
function memAvailable(): number {
  const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Resets VmHWM to the current RSS (Linux ≥ 4.0). */
function resetPeak(): void {
  writeFileSync('/proc/self/clear_refs', '5');
}

const sessionOptions = (threads: number, extra: Record<string, unknown> = {}) => ({ intraOpNumThreads: threads, interOpNumThreads: 1, ...extra }) as OrtNs.InferenceSession.SessionOptions;

// ---------------------------------------------------------------------------------------------------------------
// Children

interface PrefillSpec {
  kind: 'prefill';
  model: ModelKey;
  path: string;
  context: number;
  /** Tokens per call; 0 = one call. */
  chunk: number;
  threads: number;
  decodeSteps: number;
  /** Write each call's presents and logits into preallocated JS tensors (`run(feeds, fetches)`): no copy-out. */
  prealloc?: boolean;
  /** Force a V8 gc() before every session.run call (needs --expose-gc): shows how much of the peak is JS garbage. */
  gcEachCall?: boolean;
  /** false: `enableCpuMemArena: false` (ORT frees to malloc instead of keeping a growing arena). */
  arena?: boolean;
  /** A model ORT is warmed up with (session created and released) before the baseline, so ORT's code pages and
   * one-time allocations are not counted as this model's memory. */
  warmup?: string;
}

interface PrefillResult {
  prefillMs: number;
  /** RSS after ORT is imported, before the session (the baseline; VmHWM is reset here). */
  rssBase: number;
  /** RSS once the session exists (weights loaded). */
  rssSession: number;
  /** VmHWM after the prefill (the process peak since the baseline). */
  peak: number;
  /** RSS after the prefill, cache held. */
  rssAfter: number;
  /** Median ms of decode steps after the real prefill. */
  decodeMs: number;
  /** Logits of the prompt's last position. */
  last: number[];
}

async function prefillChild(spec: PrefillSpec): Promise<PrefillResult> {
  const ort = (await import('onnxruntime-node')) as unknown as OrtModule;
  const { chunkPrefill } = await import('../src/runtime/prefill.js');
  if (spec.warmup) {
    const w = await ort.InferenceSession.create(spec.warmup, sessionOptions(spec.threads));
    await w.release();
  }
  gc?.();
  const rssBase = status('VmRSS');
  resetPeak();
  const session = await ort.InferenceSession.create(spec.path, sessionOptions(spec.threads, spec.arena === false ? { enableCpuMemArena: false } : {}));
  const rssSession = status('VmRSS');
  const shape = cacheShapeOf(session);
  const kvTensor = (len: number) => new ort.Tensor('float32', new Float32Array(shape.kvHeads * len * shape.headDim), [1, shape.kvHeads, len, shape.headDim]);
  const ids = promptIds(spec.context);
  let feeds: Record<string, OrtNs.Tensor> = { ...tokenFeeds(ort, ids, 0) };
  for (const p of shape.pairs) feeds[p.past] = kvTensor(0);
  if (spec.gcEachCall) {
    const run = session.run.bind(session);
    (session as { run: unknown }).run = (...args: Parameters<typeof run>) => {
      gc?.();
      return run(...args);
    };
  }
  if (spec.chunk > 0 && !spec.prealloc) chunkPrefill(session as unknown as Parameters<typeof chunkPrefill>[0], spec.chunk);
  const t0 = performance.now();
  let out: Record<string, OrtNs.Tensor> | undefined;
  if (spec.prealloc) {
    // The chunk loop of chunkPrefill, with every output preallocated: ORT writes presents and logits in place.
    const vocab = Number((session as unknown as { outputMetadata: { name: string; shape: (number | string)[] }[] }).outputMetadata.find((x) => x.name === 'logits')!.shape.at(-1));
    const chunk = spec.chunk || spec.context;
    let past: Record<string, OrtNs.Tensor> = Object.fromEntries(shape.pairs.map((p) => [p.past, feeds[p.past]!]));
    feeds = {};
    for (let start = 0; start < ids.length; start += chunk) {
      const part = ids.slice(start, start + chunk);
      const fetches: Record<string, OrtNs.Tensor> = { logits: new ort.Tensor('float32', new Float32Array(part.length * vocab), [1, part.length, vocab]) };
      for (const p of shape.pairs) fetches[p.present] = kvTensor(start + part.length);
      out = await session.run({ ...tokenFeeds(ort, part, start), ...past }, fetches);
      past = Object.fromEntries(shape.pairs.map((p) => [p.past, fetches[p.present]!]));
    }
  } else {
    out = await session.run(feeds);
  }
  const prefillMs = performance.now() - t0;
  const peak = status('VmHWM');
  if (!out) throw new Error('no prefill output');
  const logits = out.logits!;
  const vocab = logits.dims.at(-1)!;
  const data = logits.data as Float32Array;
  const last = Array.from(data.subarray(data.length - vocab));
  // Decode from the real cache (cross-check of the synthetic-cache decode section).
  let cache: Record<string, OrtNs.Tensor> = {};
  for (const p of shape.pairs) cache[p.past] = out[p.present]!;
  out = undefined;
  feeds = {};
  gc?.();
  const rssAfter = status('VmRSS');
  const ms: number[] = [];
  let n = spec.context;
  for (let i = 0; i < WARMUP_STEPS + spec.decodeSteps; i++) {
    const f = { ...tokenFeeds(ort, [5 + (i % 50)], n), ...cache };
    const t1 = performance.now();
    const o = await session.run(f);
    if (i >= WARMUP_STEPS) ms.push(performance.now() - t1);
    cache = {};
    for (const p of shape.pairs) cache[p.past] = o[p.present]!;
    n++;
  }
  await session.release();
  return { prefillMs, rssBase, rssSession, peak, rssAfter, decodeMs: median(ms), last };
}

interface PipelineSpec {
  kind: 'pipeline';
  prompt: string;
  /** undefined = the default (DCA's chunk length); false = off. */
  prefillChunk: false | undefined;
  newTokens: number;
  threads: number;
}

interface PipelineResult {
  promptTokens: number;
  chunk: number | null;
  rssBase: number;
  /** RSS after the pipeline loaded (patched in memory). */
  rssLoaded: number;
  /** VmHWM during generation (reset after loading). */
  peak: number;
  generateMs: number;
  text: string;
  /** Greedy new token ids, from model.generate on the same session. */
  tokens: number[];
}

async function pipelineChild(spec: PipelineSpec): Promise<PipelineResult> {
  const { env } = await import('@huggingface/transformers');
  const { pipeline } = await import('../src/runtime/transformers/pipeline.js');
  env.allowRemoteModels = false;
  gc?.();
  const rssBase = status('VmRSS');
  const options: Record<string, unknown> = { device: 'cpu', dtype: 'fp32', cacheDir: false, patch: 'dca', session_options: { intraOpNumThreads: spec.threads, interOpNumThreads: 1 } };
  if (spec.prefillChunk === false) options.prefillChunk = false;
  type Pipe = ((text: string, o: Record<string, unknown>) => Promise<{ generated_text: string }[]>) & {
    dispose(): Promise<void>;
    tokenizer: ((t: string) => Record<string, unknown>) & { encode(t: string): number[] };
    model: { sessions: Record<string, { run: { prefillChunk?: number } }>; generate(o: Record<string, unknown>): Promise<{ tolist(): (number | bigint)[][] }> };
  };
  const pipe = (await pipeline('text-generation', TINY, options as never)) as unknown as Pipe;
  const chunk = Object.values(pipe.model.sessions)[0]?.run.prefillChunk ?? null;
  gc?.();
  const rssLoaded = status('VmRSS');
  resetPeak();
  const gen = { max_new_tokens: spec.newTokens, min_new_tokens: spec.newTokens, do_sample: false };
  const t0 = performance.now();
  const out = await pipe(spec.prompt, gen);
  const generateMs = performance.now() - t0;
  const peak = status('VmHWM');
  const text = out[0]!.generated_text.slice(spec.prompt.length);
  const inputs = pipe.tokenizer(spec.prompt);
  const promptTokens = pipe.tokenizer.encode(spec.prompt).length;
  const seq = (await pipe.model.generate({ ...inputs, ...gen })).tolist()[0]!.map(Number);
  await pipe.dispose();
  return { promptTokens, chunk, rssBase, rssLoaded, peak, generateMs, text, tokens: seq.slice(seq.length - spec.newTokens) };
}

function runChild<T>(spec: PrefillSpec | PipelineSpec): T {
  const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child', JSON.stringify(spec)], { encoding: 'utf8', maxBuffer: 64 * MiB });
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (r.status !== 0 || !line) throw new Error(`child ${JSON.stringify({ ...spec, prompt: undefined })} failed (exit ${r.status}, signal ${r.signal}):\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-4000)}`);
  return JSON.parse(line.slice('RESULT '.length)) as T;
}

// ---------------------------------------------------------------------------------------------------------------
// 1. decode on synthetic caches, interleaved

interface DecodeRow {
  context: number;
  ms: Record<ModelKey, number[]>;
  medianMs: Record<ModelKey, number>;
  tokPerS: Record<ModelKey, number>;
  /** DCA ms per token ÷ unpatched ms per token. */
  costRatio: number;
}

async function decodeSection(o: Options, paths: Record<ModelKey, string>): Promise<DecodeRow[]> {
  const ort = (await import('onnxruntime-node')) as unknown as OrtModule;
  const models: ModelKey[] = ['orig', 'dca'];
  const sessions = { orig: await ort.InferenceSession.create(paths.orig, sessionOptions(o.threads)), dca: await ort.InferenceSession.create(paths.dca, sessionOptions(o.threads)) };
  const st = { orig: new DynamicStepper('orig', ort, sessions.orig, cacheShapeOf(sessions.orig)), dca: new DynamicStepper('dca', ort, sessions.dca, cacheShapeOf(sessions.dca)) };
  const rows: DecodeRow[] = [];
  for (const p of o.contexts) {
    for (const m of models) st[m].seed(p);
    const ms: Record<ModelKey, number[]> = { orig: [], dca: [] };
    for (let i = 0; i < WARMUP_STEPS + o.decode; i++) {
      for (const m of i % 2 ? [...models].reverse() : models) {
        gc?.();
        const r = await st[m].step([5 + (i % 50)]);
        if (i >= WARMUP_STEPS) ms[m].push(r.ms);
      }
    }
    const medianMs = { orig: median(ms.orig), dca: median(ms.dca) };
    rows.push({ context: p, ms, medianMs, tokPerS: { orig: 1000 / medianMs.orig, dca: 1000 / medianMs.dca }, costRatio: medianMs.dca / medianMs.orig });
    log(`decode ${p}: ms/token unpatched ${fmt(medianMs.orig, 2)}, dca ${fmt(medianMs.dca, 2)} (×${fmt(medianMs.dca / medianMs.orig, 2)})`);
  }
  for (const s of Object.values(sessions)) await s.release();
  return rows;
}

/** max |Δ| of the last-row logits, unpatched one call vs DCA chunked, at a prompt within CS + 1 (DCA is exact). */
async function exactnessCheck(o: Options, paths: Record<ModelKey, string>, tokens: number): Promise<number> {
  const ort = (await import('onnxruntime-node')) as unknown as OrtModule;
  const { chunkPrefill } = await import('../src/runtime/prefill.js');
  const lastRow = async (path: string, chunk: number) => {
    const s = await ort.InferenceSession.create(path, sessionOptions(o.threads));
    const shape = cacheShapeOf(s);
    if (chunk) chunkPrefill(s as unknown as Parameters<typeof chunkPrefill>[0], chunk);
    const feeds: Record<string, OrtNs.Tensor> = { ...tokenFeeds(ort, promptIds(tokens), 0) };
    for (const p of shape.pairs) feeds[p.past] = new ort.Tensor('float32', new Float32Array(0), [1, shape.kvHeads, 0, shape.headDim]);
    const out = await s.run(feeds);
    const d = out.logits!.data as Float32Array;
    const v = out.logits!.dims.at(-1)!;
    await s.release();
    return d.slice(d.length - v);
  };
  return maxAbsDiff(await lastRow(paths.orig, 0), await lastRow(paths.dca, 640));
}

// ---------------------------------------------------------------------------------------------------------------
// 3. profile: per-op-type kernel time of decode steps

interface ProfileRow {
  context: number;
  model: ModelKey;
  steps: number;
  /** Median wall ms per step (profiled session). */
  wallMs: number;
  /** Per step: ORT model_run ms. */
  modelRunMs: number;
  /** Per step, by op type: kernel ms (nodes inside the If's branches are counted under their own op type; the If's
   * own entry, which spans its branch, is left out of `kernelsMs`). */
  byOp: Record<string, number>;
  kernelsMs: number;
  /** Kernel ms of the nodes inlined from the DualChunkAttention function (names carry its prefix), per step. */
  dcaFunctionMs: number;
  /** The 12 costliest nodes, layers merged (ms per step, summed over layers), with their op type. */
  topNodes: { node: string; op: string; ms: number }[];
}

/** A node name with its layer taken out: `_inlfunc_DualChunkAttention_token_3_dca/Slice_16` → `dca/Slice_16`,
 * `/model/layers.2/self_attn/Expand` → `/model/layers.N/self_attn/Expand`. */
function layerless(name: string): string {
  return name
    .replace(/_kernel_time$/, '')
    .replace(/^_inlfunc_DualChunkAttention(Interleaved)?(_token_\d+)?_/, '')
    .replace(/layers\.\d+/, 'layers.N');
}

async function profileSection(o: Options, paths: Record<ModelKey, string>, tmp: string): Promise<ProfileRow[]> {
  const ort = (await import('onnxruntime-node')) as unknown as OrtModule;
  const rows: ProfileRow[] = [];
  for (const p of o.profileContexts) {
    for (const model of ['orig', 'dca'] as const) {
      const dir = join(tmp, `prof-${model}-${p}`);
      mkdirSync(dir, { recursive: true });
      const s = await ort.InferenceSession.create(paths[model], sessionOptions(o.threads, { enableProfiling: true, profileFilePrefix: join(dir, 'p') }));
      const st = new DynamicStepper(model, ort, s, cacheShapeOf(s));
      st.seed(p);
      const walls: number[] = [];
      for (let i = 0; i < WARMUP_STEPS + o.decode; i++) {
        const r = await st.step([7]);
        if (i >= WARMUP_STEPS) walls.push(r.ms);
      }
      s.endProfiling();
      await s.release();
      type Ev = { cat: string; name: string; ts: number; dur: number; args?: { op_name?: string } };
      const file = readdirSync(dir).find((f) => f.endsWith('.json'))!;
      const ev = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Ev[];
      const runs = ev.filter((e) => e.cat === 'Session' && e.name === 'model_run').sort((a, b) => a.ts - b.ts);
      const measured = runs.slice(runs.length - o.decode);
      const from = measured[0]!.ts;
      const kernels = ev.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time') && e.ts >= from);
      const byOp: Record<string, number> = {};
      const byNode = new Map<string, { op: string; ms: number }>();
      let fn = 0;
      for (const k of kernels) {
        const op = k.args?.op_name ?? '?';
        byOp[op] = (byOp[op] ?? 0) + k.dur / 1000 / o.decode;
        const key = layerless(k.name);
        const n = byNode.get(key) ?? { op, ms: 0 };
        n.ms += k.dur / 1000 / o.decode;
        byNode.set(key, n);
        if (op !== 'If' && /DualChunkAttention|_inlfunc_/.test(k.name)) fn += k.dur / 1000 / o.decode;
      }
      const kernelsMs = Object.entries(byOp)
        .filter(([op]) => op !== 'If')
        .reduce((a, [, v]) => a + v, 0);
      const topNodes = [...byNode]
        .filter(([, v]) => v.op !== 'If')
        .map(([node, v]) => ({ node, op: v.op, ms: v.ms }))
        .sort((a, b) => b.ms - a.ms)
        .slice(0, 12);
      rows.push({ context: p, model, steps: o.decode, wallMs: median(walls), modelRunMs: median(measured.map((r) => r.dur / 1000)), byOp, kernelsMs, dcaFunctionMs: fn, topNodes });
      log(`profile ${model} ${p}: wall ${fmt(median(walls), 2)} ms, kernels ${fmt(kernelsMs, 2)} ms, dca function ${fmt(fn, 2)} ms`);
    }
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------------------------
// 2. prefill children and 4. pipeline children

type Variant = { key: string; label: string; model: ModelKey; chunk: number; prealloc?: boolean; arena?: boolean; gcEachCall?: boolean; extra?: boolean };
/** Extras (memory levers) run once, at the largest context only. */
const VARIANTS: Variant[] = [
  { key: 'dca-chunked', label: 'DCA, chunked (640 = L per call)', model: 'dca', chunk: 640 },
  { key: 'orig-chunked', label: 'unpatched, chunked (640 per call)', model: 'orig', chunk: 640 },
  { key: 'orig-oneshot', label: 'unpatched, one call', model: 'orig', chunk: 0 },
  { key: 'dca-chunked-160', label: 'DCA, chunked 160 (= L/4) per call', model: 'dca', chunk: 160, extra: true },
  { key: 'dca-gc', label: 'DCA, chunked 640, V8 gc() before every call', model: 'dca', chunk: 640, gcEachCall: true, extra: true },
  { key: 'dca-160-gc', label: 'DCA, chunked 160, V8 gc() before every call', model: 'dca', chunk: 160, gcEachCall: true, extra: true },
  { key: 'dca-prealloc', label: 'DCA, chunked 640, outputs preallocated (`run(feeds, fetches)`: no copy-out)', model: 'dca', chunk: 640, prealloc: true, extra: true },
  { key: 'dca-noarena', label: 'DCA, chunked 640, `enableCpuMemArena: false`', model: 'dca', chunk: 640, arena: false, extra: true },
];

interface PrefillCell {
  runs: PrefillResult[];
  skipped?: string;
  prefillMs?: number;
  /** Median of peak − baseline (session + prefill). */
  peakBytes?: number;
  sessionBytes?: number;
  decodeMs?: number;
}

const repsFor = (o: Options, p: number) => (o.quick ? 1 : p <= 2048 ? o.reps : p <= 8192 ? Math.min(o.reps, 2) : 1);

function prefillSection(o: Options, paths: Record<ModelKey, string>): Record<number, Record<string, PrefillCell>> {
  const cells: Record<number, Record<string, PrefillCell>> = {};
  for (const p of o.contexts) cells[p] = Object.fromEntries(VARIANTS.map((v) => [v.key, { runs: [] }]));
  const maxReps = Math.max(...o.contexts.map((p) => repsFor(o, p)));
  // Contexts ascending, so the 16k one-shot can be sized from the 8k one.
  const contexts = [...o.contexts].sort((a, b) => a - b);
  for (let rep = 0; rep < maxReps; rep++) {
    for (const p of contexts) {
      if (rep >= repsFor(o, p)) continue;
      const variants = VARIANTS.filter((v) => (o.variants ? o.variants.includes(v.key) : !v.extra || (o.extras && rep === 0 && p === Math.max(...o.contexts))));
      const order = rep % 2 ? [...variants].reverse() : variants;
      for (const v of order) {
        const cell = cells[p]![v.key]!;
        if (cell.skipped) continue;
        if (v.chunk === 0) {
          const skip = oneShotSkip(o, p, cells);
          if (skip) {
            cell.skipped = skip;
            log(`prefill ${p} ${v.key}: ${skip}`);
            continue;
          }
        }
        const r = runChild<PrefillResult>({ kind: 'prefill', model: v.model, path: paths[v.model], context: p, chunk: v.chunk, threads: o.threads, decodeSteps: 8, warmup: WARMUP_MODEL, ...(v.prealloc ? { prealloc: true } : {}), ...(v.arena === false ? { arena: false } : {}), ...(v.gcEachCall ? { gcEachCall: true } : {}) });
        cell.runs.push(r);
        log(`prefill ${p} ${v.key} #${rep + 1}: ${fmt(r.prefillMs / 1000, 2)} s, peak ${fmt((r.peak - r.rssBase) / MiB, 0)} MiB above base (session ${fmt((r.rssSession - r.rssBase) / MiB, 0)} MiB), decode ${fmt(r.decodeMs, 2)} ms`);
      }
    }
  }
  for (const row of Object.values(cells)) {
    for (const cell of Object.values(row)) {
      if (!cell.runs.length) continue;
      cell.prefillMs = median(cell.runs.map((r) => r.prefillMs));
      cell.peakBytes = median(cell.runs.map((r) => r.peak - r.rssBase));
      cell.sessionBytes = median(cell.runs.map((r) => r.rssSession - r.rssBase));
      cell.decodeMs = median(cell.runs.map((r) => r.decodeMs));
    }
  }
  return cells;
}

/** Why the unpatched one-shot prefill at p is not run, or undefined to run it. */
function oneShotSkip(o: Options, p: number, cells: Record<number, Record<string, PrefillCell>>): string | undefined {
  const scoresGiB = (4 * p * p * 4) / GiB;
  if (p > o.oneShotMax) return `skipped (--quick): [1,4,T,T] fp32 scores are ${fmt(scoresGiB, 2)} GiB per tensor`;
  // Estimate from the largest measured one-shot below p: its peak scales with T² once scores dominate.
  const below = Object.keys(cells)
    .map(Number)
    .filter((q) => q < p && cells[q]!['orig-oneshot']!.runs.length)
    .sort((a, b) => b - a)[0];
  if (below === undefined) return undefined;
  const ref = median(cells[below]!['orig-oneshot']!.runs.map((r) => r.peak - r.rssBase));
  const need = ref * (p / below) ** 2;
  const available = memAvailable();
  if (need > o.maxOneShotGiB * GiB) return `skipped: needs ~${fmt(need / GiB, 1)} GiB (the ${below}-token one-shot peak ${fmt(ref / GiB, 2)} GiB × (${p}/${below})²), over the ${o.maxOneShotGiB} GiB cap`;
  if (need > available - GiB) return `skipped: needs ~${fmt(need / GiB, 1)} GiB, ${fmt(available / GiB, 1)} GiB available now`;
  return undefined;
}

interface PipelineSection {
  promptTokens: number;
  newTokens: number;
  runs: Record<'chunked' | 'oneShot', PipelineResult[]>;
  tokensEqual: boolean;
  textEqual: boolean;
}

async function pipelineSection(o: Options): Promise<PipelineSection> {
  const { loadTokenizer } = await import('../src/runtime/eval/tokenize.js');
  const tok = await loadTokenizer(TINY);
  const all = readFileSync(PROMPT_TEXT, 'utf8');
  // The longest whole-line prefix of the text under 1500 tokens.
  const lines = all.split('\n');
  let prompt = '';
  for (const line of lines) {
    const next = prompt ? `${prompt}\n${line}` : line;
    if (tok.encode(next, { add_special_tokens: false }).length > 1500) break;
    prompt = next;
  }
  const newTokens = 16;
  const runs: PipelineSection['runs'] = { chunked: [], oneShot: [] };
  const reps = o.quick ? 1 : 2;
  for (let rep = 0; rep < reps; rep++) {
    for (const k of rep % 2 ? (['oneShot', 'chunked'] as const) : (['chunked', 'oneShot'] as const)) {
      const r = runChild<PipelineResult>({ kind: 'pipeline', prompt, prefillChunk: k === 'chunked' ? undefined : false, newTokens, threads: o.threads });
      runs[k].push(r);
      log(`pipeline ${k} #${rep + 1}: ${r.promptTokens} prompt tokens, chunk ${r.chunk}, peak ${fmt((r.peak - r.rssLoaded) / MiB, 1)} MiB above loaded (process peak ${fmt(r.peak / MiB, 0)} MiB), ${fmt(r.generateMs, 0)} ms`);
    }
  }
  const ref = runs.chunked[0]!;
  const same = (a: PipelineResult) => JSON.stringify(a.tokens) === JSON.stringify(ref.tokens);
  return { promptTokens: ref.promptTokens, newTokens, runs, tokensEqual: [...runs.chunked, ...runs.oneShot].every(same), textEqual: [...runs.chunked, ...runs.oneShot].every((r) => r.text === ref.text) };
}

// ---------------------------------------------------------------------------------------------------------------
// Report

function modelBytes(path: string): number {
  const m = loadModelFile(path);
  let n = 0;
  for (const v of m.graph.initializers.values()) n += v.initializer?.byteLength ?? 0;
  return n;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const started = performance.now();
  const loadStart = loadavg();
  const tmp = mkdtempSync(join(tmpdir(), 'attnpatch-bench-dca-'));
  try {
    const m = loadModelFile(SOURCE);
    const report = applyDca(m, { trainedLength: TRAINED });
    if (report.left.length) throw new Error(`dca left blocks: ${JSON.stringify(report.left)}`);
    const paths: Record<ModelKey, string> = { orig: SOURCE, dca: join(tmp, 'dca.onnx') };
    saveModelFile(m, paths.dca);
    const shapeSession = await (await import('onnxruntime-node')).InferenceSession.create(SOURCE);
    const shape = cacheShapeOf(shapeSession as unknown as Session);
    await shapeSession.release();
    const layers = shape.pairs.length / 2;
    const kvBytesPerToken = shape.pairs.length * shape.kvHeads * shape.headDim * 4;
    const weights = modelBytes(SOURCE);
    const exact = await exactnessCheck(o, paths, 700);
    log(`exactness at 700 tokens (≤ CS + 1 = 769): max |Δ logits| ${exact.toExponential(1)}`);

    const decode = o.sections.decode ? await decodeSection(o, paths) : [];
    const prefill = o.sections.prefill ? prefillSection(o, paths) : {};
    const profile = o.sections.profile ? await profileSection(o, paths, tmp) : [];
    const pipe = o.sections.pipeline ? await pipelineSection(o) : undefined;

    // Chunked prefill is exact for the unpatched model: its last-row logits equal the one-shot's.
    const chunkExact: Record<number, number> = {};
    for (const [p, row] of Object.entries(prefill)) {
      const a = row['orig-chunked']!.runs[0];
      const b = row['orig-oneshot']!.runs[0];
      if (a && b) chunkExact[Number(p)] = maxAbsDiff(Float32Array.from(a.last), Float32Array.from(b.last));
    }
    const kv = (p: number) => kvBytesPerToken * p;
    const memRatio = (p: number, key: string) => {
      const c = prefill[p]?.[key];
      return c?.peakBytes !== undefined ? c.peakBytes / (weights + kv(p)) : undefined;
    };
    const totalMs = performance.now() - started;
    const out = {
      date: new Date().toISOString(),
      machine: { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model ?? '', loadavgStart: loadStart, loadavgEnd: loadavg() },
      options: o,
      model: { source: SOURCE, layers, kvHeads: shape.kvHeads, headDim: shape.headDim, weightsBytes: weights, kvBytesPerToken, dca: report.details },
      exactnessAt700: exact,
      decode,
      prefill,
      chunkedPrefillExactness: chunkExact,
      profile,
      pipeline: pipe,
      ratios: {
        decodeCostDcaOverOrig: Object.fromEntries(decode.map((r) => [r.context, r.costRatio])),
        prefillPeakOverWeightsPlusKv: Object.fromEntries(o.contexts.map((p) => [p, Object.fromEntries(VARIANTS.map((v) => [v.key, memRatio(p, v.key)]))])),
      },
      targets: { decodeCostDcaOverOrig: 1.2, prefillPeakOverWeightsPlusKvAt16k: 1.5 },
      totalMs,
    };
    const md = markdown(out as unknown as Report, o);
    const dir = join(HERE, 'out');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'dca.json'), `${JSON.stringify(out, null, 2)}\n`);
    writeFileSync(join(dir, 'dca.md'), md);
    console.log(md);
  } finally {
    if (o.keep) log(`kept ${tmp}`);
    else rmSync(tmp, { recursive: true, force: true });
  }
}

interface Report {
  date: string;
  machine: { node: string; cpus: number; cpu: string; loadavgStart: number[]; loadavgEnd: number[] };
  model: { layers: number; kvHeads: number; headDim: number; weightsBytes: number; kvBytesPerToken: number };
  exactnessAt700: number;
  decode: DecodeRow[];
  prefill: Record<number, Record<string, PrefillCell>>;
  chunkedPrefillExactness: Record<number, number>;
  profile: ProfileRow[];
  pipeline?: PipelineSection;
  totalMs: number;
}

function markdown(r: Report, o: Options): string {
  const mib = (b: number | undefined) => (b === undefined ? '–' : fmt(b / MiB, 0));
  const L: string[] = [];
  const { weightsBytes: w, kvBytesPerToken: kvt } = r.model;
  L.push(`# DCA benchmark (${r.date.slice(0, 10)})`, '');
  L.push(
    `bench-llama-random (${r.model.layers} layers, 4 heads / ${r.model.kvHeads} KV heads, head dim ${r.model.headDim}, vocab 2048; weights ${fmt(w / MiB, 1)} MiB; KV cache ${kvt / 1024} KiB per token), ` +
      `unpatched vs \`applyDca(model, { trainedLength: ${TRAINED} })\` (CS 768, LW 128, L 640), onnxruntime-node CPU, ${o.threads} intra-op thread(s). ` +
      `Node ${r.machine.node}, ${r.machine.cpus}× ${r.machine.cpu}; load average ${r.machine.loadavgStart.map((x) => x.toFixed(1)).join('/')} at start, ${r.machine.loadavgEnd.map((x) => x.toFixed(1)).join('/')} at end ` +
      `(shared box: expect ±20–50% noise on times; ratios come from interleaved runs). Total run ${fmt(r.totalMs / 60000, 1)} min${o.quick ? ' (--quick)' : ''}.`,
    '',
    `Sanity: DCA is exact within CS + 1 = 769 tokens — last-row logits at 700 tokens (DCA chunked 640 + 60 vs unpatched one call) differ by ${r.exactnessAt700.toExponential(1)}.`,
    '',
  );
  if (r.decode.length) {
    L.push(`## Decode (ms per token at the context; synthetic cache of that length; median of ${o.decode} steps after ${WARMUP_STEPS} warm-up, unpatched and DCA interleaved)`, '');
    L.push('| context | unpatched ms/token | DCA ms/token | unpatched tok/s | DCA tok/s | DCA / unpatched cost | after real prefill (8 steps): unpatched · DCA ms |', '|---|---|---|---|---|---|---|');
    for (const d of r.decode) {
      const c = r.prefill[d.context];
      const after = c ? `${fmt(c['orig-chunked']?.decodeMs, 2)} · ${fmt(c['dca-chunked']?.decodeMs, 2)}` : '–';
      L.push(`| ${d.context} | ${fmt(d.medianMs.orig, 2)} | ${fmt(d.medianMs.dca, 2)} | ${fmt(d.tokPerS.orig, 1)} | ${fmt(d.tokPerS.dca, 1)} | **${fmt(d.costRatio, 2)}×** | ${after} |`);
    }
    L.push('', 'Target: DCA cost per token ≤ 1.2× unpatched.', '');
  }
  const ctxs = Object.keys(r.prefill).map(Number).sort((a, b) => a - b);
  if (ctxs.length) {
    L.push('## Prefill (each run in a fresh child process; peak = VmHWM − RSS after importing ORT, so it includes the session and its weights)', '');
    L.push('| context | variant | runs | prefill s (median) | peak MiB | session MiB | weights + KV MiB | peak / (weights + KV) |', '|---|---|---|---|---|---|---|---|');
    for (const p of ctxs) {
      for (const v of VARIANTS) {
        const c = r.prefill[p]![v.key]!;
        const base = w + kvt * p;
        if (c.skipped) {
          L.push(`| ${p} | ${v.label} | 0 | ${c.skipped} | | | ${mib(base)} | |`);
          continue;
        }
        if (!c.runs.length) continue;
        const times = c.runs.map((x) => x.prefillMs / 1000);
        L.push(`| ${p} | ${v.label} | ${c.runs.length} | ${fmt(c.prefillMs! / 1000, 2)}${times.length > 1 ? ` (${fmt(Math.min(...times), 2)}–${fmt(Math.max(...times), 2)})` : ''} | ${mib(c.peakBytes)} | ${mib(c.sessionBytes)} | ${mib(base)} | ${fmt(c.peakBytes! / base, 2)}× |`);
      }
    }
    const ex = Object.entries(r.chunkedPrefillExactness);
    if (ex.length) L.push('', `Unpatched chunked vs one call, last-row logits max |Δ|: ${ex.map(([p, d]) => `${p}: ${d.toExponential(1)}`).join(', ')}.`);
    L.push('', 'Target: DCA prefill peak at 16k ≤ 1.5 × (weights + KV cache bytes).', '');
  }
  if (r.profile.length) {
    L.push(`## Where a decode step goes (ORT profiler, kernel ms per step, ${o.decode} steps; the If's own span, which contains its branch, is not added)`, '');
    const ops = [...new Set(r.profile.flatMap((x) => Object.keys(x.byOp)))].filter((op) => op !== 'If');
    const cols = r.profile.map((x) => `${x.model === 'dca' ? 'DCA' : 'unpatched'} @${x.context}`);
    L.push(`| op type | ${cols.join(' | ')} |`, `|---|${cols.map(() => '---|').join('')}`);
    L.push(`| wall ms / step | ${r.profile.map((x) => fmt(x.wallMs, 2)).join(' | ')} |`);
    L.push(`| ORT model_run ms | ${r.profile.map((x) => fmt(x.modelRunMs, 2)).join(' | ')} |`);
    L.push(`| Σ kernels ms | ${r.profile.map((x) => fmt(x.kernelsMs, 2)).join(' | ')} |`);
    L.push(`| of which DCA function nodes | ${r.profile.map((x) => (x.model === 'dca' ? fmt(x.dcaFunctionMs, 2) : '')).join(' | ')} |`);
    L.push(`| If (span incl. branch) | ${r.profile.map((x) => fmt(x.byOp.If, 2)).join(' | ')} |`);
    const sorted = ops.sort((a, b) => Math.max(...r.profile.map((x) => x.byOp[b] ?? 0)) - Math.max(...r.profile.map((x) => x.byOp[a] ?? 0)));
    for (const op of sorted) {
      if (Math.max(...r.profile.map((x) => x.byOp[op] ?? 0)) < 0.05) continue;
      L.push(`| ${op} | ${r.profile.map((x) => fmt(x.byOp[op], 2)).join(' | ')} |`);
    }
    L.push('', 'Op types under 0.05 ms per step everywhere are left out.', '');
    const at = Math.max(...r.profile.map((x) => x.context));
    for (const x of r.profile.filter((y) => y.context === at)) {
      L.push(`Costliest nodes, ${x.model === 'dca' ? 'DCA' : 'unpatched'} @${at} (ms per step, summed over the ${r.model.layers} layers):`, '');
      L.push('| node | op | ms |', '|---|---|---|');
      for (const n of x.topNodes) L.push(`| \`${n.node}\` | ${n.op} | ${fmt(n.ms, 2)} |`);
      L.push('');
    }
  }
  if (r.pipeline) {
    const pl = r.pipeline;
    L.push(`## Pipeline: TinyStories-656K, \`pipeline('text-generation', …, { patch: 'dca', prefillChunk })\`, ${pl.promptTokens}-token prompt, ${pl.newTokens} greedy tokens`, '');
    L.push('| prefill | runs | chunk | generation peak above loaded pipeline MiB | process peak RSS MiB | generate ms |', '|---|---|---|---|---|---|');
    for (const [k, label] of [
      ['chunked', 'chunked (default)'],
      ['oneShot', 'one call (`prefillChunk: false`)'],
    ] as const) {
      const rs = pl.runs[k];
      if (!rs.length) continue;
      L.push(`| ${label} | ${rs.length} | ${rs[0]!.chunk ?? 'off'} | ${fmt(median(rs.map((x) => (x.peak - x.rssLoaded) / MiB)), 1)} | ${fmt(median(rs.map((x) => x.peak / MiB)), 0)} | ${fmt(median(rs.map((x) => x.generateMs)), 0)} |`);
    }
    L.push('', `Greedy tokens equal (chunked vs one call, all runs): **${pl.tokensEqual ? 'yes' : 'NO'}** (${JSON.stringify(pl.runs.chunked[0]?.tokens)}); generated text equal: ${pl.textEqual ? 'yes' : 'no'}.`, '');
  }
  return L.join('\n');
}

if (process.argv[2] === '--child') {
  const spec = JSON.parse(process.argv[3]!) as PrefillSpec | PipelineSpec;
  const result = spec.kind === 'prefill' ? await prefillChild(spec) : await pipelineChild(spec);
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
} else {
  await main();
}
