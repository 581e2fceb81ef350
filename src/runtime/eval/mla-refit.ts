/**
 * @file Refitting an mla-patched model's folded output projections on calibration text (the optional last step of
 * activation-aware MLA). A lossy block's attention output differs from the original's for two reasons: its values
 * are low-rank, and its attention probabilities come from low-rank keys. Its folded weight W_fold = W_O·W_UV (per
 * head, [H·r, d_model]) is refit by ridge least squares so that Z·W_fold matches the original model's
 * output-projection result on the same tokens, where Z are the patched model's latent attention outputs
 * (P·c_V per head). Layers are refit in order, each on inputs that already include the earlier refits.
 *
 * Both models run window by window in lockstep, so memory holds one window of activations plus the normal
 * equations (ZᵀZ, ZᵀY) of one layer. Full-rank (exact) blocks are left alone.
 */
import * as ort from 'onnxruntime-node';
import { AttnpatchError } from '../../errors.js';
import { DataType } from '../../graph/ir/dtype.js';
import type { Model } from '../../graph/ir/model.js';
import type { Node } from '../../graph/ir/node.js';
import type { Value } from '../../graph/ir/value.js';
import { saveModelToBytes } from '../../graph/io/bytes.js';
import { inlineTensorProto } from '../../graph/serde/from-ir.js';
import { floatToHalf, halfToFloat, toFloat32 } from '../../graph/tensor/decode.js';
import { MemoryTensor, viewBytes } from '../../graph/tensor/tensor.js';
import { liftAttention } from '../../patchers/attention/lift.js';
import { ridgeSolve } from '../../patchers/mla/linalg.js';
import { MLA_EXACT_KEY, MLA_FOLD_BIAS_KEY, MLA_FOLD_KEY } from '../../patchers/mla/metadata.js';
import { parsePatchSpec, type PatchSpec } from '../../patchers/spec.js';
import { OrtDecoder, type OrtModule } from '../ort/decoder.js';
import { planWindows } from './perplexity.js';

