/**
 * @file Linear projections as unfused exports write them: `MatMul(hidden, W)` or a 2-D `Gemm` between Reshapes
 * (raw torch GPT-2), with an optional bias `Add` (Qwen2, Megatron), or one part of a packed projection cut out with
 * `Slice` (Phi-3); the per-head split
 * `Transpose([0,2,1,3]) ← Reshape([B,S,heads,Dh])`; a packed QKV `Split`; and the output projection found
 * downward from the merged heads. Builders of `Projection` records read what the patterns bound.
 */
import { attrFloat, attrInt, attrInts } from '../../../graph/ir/attribute.js';
import type { Node } from '../../../graph/ir/node.js';
import type { Value } from '../../../graph/ir/value.js';
import { any, cap, constant, consumerOf, oneOf, op, optional, type Bindings, type Pattern } from '../../../graph/pattern/index.js';
import type { Projection } from '../block.js';
import { constInts, constValue } from '../const.js';
import type { Step } from './unfused-core.js';

/**
 * `${p}.proj` = [Add(bias)] ← MatMul(hidden, W) | [Reshape] ← Gemm([Reshape](hidden), W[, b]). Binds `${p}.mm`,
 * `${p}.w`, `${p}.hidden`, `${p}.bias` (the Add's), `${p}.proj` (the projection's result).
 */
export function linear(p: string): Pattern {
  const hidden = any(`${p}.hidden`);
  const w = constant(`${p}.w`);
  const core = oneOf([
    op('MatMul', [hidden, w], { as: `${p}.mm` }),
    optional(op('Reshape', [op('Gemm', [optional(op('Reshape', [hidden, any()])), w], { as: `${p}.mm` }), any()])),
  ]);
  return cap(`${p}.proj`, optional(op('Add', [core, constant(`${p}.bias`)], { commute: true })));
}

/**
 * `linear(p)`, or one part of a packed projection cut out on the last axis by `Slice` (Phi-3's qkv_proj:
 * `qkv[..., a:b]`); binds `${p}.slice` for the latter, and the packed projection under the `linear(p)` names.
 */
export function maybeSliced(p: string): Pattern {
  return oneOf([linear(p), op('Slice', [linear(p)], { as: `${p}.slice` })]);
}

/** `${p}.heads` = Transpose([0,2,1,3]) ← Reshape(source, `${p}.shape`) (binds `${p}.reshape`). */
export function splitHeads(p: string, source: Pattern): Pattern {
  const reshape = op('Reshape', [source, any(`${p}.shape`)], { as: `${p}.reshape` });
  return cap(`${p}.heads`, op('Transpose', [reshape], { attrs: { perm: [0, 2, 1, 3] } }));
}

/** One part of a packed QKV: output `${p}.part` of `Split(qkv.proj, last axis)`. */
export function packedPart(p: string): Pattern {
  return cap(`${p}.part`, op('Split', [linear('qkv')], { as: 'qkv.split' }));
}

/** Output width of a projection weight (Gemm transB stores [out, in]). */
function width(node: Node, w: Value): number | undefined {
  const t = constValue(w);
  if (!t || t.dims.length !== 2) return undefined;
  return node.opType === 'Gemm' && attrInt(node, 'transB', 0) === 1 ? t.dims[0] : t.dims[1];
}

/** A projection with its (always present) result value and output width. */
export interface Sized {
  proj: Projection;
  output: Value;
  width: number;
}

/** The Projection a `linear(p)` match bound, checked: 2-D weight, plain Gemm, one bias at most. */
export function projectionOf(b: Bindings, p: string): Step<Sized> {
  const node = b.ops[`${p}.mm`];
  const weight = b.values[`${p}.w`];
  const output = b.values[`${p}.proj`];
  if (!node || !weight || !output) return { ok: false, reason: `${p} projection: not matched` };
  const w = width(node, weight);
  if (w === undefined) return { ok: false, reason: `${p} projection: weight '${weight.name}' is not a 2-D constant` };
  let bias = b.values[`${p}.bias`] ?? null;
  const transposed = node.opType === 'Gemm' && attrInt(node, 'transB', 0) === 1;
  if (node.opType === 'Gemm') {
    if (attrInt(node, 'transA', 0) !== 0 || attrFloat(node, 'alpha', 1) !== 1 || attrFloat(node, 'beta', 1) !== 1) {
      return { ok: false, reason: `${p} projection: Gemm '${node.name}' has transA/alpha/beta other than 0/1/1` };
    }
    const gemmBias = node.input(2);
    if (gemmBias && bias) return { ok: false, reason: `${p} projection: both a Gemm bias and a bias Add` };
    bias = gemmBias ?? bias;
  }
  const biasLen = bias ? constValue(bias)?.dims.reduce((x, y) => x * y, 1) : undefined;
  if (bias && biasLen !== w) return { ok: false, reason: `${p} projection: bias '${bias.name}' has ${biasLen ?? '?'} elements, weight width is ${w}` };
  const proj: Projection = { node, output, weight, bias };
  if (transposed) proj.transposed = true;
  const slice = b.ops[`${p}.slice`];
  if (!slice) return { ok: true, value: { proj, output, width: w } };
  const cols = sliceColumns(slice, w);
  if (typeof cols === 'string') return { ok: false, reason: `${p} projection: ${cols}` };
  return { ok: true, value: { proj: { ...proj, columns: cols }, output, width: cols.end - cols.start } };
}

