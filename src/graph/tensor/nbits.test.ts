/** MatMulNBits dequantization agrees with ONNX Runtime's own kernel. */
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../build/builder.js';
import { DataType } from '../ir/dtype.js';
import { Graph } from '../ir/graph.js';
import { Model } from '../ir/model.js';
import { tensorType } from '../ir/types.js';
import { saveModelToBytes } from '../io/bytes.js';
import { dequantizeMatMulNBits } from './nbits.js';
import { MemoryTensor, viewBytes } from './tensor.js';

function lcg(seed: number): () => number {
  let x = seed;
  return () => ((x = (x * 1103515245 + 12345) >>> 0) / 2 ** 32);
}

describe('dequantizeMatMulNBits', () => {
  for (const zp of ['none', 'uint8'] as const) {
    it(`matches ORT's MatMulNBits (K=96, N=8, 4 bits, block 32, zero points: ${zp})`, async () => {
      const k = 96, n = 8, bits = 4, blockSize = 32, blocks = 3;
      const rnd = lcg(7);
      const q = Uint8Array.from({ length: n * blocks * 16 }, () => Math.floor(rnd() * 256));
      const s = Float32Array.from({ length: n * blocks }, () => 0.01 + rnd() * 0.1);
      const z = Uint8Array.from({ length: n * Math.ceil(blocks / 2) }, () => Math.floor(rnd() * 256));
      const graph = new Graph('nbits');
      const model = new Model(graph, { irVersion: 10, opsetImports: { '': 21, 'com.microsoft': 1 } });
      const a = graph.addInput('a', tensorType(DataType.FLOAT, [k, k]));
      const b = new GraphBuilder(model);
      const inputs = [
        a,
        b.initializer('B', DataType.UINT8, [n, blocks, 16], q),
        b.floats('scales', [n * blocks], s),
        zp === 'uint8' ? b.initializer('zp', DataType.UINT8, [z.length], z) : null,
      ];
      const y = b.op('MatMulNBits', inputs, { domain: 'com.microsoft', attributes: { K: k, N: n, bits, block_size: blockSize } });
      graph.outputs.push(y);
      y.type = tensorType(DataType.FLOAT, [k, n]);
      // A = identity, so the output is the dequantized weight itself.
      const eye = new Float32Array(k * k);
      for (let i = 0; i < k; i++) eye[i * k + i] = 1;
      const session = await ort.InferenceSession.create(saveModelToBytes(model));
      const out = (await session.run({ a: new ort.Tensor('float32', eye, [k, k]) }))[y.name]!.data as Float32Array;
      const w = dequantizeMatMulNBits(
        new MemoryTensor(DataType.UINT8, [n, blocks, 16], q),
        new MemoryTensor(DataType.FLOAT, [n * blocks], viewBytes(s)),
        zp === 'uint8' ? new MemoryTensor(DataType.UINT8, [z.length], z) : null,
        { k, n, bits, blockSize },
      );
      let worst = 0;
      for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(w[i]! - out[i]!));
      expect(worst).toBeLessThan(1e-6);
      await session.release();
    });
  }
});