export interface MlaRefitOptions {
  /** The unpatched model (left unchanged). */
  original: Model;
  /** The same model patched with mla; its folded weights are replaced. */
  patched: Model;
  /** Calibration token ids (no special tokens). */
  ids: readonly number[];
  /** Tokens per forward pass (default 512) and at most this many tokens (default 16384). */
  context?: number;
  tokens?: number;
  /** Ridge damping relative to the mean diagonal of ZᵀZ (default 1e-3). */
  ridge?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface MlaRefitReport {
  /** Layers whose folded weight was refit. */
  layers: number[];
  tokens: number;
  /** Per refit layer, ‖W_new − W_old‖ / ‖W_old‖. */
  change: number[];
  /** Lossy layers left as they were, and why (e.g. float16 activations). */
  skipped: { layer: number; reason: string }[];
}

interface Fold {
  layer: number;
  node: Node;
  /** Σ_h b_V,h·W_O,h added after the MatMul (subtracted from the targets), or null. */
  bias: Float32Array | null;
}

function foldsOf(model: Model): Fold[] {
  const folds: Fold[] = [];
  const biases = new Map<string, Float32Array>();
  for (const n of model.graph.nodes) {
    const l = n.metadata.get(MLA_FOLD_BIAS_KEY);
    const t = n.inputs.find((v) => v?.initializer)?.initializer;
    if (l !== undefined && t) biases.set(l, toFloat32(t));
  }
  for (const n of model.graph.nodes) {
    const l = n.metadata.get(MLA_FOLD_KEY);
    if (l !== undefined && n.metadata.get(MLA_EXACT_KEY) !== 'true') folds.push({ layer: Number(l), node: n, bias: biases.get(l) ?? null });
  }
  return folds.sort((a, b) => a.layer - b.layer);
}

/** Model bytes with extra outputs exposed (the model itself is left as it was). */
function withOutputs(model: Model, values: readonly Value[]): Uint8Array {
  const outputs = model.graph.outputs;
  const added = values.filter((v) => !outputs.includes(v));
  outputs.push(...added);
  try {
    return saveModelToBytes(model, inlineTensorProto);
  } finally {
    outputs.splice(outputs.length - added.length, added.length);
  }
}

const floats = (t: ort.Tensor | undefined, name: string): Float32Array => {
  if (t?.data instanceof Float32Array) return t.data;
  if (t?.type === 'float16') return Float32Array.from(t.data as Uint16Array, halfToFloat);
  throw new AttnpatchError('UNSUPPORTED', `refit output ${name} is not float32 or float16`, { tensor: name });
};

/** Refits the folded output projections of every lossy mla block of `patched`, in layer order. */
export async function refitMlaOutputs(o: MlaRefitOptions): Promise<MlaRefitReport> {
  const folds = foldsOf(o.patched);
  const targets = new Map<number, Value>();
  for (const b of liftAttention(o.original).blocks) if (b.o) targets.set(b.layer, b.o.node.output(0));
  const missing = folds.find((f) => !targets.has(f.layer));
  if (missing) throw new AttnpatchError('UNSUPPORTED', `layer ${missing.layer}: the original model has no output projection to refit against`);
  const windows = planWindows(o.ids.slice(0, o.tokens ?? 16384), { context: o.context ?? 512, partial: true });
  const mod = ort as unknown as OrtModule;
  const report: MlaRefitReport = { layers: [], tokens: windows.reduce((s, w) => s + w.length, 0), change: [], skipped: [] };
  // NOTE: the normal equations are float64 whatever the model's float type; only float weights can be refit.
  const isFloat = (x: Fold) => [DataType.FLOAT, DataType.FLOAT16].includes(x.node.input(1)?.initializer?.dtype as 1);
  for (const f of folds.filter((x) => !isFloat(x))) report.skipped.push({ layer: f.layer, reason: 'its folded weight is not float32 or float16' });
  folds.splice(0, folds.length, ...folds.filter(isFloat));
  if (folds.length === 0) return report;
  const original = await OrtDecoder.create(mod, withOutputs(o.original, folds.map((f) => targets.get(f.layer)!)), { executionProviders: ['cpu'] });
  try {
    for (const [i, fold] of folds.entries()) {
      const z = fold.node.input(0)!;
      const weight = fold.node.input(1)!;
      const [n, m] = weight.initializer!.dims as [number, number];
      const y = targets.get(fold.layer)!;
      const zz = new Float64Array(n * n);
      const zy = new Float64Array(n * m);
      const patched = await OrtDecoder.create(mod, withOutputs(o.patched, [z]), { executionProviders: ['cpu'] });
      try {
        for (const input of windows) {
          original.reset();
          patched.reset();
          const zs = floats((await patched.step(input)).outputs[z.name], z.name);
          const ys = floats((await original.step(input)).outputs[y.name], y.name);
          accumulate(zz, zy, zs, ys, n, m, fold.bias);
        }
      } finally {
        await patched.release();
      }
      const old = toFloat32(weight.initializer!);
      const fit = ridgeSolve(mirror(zz, n), zy, n, m, o.ridge ?? 1e-3);
      let diff = 0;
      let norm = 0;
      for (let k = 0; k < fit.length; k++) [diff, norm] = [diff + (fit[k]! - old[k]!) ** 2, norm + old[k]! ** 2];
      const data = Float32Array.from(fit);
      const dtype = weight.initializer!.dtype;
      const bytes = dtype === DataType.FLOAT16 ? viewBytes(Uint16Array.from(data, floatToHalf)) : viewBytes(data);
      weight.initializer = new MemoryTensor(dtype, [n, m], bytes);
      report.layers.push(fold.layer);
      report.change.push(Math.sqrt(diff / Math.max(norm, Number.MIN_VALUE)));
      o.onProgress?.(i + 1, folds.length);
    }
  } finally {
    await original.release();
  }
  return report;
}

/** Adds one window's ZᵀZ (upper triangle) and ZᵀY; the targets exclude the folded bias. */
function accumulate(zz: Float64Array, zy: Float64Array, z: Float32Array, y: Float32Array, n: number, m: number, bias: Float32Array | null): void {
  const rows = z.length / n;
  const target = new Float64Array(m);
  for (let t = 0; t < rows; t++) {
    for (let c = 0; c < m; c++) target[c] = y[t * m + c]! - (bias ? bias[c]! : 0);
    for (let a = 0; a < n; a++) {
      const za = z[t * n + a]!;
      if (za === 0) continue;
      const row = a * n;
      for (let c = a; c < n; c++) zz[row + c]! += za * z[t * n + c]!;
      const out = a * m;
      for (let c = 0; c < m; c++) zy[out + c]! += za * target[c]!;
    }
  }
}

function mirror(a: Float64Array, n: number): Float64Array {
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) a[i * n + j] = a[j * n + i]!;
  return a;
}

/**
 * After `applyPatches` with specs from `resolveCalibration`: refits the mla patch when its calibration came from
 * text (it then carries the token ids) and `refit` is not false. Returns undefined when there was nothing to do.
 */
export async function refitPatched(
  specs: readonly PatchSpec[],
  o: { original: () => Model; patched: Model; tokens?: number; context?: number; onProgress?: (done: number, total: number) => void },
): Promise<MlaRefitReport | undefined> {
  const step = specs.map(parsePatchSpec).find((s) => s.name === 'mla');
  const ids = (step?.options.calibration as { ids?: readonly number[] } | undefined)?.ids;
  if (!step || !ids || step.options.refit === false) return undefined;
  return refitMlaOutputs({
    original: o.original(),
    patched: o.patched,
    ids,
    ...(o.tokens !== undefined ? { tokens: o.tokens } : {}),
    ...(o.context !== undefined ? { context: o.context } : {}),
    ...(typeof step.options.ridge === 'number' ? { ridge: step.options.ridge } : {}),
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
  });
}