/** The column range [start, end) a Slice takes from the last axis of a `width`-wide projection. */
function sliceColumns(slice: Node, width: number): { start: number; end: number } | string {
  const [starts, ends, axes, steps] = [1, 2, 3, 4].map((i) => constInts(slice.input(i)));
  if (!starts || !ends || starts.length !== 1 || ends.length !== 1) return `Slice '${slice.name}' has no constant one-axis starts/ends`;
  // NOTE: without axes a one-element Slice cuts axis 0.
  if (!axes || axes.length !== 1 || (axes[0] !== -1 && axes[0] !== 2)) return `Slice '${slice.name}' does not cut the last axis`;
  if (steps && steps.some((x) => x !== 1)) return `Slice '${slice.name}' has step ${steps.join(',')}`;
  const clamp = (x: number) => Math.min(Math.max(x < 0 ? x + width : x, 0), width);
  const [start, end] = [clamp(starts[0]!), clamp(ends[0]!)];
  if (end <= start) return `Slice '${slice.name}' takes no columns`;
  return { start, end };
}

/** Column ranges of a packed QKV Split: sizes from the `split` attribute / input, or equal parts. */
export function splitColumns(split: Node, total: number): { start: number; end: number }[] | undefined {
  const axis = attrInt(split, 'axis', 0);
  if (axis !== -1 && axis !== 2) return undefined;
  const parts = split.outputs.length;
  const sizes = attrInts(split, 'split') ?? constInts(split.input(1)) ?? (total % parts === 0 ? Array<number>(parts).fill(total / parts) : undefined);
  if (!sizes || sizes.reduce((x, y) => x + y, 0) !== total) return undefined;
  let at = 0;
  return sizes.map((n) => ({ start: at, end: (at += n) }));
}

/** The output projection: MatMul/Gemm reading the merged heads (through a flattening Reshape), with its bias. */
export function outputProjection(output: Value): Step<Projection> {
  const found = consumerOf(output, ['MatMul', 'Gemm'], { through: ['Reshape'], index: 0, maxDepth: 1 });
  if (!found.ok) return { ok: false, reason: `output projection: ${found.reason}` };
  const node = found.node;
  const weight = node.input(1);
  if (!weight || width(node, weight) === undefined) return { ok: false, reason: `output projection: '${node.name}' has no 2-D constant weight` };
  let result = node.output(0);
  let bias: Value | null = node.opType === 'Gemm' ? node.input(2) : null;
  const next = result.consumers();
  const after = next.length === 1 ? next[0] : undefined;
  if (after?.opType === 'Add' && !bias) {
    const other = after.input(0) === result ? after.input(1) : after.input(0);
    if (constValue(other)) {
      bias = other;
      result = after.output(0);
    }
  } else if (after?.opType === 'Reshape' && found.via.length) {
    result = after.output(0);
  }
  const proj: Projection = { node, output: result, weight, bias };
  if (node.opType === 'Gemm' && attrInt(node, 'transB', 0) === 1) proj.transposed = true;
  return { ok: true, value: proj };
}

/** Nodes of the projection itself (never owned by the block): the matmul, its Reshapes and its bias Add. */
export function projectionNodes(p: Projection): Node[] {
  const out: Node[] = [p.node];
  let n = p.output?.producer ?? null;
  while (n && n !== p.node && out.length < 4) {
    out.push(n);
    n = n.inputs.map((i) => i?.producer).find((x) => x && x.opType !== 'Constant') ?? null;
  }
  const flat = p.node.input(0)?.producer;
  if (p.node.opType === 'Gemm' && flat?.opType === 'Reshape') out.push(flat);
  return out;
}
