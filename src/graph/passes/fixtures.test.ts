/**
 * The passes on every shared fixture. Two real exports are not topologically sorted in the file (ORT sorts on
 * load): ORT's gpt2_past.onnx test model (its Split nodes and 48 duplicate Constants are appended at the end) and
 * the GenAI fp16 MHA export (attention-mask nodes out of order). For those, validate reports `unsorted` errors only,
 * and toposort makes them valid. DCE removes exactly 48 Constants of gpt2_past.onnx: one of each pair of Constants
 * that define the same name, the one no reader binds to (the loader binds every use of a name to one definition);
 * nothing from any other fixture.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModelFile } from '../io/fs.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import { SHARED_MODELS } from '../../../test/support/paths.js';
import { eliminateDeadCode } from './dce.js';
import { toposort } from './toposort.js';
import { validate } from './validate.js';

function onnxFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) return onnxFiles(p);
    return e.endsWith('.onnx') ? [p] : [];
  });
}

const UNSORTED = new Set(['ort-testdata-gpt2-unfused/gpt2_past.onnx', 'tiny-random-llama-fp16-mha/model.onnx']);
const DCE_REMOVES: Record<string, number> = { 'ort-testdata-gpt2-unfused/gpt2_past.onnx': 48 };

// NOTE: structure only: the Qwen3.5 fixture ships without its weights file.
const load = (file: string): Model => loadModelFile(file, { allowMissingExternalData: true });
const order = (m: Model): Node[][] => [...m.allGraphs()].map((g) => [...g.nodes]);

describe('passes on the shared fixtures', () => {
  const files = onnxFiles(SHARED_MODELS);
  it('finds the fixtures, subgraphs included', () => {
    expect(files.length).toBeGreaterThanOrEqual(10);
    const qwen = load(files.find((f) => f.includes('decoder_model_merged_q4'))!);
    expect([...qwen.allGraphs()].length).toBeGreaterThan(1);
  });

  for (const file of files) {
    const rel = file.slice(SHARED_MODELS.length + 1);
    it(`${rel}: validates with zero errors (after toposort where the file is unsorted)`, () => {
      const m = load(file);
      const errors = validate(m).filter((i) => i.severity === 'error');
      if (UNSORTED.has(rel)) {
        expect(errors.length).toBeGreaterThan(0);
        expect(new Set(errors.map((i) => i.kind))).toEqual(new Set(['unsorted']));
        expect(toposort.run(m).modified).toBe(true);
        expect(validate(m).filter((i) => i.severity === 'error')).toEqual([]);
      } else {
        expect(errors).toEqual([]);
        const before = order(m);
        expect(toposort.run(m)).toEqual({ modified: false, count: 0 });
        expect(order(m)).toEqual(before);
      }
    });

    it(`${rel}: DCE removes ${DCE_REMOVES[rel] ?? 'nothing'}`, () => {
      const m = load(file);
      const before = new Set(m.graph.nodes);
      const counts = eliminateDeadCode(m);
      expect(counts).toEqual({ nodes: DCE_REMOVES[rel] ?? 0, initializers: 0, functions: 0 });
      if (counts.nodes === 0) return;
      const kept = new Set(m.graph.nodes);
      const removed = [...before].filter((n) => !kept.has(n));
      // The removed nodes are duplicate Constants: each name they defined is still defined by a kept Constant.
      expect(new Set(removed.map((n) => n.opType))).toEqual(new Set(['Constant']));
      const keptNames = new Set(m.graph.nodes.flatMap((n) => n.outputs.map((o) => o?.name)));
      for (const n of removed) expect(keptNames.has(n.output().name)).toBe(true);
      expect(validate(m).filter((i) => i.kind === 'duplicate-name')).toEqual([]);
    });
  }
});
