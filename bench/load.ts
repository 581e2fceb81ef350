/**
 * @file Load/save benchmark (`npm run bench:load`): generates a synthetic ~1 GB fp32 model (a MatMul/Add chain,
 * weights in `model.onnx_data`, biases inline) with our own writer, then measures, each phase in a fresh child
 * process so peaks are clean:
 *   - ours: `loadModelFile` + `saveModelFile` to a new folder (layout kept: the data file is copied);
 *   - ours-relayout: the same, re-planning external data (every external tensor is read and rewritten);
 *   - ort: onnxruntime-node `InferenceSession.create` on the same file (default options);
 *   - copy: `copyFileSync` of both files, the floor for any save that writes a full copy on this disk.
 * Peak memory is the process's VmHWM (reset through /proc/self/clear_refs) minus its RSS just before the phase.
 * Prints a JSON object and a markdown table and writes both to bench/out/load.{json,md}.
 *
 * Options: `--layers N` (default 170 → 1.00 GiB), `--reps N` (default 3), `--keep` (keep the temp folder).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModelFile, saveModelFile } from '../src/graph/io/fs.js';
import { generateSynthetic, HIDDEN, measure, MiB, ROWS, THRESHOLD } from './synthetic.js';

const HERE = dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------------------------------------------------------
// Measuring, inside a child process

async function child(phase: string, modelDir: string, outDir: string): Promise<void> {
  let result: Record<string, number>;
  if (phase === 'copy') {
    result = await measure(() => {
      mkdirSync(outDir, { recursive: true });
      for (const f of ['model.onnx', 'model.onnx_data']) copyFileSync(join(modelDir, f), join(outDir, f));
    });
  } else if (phase === 'ort') {
    const ort = await import('onnxruntime-node');
    let session: Awaited<ReturnType<typeof ort.InferenceSession.create>> | undefined;
    const r = await measure(async () => {
      session = await ort.InferenceSession.create(join(modelDir, 'model.onnx'));
    });
    await session?.release();
    result = { ...r };
  } else {
    let loadMs = 0;
    const r = await measure(() => {
      const t0 = performance.now();
      const m = loadModelFile(join(modelDir, 'model.onnx'));
      loadMs = performance.now() - t0;
      saveModelFile(m, join(outDir, 'model.onnx'), phase === 'ours-relayout' ? { externalData: { threshold: THRESHOLD } } : {});
    });
    result = { ...r, loadMs, saveMs: r.ms - loadMs };
  }
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

// ---------------------------------------------------------------------------------------------------------------
// Orchestrating

function runChild(phase: string, modelDir: string, outDir: string): Record<string, number> {
  // NOTE: flush dirty pages first: otherwise a phase pays for writeback of what earlier phases wrote (the kernel
  // throttles writers past dirty_background_ratio), and timings depend on phase order.
  spawnSync('sync');
  const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--phase', phase, modelDir, outDir], {
    encoding: 'utf8',
    maxBuffer: 16 * MiB,
  });
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (r.status !== 0 || !line) throw new Error(`phase ${phase} failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  return JSON.parse(line.slice('RESULT '.length)) as Record<string, number>;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const flag = (name: string, dflt: number) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : dflt;
  };
  const layers = flag('--layers', 170);
  const reps = Math.max(1, flag('--reps', 3));
  const root = mkdtempSync(join(tmpdir(), 'attnpatch-bench-load-'));
  const modelDir = join(root, 'model');
  mkdirSync(modelDir);
  try {
    const t0 = performance.now();
    const gen = generateSynthetic(modelDir, layers);
    const genMs = performance.now() - t0;
    const modelBytes = Object.values(gen.files).reduce((a, b) => a + b, 0);
    console.error(`generated ${(modelBytes / MiB).toFixed(0)} MiB in ${(genMs / 1000).toFixed(1)} s: ${JSON.stringify(gen.files)}`);

    const phases = ['ort', 'ours', 'ours-relayout', 'copy'] as const;
    const runs: Record<string, Record<string, number>[]> = Object.fromEntries(phases.map((p) => [p, []]));
    // NOTE: interleaved, so page-cache and disk state affect every phase alike; the first ORT run also warms the cache.
    for (let rep = 0; rep < reps; rep++) {
      for (const phase of phases) {
        const outDir = join(root, `out-${phase}-${rep}`);
        const r = runChild(phase, modelDir, outDir);
        if (phase !== 'ort') {
          // The saved model must be complete: same total size as the input (relayout may pad differently).
          const saved = ['model.onnx', 'model.onnx_data'].map((f) => statSync(join(outDir, f)).size).reduce((a, b) => a + b, 0);
          r.savedBytes = saved;
          rmSync(outDir, { recursive: true, force: true });
        }
        runs[phase]!.push(r);
        console.error(`${phase} #${rep + 1}: ${(r.ms! / 1000).toFixed(2)} s, peak +${(r.peakDelta! / MiB).toFixed(0)} MiB`);
      }
    }
    const summary = Object.fromEntries(
      phases.map((p) => {
        const rs = runs[p]!;
        const keys = Object.keys(rs[0]!);
        return [p, Object.fromEntries(keys.map((k) => [k, median(rs.map((r) => r[k]!))]))];
      }),
    ) as Record<(typeof phases)[number], Record<string, number>>;
    const ort = summary.ort;
    const ratios = Object.fromEntries(
      (['ours', 'ours-relayout', 'copy'] as const).map((p) => [
        p,
        { timeVsOrt: summary[p].ms! / ort.ms!, extraPeakVsModelBytes: summary[p].peakDelta! / modelBytes },
      ]),
    );
    const report = {
      date: new Date().toISOString(),
      machine: { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model ?? '', platform: process.platform },
      model: { layers, hidden: HIDDEN, rows: ROWS, ...gen, bytes: modelBytes, generateMs: genMs },
      reps,
      runs,
      median: summary,
      ratios,
      targets: { timeVsOrt: 0.25, extraPeakVsModelBytes: 1.2 },
    };
    const s = (ms: number) => (ms / 1000).toFixed(2);
    const mib = (b: number) => (b / MiB).toFixed(0);
    const range = (phase: string) => {
      const ms = runs[phase]!.map((r) => r.ms!);
      return `${s(Math.min(...ms))}–${s(Math.max(...ms))}`;
    };
    const row = (name: string, phase: string, p: Record<string, number>, ratio?: { timeVsOrt: number; extraPeakVsModelBytes: number }) =>
      `| ${name} | ${s(p.ms!)} (${range(phase)}) | ${p.loadMs === undefined ? '' : `${s(p.loadMs)} + ${s(p.saveMs!)}`} | ${mib(p.peakDelta!)} | ${ratio ? ratio.timeVsOrt.toFixed(2) : '1'} | ${(p.peakDelta! / modelBytes).toFixed(2)} |`;
    const md = [
      `# Load benchmark (${report.date.slice(0, 10)})`,
      '',
      `Synthetic model: ${layers} × (MatMul [${HIDDEN}×${HIDDEN}] fp32 weight, external + Add [${ROWS}×${HIDDEN}] fp32 bias, inline) = ` +
        `${mib(modelBytes)} MiB (model.onnx ${mib(gen.files['model.onnx']!)} MiB + model.onnx_data ${mib(gen.files['model.onnx_data']!)} MiB), ${gen.initializers} initializers.`,
      `Node ${process.version}, ${cpus().length} CPUs, median of ${reps} runs, each in a fresh process; files in the page cache.`,
      '',
      '| phase | wall s, median (range) | load + save s | extra peak RSS MiB | time / ORT | extra peak / model bytes |',
      '|---|---|---|---|---|---|',
      row('ORT InferenceSession.create', 'ort', ort),
      row('ours: loadModelFile + saveModelFile (layout kept)', 'ours', summary.ours, ratios.ours),
      row('ours: load + save, external data re-planned', 'ours-relayout', summary['ours-relayout'], ratios['ours-relayout']),
      row('floor: copy both files (copyFileSync, no parsing)', 'copy', summary.copy, ratios.copy),
      '',
      `Targets: load+save ≤ 0.25 × session creation; extra peak ≤ 1.2 × model bytes.`,
      '',
    ].join('\n');
    const out = join(HERE, 'out');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'load.json'), `${JSON.stringify(report, null, 2)}\n`);
    writeFileSync(join(out, 'load.md'), md);
    console.log(JSON.stringify({ model: report.model, median: summary, ratios }, null, 2));
    console.log(md);
  } finally {
    if (args.includes('--keep')) console.error(`kept ${root}`);
    else rmSync(root, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--phase') {
  const [, phase, modelDir, outDir] = process.argv.slice(2);
  if (!existsSync(modelDir!)) throw new Error(`no model folder ${modelDir}`);
  await child(phase!, modelDir!, outDir!);
} else {
  await main();
}
