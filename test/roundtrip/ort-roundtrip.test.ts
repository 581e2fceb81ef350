/** After load → save the model still runs in onnxruntime-node with identical outputs. */
import { describe, expect, it } from 'vitest';
import { saveModelToBytes } from '../../src/graph/io/bytes.js';
import { loadModelFile } from '../../src/graph/io/fs.js';
import { ExternalTensor } from '../../src/graph/serde/proto-tensor.js';
import { makeFeeds, maxAbsDiff, runOrt } from '../support/feeds.js';
import { onnxFiles, SHARED_MODELS } from '../support/paths.js';


describe('load → save → run on onnxruntime-node', () => {
  // The Qwen3.5 graph has no weights and cannot run.
  for (const file of onnxFiles(SHARED_MODELS).filter((f) => !f.includes('qwen3.5'))) {
    it(`${file.slice(SHARED_MODELS.length + 1)} gives identical outputs`, async () => {
      const model = loadModelFile(file);
      // Inline every tensor so the saved bytes stand alone (external data embedded).
      const hasExternal = [...model.graph.initializers.values()].some((v) => v.initializer instanceof ExternalTensor);
      const bytes = hasExternal ? saveModelToBytes(model, (t, name) => ({ dims: [...t.dims], data_type: t.dtype, name, raw_data: t.bytes() })) : saveModelToBytes(model);
      const feeds = makeFeeds(model.graph);
      const [a, b] = await Promise.all([runOrt(file, feeds), runOrt(bytes, feeds)]);
      expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
      expect(maxAbsDiff(a, b)).toBe(0);
    });
  }
});
