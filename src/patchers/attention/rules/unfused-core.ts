/**
 * @file The core every unfused attention shares, anchored on its Softmax: the scores pattern (Q·Kᵀ with optional
 * scalar multipliers on q, kᵀ or the product, an optional tanh logit softcap, a mask, Casts) read upward from the Softmax, the P·V MatMul found
 * downward (through Casts and the SDPA `Where(IsNaN(p), 0, p)` guard), and the head merge Transpose → Reshape.
 * Also the cheap anchor checks that split Softmax anchors between the Optimum and GPT-2 rules.
 *
 * Glossary: B batch, S new tokens, T = past + S, H query heads, Hkv KV heads, Dh head size.
 */
import { any, cap, consumerOf, constant, explain, is, match, oneOf, op, optional, where, type MatchResult, type Pattern } from '../../../graph/pattern/index.js';
import { attrInt, attrInts } from '../../../graph/ir/attribute.js';
import type { Node } from '../../../graph/ir/node.js';
import type { Value } from '../../../graph/ir/value.js';
import { constFloat, constInts, constValue } from '../const.js';

export type MaskKind = 'additive' | 'where' | 'multiplicative' | 'none';

export interface Core {
  softmax: Node;
  /** MatMul(q, kᵀ). */
  qk: Node;
  /** q and kᵀ as the QK MatMul reads them, before their scalar multipliers (q_BHSDh, kT_BHkvDhT after repeat_kv). */
  q: Value;
  kT: Value;
  /** Product of the scalar multipliers (Div counts as reciprocal); 1 when there are none. */
  scale: number;
  /** Attention logit softcap c (Gemma 2: scores → c·tanh(scores / c) before the mask), when there is one. */
  softcap: number | undefined;
  /** Which operands carried a multiplier (both q and kᵀ: the torch SDPA decomposition). */
  scaledQ: boolean;
  scaledK: boolean;
  mask: MaskKind;
  /** The mask operand of an additive / multiplicative mask. */
  maskValue: Value | null;
  /** The condition of a `Where(cond, scores, −inf)` mask. */
  maskCondition: Value | null;
  pv: Node;
  /** SDPA `Where(IsNaN(p), 0, p)` between Softmax and P·V. */
  nanGuard: boolean;
  /** Heads merged: Transpose(PV, [0,2,1,3]) → Reshape = [B, S, H·Dh]. */
  output: Value;
  /** Softmax chain, P·V and merge nodes. */
  nodes: Node[];
}

export type Step<T> = { ok: true; value: T } | { ok: false; reason: string };

/** A failed match as a rule reason: `stage: path (value): why`. */
export function failed(stage: string, r: MatchResult & { ok: false }): { ok: false; reason: string } {
  return { ok: false, reason: `${stage}: ${explain(r)}` };
}

/** Softmax over the last axis in the default domain (axis absent: the opset-13+ default −1; 3 for 4-D scores). */
function isLastAxisSoftmax(node: Node): boolean {
  if (node.opType !== 'Softmax' || (node.domain !== '' && node.domain !== 'ai.onnx')) return false;
  const axis = attrInt(node, 'axis');
  return axis === undefined || axis === -1 || axis === 3;
}

/** True when a MatMul is reached upward from `v` through at most `hops` elementwise / mask / cast / softcap ops. */
function reachesMatMul(v: Value | null, hops: number): boolean {
  const n = v?.producer;
  if (!n || hops < 0) return false;
  if (n.opType === 'MatMul') return true;
  if (!['Cast', 'Add', 'Sub', 'Mul', 'Div', 'Where', 'Tanh'].includes(n.opType)) return false;
  return n.inputs.some((i) => reachesMatMul(i, hops - 1));
}

/**
 * Which unfused rule a Softmax belongs to, decided in this one place (cheap: a few hops each way):
 * 'stacked' when the V operand of its P·V comes from a Gather / Split / Slice of a graph input (the legacy
 * GPT-2 `past_N` [2, B, H, P, Dh] cache), 'bnsh' for any other attention Softmax, undefined when it is not
 * attention at all (no MatMul behind it within a few hops, or no P·V MatMul reading it — e.g. a MoE router).
 */
