/**
 * @file GroupQueryAttention's two length inputs, built once per model from `attention_mask` (what the
 * onnxruntime-genai builder emits): seqlens_k = int32(ReduceSum(mask, 1) − 1), total_sequence_length =
 * int32(Shape(mask)[1]). GQA assumes valid tokens are packed at the start of each row (no left padding).
 */
import { DataType } from '../../graph/ir/dtype.js';
import type { Value } from '../../graph/ir/value.js';
import type { GraphBuilder } from '../../graph/build/builder.js';

export interface SequenceInputs {
  seqlensK: Value;
  totalSequenceLength: Value;
}

/** Builds the two inputs at the start of the graph, or explains why it cannot. */
export function buildSequenceInputs(b: GraphBuilder): SequenceInputs | string {
  const mask = b.graph.input('attention_mask');
  if (!mask) return 'the graph has no attention_mask input to derive seqlens_k from';
  const saved = b.before;
  b.before = b.graph.nodes[0];
  try {
    const opset = b.model.opset('') ?? 13;
    // NOTE: ReduceSum takes axes as an input from opset 13, as an attribute before.
    const sum =
      opset >= 13
        ? b.op('ReduceSum', [mask, b.ints('axis1', [1])], { attributes: { keepdims: 0 } })
        : b.op('ReduceSum', [mask], { attributes: { axes: [1], keepdims: 0 } });
    // NOTE: cast before subtracting so int32 and int64 masks both work.
    const sum32 = b.op('Cast', [sum], { attributes: { to: DataType.INT32 } });
    const one = b.initializer('one_i32', DataType.INT32, [], new Uint8Array(new Int32Array([1]).buffer));
    const seqlensK = b.op('Sub', [sum32, one], { outputs: [b.names.fresh('seqlens_k')] })[0]!;
    const shape = b.op('Shape', [mask]);
    const total64 = b.op('Gather', [shape, b.int64s('index1', [], [1])], { attributes: { axis: 0 } });
    const totalSequenceLength = b.op('Cast', [total64], { attributes: { to: DataType.INT32 }, outputs: [b.names.fresh('total_sequence_length')] })[0]!;
    return { seqlensK, totalSequenceLength };
  } finally {
    b.before = saved;
  }
}
