/**
 * @file K/V paths between the per-head projections and the attention MatMuls:
 * - Optimum / transformers: `Concat(past_key_values.N.key, k_new, axis −2)` → `present.N.key`, then repeat_kv
 *   (`Reshape(Expand(Unsqueeze(kv, 2), [B,Hkv,G,T,Dh]), [B,H,T,Dh])`), and for K the `Transpose([0,1,3,2])`;
 * - raw torch GPT-2: parts of a stacked `past_N` [2, B, H, P, Dh] taken by Gather(0|1), Split + Squeeze or
 *   Slice + Squeeze, concatenated with the new heads (K already transposed in gpt2_past), and the present
 *   re-stacked by `Concat(Unsqueeze(k), Unsqueeze(v), axis 0)`.
 */
import { attrInt } from '../../../graph/ir/attribute.js';
import type { Node } from '../../../graph/ir/node.js';
import type { Value } from '../../../graph/ir/value.js';
import { any, cap, consumerOf, graphInput, oneOf, op, where, type Bindings, type Pattern } from '../../../graph/pattern/index.js';
import { constInt, constInts } from '../const.js';
import { axesOf, shapeDim, type Step } from './unfused-core.js';

const concatAxis = (n: Node): number | undefined => attrInt(n, 'axis');

/** `Concat(past graph input, fresh, axis ±2)` or just `fresh`; tag `${p}.cache` = 'concat' | 'none'. */
export function withPast(p: string, fresh: Pattern): Pattern {
  const cat = op('Concat', [graphInput(`${p}.past`), cap(`${p}.new`, fresh)], { as: `${p}.cat`, exact: true });
  const checked = where(cat, (v) => [2, -2].includes(concatAxis(v.producer!) ?? 0) || `cache Concat axis is ${concatAxis(v.producer!)}, expected 2 or -2`);
  return oneOf([checked, cap(`${p}.new`, fresh)], { tag: `${p}.cache`, labels: ['concat', 'none'] });
}

/** repeat_kv around `x`, or `x`; tag `${p}.repeat` = 'repeat' | 'none'. Binds `${p}.expand`. */
export function repeatKv(p: string, x: Pattern): Pattern {
  const unsq = where(op('Unsqueeze', [x]), (v) => axesOf(v.producer!)?.join() === '2' || 'repeat_kv Unsqueeze is not on axis 2');
  const rep = op('Reshape', [op('Expand', [unsq, any()], { as: `${p}.expand` }), any()]);
  return oneOf([rep, x], { tag: `${p}.repeat`, labels: ['repeat', 'none'] });
}

/** Group size G of repeat_kv when its Expand shape says it (constant element 2 of [B,Hkv,G,T,Dh]); 1 without repeat. */
export function groupSize(b: Bindings, p: string): number | undefined {
  if (b.tags[`${p}.repeat`] !== 'repeat') return 1;
  const g = shapeDim(b.ops[`${p}.expand`]?.input(1), 2);
  return g !== undefined && g > 0 ? g : undefined;
}

/** The cache pair of one side: the past graph input and, when the Concat output is a graph output, the present. */
export function cacheOf(b: Bindings, p: string, graphOutputs: readonly Value[]): { past: Value; present: Value | null } | null {
  const past = b.values[`${p}.past`];
  const cat = b.ops[`${p}.cat`];
  if (!past || !cat) return null;
  const out = cat.output(0);
  return { past, present: graphOutputs.includes(out) ? out : null };
}

/** Part `index` (0 = key, 1 = value) of a stacked past: Gather / Split+Squeeze / Slice+Squeeze of `stacked.past`. */
export function stackedPart(index: number): Pattern {
  const past = graphInput('stacked.past');
  const gather = where(op('Gather', [past, any()]), (v) => {
    const n = v.producer!;
    return (attrInt(n, 'axis', 0) === 0 && constInt(n.input(1)) === index) || `Gather does not take part ${index} of axis 0`;
  });
  const split = where(op('Squeeze', [op('Split', [past], { output: index })]), (v) => attrInt(v.producer!.input(0)!.producer!, 'axis', 0) === 0 || 'Split is not on axis 0');
  const slice = where(op('Squeeze', [op('Slice', [past, any(), any()])]), (v) => {
    const s = v.producer!.input(0)!.producer!;
    const starts = constInts(s.input(1));
    const axes = constInts(s.input(3)) ?? [0];
    return (starts?.[0] === index && axes[0] === 0) || `Slice does not take part ${index} of axis 0`;
  });
  return oneOf([gather, split, slice]);
}

/** The re-stacked present: `Concat(Unsqueeze(k…), Unsqueeze(v), axis 0)` graph output reached from both cache Concats. */
export function stackedPresent(kCat: Node, vCat: Node, graphOutputs: readonly Value[]): Step<{ present: Value; nodes: Node[] }> {
  const fromV = consumerOf(vCat.output(0), 'Concat', { through: ['Unsqueeze'], maxDepth: 1 });
  const fromK = consumerOf(kCat.output(0), 'Concat', { through: ['Unsqueeze', 'Transpose'], maxDepth: 2 });
  if (!fromV.ok) return { ok: false, reason: `present: ${fromV.reason}` };
  if (!fromK.ok || fromK.node !== fromV.node) return { ok: false, reason: 'present: key and value are not stacked by the same Concat' };
  const present = fromV.node.output(0);
  if (!graphOutputs.includes(present) || attrInt(fromV.node, 'axis') !== 0) return { ok: false, reason: `present: '${present.name}' is not a graph output stacked on axis 0` };
  return { ok: true, value: { present, nodes: [fromV.node, ...fromV.via, ...fromK.via] } };
}