export function unfusedKind(node: Node): 'bnsh' | 'stacked' | undefined {
  if (!isLastAxisSoftmax(node) || !reachesMatMul(node.input(0), 8)) return undefined;
  const out = node.outputs[0];
  const pv = out && consumerOf(out, 'MatMul', { through: ['Cast', 'Where', 'IsNaN'], index: 0, maxDepth: 3 });
  if (!pv?.ok) return undefined;
  const stack: { v: Value | null; depth: number }[] = [{ v: pv.node.input(1), depth: 0 }];
  while (stack.length) {
    const { v, depth } = stack.pop()!;
    const n = v?.producer;
    if (!n || depth > 6) continue;
    if (['Gather', 'Split', 'Slice'].includes(n.opType)) {
      const data = n.input(0);
      if (data && !data.producer && !data.initializer) return 'stacked';
    }
    if (n.opType === 'Concat') for (const i of n.inputs) stack.push({ v: i, depth: depth + 1 });
    else if (['Reshape', 'Expand', 'Unsqueeze', 'Squeeze', 'Transpose'].includes(n.opType)) stack.push({ v: n.input(0), depth: depth + 1 });
  }
  return 'bnsh';
}

/** The number a scalar operand evaluates to: a one-element constant, or Sqrt / Cast / Reciprocal / Div / Mul of such. */
export function scalarOf(v: Value | null, depth = 0): number | undefined {
  if (!v || depth > 4) return undefined;
  const c = constFloat(v);
  if (c !== undefined) return c;
  const n = v.producer;
  if (!n) return undefined;
  const a = scalarOf(n.input(0), depth + 1);
  if (a === undefined) return undefined;
  switch (n.opType) {
    case 'Sqrt':
      return Math.sqrt(a);
    case 'Cast':
    case 'Identity':
      return a;
    case 'Reciprocal':
      return 1 / a;
    case 'Div':
    case 'Mul': {
      const b = scalarOf(n.input(1), depth + 1);
      if (b === undefined) return undefined;
      return n.opType === 'Div' ? a / b : a * b;
    }
    default:
      return undefined;
  }
}

/** Element `i` of a shape operand when constant: a constant tensor, or a Concat of one-element pieces. */
export function shapeDim(shape: Value | null | undefined, i: number): number | undefined {
  const whole = constInts(shape);
  if (whole) return whole[i];
  const cat = shape?.producer;
  if (!cat || cat.opType !== 'Concat') return undefined;
  let at = 0;
  for (const piece of cat.inputs) {
    const t = constValue(piece);
    const len = t ? t.dims.reduce((x, y) => x * y, 1) : piece?.producer?.opType === 'Unsqueeze' ? 1 : undefined;
    if (len === undefined) return undefined;
    if (i < at + len) return t ? constInts(piece)?.[i - at] : undefined;
    at += len;
  }
  return undefined;
}

/** Axes of an Unsqueeze / Squeeze: the attribute (opset < 13) or the constant second input. */
export function axesOf(n: Node): number[] | undefined {
  return attrInts(n, 'axes') ?? constInts(n.input(1));
}

const scalar = (name: string): Pattern => where(any(name), (v) => scalarOf(v) !== undefined || `'${v.name}' is not a constant scalar`, 'scalar');

/** x, or x times / divided by a scalar; binds `${who}.mul` or `${who}.div` and `${who}.s`. */
function scaled(x: Pattern, who: string): Pattern {
  return oneOf([op('Mul', [x, scalar(`${who}.s`)], { commute: true, as: `${who}.mul` }), op('Div', [x, scalar(`${who}.s`)], { as: `${who}.div` }), x]);
}

const QK = op('MatMul', [scaled(cap('q', any()), 'q'), scaled(cap('kT', any()), 'k')], { as: 'qk' });
const SCALED = scaled(optional(op('Cast', [QK])), 'qk');
/** Gemma 2's logit softcap `Mul(Tanh(Div(x, c)), c)` (or x·(1/c) inside), or nothing; binds `cap.in` and `cap.out`. */
const SOFTCAPPED = op('Mul', [op('Tanh', [oneOf([op('Div', [SCALED, scalar('cap.in')], { as: 'cap.div' }), op('Mul', [SCALED, scalar('cap.in')], { commute: true })])]), scalar('cap.out')], {
  commute: true,
});
const SCORES = oneOf([SOFTCAPPED, SCALED], { tag: 'softcap', labels: ['tanh', 'none'] });
const MASKED = oneOf(
  [
    op('Add', [SCORES, any('mask')], { commute: true }),
    op('Where', [any('maskCond'), SCORES, any()]),
    op('Sub', [op('Mul', [SCORES, any('mask')], { commute: true }), any()]),
    SCORES,
  ],
  { tag: 'mask', labels: ['additive', 'where', 'multiplicative', 'none'] },
);
const SOFTMAX = op('Softmax', [optional(op('Cast', [MASKED]))]);

