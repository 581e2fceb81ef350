/**
 * @file What the fused-attention lift rules share (GroupQueryAttention, MultiHeadAttention, com.microsoft Attention,
 * ONNX Attention): walking an attention input back to its projection, reading RotaryEmbedding nodes, shapes of
 * values, the KV cache pair, and the set of nodes a block owns.
 *
 * Glossary: B batch, S new tokens, H query heads, Hkv KV heads, Dh head size.
 */
import { attrFloat, attrInt, attrInts } from '../../../graph/ir/attribute.js';
import type { Node } from '../../../graph/ir/node.js';
import type { Value } from '../../../graph/ir/value.js';
import type { KvNames, LiftResult, NBitsQuant, Projection, RopeInfo, RopeSource } from '../block.js';
import { constValue, isConstant } from '../const.js';

export const MS = 'com.microsoft';

/** Shape-only ops passed through on the way from an attention input to its projection. */
const GLUE = new Set(['Reshape', 'Transpose', 'Squeeze', 'Unsqueeze', 'Identity', 'Cast', 'Flatten']);
/** Per-head normalizations of q or k (Qwen3 / Gemma q_norm, k_norm). */
const NORMS = new Set(['SimplifiedLayerNormalization', 'RMSNormalization', 'LayerNormalization']);
const MAX_HOPS = 32;
/** Ops whose output has their first input's shape. */
const SAME_SHAPE = new Set(['RotaryEmbedding', 'Cast', 'Identity', ...NORMS]);

/** True when `n` is `domain::opType` ('' and 'ai.onnx' are the same domain). */
export function isOp(n: Node | null | undefined, opType: string, domain = ''): boolean {
  return !!n && n.opType === opType && (n.domain === 'ai.onnx' ? '' : n.domain) === domain;
}

/** `n` when it is `domain::opType`, else undefined (for reading the matched node). */
export function asOp(n: Node | null | undefined, opType: string, domain = ''): Node | undefined {
  return n && isOp(n, opType, domain) ? n : undefined;
}

/** Known dims of a value's tensor type. */
export function shapeOf(v: Value | null | undefined): readonly (number | string | null)[] | undefined {
  return v?.type?.kind === 'tensor' ? v.type.shape : undefined;
}

/** The last dim of a value when it is a known number. */
export function lastDim(v: Value | null | undefined): number | undefined {
  const d = shapeOf(v)?.at(-1);
  return typeof d === 'number' ? d : undefined;
}

/** Width of the last axis: from the value's type, its projection, or through shape-preserving ops (rope, norm, Cast). */
export function valueWidth(v: Value | null | undefined, depth = 0): number | undefined {
  if (!v || depth > MAX_HOPS) return undefined;
  const known = lastDim(v);
  if (known !== undefined) return known;
  const proj = projectionAt(v);
  if (proj) return projectionWidth(proj);
  const p = v.producer;
  return p && SAME_SHAPE.has(p.opType) ? valueWidth(p.input(0), depth + 1) : undefined;
}

/** The softmax scale: the op's `scale` attribute, or 1/√Dh when it is absent or 0. */
export function scaleOf(node: Node, headDim: number): number {
  const s = attrFloat(node, 'scale');
  return s !== undefined && s !== 0 ? s : 1 / Math.sqrt(headDim);
}

/** A failed lift. */
export const fail = (reason: string): { ok: false; reason: string } => ({ ok: false, reason });

