/**
 * @file Lift rule for the legacy com.microsoft Attention op (ORT transformers optimizer, GPT-2 style).
 *
 * The op holds its own packed QKV weight (input 1, [d_model, q + k + v]) and bias (input 2), so the q/k/v
 * projections all point at the Attention node with column ranges; their shared `output` is a placeholder value
 * outside the graph (note 'qkv-inside-op'), since no graph value holds the packed q | k | v. The cache is the legacy stacked layout:
 * past (input 4) and present (output 1) are [2, B, H, T, Dh] with K at index 0 and V at index 1.
 * Other inputs: 3 mask_index (padding mask), 5 attention_bias. No rope (positions are learned embeddings);
 * `do_rotary=1` is refused because the op then computes rope with no cos/sin a patch could reuse.
 */
import { attrInt, attrInts } from '../../../graph/ir/attribute.js';
import type { Node } from '../../../graph/ir/node.js';
import { tensorType, type TensorType } from '../../../graph/ir/types.js';
import { Value } from '../../../graph/ir/value.js';
import type { KvNames, LiftResult, LiftRule, Projection } from '../block.js';
import { constValue } from '../const.js';
import { causalNote, fail, isOp, lastDim, MS, outputProjection, ownedNodes, safeLift, scaleOf } from './fused-common.js';

export const ortAttentionGpt2Rule: LiftRule = {
  name: 'ort-attention-gpt2',
  anchors: (node) => isOp(node, 'Attention', MS),
  lift: (node) => safeLift(() => liftOrtAttention(node)),
};

function liftOrtAttention(node: Node): LiftResult {
  const numHeads = attrInt(node, 'num_heads', 0);
  if (numHeads <= 0) return fail(`num_heads=${numHeads}: expected a positive head count`);
  const [hidden, weight, bias] = [node.input(0), node.input(1), node.input(2)];
  if (!hidden || !weight) return fail('the input (0) or weights (1) input is absent');
  const wDims = constValue(weight)?.dims;
  if (!wDims || wDims.length !== 2) {
    return fail(`weights '${weight.name}' is not a 2-D constant; expected the packed QKV initializer [d_model, q + k + v]`);
  }
  if (attrInt(node, 'do_rotary', 0) === 1) return fail('do_rotary=1 (rope computed inside Attention without cos/sin inputs) is not supported');

  const width = wDims[1] ?? 0;
  const sizes = attrInts(node, 'qkv_hidden_sizes') ?? [width / 3, width / 3, width / 3];
  const [qSize = 0, kSize = 0, vSize = 0] = sizes;
  if (sizes.length !== 3 || qSize + kSize + vSize !== width || kSize !== vSize) {
    return fail(`q/k/v sizes [${sizes.join(', ')}] do not split the weight width ${width} into q + k + v with k = v`);
  }
  const headDim = qSize / numHeads;
  const numKvHeads = kSize / headDim;
  if (!Number.isInteger(headDim) || !Number.isInteger(numKvHeads) || numKvHeads <= 0 || numHeads % numKvHeads !== 0) {
    return fail(`q size ${qSize} and k size ${kSize} are not whole numbers of heads for num_heads=${numHeads}`);
  }

  const past = node.input(4);
  const present = node.outputs[1] ?? null;
  const cacheDim = lastDim(past) ?? lastDim(present);
  if (cacheDim !== undefined && cacheDim !== headDim) return fail(`the weights give head size ${headDim} but the stacked past has head size ${cacheDim}`);
  const graph = node.graph;
  const stacked = (v: typeof past, list: readonly unknown[] | undefined): KvNames | null => (v && list?.includes(v) ? { key: v, value: v } : null);

  // NOTE: the op projects internally, so no graph value holds q | k | v: `output` is null.
  const part = (start: number, end: number): Projection => ({ node, output: null, weight, bias, columns: { start, end } });
  const output = node.output(0);
  const notes = [
    'no-rope',
    'qkv-inside-op',
    ...(node.input(3) ? ['mask-index'] : []),
    ...(node.input(5) ? ['attention-bias'] : []),
    ...causalNote(attrInt(node, 'unidirectional', 0) === 1, !!node.input(5)),
    ...(attrInt(node, 'past_present_share_buffer', 0) === 1 ? ['shared-kv-buffer'] : []),
  ];
  return {
    ok: true,
    block: {
      form: 'ort-attention',
      numHeads,
      numKvHeads,
      headDim,
      scale: scaleOf(node, headDim),
      qkvPacking: 'packed',
      q: part(0, qSize),
      k: part(qSize, qSize + kSize),
      v: part(qSize + kSize, width),
      o: outputProjection(output),
      rope: null,
      kvLayout: 'stacked',
      past: stacked(past, graph?.inputs),
      present: stacked(present, graph?.outputs),
      hidden,
      output,
      anchor: node,
      nodes: ownedNodes(node, []),
      notes,
    },
  };
}
