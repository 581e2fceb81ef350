/**
 * @file Chunked prefill: a long prompt goes through the model in calls of at most `chunk` tokens, each feeding
 * the cache the previous call returned, so attention memory grows as O(T·chunk) instead of O(T²). Wraps an ONNX
 * Runtime session's `run` (the one place transformers.js calls the model), so `generate()` continues from the
 * built cache unchanged. The last call's outputs are returned: its logits cover only the last chunk's positions,
 * which is all generation reads.
 */
import type * as OrtNs from 'onnxruntime-common';
import { pastNameFor } from './ort/decoder.js';

type Tensor = OrtNs.Tensor;
type Feeds = Record<string, Tensor>;
type Run = (feeds: Feeds, ...rest: unknown[]) => Promise<Record<string, Tensor>>;

/** Columns [from, to) of a [B, N] tensor. */
function columns(t: Tensor, from: number, to: number): Tensor {
  const [b, n] = t.dims as [number, number];
  const data = t.data as unknown as { subarray(a: number, b: number): ArrayLike<unknown>; constructor: new (n: number) => { set(x: ArrayLike<unknown>, at: number): void } };
  const width = to - from;
  const out = new data.constructor(b * width);
  for (let r = 0; r < b; r++) out.set(data.subarray(r * n + from, r * n + to), r * width);
  const Ctor = t.constructor as new (type: string, data: unknown, dims: number[]) => Tensor;
  return new Ctor(t.type, out, [b, width]);
}

/** Wraps `session.run` so that prompts longer than `chunk` tokens are fed in chunks. Returns the undo. */
export function chunkPrefill(session: { run: Run }, chunk: number): () => void {
  const original = session.run.bind(session);
  const wrapped = async (feeds: Feeds, ...rest: unknown[]) => {
    const ids = feeds.input_ids;
    const s = ids?.dims[1] ?? 0;
    if (!ids || s <= chunk) return original(feeds, ...rest);
    const mask = feeds.attention_mask;
    const past = mask ? (mask.dims[1] as number) - s : 0;
    let current: Feeds = { ...feeds };
    let out: Record<string, Tensor> = {};
    for (let start = 0; start < s; start += chunk) {
      const end = Math.min(s, start + chunk);
      const step: Feeds = { ...current, input_ids: columns(ids, start, end) };
      if (mask) step.attention_mask = columns(mask, 0, past + end);
      if (feeds.position_ids) step.position_ids = columns(feeds.position_ids, start, end);
      out = await original(step, ...rest);
      const next: Feeds = { ...current };
      for (const [name, t] of Object.entries(out)) {
        if (!name.startsWith('present')) continue;
        const pastName = pastNameFor(name);
        // NOTE: an intermediate cache on the GPU is ours to free once the next call has consumed it.
        if (current[pastName] && current[pastName] !== feeds[pastName] && (current[pastName] as { location?: string }).location === 'gpu-buffer') {
          current[pastName]!.dispose();
        }
        next[pastName] = t;
      }
      current = next;
    }
    return out;
  };
  // Marks the session so callers (and tests) can see chunked prefill is on and its size.
  session.run = Object.assign(wrapped, { prefillChunk: chunk });
  return () => {
    session.run = original;
  };
}