/** P as P·V reads it: the Softmax output through Casts and an optional `Where(IsNaN(p), 0, p)`. */
function probs(p: Value): Pattern {
  const guarded = oneOf([op('Where', [op('IsNaN', [is(p)]), constant(), is(p)]), is(p)], { tag: 'nan', labels: ['guard', 'none'] });
  return optional(op('Cast', [optional(op('Cast', [guarded]))]));
}

/** Matches the core around a Softmax anchor. */
export function matchCore(softmax: Node): Step<Core> {
  const sm = softmax.output(0);
  const scores = match(SOFTMAX, sm);
  if (!scores.ok) return failed('scores (expected Softmax ← [Cast] ← [mask] ← [softcap] ← [scale] ← MatMul(q, kᵀ))', scores);
  const b = scores.bindings;
  const pvFound = consumerOf(sm, 'MatMul', { through: ['Cast', 'Where', 'IsNaN'], index: 0 });
  if (!pvFound.ok) return { ok: false, reason: `P·V: ${pvFound.reason}` };
  const pv = pvFound.node;
  const p = match(probs(sm), pv.input(0));
  if (!p.ok) return failed('P·V', p);
  const merge = consumerOf(pv.output(0), 'Transpose');
  if (!merge.ok) return { ok: false, reason: `head merge: ${merge.reason}` };
  const perm = attrInts(merge.node, 'perm');
  if (perm?.join() !== '0,2,1,3') return { ok: false, reason: `head merge: Transpose perm=[${perm?.join(',') ?? ''}], expected [0,2,1,3]` };
  const reshape = consumerOf(merge.node.output(0), 'Reshape', { index: 0 });
  if (!reshape.ok) return { ok: false, reason: `head merge: ${reshape.reason}` };
  let softcap: number | undefined;
  if (b.tags.softcap === 'tanh') {
    const [inner, outer] = [scalarOf(b.values['cap.in']!)!, scalarOf(b.values['cap.out']!)!];
    const c = b.ops['cap.div'] ? inner : 1 / inner;
    if (Math.abs(c - outer) > 1e-6 * Math.abs(outer)) return { ok: false, reason: `softcap: tanh(x / ${c}) is multiplied by ${outer}, not by the same cap` };
    softcap = outer;
  }
  let scale = 1;
  for (const who of ['q', 'k', 'qk']) {
    const s = scalarOf(b.values[`${who}.s`] ?? null);
    if (s !== undefined) scale *= b.ops[`${who}.div`] ? 1 / s : s;
  }
  return {
    ok: true,
    value: {
      softmax,
      qk: b.ops.qk!,
      q: b.values.q!,
      kT: b.values.kT!,
      // NOTE: the graph multiplies in float32; rounding there keeps √s·√s = s (Megatron's two 1/√√d divisors).
      scale: Math.fround(scale),
      softcap,
      scaledQ: b.values['q.s'] !== undefined,
      scaledK: b.values['k.s'] !== undefined,
      mask: (b.tags.mask ?? 'none') as MaskKind,
      maskValue: b.values.mask ?? null,
      maskCondition: b.values.maskCond ?? null,
      pv,
      nanGuard: p.bindings.tags.nan === 'guard',
      output: reshape.node.output(0),
      nodes: [...scores.nodes, ...p.nodes, pv, merge.node, reshape.node],
    },
  };
}

/** The model-level mask behind a per-layer `mask[..., :T]` slice (a boundary the block does not own). */
export function maskRoot(mask: Value | null): Value | null {
  let v = mask;
  while (v?.producer?.opType === 'Slice') v = v.producer.input(0);
  return v;
}
