/**
 * @file Lift rule for raw torch GPT-2 exports (ORT's gpt2_past / gpt2_megatron test models): anchored on a Softmax
 * whose V reads a stacked `past_N` [2, B, H, P, Dh] (see `unfusedKind`), it reads
 *   qkv = [Reshape] ← Gemm([Reshape](hidden), c_attn) | [Add(bias)] ← MatMul(hidden, W), split by `Split(last axis)`
 *   q   = Transpose([0,2,1,3]) ← Reshape([B,S,H,Dh]) ← Split output
 *   kᵀ  = Concat(Transpose(past[0], [0,1,3,2]), Transpose(Reshape(k), [0,2,3,1]), −1)      (gpt2_past)
 *       | Transpose(Concat(past[0], Transpose(Reshape(k), [0,2,1,3]), −2), [0,1,3,2])     (Megatron)
 *   v   = Concat(past[1], Transpose(Reshape(v), [0,2,1,3]), −2)
 * with the mask as Where(causal, w, −1e4) or w·m − 1e4·(1 − m), no rope, and the present re-stacked by
 * `Concat(Unsqueeze(k), Unsqueeze(v), 0)`. Form 'unfused', kvLayout 'stacked' (past.key === past.value).
 */
import { attrInt } from '../../../graph/ir/attribute.js';
import type { Node } from '../../../graph/ir/node.js';
import type { Value } from '../../../graph/ir/value.js';
import { any, cap, exclusiveNodes, match, oneOf, op, type Pattern } from '../../../graph/pattern/index.js';
import type { LiftResult, LiftRule, Projection } from '../block.js';
import { stackedPart, stackedPresent } from './kv-pattern.js';
import { outputProjection, packedPart, projectionNodes, projectionOf, splitColumns } from './projection-pattern.js';
import { failed, matchCore, shapeDim, unfusedKind } from './unfused-core.js';

const BHSD = [0, 2, 1, 3];
const reshaped = (p: string): Pattern => op('Reshape', [packedPart(p), any(`${p}.shape`)]);
const heads = (p: string, perm = BHSD): Pattern => op('Transpose', [reshaped(p)], { attrs: { perm } });

const Q = cap('q.heads', heads('q'));
const K = oneOf(
  [
    op('Concat', [op('Transpose', [stackedPart(0)], { attrs: { perm: [0, 1, 3, 2] } }), heads('k', [0, 2, 3, 1])], { as: 'k.cat', exact: true }),
    op('Transpose', [op('Concat', [stackedPart(0), cap('k.new', heads('k'))], { as: 'k.cat', exact: true })], { attrs: { perm: [0, 1, 3, 2] } }),
  ],
  { tag: 'k.layout', labels: ['transposed', 'bhsd'] },
);
const V = op('Concat', [stackedPart(1), cap('v.new', heads('v'))], { as: 'v.cat', exact: true });

const positive = (x: number | undefined): number | undefined => (x !== undefined && x > 0 ? x : undefined);

/** A static dim of a value's declared shape. */
function declaredDim(v: Value, i: number): number | undefined {
  const d = v.type?.kind === 'tensor' ? v.type.shape?.[i] : undefined;
  return typeof d === 'number' ? d : undefined;
}

