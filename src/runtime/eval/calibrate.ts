/**
 * @file Calibration statistics collected by running the original model on calibration text with ONNX Runtime, the
 * activations of interest exposed as extra graph outputs, keeping their second moments (the Gram matrix Σ yᵀy per
 * value, float64):
 * - the k and v projection outputs, for the aligned KV-head merge (`gqa` with `merge: 'aligned'`, align.ts);
 * - each block's input hidden states (what the q/k/v projections read), for activation-aware `mla` factorization.
 *
 * The model is not changed: the extra outputs are added only while the model is encoded to bytes.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { AttnpatchError, withContext } from '../../errors.js';
import type { Model } from '../../graph/ir/model.js';
import type { Value } from '../../graph/ir/value.js';
import { saveModelToBytes } from '../../graph/io/bytes.js';
import { inlineTensorProto } from '../../graph/serde/from-ir.js';
import { halfToFloat } from '../../graph/tensor/decode.js';
import { liftAttention } from '../../patchers/attention/lift.js';
import type { KvCalibration } from '../../patchers/gqa/align.js';
import { parsePatchSpec, type PatchSpec } from '../../patchers/spec.js';
import { OrtDecoder, type OrtModule } from '../ort/decoder.js';
import { planWindows } from './perplexity.js';
import { tokenizeText } from './tokenize.js';

export interface CalibrationOptions {
  /** The original model (left unchanged). */
  model: Model;
  /** Calibration token ids (no special tokens). */
  ids: readonly number[];
  /** Tokens per forward pass (default 512). */
  context?: number;
  /** Use at most this many tokens (default 16384). */
  tokens?: number;
  onProgress?: (done: number, total: number) => void;
}

/** The k and v projection outputs of every block (by name), which calibration exposes. */
function kvOutputs(model: Model): Value[] {
  const out: Value[] = [];
  for (const block of liftAttention(model).blocks) {
    for (const p of [block.k, block.v]) {
      // Packed or internal projections have no output of their own; align.ts refuses those blocks anyway.
      if (p?.output && !p.columns && !out.includes(p.output)) out.push(p.output);
    }
  }
  return out;
}

/** The input of every block's projections (normed hidden states), which MLA calibration exposes. */
function hiddenOutputs(model: Model): Value[] {
  const out: Value[] = [];
  for (const block of liftAttention(model).blocks) if (block.hidden && !out.includes(block.hidden)) out.push(block.hidden);
  return out;
}

/** Which activations a calibration collects. */
export type CalibrationKind = 'kv' | 'hidden';
const EXPOSED: Readonly<Record<CalibrationKind, (model: Model) => Value[]>> = Object.freeze({ kv: kvOutputs, hidden: hiddenOutputs });

/** Adds `Σ_t y_tᵀ y_t` of a [.., S, n] float32 activation to `gram` ([n, n], upper triangle then mirrored). */
function accumulate(gram: Float64Array, y: Float32Array, n: number): void {
  const rows = y.length / n;
  for (let t = 0; t < rows; t++) {
    const base = t * n;
    for (let i = 0; i < n; i++) {
      const yi = y[base + i]!;
      if (yi === 0) continue;
      const gi = i * n;
      for (let j = i; j < n; j++) gram[gi + j]! += yi * y[base + j]!;
    }
  }
}

function mirror(gram: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) gram[i * n + j] = gram[j * n + i]!;
}

/** Collects k/v projection Gram matrices of `model` over calibration token ids. */
export function collectKvCalibration(o: CalibrationOptions): Promise<KvCalibration> {
  return collectGrams(o, 'kv');
}

/** Collects the Gram matrix of each attention block's input hidden states (for `mla` with method asvd). */
export function collectHiddenCalibration(o: CalibrationOptions): Promise<KvCalibration> {
  return collectGrams(o, 'hidden');
}

