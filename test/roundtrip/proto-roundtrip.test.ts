/** Decode → encode of every .onnx under ../shared/models is byte-identical, and weights are views. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeModelProto } from '../../src/graph/serde/decode.js';
import { concatChunks, encodeMessage } from '../../src/graph/serde/encode.js';
import { onnxFiles, SHARED_MODELS } from '../support/paths.js';


describe('protobuf round trip', () => {
  const files = onnxFiles(SHARED_MODELS);
  it('finds the shared fixtures', () => expect(files.length).toBeGreaterThanOrEqual(10));
  for (const file of files) {
    it(`re-encodes ${file.slice(SHARED_MODELS.length + 1)} byte for byte`, () => {
      const bytes = new Uint8Array(readFileSync(file));
      const model = decodeModelProto(bytes, { file });
      const out = concatChunks(encodeMessage(model, 'ModelProto'));
      expect(out.length).toBe(bytes.length);
      expect(Buffer.compare(out, bytes)).toBe(0);
      // raw_data stays a view of the input buffer.
      const t = model.graph!.initializer?.find((i) => i.raw_data instanceof Uint8Array && i.raw_data.byteLength > 0);
      if (t) expect((t.raw_data as Uint8Array).buffer).toBe(bytes.buffer);
    });
  }
});