/** Catches anything a lifter throws on an unexpected graph and reports it as a failed lift. */
export function safeLift(lift: () => LiftResult): LiftResult {
  try {
    return lift();
  } catch (e) {
    return { ok: false, reason: `unexpected graph (${e instanceof Error ? e.message : String(e)})` };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Projections

/** The projection computed by a MatMul, Gemm or com.microsoft MatMulNBits node (bias from the op or a following Add). */
export function projectionOfNode(n: Node | null | undefined): Projection | undefined {
  const out = n?.outputs[0];
  const core = n && out ? projectionCore(n) : undefined;
  if (!n || !out || !core) return undefined;
  const after = core.bias ? null : biasAfter(out);
  return { ...core, node: n, output: after?.output ?? out, bias: core.bias ?? after?.bias ?? null };
}

/** Weight, op-held bias and quantization of a projection node. */
function projectionCore(n: Node): Omit<Projection, 'node' | 'output'> | undefined {
  if (isOp(n, 'MatMulNBits', MS)) {
    const scales = n.input(2);
    if (!scales) return undefined;
    const quant: NBitsQuant = {
      bits: attrInt(n, 'bits', 4),
      blockSize: attrInt(n, 'block_size', 0),
      k: attrInt(n, 'K', 0),
      n: attrInt(n, 'N', 0),
      scales,
      zeroPoints: n.input(3),
    };
    return { weight: n.input(1), bias: n.input(5), quant };
  }
  if (isOp(n, 'Gemm')) {
    if (attrInt(n, 'transA', 0) !== 0) return undefined;
    const w = n.input(1);
    const core = { weight: isConstant(w) ? w : null, bias: n.input(2) };
    return attrInt(n, 'transB', 0) === 1 ? { ...core, transposed: true } : core;
  }
  if (!isOp(n, 'MatMul')) return undefined;
  const w = n.input(1);
  if (isConstant(w)) return { weight: w, bias: null };
  // NOTE: torch/mobius exports keep W as [out, in] and transpose it in the graph: MatMul(x, Transpose(W)).
  const t = asOp(w?.producer, 'Transpose');
  if (t && isConstant(t.input(0)) && sameInts(attrInts(t, 'perm'), [1, 0])) {
    return { weight: t.input(0), bias: null, transposed: true };
  }
  // A MatMul with a computed right side (e.g. dequantized QDQ weights) still projects; its weight is unknown.
  return { weight: null, bias: null };
}

/** The projection whose output (after its bias Add, if any) is `v`. */
export function projectionAt(v: Value): Projection | undefined {
  const p = v.producer;
  const add = asOp(p, 'Add');
  if (!add) return projectionOfNode(p);
  for (const x of add.inputs) {
    const proj = projectionOfNode(x?.producer);
    if (proj?.output === v) return proj;
  }
  return undefined;
}

/** Output width of a projection (its column range for packed QKV). */
export function projectionWidth(p: Projection): number | undefined {
  if (p.columns) return p.columns.end - p.columns.start;
  if (p.quant) return p.quant.n || undefined;
  const dims = constValue(p.weight)?.dims;
  if (!dims || dims.length !== 2) return undefined;
  return p.transposed ? dims[0] : dims[1];
}

/** The bias: a 1-D constant added to `out` by its only consumer; with the Add's output. */
function biasAfter(out: Value): { bias: Value; output: Value } | null {
  const users = out.consumers();
  const add = users.length === 1 ? asOp(users[0], 'Add') : undefined;
  const output = add?.outputs[0];
  if (!add || !output || add.inputs.length !== 2) return null;
  const bias = add.input(0) === out ? add.input(1) : add.input(0);
  return bias && bias !== out && constValue(bias)?.dims.length === 1 ? { bias, output } : null;
}

function sameInts(a: readonly number[] | undefined, b: readonly number[]): boolean {
  return !!a && a.length === b.length && a.every((x, i) => x === b[i]);
}

// ---------------------------------------------------------------------------------------------------------------
// Walking an attention input back to its projection

export interface Trace {
  /** Nodes passed, nearest the attention op first. */
  path: Node[];
  ropes: Node[];
  norms: Node[];
  /** A Split was passed: the projection computes more than this input (e.g. query and gate). */
  split: boolean;
  /** The TensorScatter that writes this input into a static cache (ONNX opset 24). */
  scatter: Node | null;
  projection: Projection | null;
}

/** True for a RotaryEmbedding node (com.microsoft or ONNX opset 23). */
export function isRope(n: Node | null | undefined): boolean {
  return isOp(n, 'RotaryEmbedding', MS) || isOp(n, 'RotaryEmbedding');
}

/** Walks from an attention input back through reshapes, rope, q/k norms, Split and TensorScatter to its projection. */
export function traceBack(start: Value | null): Trace {
  const t: Trace = { path: [], ropes: [], norms: [], split: false, scatter: null, projection: null };
  let v = start;
  for (let hop = 0; v && hop < MAX_HOPS; hop++) {
    const proj = projectionAt(v);
    if (proj) {
      t.projection = proj;
      break;
    }
    const p: Node | null = v.producer;
    if (!p) break;
    if (isRope(p)) t.ropes.push(p);
    else if (NORMS.has(p.opType) && (p.domain === '' || p.domain === MS)) t.norms.push(p);
    else if (isOp(p, 'Split')) t.split = true;
    else if (isOp(p, 'TensorScatter')) t.scatter = p;
    else if (!(GLUE.has(p.opType) && p.domain === '')) break;
    t.path.push(p);
    v = isOp(p, 'TensorScatter') ? p.input(1) : p.input(0);
  }
  return t;
}

/** The projection of a trace when it is this input alone (no Split of a wider projection in between). */
export function ownProjection(t: Trace): Projection | null {
  return t.split ? null : t.projection;
}

// ---------------------------------------------------------------------------------------------------------------
// Rope from RotaryEmbedding nodes

export type RopeResult = { ok: true; rope: RopeInfo | null } | { ok: false; reason: string };

/** Rope from the RotaryEmbedding nodes of the q and k paths; rope on only one of them is refused. */
export function qkRope(q: Trace, k: Trace, headDim: number): RopeResult {
  if ((q.ropes.length > 0) !== (k.ropes.length > 0)) {
    return { ok: false, reason: `RotaryEmbedding found on ${q.ropes.length ? 'q' : 'k'} only; expected it on both q and k, or on neither` };
  }
  return ropeFromNodes([...q.ropes, ...k.ropes], headDim);
}

/** Rope read from the RotaryEmbedding nodes on the q and k paths (null when there are none). */
export function ropeFromNodes(nodes: readonly Node[], headDim: number): RopeResult {
  const first = nodes[0];
  if (!first) return { ok: true, rope: null };
  const io = (n: Node) => (n.domain === MS ? { pos: n.input(1), cos: n.input(2), sin: n.input(3) } : { pos: n.input(3), cos: n.input(1), sin: n.input(2) });
  const { pos, cos, sin } = io(first);
  if (!cos || !sin) return { ok: false, reason: `RotaryEmbedding ${first.name || '(unnamed)'} has no cos/sin cache inputs` };
  const interleaved = attrInt(first, 'interleaved', 0) === 1;
  for (const n of nodes) {
    if (io(n).cos !== cos || io(n).sin !== sin || (attrInt(n, 'interleaved', 0) === 1) !== interleaved) {
      return { ok: false, reason: 'the q and k RotaryEmbedding nodes use different cos/sin caches or layouts' };
    }
  }
  const attrDim = attrInt(first, 'rotary_embedding_dim', 0);
  const cosWidth = lastDim(cos) ?? constValue(cos)?.dims.at(-1);
  const rotaryDim = attrDim > 0 ? attrDim : cosWidth ? 2 * cosWidth : headDim;
  if (rotaryDim > headDim) return { ok: false, reason: `rotary dim ${rotaryDim} (from RotaryEmbedding) exceeds head size ${headDim}` };
  return { ok: true, rope: { interleaved, rotaryDim, source: ropeSource(cos, sin, pos), nodes: [...nodes] } };
}

/** Classifies cos/sin inputs: constant caches, constant tables gathered by position ids, or computed values. */
function ropeSource(cos: Value, sin: Value, positionIds: Value | null): RopeSource {
  if (isConstant(cos) && isConstant(sin)) return { kind: 'cache', cos, sin };
  const [gc, gs] = [asOp(cos.producer, 'Gather'), asOp(sin.producer, 'Gather')];
  if (gc && gs && attrInt(gc, 'axis', 0) === 0 && attrInt(gs, 'axis', 0) === 0) {
    const [tc, ts, ids] = [gc.input(0), gs.input(0), gc.input(1)];
    if (tc && ts && isConstant(tc) && isConstant(ts) && ids === gs.input(1)) return { kind: 'table', cos: tc, sin: ts, positionIds: ids ?? positionIds };
  }
  return { kind: 'computed', cos, sin };
}

// ---------------------------------------------------------------------------------------------------------------
// Cache names, notes, owned nodes

/** `{ key, value }` when both values are inputs (or outputs) of the anchor's graph. */
export function kvPair(anchor: Node, key: Value | null, value: Value | null, side: 'inputs' | 'outputs'): KvNames | null {
  const list = anchor.graph?.[side] ?? [];
  return key && value && list.includes(key) && list.includes(value) ? { key, value } : null;
}

/** Notes from the q/k/v paths: 'qk-norm', and '<role>-split' when a projection also computes something else. */
export function traceNotes(traces: Readonly<Record<'q' | 'k' | 'v', Trace>>): string[] {
  const notes = traces.q.norms.length + traces.k.norms.length > 0 ? ['qk-norm'] : [];
  for (const [role, t] of Object.entries(traces)) if (t.split) notes.push(`${role}-split`);
  return notes;
}

/** Where causality comes from when the op's own causal flag is off. */
export function causalNote(causal: boolean, hasMask: boolean): string[] {
  if (causal) return [];
  return [hasMask ? 'causal-from-mask' : 'bidirectional'];
}

/** The output projection: a MatMul / Gemm / MatMulNBits consuming the merged heads directly. */
export function outputProjection(output: Value): Projection | null {
  for (const c of output.consumers()) {
    const p = projectionOfNode(c);
    if (p && c.input(0) === output) return p;
  }
  return null;
}

/** 'output-gate' when the attention result is multiplied by a sigmoid gate before `o` (Qwen3.5 / Qwen3-Next). */
export function gateNotes(output: Value): string[] {
  const gated = output.consumers().some((c) => isOp(c, 'Mul') && c.inputs.some((x) => x !== output && isOp(x?.producer, 'Sigmoid')));
  return gated ? ['output-gate'] : [];
}

const NOT_OWNABLE = new Set(['MatMul', 'Gemm', 'MatMulNBits', ...NORMS]);

/**
 * Nodes that exist only for this block: the anchor, then (to a fixpoint) each node on the q/k/v paths up to the
 * first norm or Split, and the private producers of the rope nodes' position/cos/sin inputs, as long as all of their
 * outputs are read only by owned nodes. Graph outputs are allowed only when listed in `cacheOutputs` (the present
 * values a TensorScatter writes). Projections and q/k norms are never owned: patches decide about those.
 */
export function ownedNodes(anchor: Node, traces: readonly Trace[], cacheOutputs: readonly Value[] = []): Set<Node> {
  const owned = new Set<Node>([anchor]);
  const graph = anchor.graph;
  const outputs = new Set(graph?.outputs ?? []);
  const allowed = new Set(cacheOutputs);
  const ownable = (n: Node) =>
    n.graph === graph &&
    !NOT_OWNABLE.has(n.opType) &&
    !n.attributes.some((a) => a.type === 'graph' || a.type === 'graphs') &&
    n.outputs.every((o) => !o || ((!outputs.has(o) || allowed.has(o)) && o.consumers().every((c) => owned.has(c))));
  const paths = traces.map((t) => {
    const stop = t.path.findIndex((n) => NORMS.has(n.opType) || isOp(n, 'Split'));
    return stop < 0 ? t.path : t.path.slice(0, stop);
  });
  const cone = new Set<Node>();
  for (let changed = true; changed; ) {
    changed = false;
    for (const path of paths) {
      for (const n of path) {
        if (!owned.has(n) && ownable(n)) {
          owned.add(n);
          changed = true;
        }
      }
    }
    // NOTE: rope side inputs (positions, cos, sin) are followed; a Shape's input is data, not a side input.
    const sides = [...owned].flatMap((n) => (isRope(n) ? n.inputs.slice(1) : cone.has(n) && n.opType !== 'Shape' ? n.inputs : []));
    for (const v of sides) {
      const p = v?.producer;
      if (p && !owned.has(p) && ownable(p)) {
        owned.add(p);
        cone.add(p);
        changed = true;
      }
    }
  }
  return owned;
}
