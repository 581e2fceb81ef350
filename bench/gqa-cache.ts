/**
 * @file KV-cache prototypes for `bench/gqa.ts`, through the public ONNX Runtime JS API (onnxruntime-node and
 * onnxruntime-web alike):
 *   - `staticCacheVariant`: marks a gqa-patched graph as a fixed-capacity, shared-buffer cache (past/present
 *     [B, Hkv, max_cache_len, Dh], present aliasing past) after checking that this is sound for it;
 *   - `DynamicStepper`: the transformers.js way: past = previous presents, cache grows every step;
 *   - `StaticStepper`: one preallocated [1, Hkv, C, Dh] buffer per cache tensor, fed as past AND passed as the
 *     present output in `session.run(feeds, fetches)`, so GroupQueryAttention sees past == present and appends in
 *     place (`past_present_share_buffer`); `seqlens_k` = valid length − 1 comes from the attention mask.
 * Steppers can be seeded with a synthetic cache of P tokens (timing does not depend on cache values), which is how
 * contexts whose real prefill is too slow are measured.
 */
import type * as OrtNs from 'onnxruntime-common';
import { DataType } from '../src/graph/ir/dtype.js';
import type { Model } from '../src/graph/ir/model.js';
import { tensorType } from '../src/graph/ir/types.js';
import { pastNameFor, type OrtModule } from '../src/runtime/ort/decoder.js';

type Tensor = OrtNs.Tensor;
type Session = OrtNs.InferenceSession;

/** One cache tensor: the graph input it is read from and the graph output it is written to. */
export interface CachePair {
  past: string;
  present: string;
}

/** Cache geometry of a decoder (all layers alike). */
export interface CacheShape {
  pairs: CachePair[];
  kvHeads: number;
  headDim: number;
}

/** Cache pairs and geometry from a session's metadata. */
export function cacheShapeOf(session: Session): CacheShape {
  const meta = session as unknown as { inputMetadata: { name: string; shape?: readonly (number | string)[] }[]; outputNames: readonly string[] };
  const pairs = session.outputNames.filter((n) => n.startsWith('present')).map((present) => ({ present, past: pastNameFor(present) }));
  const first = meta.inputMetadata.find((m) => m.name === pairs[0]?.past);
  const shape = first?.shape ?? [];
  const kvHeads = shape[1];
  const headDim = shape[3];
  if (typeof kvHeads !== 'number' || typeof headDim !== 'number') throw new Error(`cache input ${first?.name} has no fixed [*, Hkv, *, Dh] shape`);
  return { pairs, kvHeads, headDim };
}

/**
 * Rewrites a gqa-patched model in place into the fixed-capacity variant: every present output must be produced
 * directly by a com.microsoft.GroupQueryAttention whose past inputs are graph inputs used by nothing else (an
 * in-place append would otherwise be visible to other readers, e.g. a Shape feeding a mask). Past and present get
 * the type [batch_size, Hkv, max_cache_len, Dh]; the compute graph is unchanged, since GQA already takes the valid
 * length from seqlens_k and sizes present as max(total_sequence_length, past capacity). Throws when not eligible.
 */
export function staticCacheVariant(model: Model): CachePair[] {
  const g = model.graph;
  const pairs: CachePair[] = [];
  for (const out of g.outputs) {
    if (!out.name.startsWith('present')) continue;
    const node = out.producer;
    if (!node || node.opType !== 'GroupQueryAttention' || node.domain !== 'com.microsoft') {
      throw new Error(`${out.name} is not a GroupQueryAttention output (producer ${node?.opType ?? 'none'}): no shared buffer possible`);
    }
    const slot = out.outputIndex; // 1 = present_key, 2 = present_value
    const past = node.input(slot + 2); // 3 = past_key, 4 = past_value
    if (!past || !g.inputs.includes(past)) throw new Error(`${node.name}: past input ${slot + 2} is not a graph input`);
    if (past.consumers().length !== 1) throw new Error(`${past.name} has other readers (${past.consumers().map((n) => n.opType).join(', ')}): in-place append unsafe`);
    const t = past.type;
    if (t?.kind !== 'tensor' || !t.shape || t.shape.length !== 4) throw new Error(`${past.name} has no 4-D tensor type`);
    const typed = tensorType(t.elemType ?? DataType.FLOAT, [t.shape[0] ?? 'batch_size', t.shape[1] ?? null, 'max_cache_len', t.shape[3] ?? null]);
    past.type = typed;
    out.type = typed;
    pairs.push({ past: past.name, present: out.name });
  }
  if (pairs.length === 0) throw new Error('no present outputs');
  model.metadata.set('ai.attnpatch.kv_cache', 'static: past/present share one [B, Hkv, max_cache_len, Dh] buffer; pass the past tensor as the present fetch');
  return pairs;
}

/** Deterministic pseudo-random floats in [-1, 1) for synthetic caches. */
export function fillRandom(a: Float32Array, seed: number): void {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < a.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = (s >>> 0) / 2147483648 - 1;
  }
}

/** input_ids, attention_mask (all ones over past + new) and position_ids, int64, batch 1. */
export function tokenFeeds(ort: OrtModule, ids: readonly number[], past: number): Record<string, Tensor> {
  const s = ids.length;
  const T = ort.Tensor;
  return {
    input_ids: new T('int64', BigInt64Array.from(ids, (x) => BigInt(x)), [1, s]),
    attention_mask: new T('int64', new BigInt64Array(past + s).fill(1n), [1, past + s]),
    position_ids: new T('int64', BigInt64Array.from(ids, (_, i) => BigInt(past + i)), [1, s]),
  };
}