function lift(softmax: Node): LiftResult {
  const core = matchCore(softmax);
  if (!core.ok) return core;
  const c = core.value;
  const qm = match(Q, c.q);
  if (!qm.ok) return failed('q path (expected Transpose ← Reshape ← Split ← packed QKV projection)', qm);
  const km = match(K, c.kT);
  if (!km.ok) return failed('k path (expected kᵀ from a stacked past part concatenated with the new heads)', km);
  const vm = match(V, c.pv.input(1));
  if (!vm.ok) return failed('v path (expected Concat(stacked past part 1, Transpose ← Reshape ← Split))', vm);
  const [qb, kb, vb] = [qm.bindings, km.bindings, vm.bindings];

  const split = qb.ops['qkv.split']!;
  if (kb.ops['qkv.split'] !== split || vb.ops['qkv.split'] !== split) return { ok: false, reason: 'q, k and v come from different QKV Splits' };
  const past = kb.values['stacked.past']!;
  if (vb.values['stacked.past'] !== past) return { ok: false, reason: 'k and v read different stacked pasts' };
  const kCat = kb.ops['k.cat']!;
  const transposed = kb.tags['k.layout'] === 'transposed';
  const kAxis = attrInt(kCat, 'axis');
  if (!(transposed ? [-1, 3] : [-2, 2]).includes(kAxis ?? 0)) return { ok: false, reason: `k cache Concat axis ${kAxis ?? '?'} does not append along the sequence` };
  if (![-2, 2].includes(attrInt(vb.ops['v.cat']!, 'axis') ?? 0)) return { ok: false, reason: 'v cache Concat does not append along axis −2' };

  const packed = projectionOf(qb, 'qkv');
  if (!packed.ok) return packed;
  const cols = splitColumns(split, packed.value.width);
  if (!cols || cols.length !== 3) return { ok: false, reason: `QKV Split '${split.name}' is not a 3-way split of the last axis` };
  const part = (v: Value | undefined): Projection => ({ ...packed.value.proj, columns: cols[v!.outputIndex]! });
  const [q, k, v] = [part(qb.values['q.part']), part(kb.values['k.part']), part(vb.values['v.part'])];
  if (new Set([q, k, v].map((x) => x.columns!.start)).size !== 3) return { ok: false, reason: 'q, k and v are not three different Split outputs' };

  const numHeads = positive(shapeDim(qb.values['q.shape'], 2)) ?? declaredDim(past, 2);
  if (numHeads === undefined) return { ok: false, reason: 'number of heads unknown: no constant in the q Reshape shape or the past shape' };
  const qWidth = q.columns!.end - q.columns!.start;
  const headDim = positive(shapeDim(qb.values['q.shape'], 3)) ?? qWidth / numHeads;
  if (!Number.isInteger(headDim) || headDim * numHeads !== qWidth) return { ok: false, reason: `q width ${qWidth} is not ${numHeads} heads × an integer head size` };

  const graph = softmax.graph!;
  const present = stackedPresent(kCat, vb.ops['v.cat']!, graph.outputs);
  if (!present.ok) return present;
  const o = outputProjection(c.output);
  const notes: string[] = [`mask=${c.mask}`];
  if (!o.ok) notes.push(o.reason);

  const owned = new Set<Node>([...projectionNodes(packed.value.proj), ...(o.ok ? projectionNodes(o.value) : [])]);
  const hidden = qb.values['qkv.hidden']!;
  const seeds = [...c.nodes, ...qm.nodes, ...km.nodes, ...vm.nodes, ...present.value.nodes].filter((n) => !owned.has(n));
  const nodes = exclusiveNodes(seeds, { stopAt: new Set([hidden, packed.value.output]), exclude: owned, graphOutputs: graph.outputs });

  const block: Extract<LiftResult, { ok: true }>['block'] = {
    form: 'unfused',
    numHeads,
    numKvHeads: numHeads,
    headDim,
    scale: c.scale,
    qkvPacking: 'packed',
    q,
    k,
    v,
    o: o.ok ? o.value : null,
    rope: null,
    kvLayout: 'stacked',
    past: { key: past, value: past },
    present: { key: present.value.present, value: present.value.present },
    hidden,
    output: c.output,
    anchor: softmax,
    nodes,
    notes,
  };
  // NOTE: gpt2_past keeps the new K transposed ([B,H,Dh,S]); only the Megatron layout has k heads as [B,H,S,Dh].
  if (!transposed) block.heads = { q: qb.values['q.heads']!, k: kb.values['k.new']!, v: vb.values['v.new']! };
  return { ok: true, block };
}

export const gpt2UnfusedRule: LiftRule = {
  name: 'gpt2-unfused',
  anchors: (node) => unfusedKind(node) === 'stacked',
  lift,
};
