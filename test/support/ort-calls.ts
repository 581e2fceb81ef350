/** Runs a decoder graph on ONNX Runtime (CPU) the way a generation loop does: the tokens in calls of given sizes. */
import * as ort from 'onnxruntime-node';
import { OrtDecoder, type OrtModule } from '../../src/runtime/ort/decoder.js';

/** Logits of every position of `ids` (concatenated), fed in calls of `sizes` tokens, each continuing the cache. */
export async function logitsInCalls(model: string | Uint8Array, ids: readonly number[], sizes: readonly number[]): Promise<Float32Array> {
  const d = await OrtDecoder.create(ort as unknown as OrtModule, model);
  try {
    const parts: Float32Array[] = [];
    let at = 0;
    for (const n of sizes) {
      parts.push((await d.step(ids.slice(at, at + n))).logits);
      at += n;
    }
    const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
    parts.reduce((o, p) => (out.set(p, o), o + p.length), 0);
    return out;
  } finally {
    await d.release();
  }
}
