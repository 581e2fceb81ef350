/**
 * @file Shared by the benchmarks: the synthetic ~1 GB model (a MatMul/Add chain of fp32 weights, written with our own
 * `saveModelFile`) and a measurement helper (wall time and peak RSS above the start, via VmHWM).
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { saveModelFile } from '../src/graph/io/fs.js';
import { DataType } from '../src/graph/ir/dtype.js';
import { Graph } from '../src/graph/ir/graph.js';
import { Model } from '../src/graph/ir/model.js';
import { Node } from '../src/graph/ir/node.js';
import { tensorType } from '../src/graph/ir/types.js';
import { MemoryTensor } from '../src/graph/tensor/tensor.js';

export const MiB = 2 ** 20;
/** W: [HIDDEN, HIDDEN] fp32 = 4 MiB per layer (external by default). */
export const HIDDEN = 1024;
/** B: [ROWS, HIDDEN] fp32 = 2 MiB per layer (inline by default); input x: [ROWS, HIDDEN]. */
export const ROWS = 512;
/** External-data threshold that puts W in the data file and keeps B inline. */
export const THRESHOLD = 3 * MiB;

/** Deterministic uniform floats in [-a, a] (xorshift), as bytes. */
function randomBytes(count: number, a: number, seed: number): Uint8Array {
  const f = new Float32Array(count);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    f[i] = ((s >>> 0) / 4294967296 - 0.5) * 2 * a;
  }
  return new Uint8Array(f.buffer);
}

/**
 * Writes `dir/model.onnx` computing y = (…((x·W0 + B0)·W1 + B1)…) with `layers` MatMul/Add pairs (170 → 1020 MiB),
 * W external in `model.onnx_data` unless `inline`. NOTE: tensors share a few distinct buffers, so generating 1 GB
 * needs ~24 MiB of memory; the files still hold every tensor in full.
 */
export function generateSynthetic(dir: string, layers: number, options: { inline?: boolean } = {}): { files: Record<string, number>; initializers: number; nodes: number } {
  const g = new Graph('load_bench');
  let h = g.addInput('x', tensorType(DataType.FLOAT, [ROWS, HIDDEN]));
  const ws = [0, 1, 2, 3].map((i) => randomBytes(HIDDEN * HIDDEN, 1 / Math.sqrt(HIDDEN), 1 + i));
  const bs = [0, 1, 2, 3].map((i) => randomBytes(ROWS * HIDDEN, 0.01, 101 + i));
  for (let i = 0; i < layers; i++) {
    const w = g.addInitializer(`layers.${i}.weight`, new MemoryTensor(DataType.FLOAT, [HIDDEN, HIDDEN], ws[i % 4]!));
    const b = g.addInitializer(`layers.${i}.bias`, new MemoryTensor(DataType.FLOAT, [ROWS, HIDDEN], bs[i % 4]!));
    const mm = new Node({ opType: 'MatMul', name: `layers.${i}/MatMul`, inputs: [h, w], outputs: [`layers.${i}/mm`] });
    const add = new Node({ opType: 'Add', name: `layers.${i}/Add`, inputs: [mm.output(), b], outputs: [i === layers - 1 ? 'y' : `layers.${i}/out`] });
    g.insert([mm, add]);
    h = add.output();
  }
  h.type = tensorType(DataType.FLOAT, [ROWS, HIDDEN]);
  g.outputs.push(h);
  const model = new Model(g, { irVersion: 10, opsetImports: { '': 21 } });
  model.producerName = 'attnpatch bench';
  saveModelFile(model, join(dir, 'model.onnx'), { externalData: options.inline ? false : { threshold: THRESHOLD } });
  const names = options.inline ? ['model.onnx'] : ['model.onnx', 'model.onnx_data'];
  const files = Object.fromEntries(names.map((f) => [f, statSync(join(dir, f)).size]));
  return { files, initializers: 2 * layers, nodes: 2 * layers };
}

/** A line of /proc/self/status in bytes. */
function status(key: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Runs `fn` and returns its wall time and the peak RSS above the RSS at its start (run with --expose-gc). */
export async function measure(fn: () => unknown): Promise<{ ms: number; peakDelta: number; rssBefore: number }> {
  (globalThis as { gc?: () => void }).gc?.();
  writeFileSync('/proc/self/clear_refs', '5'); // NOTE: resets VmHWM to the current RSS (Linux ≥ 4.0)
  const rssBefore = status('VmRSS');
  const t0 = performance.now();
  await fn();
  const ms = performance.now() - t0;
  return { ms, peakDelta: status('VmHWM') - rssBefore, rssBefore };
}
