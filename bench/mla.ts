/**
 * @file MLA speed and memory (`npx tsx bench/mla.ts`): bench-llama-random (4 layers, 4 heads / 2 KV heads, head dim
 * 64, d_model 256), the original vs mla kvRatio 1 (full rank: same cache, keys rebuilt), 0.5 and 0.25 (joint,
 * weight-only, uniform ranks: speed does not depend on how the factors were found), onnxruntime-node CPU, 1 thread.
 *
 * 1. main: at contexts 2048 and 8192, each (variant, context) in a fresh process: prefill a prompt of context − D − 1
 *    tokens in 512-token calls, then D greedy decode steps fed back through the cache (as transformers.js does);
 *    decode tokens/s from the median step, and the process's peak RSS (VmHWM). Cells run in rounds, variants
 *    interleaved, `--reps` rounds (default 2); the table keeps the best of each.
 * 2. scaling: decode-step ms at contexts 256…8192 on zero caches of that length (a step's cost does not depend on the
 *    cached values), to see where rebuilding the keys (T·r·Hkv·Dh multiply-adds per layer and step) starts to
 *    dominate; the ORT profiler's split of a step by op type at 2048 and 8190 (the key rebuild apart); and the
 *    per-step multiply-add counts of attention and of the rest of the model.
 * 3. linalg: ml-matrix SVD of W vs Gram + symmetric EVD, 896×256 and 4096×1024 (`--big-svd` also runs the
 *    4096×1024 SVD, ~6 min here), and the time planMla takes on this model.
 * Writes bench/out/mla.{json,md}. Options: --reps N, --decode N, --contexts a,b, --no-main, --no-scaling, --no-linalg.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EigenvalueDecomposition, Matrix, SingularValueDecomposition } from 'ml-matrix';
import * as ort from 'onnxruntime-node';
import { loadModelFile, saveModelFile } from '../src/graph/io/fs.js';
import { inspectModel } from '../src/patchers/inspect.js';
import { applyMla, planMla, type MlaOptions } from '../src/patchers/mla/index.js';
import { OrtDecoder, type OrtModule } from '../src/runtime/ort/decoder.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const SOURCE = join(HERE, '..', '..', 'shared', 'models', 'bench-llama-random', 'onnx', 'model.onnx');
const argv = process.argv.slice(2);
const val = (f: string) => (argv.includes(f) ? argv[argv.indexOf(f) + 1] : undefined);
const SESSION = { executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1 };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const vm = (key: string) => Number(/(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith(key)) ?? '')?.[1] ?? 0) * 1024;
const prompt = (n: number) => Array.from({ length: n }, (_, i) => 3 + ((i * 7919) % 2000));

// ---------------------------------------------------------------------------------------------------------------
// Child: one (model file, context) cell in a fresh process; prints one JSON line.
if (argv[0] === '--child') {
  const [file, ctx, decode] = [argv[1]!, Number(argv[2]), Number(argv[3])];
  const d = await OrtDecoder.create(ort as unknown as OrtModule, file, SESSION);
  const loaded = vm('VmRSS');
  const ids = prompt(ctx - decode - 1);
  const t0 = performance.now();
  let last = 0;
  for (let at = 0; at < ids.length; at += 512) {
    const r = await d.step(ids.slice(at, at + 512));
    last = r.logits.subarray(r.logits.length - r.vocab).indexOf(Math.max(...r.logits.subarray(r.logits.length - r.vocab)));
  }
  const prefillMs = performance.now() - t0;
  const steps: number[] = [];
  for (let i = 0; i < decode; i++) {
    const r = await d.step([last]);
    steps.push(r.ms);
    last = r.logits.indexOf(Math.max(...r.logits));
  }
  await d.release();
  process.stdout.write(`${JSON.stringify({ prefillMs, stepMs: median(steps.slice(1)), loadedRss: loaded, peakRss: vm('VmHWM') })}\n`);
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------------------------
const REPS = Number(val('--reps') ?? 2);
const DECODE = Number(val('--decode') ?? 17);
const CONTEXTS = (val('--contexts') ?? '2048,8192').split(',').map(Number);
const started = performance.now();
const log = (s: string) => process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(0).padStart(5)}s] ${s}\n`);
const tmp = mkdtempSync(join(tmpdir(), 'attnpatch-bench-mla-'));

interface Variant {
  name: string;
  options: MlaOptions | null;
  file: string;
  kvBytesPerToken: number;
  ranks: string;
}
const variants: Variant[] = [];
for (const [name, options] of [
  ['original', null],
  ['mla 1.0× (full rank)', { rank: 'full' }],
  ['mla 0.5×', { kvRatio: 0.5, allocation: 'uniform' }],
  ['mla 0.25×', { kvRatio: 0.25, allocation: 'uniform' }],
] as [string, MlaOptions | null][]) {
  const m = loadModelFile(SOURCE);
  // NOTE: 8192 = config.json's max_position_embeddings, which the CLI would pass (the rope tables' length).
  const r = options ? applyMla(m, { ...options, strict: true }, 8192) : undefined;
  const file = join(tmp, `${variants.length}.onnx`);
  saveModelFile(m, file);
  variants.push({ name, options, file, kvBytesPerToken: inspectModel(m).kvCacheBytesPerToken, ranks: String(r?.details?.ranks ?? '') });
}

// 1. main
interface Cell { variant: string; context: number; prefillMs: number; stepMs: number; tokensPerSecond: number; peakRss: number; loadedRss: number; cacheBytes: number }
const main: Cell[] = [];
if (!argv.includes('--no-main')) {
  for (let rep = 0; rep < REPS; rep++) {
    for (const context of CONTEXTS) {
      for (const v of rep % 2 ? [...variants].reverse() : variants) {
        const out = execFileSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child', v.file, String(context), String(DECODE)], { encoding: 'utf8', maxBuffer: 1 << 20 });
        const r = JSON.parse(out.trim().split('\n').at(-1)!) as Omit<Cell, 'variant' | 'context' | 'tokensPerSecond' | 'cacheBytes'>;
        const cell: Cell = { variant: v.name, context, ...r, tokensPerSecond: 1000 / r.stepMs, cacheBytes: v.kvBytesPerToken * context };
        log(`${v.name.padEnd(22)} ctx ${context}: prefill ${(r.prefillMs / 1000).toFixed(1)} s, step ${r.stepMs.toFixed(1)} ms, peak ${(r.peakRss / 2 ** 20).toFixed(0)} MiB`);
        const prev = main.findIndex((c) => c.variant === v.name && c.context === context);
        if (prev < 0) main.push(cell);
        else if (cell.stepMs < main[prev]!.stepMs) main[prev] = { ...cell, peakRss: Math.min(cell.peakRss, main[prev]!.peakRss) };
      }
    }
  }
}

/** One decode step's feeds over a zero cache of T tokens. */
function zeroCacheFeeds(s: ort.InferenceSession, T: number): Record<string, ort.Tensor> {
  const f: Record<string, ort.Tensor> = { input_ids: new ort.Tensor('int64', BigInt64Array.of(5n), [1, 1]), attention_mask: new ort.Tensor('int64', new BigInt64Array(T + 1).fill(1n), [1, T + 1]), position_ids: new ort.Tensor('int64', BigInt64Array.of(BigInt(T)), [1, 1]) };
  for (const m of (s as unknown as { inputMetadata: { name: string; shape: (number | string)[] }[] }).inputMetadata) {
    if (!m.name.startsWith('past')) continue;
    const dims = m.shape.map((d, i) => (typeof d === 'number' ? d : i === 0 ? 1 : T));
    f[m.name] = new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)), dims);
  }
  return f;
}

