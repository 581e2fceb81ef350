/**
 * @file Lift rule for com.microsoft GroupQueryAttention (onnxruntime-genai builder, onnx-community exports).
 *
 * Cases:
 * - packed QKV: key/value absent, query is [B, S, (H + 2·Hkv)·Dh] from one projection (q/k/v get column ranges);
 * - separate q/k/v, each from its own projection, possibly through q/k norms, RotaryEmbedding nodes and reshapes;
 * - rope inside the op (`do_rotary=1`, constant cos_cache/sin_cache inputs), in RotaryEmbedding nodes, or none;
 * - MatMul, Gemm or MatMulNBits projections.
 * Past is inputs 3/4 and present outputs 1/2 ([B, Hkv, T, Dh]) when they are graph inputs/outputs.
 */
import { attrFloat, attrInt } from '../../../graph/ir/attribute.js';
import type { Node } from '../../../graph/ir/node.js';
import type { LiftResult, LiftRule, Projection, RopeInfo } from '../block.js';
import { constValue, isConstant } from '../const.js';
import { quirkFields } from '../quirks.js';
import {
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
  traceBack,
  traceNotes,
  valueWidth,
  type RopeResult,
  type Trace,
} from './fused-common.js';

export const genaiGqaRule: LiftRule = {
  name: 'genai-gqa',
  anchors: (node) => isOp(node, 'GroupQueryAttention', MS),
  lift: (node) => safeLift(() => liftGqa(node)),
};

function liftGqa(node: Node): LiftResult {
  const numHeads = attrInt(node, 'num_heads', 0);
  const numKvHeads = attrInt(node, 'kv_num_heads', 0);
  if (numHeads <= 0 || numKvHeads <= 0 || numHeads % numKvHeads !== 0) {
    return fail(`num_heads=${numHeads} and kv_num_heads=${numKvHeads}: expected positive head counts with num_heads a multiple of kv_num_heads`);
  }
  const [query, key, value] = [node.input(0), node.input(1), node.input(2)];
  if (!query) return fail('the query input (0) is absent');
  if (!key !== !value) return fail('only one of key/value is given; expected both (separate q/k/v) or neither (packed QKV)');
  const packed = !key;

  const qWidth = valueWidth(query);
  const fromWidth = qWidth === undefined ? undefined : qWidth / (packed ? numHeads + 2 * numKvHeads : numHeads);
  const fromCache = lastDim(node.input(3)) ?? lastDim(node.outputs[1]);
  const headDim = fromWidth ?? fromCache;
  if (headDim === undefined || !Number.isInteger(headDim) || headDim <= 0) {
    return fail(`cannot tell the head size: the query width is unknown or not a multiple of ${packed ? 'H + 2·Hkv' : 'H'}, and past/present have no static head dim`);
  }
  if (fromWidth !== undefined && fromCache !== undefined && fromWidth !== fromCache) {
    return fail(`the query width gives head size ${fromWidth} but the KV cache has head size ${fromCache}`);
  }

  const traces = { q: traceBack(query), k: traceBack(key), v: traceBack(value) };
  const rope = gqaRope(node, traces.q, traces.k, headDim);
  if (!rope.ok) return rope;

  const [q, k, v] = packed ? packedProjections(traces.q, numHeads, numKvHeads, headDim) : [ownProjection(traces.q), ownProjection(traces.k), ownProjection(traces.v)];
  const output = node.output(0);
  const window = attrInt(node, 'local_window_size', -1);
  const softcap = attrFloat(node, 'softcap', 0);
  const quirks = quirkFields({ window: window >= 0 ? window : undefined, softcap: softcap > 0 ? softcap : undefined });
  return {
    ok: true,
    block: {
      form: 'gqa',
      numHeads,
      numKvHeads,
      headDim,
      scale: scaleOf(node, headDim),
      qkvPacking: packed ? 'packed' : 'separate',
      q,
      k,
      v,
      o: outputProjection(output),
      rope: rope.rope,
      kvLayout: 'bnsh',
      past: kvPair(node, node.input(3), node.input(4), 'inputs'),
      present: kvPair(node, node.outputs[1] ?? null, node.outputs[2] ?? null, 'outputs'),
      hidden: (q ?? k ?? v)?.node.input(0) ?? null,
      output,
      anchor: node,
      nodes: ownedNodes(node, packed ? [traces.q] : Object.values(traces)),
      notes: [...new Set([...quirks.notes, ...gqaNotes(node, rope.rope), ...(packed ? [] : traceNotes(traces)), ...gateNotes(output)])],
      ...quirks.fields,
    },
  };
}

/** Rope from the op's own cos/sin caches (`do_rotary=1`) or from RotaryEmbedding nodes on q and k. */
function gqaRope(node: Node, q: Trace, k: Trace, headDim: number): RopeResult {
  if (attrInt(node, 'do_rotary', 0) !== 1) return qkRope(q, k, headDim);
  if (q.ropes.length + k.ropes.length > 0) return fail('do_rotary=1 and RotaryEmbedding nodes on q/k: rope would be applied twice');
  const [cos, sin] = [node.input(7), node.input(8)];
  if (!cos || !sin) return fail('do_rotary=1 but the cos_cache/sin_cache inputs (7, 8) are absent');
  const cosDims = constValue(cos)?.dims;
  if (!cosDims || !isConstant(sin)) {
    const which = cosDims ? sin : cos;
    return fail(`do_rotary=1 but ${which === cos ? 'cos_cache' : 'sin_cache'} '${which.name}' is not a constant; expected a [max_positions, rotary_dim/2] initializer or Constant`);
  }
  const half = cosDims[1];
  if (cosDims.length !== 2 || half === undefined || 2 * half > headDim) {
    return fail(`cos_cache '${cos.name}' has shape [${cosDims.join(', ')}]; expected [max_positions, rotary_dim/2] with rotary_dim ≤ head size ${headDim}`);
  }
  const rope: RopeInfo = { interleaved: attrInt(node, 'rotary_interleaved', 0) === 1, rotaryDim: 2 * half, source: { kind: 'cache', cos, sin }, nodes: [] };
  return { ok: true, rope };
}

/** q/k/v as column ranges of the one packed projection: [q: H·Dh | k: Hkv·Dh | v: Hkv·Dh]. */
function packedProjections(t: Trace, h: number, hkv: number, d: number): [Projection | null, Projection | null, Projection | null] {
  const p = ownProjection(t);
  if (!p) return [null, null, null];
  const part = (start: number, end: number): Projection => ({ ...p, columns: { start: start * d, end: end * d } });
  return [part(0, h), part(h, h + hkv), part(h + hkv, h + 2 * hkv)];
}

/** Facts a patch must keep beyond the window and softcap (quirkFields): extra inputs, rope placement. */
function gqaNotes(node: Node, rope: RopeInfo | null): string[] {
  const notes: string[] = [];
  if (!rope) notes.push('no-rope');
  if (attrInt(node, 'smooth_softmax', 0) === 1) notes.push('smooth-softmax');
  if (attrInt(node, 'causal', 1) === 0) notes.push('bidirectional');
  if (attrInt(node, 'sliding_window_cache', 0) === 1) notes.push('sliding-window-cache');
  if (node.input(9)) notes.push('position-ids');
  if (node.input(10)) notes.push('attention-bias');
  if (node.input(11)) notes.push('head-sink');
  if (node.input(12) || node.input(13)) notes.push('quantized-kv-cache');
  if (node.input(14) || node.input(15)) notes.push('qk-norm');
  return notes;
}
