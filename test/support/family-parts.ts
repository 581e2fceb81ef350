/**
 * What both export forms of the test families share (`family-optimum.ts`, `family-genai.ts`): the inputs, the
 * projections (separate, or Phi-3's packed qkv_proj), the SwiGLU MLP and the LM head.
 * Inputs/outputs are transformers.js's: input_ids, attention_mask, [position_ids], past_key_values.N.key/value →
 * logits, present.N.key/value ([B, Hkv, T, Dh]).
 */
import { GraphBuilder } from '../../src/graph/build/builder.js';
import { DataType } from '../../src/graph/ir/dtype.js';
import { Graph } from '../../src/graph/ir/graph.js';
import { Model } from '../../src/graph/ir/model.js';
import { tensorType } from '../../src/graph/ir/types.js';
import type { Value } from '../../src/graph/ir/value.js';
import type { FamilySpec, FamilyWeights, LayerWeights } from './families.js';

/** Shared start: the model, its builder, and the inputs every form has. */
export function start(opsets: Record<string, number>) {
  const graph = new Graph('family');
  const model = new Model(graph, { opsetImports: opsets, irVersion: 8 });
  const b = new GraphBuilder(model, graph, 'family');
  const ids = graph.addInput('input_ids', tensorType(DataType.INT64, ['batch_size', 'sequence_length']));
  const mask = graph.addInput('attention_mask', tensorType(DataType.INT64, ['batch_size', 'past_sequence_length + sequence_length']));
  return { graph, model, b, ids, mask };
}

export function pastInputs(graph: Graph, s: FamilySpec, l: number): [Value, Value] {
  const t = tensorType(DataType.FLOAT, ['batch_size', s.kvHeads, 'past_sequence_length', s.headDim]);
  return [graph.addInput(`past_key_values.${l}.key`, t), graph.addInput(`past_key_values.${l}.value`, t)];
}

/** h + MLP(RMSNorm(h)) with SwiGLU; `norm` is the form's RMSNorm. */
export function mlp(b: GraphBuilder, h: Value, l: LayerWeights, s: FamilySpec, norm: (x: Value, w: Float32Array) => Value): Value {
  const x = norm(h, l.postNorm);
  const gate = b.op('MatMul', [x, b.floats('gate', [s.hidden, s.intermediate], l.gate)]);
  const up = b.op('MatMul', [x, b.floats('up', [s.hidden, s.intermediate], l.up)]);
  const act = b.op('Mul', [b.op('Mul', [gate, b.op('Sigmoid', [gate])]), up]);
  return b.op('Add', [h, b.op('MatMul', [act, b.floats('down', [s.intermediate, s.hidden], l.down)])]);
}

/** x·W (+ bias). */
export function project(b: GraphBuilder, x: Value, w: Float32Array, inDim: number, outDim: number, bias: Float32Array | undefined, name: string): Value {
  const y = b.op('MatMul', [x, b.floats(`${name}.weight`, [inDim, outDim], w)]);
  return bias ? b.op('Add', [y, b.floats(`${name}.bias`, [outDim], bias)]) : y;
}

/** Phi-3's qkv_proj: one MatMul whose columns are [q: H·Dh | k: Hkv·Dh | v: Hkv·Dh]. */
export function packedProject(b: GraphBuilder, x: Value, l: LayerWeights, s: FamilySpec, name: string): Value {
  const { hidden: D, heads: H, kvHeads: Hkv, headDim: Dh } = s;
  const widths = [H * Dh, Hkv * Dh, Hkv * Dh];
  const total = widths[0]! + widths[1]! + widths[2]!;
  const w = new Float32Array(D * total);
  [l.q, l.k, l.v].forEach((part, p) => {
    const at = widths.slice(0, p).reduce((a, c) => a + c, 0);
    for (let r = 0; r < D; r++) for (let c = 0; c < widths[p]!; c++) w[r * total + at + c] = part[r * widths[p]! + c]!;
  });
  return b.op('MatMul', [x, b.floats(`${name}.weight`, [D, total], w)]);
}

export function finish(b: GraphBuilder, graph: Graph, h: Value, w: FamilyWeights, s: FamilySpec, norm: (x: Value, w: Float32Array) => Value, presents: Value[]): void {
  const logits = b.op('MatMul', [norm(h, w.norm), b.floats('lm_head', [s.hidden, s.vocab], w.lmHead)], { outputs: ['logits'] })[0]!;
  graph.outputs.push(logits, ...presents);
}