// 2. scaling: decode steps on zero caches of length T (one process, variants interleaved).
const SCALE = [256, 512, 1024, 2048, 4096, 8190];
const scaling: { context: number; stepMs: Record<string, number> }[] = [];
if (!argv.includes('--no-scaling')) {
  const sessions = await Promise.all(variants.map((v) => ort.InferenceSession.create(v.file, SESSION)));
  for (const T of SCALE) {
    const feeds = sessions.map((s) => zeroCacheFeeds(s, T));
    const times: number[][] = variants.map(() => []);
    for (let i = 0; i < 7; i++) {
      for (const [k, s] of sessions.entries()) {
        const t0 = performance.now();
        await s.run(feeds[k]!);
        if (i > 0) times[k]!.push(performance.now() - t0);
      }
    }
    scaling.push({ context: T, stepMs: Object.fromEntries(variants.map((v, k) => [v.name, median(times[k]!)])) });
    log(`scaling T=${T}: ${variants.map((v, k) => `${v.name} ${median(times[k]!).toFixed(1)} ms`).join(', ')}`);
  }
  await Promise.all(sessions.map((s) => s.release()));
}

// 2b. profile: where a decode step's kernel time goes (ORT profiler), per op type, with the key rebuild apart.
const profile: { variant: string; context: number; totalMs: number; byOp: Record<string, number> }[] = [];
if (!argv.includes('--no-scaling')) {
  for (const T of [2048, 8190]) {
    for (const v of variants) {
      const dir = mkdtempSync(join(tmp, 'prof-'));
      const s = await ort.InferenceSession.create(v.file, { ...SESSION, enableProfiling: true, profileFilePrefix: join(dir, 'p') });
      const feeds = zeroCacheFeeds(s, T);
      for (let i = 0; i < 4; i++) await s.run(feeds);
      s.endProfiling();
      await s.release();
      const events = JSON.parse(readFileSync(join(dir, readdirSync(dir)[0]!), 'utf8')) as { cat: string; name: string; dur: number; args?: { op_name?: string } }[];
      const byOp: Record<string, number> = {};
      for (const e of events) {
        if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
        const op = e.name.includes('/key_up') ? 'key rebuild (W_UKᵀ·cᵀ)' : (e.args?.op_name ?? '?');
        byOp[op] = (byOp[op] ?? 0) + e.dur / 1000 / 4;
      }
      profile.push({ variant: v.name, context: T, totalMs: Object.values(byOp).reduce((a, b) => a + b, 0), byOp });
    }
  }
}