/** Gram matrices of the activations of one kind over calibration token ids. */
async function collectGrams(o: CalibrationOptions, kind: CalibrationKind): Promise<KvCalibration> {
  const context = o.context ?? 512;
  const budget = o.tokens ?? 16384;
  const windows = planWindows(o.ids.slice(0, budget), { context, partial: true });
  const exposed = EXPOSED[kind](o.model);
  if (exposed.length === 0) throw new AttnpatchError('UNSUPPORTED', kind === 'kv' ? 'no separate k/v projection outputs to calibrate on' : 'no attention block inputs to calibrate on');
  // NOTE: expose the outputs only while encoding, so the caller's model is never left changed.
  const outputs = o.model.graph.outputs;
  const added = exposed.filter((v) => !outputs.includes(v));
  outputs.push(...added);
  let bytes: Uint8Array;
  try {
    bytes = saveModelToBytes(o.model, inlineTensorProto);
  } finally {
    outputs.splice(outputs.length - added.length, added.length);
  }
  const decoder = await OrtDecoder.create(ort as unknown as OrtModule, bytes, { executionProviders: ['cpu'] });
  const grams = new Map<string, Float64Array>();
  let tokens = 0;
  try {
    for (const [w, input] of windows.entries()) {
      decoder.reset();
      const { outputs: out } = await decoder.step(input);
      for (const v of exposed) {
        const t = out[v.name];
        // NOTE: float16 models give float16 activations; their statistics are accumulated in float64 all the same.
        const data = t?.data instanceof Float32Array ? t.data : t?.type === 'float16' ? Float32Array.from(t.data as Uint16Array, halfToFloat) : undefined;
        if (!t || !data) throw new AttnpatchError('UNSUPPORTED', `calibration output ${v.name} is not float32 or float16`, { tensor: v.name });
        const n = t.dims.at(-1)!;
        let g = grams.get(v.name);
        if (!g) grams.set(v.name, (g = new Float64Array(n * n)));
        accumulate(g, data, n);
      }
      tokens += input.length;
      o.onProgress?.(w + 1, windows.length);
    }
  } finally {
    await decoder.release();
  }
  for (const g of grams.values()) mirror(g, Math.round(Math.sqrt(g.length)));
  return calibration(tokens, grams, o.ids.slice(0, tokens));
}

/** A calibration whose JSON form is a content hash (patch specs are keyed by their JSON). */
function calibration(tokens: number, grams: Map<string, Float64Array>, ids: readonly number[]): KvCalibration {
  const h = createHash('sha256');
  for (const [name, g] of [...grams].sort(([a], [b]) => a.localeCompare(b))) h.update(name).update(new Uint8Array(g.buffer, g.byteOffset, g.byteLength));
  const digest = h.digest('hex');
  return { tokens, grams, ids, toJSON: () => ({ kvCalibration: digest, tokens }) } as KvCalibration;
}

/** Calibration from text, tokenized with a model folder's tokenizer (`kind` 'hidden' for mla; default 'kv'). */
export async function collectKvCalibrationFromText(
  o: Omit<CalibrationOptions, 'ids'> & { tokenizerFolder: string; text: string; kind?: CalibrationKind },
): Promise<KvCalibration> {
  // NOTE: tokenizing is the slow part on long texts; a prefix of 8 characters per wanted token is enough for any
  // tokenizer but byte-level ones on odd text, and the loop widens it when it is not.
  const budget = o.tokens ?? 16384;
  let ids: number[] = [];
  for (let chars = budget * 8; ; chars *= 2) {
    ({ ids } = await tokenizeText(o.tokenizerFolder, o.text.slice(0, chars)));
    if (ids.length >= budget || chars >= o.text.length) break;
  }
  const { tokenizerFolder: _f, text: _t, kind, ...rest } = o;
  return collectGrams({ ...rest, ids }, kind ?? 'kv');
}

/** The activations each patch calibrates on. */
const CALIBRATED: Readonly<Record<string, CalibrationKind>> = Object.freeze({ gqa: 'kv', mla: 'hidden' });

/**
 * Patch specs as a user wrote them, with every gqa or mla `calibration=<text file>` replaced by statistics collected
 * on `model` (call before applying any patch: calibration runs the original model). Specs without one pass through.
 */
export async function resolveCalibration(
  specs: readonly PatchSpec[],
  o: { model: Model; tokenizerFolder: string; tokens?: number; context?: number; onProgress?: (done: number, total: number) => void },
): Promise<PatchSpec[]> {
  const out: PatchSpec[] = [];
  for (const spec of specs) {
    const step = parsePatchSpec(spec);
    const file = step.options.calibration;
    const kind = CALIBRATED[step.name];
    if (!kind || typeof file !== 'string') {
      out.push(spec);
      continue;
    }
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw withContext(e, { file, field: `${step.name}.calibration` });
    }
    const stats = await collectKvCalibrationFromText({
      model: o.model,
      tokenizerFolder: o.tokenizerFolder,
      text,
      kind,
      ...(o.tokens !== undefined ? { tokens: o.tokens } : {}),
      ...(o.context !== undefined ? { context: o.context } : {}),
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    });
    out.push({ [step.name]: { ...step.options, calibration: stats } });
  }
  return out;
}
