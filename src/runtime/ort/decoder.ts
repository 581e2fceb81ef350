/**
 * @file Drives a decoder ONNX model step by step on ONNX Runtime the way transformers.js does: token ids, an
 * all-ones attention mask over past + new tokens, positions, and the KV cache fed back from `present*` to
 * `past*` inputs (the first cache is zero-length, shaped from the session's declared input shapes).
 * Works with onnxruntime-node and onnxruntime-web (pass the module).
 */
import type * as OrtNs from 'onnxruntime-common';
import { AttnpatchError } from '../../errors.js';
import { halfToFloat } from '../../graph/tensor/decode.js';

/** The parts of an ONNX Runtime JS module we use. */
export interface OrtModule {
  InferenceSession: typeof OrtNs.InferenceSession;
  Tensor: typeof OrtNs.Tensor;
}

type Tensor = OrtNs.Tensor;
type Metadata = { name: string; isTensor: boolean; type?: string; shape?: readonly (number | string)[] };

/** Name of the past input fed by a present output (`present.0.key` → `past_key_values.0.key`, `present_3` → `past_3`). */
export function pastNameFor(present: string): string {
  if (present.startsWith('present.')) return `past_key_values.${present.slice('present.'.length)}`;
  return present.replace(/^present/, 'past');
}

export interface StepResult {
  /** Logits of every new position, [S, vocab] flattened, as float32. */
  logits: Float32Array;
  vocab: number;
  /** Milliseconds spent in session.run. */
  ms: number;
  /** Every output of the run, by name (e.g. extra outputs a caller exposed for calibration). */
  outputs: Readonly<Record<string, Tensor>>;
}

export class OrtDecoder {
  private cache: Record<string, Tensor> = {};
  private past = 0;
  private readonly inputs: Metadata[];

  private constructor(
    private readonly ort: OrtModule,
    readonly session: OrtNs.InferenceSession,
  ) {
    this.inputs = (session as unknown as { inputMetadata: Metadata[] }).inputMetadata;
    this.reset();
  }

  /** Opens a session on a model file path (external data resolved beside it) or bytes. */
  static async create(ort: OrtModule, model: string | Uint8Array, options: OrtNs.InferenceSession.SessionOptions = {}): Promise<OrtDecoder> {
    try {
      const session = typeof model === 'string' ? await ort.InferenceSession.create(model, options) : await ort.InferenceSession.create(model, options);
      return new OrtDecoder(ort, session);
    } catch (e) {
      const file = typeof model === 'string' ? model : '(bytes)';
      throw new AttnpatchError('INVALID_GRAPH', `ONNX Runtime could not load the model: ${(e as Error).message}`, { file });
    }
  }

  /** Element type of the `logits` output ('float32', 'float16', …). */
  get logitsType(): string {
    const meta = (this.session as unknown as { outputMetadata?: Metadata[] }).outputMetadata;
    return meta?.find((m) => m.name === 'logits')?.type ?? meta?.[0]?.type ?? 'float32';
  }

  /** Number of tokens in the cache. */
  get length(): number {
    return this.past;
  }

  /** Empties the cache. */
  reset(): void {
    this.past = 0;
    this.cache = {};
    for (const m of this.inputs) {
      if (!m.name.startsWith('past')) continue;
      const shape = (m.shape ?? []).map((d, i, all) => (typeof d === 'number' ? d : i === all.length - 2 ? 0 : 1));
      if (shape.length < 2) throw new AttnpatchError('USAGE', `cache input ${m.name} has no usable shape`, { tensor: m.name });
      this.cache[m.name] = this.zeros(m.type ?? 'float32', shape);
    }
  }

  private zeros(type: string, dims: number[]): Tensor {
    const n = dims.reduce((a, b) => a * b, 1);
    const T = this.ort.Tensor;
    if (type === 'float16') return new T('float16', new Uint16Array(n), dims);
    return new T('float32', new Float32Array(n), dims);
  }

  private ints(type: string | undefined, values: number[], dims: number[]): Tensor {
    const T = this.ort.Tensor;
    return type === 'int32' ? new T('int32', Int32Array.from(values), dims) : new T('int64', BigInt64Array.from(values, BigInt), dims);
  }

  /** Runs the new tokens through the model, appending them to the cache. */
  async step(ids: readonly number[]): Promise<StepResult> {
    const s = ids.length;
    const total = this.past + s;
    const feeds: Record<string, Tensor> = {};
    for (const m of this.inputs) {
      if (m.name === 'input_ids') feeds[m.name] = this.ints(m.type, [...ids], [1, s]);
      else if (m.name === 'attention_mask') feeds[m.name] = this.ints(m.type, new Array<number>(total).fill(1), [1, total]);
      else if (m.name === 'position_ids') feeds[m.name] = this.ints(m.type, ids.map((_, i) => this.past + i), [1, s]);
      else if (m.name === 'num_logits_to_keep') feeds[m.name] = this.ints(m.type, [0], []);
      else if (this.cache[m.name]) feeds[m.name] = this.cache[m.name]!;
      else throw new AttnpatchError('UNSUPPORTED', `do not know what to feed input ${m.name}`, { tensor: m.name });
    }
    const t0 = performance.now();
    const out = await this.session.run(feeds);
    const ms = performance.now() - t0;
    for (const [name, t] of Object.entries(out)) if (name.startsWith('present')) this.cache[pastNameFor(name)] = t;
    this.past = total;
    const logits = out.logits ?? Object.values(out)[0]!;
    const vocab = logits.dims.at(-1)!;
    const all = toFloat32(logits);
    return { logits: all.subarray(all.length - s * vocab), vocab, ms, outputs: out };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

function toFloat32(t: Tensor): Float32Array {
  const d = t.data;
  if (d instanceof Float32Array) return d;
  if (d instanceof Uint16Array) return Float32Array.from(d, halfToFloat);
  return Float32Array.from(d as ArrayLike<number>);
}

/** Index of the largest logit of row `row`. */
export function argmax(logits: Float32Array, vocab: number, row: number): number {
  let best = 0;
  let bestV = -Infinity;
  for (let i = 0; i < vocab; i++) {
    const v = logits[row * vocab + i]!;
    if (v > bestV) [best, bestV] = [i, v];
  }
  return best;
}