// Multiply-adds per decode step (all 4 layers): attention over T keys vs the rest (projections, MLP, LM head).
const [L, H, Hkv, Dh, D, F, V] = [4, 4, 2, 64, 256, 688, 2048];
const macs = (v: Variant, T: number) => {
  const widths = v.ranks ? v.ranks.split(' ').map((x) => x.split(':')[1]!.split('/').map(Number)) : [];
  let attention = 0;
  for (let l = 0; l < L; l++) {
    const w = widths[l];
    const r = w ? w.reduce((a, b) => a + b, 0) : 0;
    // original: q·kᵀ and p·v over T; mla: rebuild keys (T·r·Hkv·Dh), q·kᵀ, p·c (T·H·r), folded o (H·r·D)
    attention += w ? T * r * Hkv * Dh + T * H * Dh + T * H * r + H * r * D : 2 * T * H * Dh;
  }
  const rest = L * (D * (H + 2 * Hkv) * Dh + H * Dh * D + 3 * D * F) + D * V;
  return { attention, rest };
};

// 3. linalg
const linalg: Record<string, number> = {};
if (!argv.includes('--no-linalg')) {
  const rand = (r: number, c: number) => new Matrix(Array.from({ length: r }, (_, i) => Array.from({ length: c }, (_, j) => Math.sin(i * 12.9898 + j * 78.233) * 0.5)));
  const time = (f: () => unknown) => ((t) => (f(), performance.now() - t))(performance.now());
  for (const [r, c] of [[896, 256], [4096, 1024]] as const) {
    const a = rand(r, c);
    let g = a;
    linalg[`${r}x${c} gram ms`] = time(() => (g = a.transpose().mmul(a)));
    linalg[`${r}x${c} evd ms`] = time(() => new EigenvalueDecomposition(g, { assumeSymmetric: true }));
    if (r === 896 || argv.includes('--big-svd')) linalg[`${r}x${c} svd ms`] = time(() => new SingularValueDecomposition(a, { autoTranspose: true }));
    log(`linalg ${r}×${c}: ${Object.entries(linalg).filter(([k]) => k.startsWith(`${r}x`)).map(([k, x]) => `${k.split(' ')[1]} ${x.toFixed(0)} ms`).join(', ')}`);
  }
  linalg['planMla bench-llama (joint svd) ms'] = time(() => planMla(loadModelFile(SOURCE), { kvRatio: 0.5 }));
}
rmSync(tmp, { recursive: true, force: true });
const top = (p: (typeof profile)[number]) =>
  Object.entries(p.byOp)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 4)
    .map(([op, ms]) => `${op} ${ms.toFixed(1)} (${((100 * ms) / p.totalMs).toFixed(0)}%)`)
    .join(', ');

