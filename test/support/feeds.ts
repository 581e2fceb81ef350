/**
 * Deterministic inputs for a decoder graph, from its declared input types: token ids, an all-ones mask,
 * positions, and zero-length (or zero) caches. Symbolic dims are resolved by name: batch → B, past → P,
 * `a + b` / total → P + S, anything else → S; the second-to-last axis of a cache input is its past length.
 */
import * as ort from 'onnxruntime-node';
import { DataType } from '../../src/graph/ir/dtype.js';
import type { Graph } from '../../src/graph/ir/graph.js';
import { halfToFloat } from '../../src/graph/tensor/decode.js';

export interface FeedOptions {
  batch?: number;
  seq?: number;
  past?: number;
  /** Token ids to use instead of the default ramp. */
  ids?: readonly number[];
}

const ORT_TYPE: Record<number, ort.Tensor.Type> = {
  [DataType.FLOAT]: 'float32',
  [DataType.FLOAT16]: 'float16',
  [DataType.INT64]: 'int64',
  [DataType.INT32]: 'int32',
  [DataType.BOOL]: 'bool',
};

const isCache = (name: string) => /past|cache/.test(name) && !/seqlen/.test(name);

function resolveDims(name: string, shape: readonly (number | string | null)[], o: Required<Omit<FeedOptions, 'ids'>>): number[] {
  return shape.map((d, i) => {
    if (typeof d === 'number') return d;
    if (isCache(name) && i === shape.length - 2) return o.past;
    const s = (d ?? '').toLowerCase();
    if (s.includes('batch')) return o.batch;
    if (s.includes('+') || s.includes('total')) return o.past + o.seq;
    if (s.includes('past')) return o.past;
    return o.seq;
  });
}

function fill(name: string, type: ort.Tensor.Type, dims: number[], o: Required<Omit<FeedOptions, 'ids'>>, ids?: readonly number[]): ort.Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  const ints = (f: (i: number) => number): ort.Tensor => {
    if (type === 'int64') return new ort.Tensor(type, BigInt64Array.from({ length: n }, (_, i) => BigInt(f(i))), dims);
    if (type === 'int32') return new ort.Tensor(type, Int32Array.from({ length: n }, (_, i) => f(i)), dims);
    return new ort.Tensor('float32', Float32Array.from({ length: n }, (_, i) => f(i)), dims);
  };
  const last = dims.at(-1) ?? 1;
  if (name === 'input_ids') return ints((i) => ids?.[i % last] ?? ((i * 7 + 3) % 9) + 1);
  if (name === 'attention_mask') return type === 'float32' ? ints(() => 0) : ints(() => 1);
  if (name === 'position_ids') return ints((i) => o.past + (i % last));
  if (name === 'nonpad_kv_seqlen') return ints(() => o.past + o.seq);
  if (type === 'float16') return new ort.Tensor(type, new Uint16Array(n), dims);
  if (type === 'float32') return new ort.Tensor(type, new Float32Array(n), dims);
  return ints(() => 0);
}

/** Feeds for every input of `graph`. */
export function makeFeeds(graph: Graph, options: FeedOptions = {}): Record<string, ort.Tensor> {
  const o = { batch: options.batch ?? 1, seq: options.seq ?? options.ids?.length ?? 5, past: options.past ?? 0 };
  const feeds: Record<string, ort.Tensor> = {};
  for (const v of graph.inputs) {
    if (v.isInitializer) continue;
    if (v.type?.kind !== 'tensor' || !v.type.shape) throw new Error(`input ${v.name} has no tensor shape`);
    const type = ORT_TYPE[v.type.elemType];
    if (!type) throw new Error(`input ${v.name}: unsupported element type ${v.type.elemType}`);
    feeds[v.name] = fill(v.name, type, resolveDims(v.name, v.type.shape, o), o, options.ids);
  }
  return feeds;
}

/** Runs a model (path or bytes) on ORT CPU and returns every output as float32 values. */
export async function runOrt(model: string | Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Record<string, { dims: readonly number[]; data: Float32Array }>> {
  const session = typeof model === 'string' ? await ort.InferenceSession.create(model) : await ort.InferenceSession.create(model);
  try {
    const out = await session.run(feeds);
    const result: Record<string, { dims: readonly number[]; data: Float32Array }> = {};
    for (const [k, t] of Object.entries(out)) {
      const d = t.data;
      const data =
        d instanceof Float32Array ? d : d instanceof Uint16Array ? Float32Array.from(d, halfToFloat) : Float32Array.from(d as ArrayLike<number | bigint>, Number);
      result[k] = { dims: t.dims, data };
    }
    return result;
  } finally {
    await session.release();
  }
}


/** Largest absolute difference between two runs' outputs of the same names. */
export function maxAbsDiff(a: Record<string, { data: Float32Array }>, b: Record<string, { data: Float32Array }>, names = Object.keys(a)): number {
  let worst = 0;
  for (const k of names) {
    const x = a[k]!.data;
    const y = b[k]!.data;
    if (x.length !== y.length) return Infinity;
    for (let i = 0; i < x.length; i++) {
      const d = Math.abs(x[i]! - y[i]!);
      if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
    }
  }
  return worst;
}