/** Prompt ids of length n (any valid ids; the models are random-weight). */
export const promptIds = (n: number): number[] => Array.from({ length: n }, (_, i) => 3 + ((i * 7919) % 2000));

export interface StepResult {
  /** Wall ms of session.run (or of the low-level run, for the heap steppers). */
  ms: number;
  /** Logits of the last new position. */
  last: Float32Array;
}

export interface Stepper {
  readonly label: string;
  /** Tokens in the cache. */
  readonly length: number;
  /** Runs new tokens, appending them to the cache. */
  step(ids: readonly number[]): Promise<StepResult>;
  /** Replaces the cache by P synthetic tokens. */
  seed(p: number): void;
  reset(): void;
  release(): Promise<void>;
}

function lastRow(t: Tensor): Float32Array {
  const d = t.data as Float32Array;
  const v = t.dims.at(-1)!;
  return d.slice(d.length - v);
}

/** The transformers.js cache: presents become the next pasts. `fetchPresent: false` runs with fetches ['logits']
 * (the cache is then not advanced: a timing probe for the cost of returning the presents). */
export class DynamicStepper implements Stepper {
  private cache: Record<string, Tensor> = {};
  private n = 0;
  constructor(
    readonly label: string,
    private readonly ort: OrtModule,
    readonly session: Session,
    private readonly shape: CacheShape,
  ) {
    this.reset();
  }
  get length(): number {
    return this.n;
  }
  private tensor(len: number, seed?: number): Tensor {
    const a = new Float32Array(this.shape.kvHeads * len * this.shape.headDim);
    if (seed !== undefined) fillRandom(a, seed);
    return new this.ort.Tensor('float32', a, [1, this.shape.kvHeads, len, this.shape.headDim]);
  }
  reset(): void {
    this.n = 0;
    this.cache = Object.fromEntries(this.shape.pairs.map((p) => [p.past, this.tensor(0)]));
  }
  seed(p: number): void {
    this.n = p;
    this.cache = Object.fromEntries(this.shape.pairs.map((q, i) => [q.past, this.tensor(p, 1 + i)]));
  }
  async step(ids: readonly number[], options: { fetchPresent?: boolean } = {}): Promise<StepResult> {
    const feeds = { ...tokenFeeds(this.ort, ids, this.n), ...this.cache };
    const fetchPresent = options.fetchPresent ?? true;
    const t0 = performance.now();
    const out = fetchPresent ? await this.session.run(feeds) : await this.session.run(feeds, ['logits']);
    const ms = performance.now() - t0;
    if (fetchPresent) {
      for (const p of this.shape.pairs) this.cache[p.past] = out[p.present]!;
      this.n += ids.length;
    }
    return { ms, last: lastRow(out.logits!) };
  }
  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * Fixed-capacity shared buffer through the public API: past = preallocated [1, Hkv, C, Dh] tensors, and the same
 * tensors passed as the present fetches. Honoured (in place, exact) by onnxruntime-node; onnxruntime-web 1.30 wasm
 * copies preallocated CPU outputs into its heap and never copies the result back (microsoft/onnxruntime#25786), so
 * there the cache is silently not updated — `bench/gqa.ts` checks logits against the dynamic cache to show it.
 */
export class StaticStepper implements Stepper {
  readonly buffers: Record<string, Tensor>;
  private n = 0;
  constructor(
    readonly label: string,
    private readonly ort: OrtModule,
    readonly session: Session,
    private readonly shape: CacheShape,
    readonly capacity: number,
  ) {
    const { kvHeads, headDim } = shape;
    this.buffers = Object.fromEntries(shape.pairs.map((p) => [p.past, new ort.Tensor('float32', new Float32Array(kvHeads * capacity * headDim), [1, kvHeads, capacity, headDim])]));
  }
  get length(): number {
    return this.n;
  }
  reset(): void {
    this.n = 0; // stale rows past the valid length are never read (GQA masks by seqlens_k)
  }
  seed(p: number): void {
    if (p > this.capacity) throw new Error(`seed ${p} > capacity ${this.capacity}`);
    const { kvHeads, headDim } = this.shape;
    this.shape.pairs.forEach((q, i) => {
      const rows = new Float32Array(p * headDim);
      const buf = this.buffers[q.past]!.data as Float32Array;
      for (let h = 0; h < kvHeads; h++) {
        fillRandom(rows, 1 + i * 131 + h);
        buf.set(rows, h * this.capacity * headDim);
      }
    });
    this.n = p;
  }
  async step(ids: readonly number[]): Promise<StepResult> {
    if (this.n + ids.length > this.capacity) throw new Error(`cache full: ${this.n} + ${ids.length} > ${this.capacity}`);
    const feeds: Record<string, Tensor> = { ...tokenFeeds(this.ort, ids, this.n) };
    const fetches: Record<string, Tensor | null> = { logits: null };
    for (const p of this.shape.pairs) {
      feeds[p.past] = this.buffers[p.past]!;
      fetches[p.present] = this.buffers[p.past]!;
    }
    const t0 = performance.now();
    const out = await this.session.run(feeds, fetches);
    const ms = performance.now() - t0;
    this.n += ids.length;
    return { ms, last: lastRow(out.logits!) };
  }
  async release(): Promise<void> {
    await this.session.release();
  }
}

export const maxAbsDiff = (a: Float32Array, b: Float32Array): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

export const median = (xs: readonly number[]): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