// ---------------------------------------------------------------------------------------------------------------
const seconds = (performance.now() - started) / 1000;
const mib = (b: number) => (b / 2 ** 20).toFixed(1);
const base = (ctx: number) => main.find((c) => c.variant === 'original' && c.context === ctx)!;
const report = { model: 'bench-llama-random (4 layers, 4 heads / 2 KV heads, head dim 64, d_model 256, fp32)', machine: `${cpus().length} × ${cpus()[0]?.model ?? '?'}, onnxruntime-node CPU, 1 intra-op thread`, seconds, decodeSteps: DECODE, reps: REPS, variants: variants.map(({ file: _f, ...v }) => v), main, scaling, profile, macs: SCALE.map((T) => ({ context: T, ...Object.fromEntries(variants.map((v) => [v.name, macs(v, T)])) })), linalg };
const md = [
  '# mla speed and memory on bench-llama-random',
  '',
  `onnxruntime-node CPU, 1 intra-op thread, ${cpus().length} × ${cpus()[0]?.model ?? '?'} (a shared, noisy VM). Generated by \`npx tsx bench/mla.ts\` in ${seconds.toFixed(0)} s.`,
  `mla variants: joint latents, weight-only, uniform ranks (${variants.slice(1).map((v) => `${v.name}: ${v.ranks}`).join('; ')}).`,
  '',
  '## Decode after a real prefill (fresh process per cell, best of rounds)',
  '',
  '| variant | KV bytes/token | context | KV cache | prefill (512-token calls) | decode step | tokens/s | vs original | peak RSS |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...main.map((c) => `| ${c.variant} | ${variants.find((v) => v.name === c.variant)!.kvBytesPerToken} | ${c.context} | ${mib(c.cacheBytes)} MiB | ${(c.prefillMs / 1000).toFixed(1)} s | ${c.stepMs.toFixed(1)} ms | ${c.tokensPerSecond.toFixed(1)} | ${(c.tokensPerSecond / base(c.context).tokensPerSecond).toFixed(2)}× | ${mib(c.peakRss)} MiB |`),
  '',
  '## Decode step vs context (zero caches)',
  '',
  `| context | ${variants.map((v) => v.name).join(' | ')} |`,
  `|---:|${variants.map(() => '---:').join('|')}|`,
  ...scaling.map((s) => `| ${s.context} | ${variants.map((v) => `${s.stepMs[v.name]!.toFixed(1)} ms`).join(' | ')} |`),
  '',
  'Where a decode step goes (ORT profiler, kernel ms per step, the four largest op types; zero caches):',
  '',
  '| context | variant | kernel ms | largest |',
  '|---:|---|---:|---|',
  ...profile.map((p) => `| ${p.context} | ${p.variant} | ${p.totalMs.toFixed(1)} | ${top(p)} |`),
  '',
  'Multiply-adds per decode step (millions; attention over the T cached tokens / everything else):',
  '',
  `| context | ${variants.map((v) => v.name).join(' | ')} |`,
  `|---:|${variants.map(() => '---:').join('|')}|`,
  ...SCALE.map((T) => `| ${T} | ${variants.map((v) => { const m = macs(v, T); return `${(m.attention / 1e6).toFixed(1)} / ${(m.rest / 1e6).toFixed(1)}`; }).join(' | ')} |`),
  '',
  '## Linear algebra (ml-matrix, float64)',
  '',
  ...Object.entries(linalg).map(([k, v]) => `- ${k}: ${v.toFixed(0)}`),
  '',
].join('\n');
const outDir = join(HERE, 'out');
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'mla.json'), `${JSON.stringify(report, null, 2)}\n`);
writeFileSync(join(outDir, 'mla.md'), md);
process.stdout.write(md);
