/**
 * @file Lift rule for the ONNX standard Attention op (opset 23/24), with rope in standard RotaryEmbedding nodes.
 *
 * Inputs: 0 Q, 1 K, 2 V, 3 attn_mask, 4 past_key, 5 past_value, 6 nonpad_kv_seqlen (24); outputs: 0 Y,
 * 1 present_key, 2 present_value. 3-D inputs are [B, S, heads·Dh] and need q_num_heads / kv_num_heads;
 * 4-D inputs are [B, heads, S, Dh].
 * Two cache forms: the op's own past/present (4-D, 'bnsh'), or a static cache (kvLayout 'static'): K and V are
 * the outputs of TensorScatter(cache, new, write_indices) whose cache input is a graph input (past) and whose
 * output is a graph output (present); the op then reads the whole cache and the mask picks the valid slots.
 */
import { attrFloat, attrInt } from '../../../graph/ir/attribute.js';
import type { Node } from '../../../graph/ir/node.js';
import type { Value } from '../../../graph/ir/value.js';
import type { KvNames, LiftResult, LiftRule } from '../block.js';
import { maskWindow } from './mask-window.js';
import { quirkFields } from '../quirks.js';
import {
  causalNote,
  fail,
  gateNotes,
  isOp,
  kvPair,
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

export const onnx24AttentionRule: LiftRule = {
  name: 'onnx24-attention',
  anchors: (node) => isOp(node, 'Attention'),
  lift: (node) => safeLift(() => liftOnnxAttention(node)),
};

function liftOnnxAttention(node: Node): LiftResult {
  const [query, key, value] = [node.input(0), node.input(1), node.input(2)];
  if (!query || !key || !value) return fail('one of the Q, K, V inputs (0-2) is absent');
  const heads = headShape(node, query, key);
  if (typeof heads === 'string') return fail(heads);
  const { numHeads, numKvHeads, headDim } = heads;

  const traces = { q: traceBack(query), k: traceBack(key), v: traceBack(value) };
  const rope = qkRope(traces.q, traces.k, headDim);
  if (!rope.ok) return rope;

  const [kScatter, vScatter] = [traces.k.scatter, traces.v.scatter];
  if (!kScatter !== !vScatter) return fail('only one of K/V is written by a TensorScatter; expected both (static cache) or neither');
  const cache = kScatter && vScatter ? staticCache(node, kScatter, vScatter) : ownCache(node);
  if (typeof cache === 'string') return fail(cache);

  const [q, k, v] = [ownProjection(traces.q), ownProjection(traces.k), ownProjection(traces.v)];
  const output = node.output(0);
  const mask = node.input(3);
  const win = maskWindow(mask);
  if (!win.ok) return fail(win.reason);
  const softcap = attrFloat(node, 'softcap', 0);
  const quirks = quirkFields({ window: win.window, softcap: softcap > 0 ? softcap : undefined });
  const notes = [
    ...(rope.rope ? [] : ['no-rope']),
    ...(kScatter ? ['static-cache', `cache-layout=${shapeOf(kScatter.input(0))?.length === 3 ? 'bsd' : 'bnsh'}`] : []),
    ...(mask ? ['attention-bias'] : []),
    ...quirks.notes,
    ...causalNote(attrInt(node, 'is_causal', 0) === 1, !!mask),
    ...(node.input(6) ? ['nonpad-kv-seqlen'] : []),
    ...traceNotes(traces),
    ...gateNotes(output),
  ];
  return {
    ok: true,
    block: {
      form: 'onnx-attention',
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
      kvLayout: kScatter ? 'static' : 'bnsh',
      ...cache,
      hidden: (q ?? k ?? v)?.node.input(0) ?? null,
      output,
      anchor: node,
      nodes: ownedNodes(node, Object.values(traces), cache.present ? [cache.present.key, cache.present.value] : []),
      notes,
      ...quirks.fields,
    },
  };
}

/** H, Hkv and Dh from the attributes (3-D inputs) or the 4-D [B, heads, S, Dh] shapes; a message when unknown. */
function headShape(node: Node, query: Value, key: Value): { numHeads: number; numKvHeads: number; headDim: number } | string {
  const [qShape, kShape] = [shapeOf(query), shapeOf(key)];
  const dim = (s: typeof qShape, i: number) => (typeof s?.[i] === 'number' ? (s[i] as number) : undefined);
  const fourD = qShape?.length === 4;
  const numHeads = attrInt(node, 'q_num_heads') ?? (fourD ? dim(qShape, 1) : undefined);
  const numKvHeads = attrInt(node, 'kv_num_heads') ?? (kShape?.length === 4 ? dim(kShape, 1) : undefined);
  if (!numHeads || !numKvHeads) return 'cannot tell the head counts: 3-D (or untyped) Q/K/V need the q_num_heads and kv_num_heads attributes';
  if (numHeads % numKvHeads !== 0) return `q_num_heads=${numHeads} is not a multiple of kv_num_heads=${numKvHeads}`;
  const qWidth = valueWidth(query);
  const headDim = fourD ? dim(qShape, 3) : qWidth === undefined ? undefined : qWidth / numHeads;
  if (headDim === undefined || !Number.isInteger(headDim) || headDim <= 0) {
    return `cannot tell the head size: Q width ${qWidth ?? 'unknown'} is not a multiple of q_num_heads=${numHeads}`;
  }
  const kWidth = kShape?.length === 4 ? dim(kShape, 3) : valueWidth(key);
  const kHeadDim = kWidth === undefined ? headDim : kShape?.length === 4 ? kWidth : kWidth / numKvHeads;
  if (kHeadDim !== headDim) return `K gives head size ${kHeadDim} but Q gives ${headDim}`;
  return { numHeads, numKvHeads, headDim };
}

/** Static cache: TensorScatter(cache, new, write_indices) → K/V, cache a graph input, result a graph output. */
function staticCache(node: Node, kScatter: Node, vScatter: Node): { past: KvNames | null; present: KvNames | null } | string {
  const past = kvPair(node, kScatter.input(0), vScatter.input(0), 'inputs');
  const present = kvPair(node, kScatter.outputs[0] ?? null, vScatter.outputs[0] ?? null, 'outputs');
  if (!past && !present) return 'K/V come from TensorScatter but neither the caches nor the updated caches are graph inputs/outputs';
  return { past, present };
}

/** The op's own cache: past_key/past_value inputs (4, 5) and present outputs (1, 2). */
function ownCache(node: Node): { past: KvNames | null; present: KvNames | null } {
  return {
    past: kvPair(node, node.input(4), node.input(5), 'inputs'),
    present: kvPair(node, node.outputs[1] ?? null, node.outputs[2] ?? null, 'outputs'),
  };
}
