/**
 * @file Lift rule for com.microsoft MultiHeadAttention with separate q/k/v projections, rope in com.microsoft
 * RotaryEmbedding nodes on q and k (onnxruntime-genai builder, ORT transformers optimizer `FusionRotaryAttention`).
 *
 * MHA has no KV-head count: K/V must already have H heads, so numKvHeads = key width / Dh (usually H).
 * Inputs: 0 query, 1 key, 2 value, 3 bias, 4 key_padding_mask, 5 attention_bias, 6 past_key, 7 past_value;
 * outputs: 0 output, 1 present_key, 2 present_value ([B, H, T, Dh]).
 * Not lifted: packed QKV (no key/value inputs), pre-projected 4-D keys (cross-attention), V head size ≠ Dh.
 */
import { attrInt } from '../../../graph/ir/attribute.js';
import type { Node } from '../../../graph/ir/node.js';
import type { LiftResult, LiftRule } from '../block.js';
import {
  causalNote,
  fail,
  gateNotes,
  isOp,
  kvPair,
  lastDim,
  MS,
  outputProjection,
  ownProjection,
  ownedNodes,
  qkRope,
  safeLift,
  scaleOf,
  shapeOf,
  traceBack,
  traceNotes,
  valueWidth,
} from './fused-common.js';

export const ortMhaRotaryRule: LiftRule = {
  name: 'ort-mha-rotary',
  anchors: (node) => isOp(node, 'MultiHeadAttention', MS),
  lift: (node) => safeLift(() => liftMha(node)),
};

function liftMha(node: Node): LiftResult {
  const numHeads = attrInt(node, 'num_heads', 0);
  if (numHeads <= 0) return fail(`num_heads=${numHeads}: expected a positive head count`);
  const [query, key, value] = [node.input(0), node.input(1), node.input(2)];
  if (!query) return fail('the query input (0) is absent');
  if (!key || !value) return fail('packed QKV MultiHeadAttention (key/value inputs absent) is not supported; expected separate query, key and value');
  if (shapeOf(key)?.length === 4 || shapeOf(key)?.length === 5) {
    return fail(`key '${key.name}' is ${shapeOf(key)?.length}-D (cross-attention or packed KV); expected [B, S, H·Dh] from a projection`);
  }

  const qWidth = valueWidth(query);
  const headDim = qWidth === undefined ? lastDim(node.input(6)) : qWidth / numHeads;
  if (headDim === undefined || !Number.isInteger(headDim) || headDim <= 0) {
    return fail(`cannot tell the head size: query width ${qWidth ?? 'unknown'} is not a multiple of num_heads=${numHeads} and past_key has no static head dim`);
  }
  const cacheDim = lastDim(node.input(6));
  if (cacheDim !== undefined && cacheDim !== headDim) return fail(`the query width gives head size ${headDim} but past_key has head size ${cacheDim}`);
  const keyWidth = valueWidth(key);
  const numKvHeads = keyWidth === undefined ? numHeads : keyWidth / headDim;
  if (!Number.isInteger(numKvHeads) || numKvHeads <= 0 || numHeads % numKvHeads !== 0) {
    return fail(`key width ${keyWidth} is not a whole number of ${headDim}-wide heads dividing num_heads=${numHeads}`);
  }
  const valueWidthNow = valueWidth(value);
  if (valueWidthNow !== undefined && keyWidth !== undefined && valueWidthNow !== keyWidth) {
    return fail(`value width ${valueWidthNow} differs from key width ${keyWidth}; a V head size other than Dh is not supported`);
  }

  const traces = { q: traceBack(query), k: traceBack(key), v: traceBack(value) };
  const rope = qkRope(traces.q, traces.k, headDim);
  if (!rope.ok) return rope;
  const [q, k, v] = [ownProjection(traces.q), ownProjection(traces.k), ownProjection(traces.v)];
  const output = node.output(0);
  const notes = [
    ...(rope.rope ? [] : ['no-rope']),
    ...(node.input(3) ? ['qkv-bias-on-op'] : []),
    ...(node.input(4) ? ['key-padding-mask'] : []),
    ...(node.input(5) ? ['attention-bias'] : []),
    ...causalNote(attrInt(node, 'unidirectional', 0) === 1, !!(node.input(4) || node.input(5))),
    ...traceNotes(traces),
    ...gateNotes(output),
  ];
  return {
    ok: true,
    block: {
      form: 'mha',
      numHeads,
      numKvHeads,
      headDim,
      scale: scaleOf(node, headDim),
      qkvPacking: 'separate',
      q,
      k,
      v,
      o: outputProjection(output),
      rope: rope.rope,
      kvLayout: 'bnsh',
      past: kvPair(node, node.input(6), node.input(7), 'inputs'),
      present: kvPair(node, node.outputs[1] ?? null, node.outputs[2] ?? null, 'outputs'),
      hidden: (q ?? k ?? v)?.node.input(0) ?? null,
      output,
      anchor: node,
      nodes: ownedNodes(node, Object.values(traces)),
      notes,
    },
  };
}
