/**
 * @file Lift rule for eager / SDPA-decomposed Llama-family exports (Optimum, torch.onnx, transformers.js): anchored
 * on the Softmax, it reads
 *   q  = [rope] ← [q norm] ← Transpose([0,2,1,3]) ← [q norm] ← Reshape ← [Slice] ← [Add(bias)] ← MatMul(hidden, W_q)
 *   kᵀ = Transpose([0,1,3,2]) ← [repeat_kv] ← [Concat(past_key_values.N.key, ·, −2) → present.N.key] ← [rope] ← … W_k
 *   v  = [repeat_kv] ← [Concat(past …value, ·, −2)] ← Transpose ← Reshape ← [Add(bias)] ← MatMul(hidden, W_v)
 * around the core of `unfused-core.ts`, and the output projection after the head merge. Form 'sdpa' when both q
 * and kᵀ carry a √scale multiplier or the Softmax is NaN-guarded (torch SDPA decomposition), else 'unfused'.
 * Softmax anchors whose V reads a stacked GPT-2 `past_N` belong to the gpt2-unfused rule instead (`unfusedKind`).
 * [Slice]: one part of a packed qkv_proj (Phi-3); [norm]: a per-head q/k RMSNorm (`qk-norm-pattern.ts`). The mask's
 * sliding window (`mask-window.ts`) and the core's logit softcap are recorded on the block and in its notes.
 */
import type { Node } from '../../../graph/ir/node.js';
import type { Value } from '../../../graph/ir/value.js';
import { exclusiveNodes, match, op, type Bindings } from '../../../graph/pattern/index.js';
import type { LiftContext, LiftResult, LiftRule } from '../block.js';
import { cacheOf, groupSize, repeatKv, withPast } from './kv-pattern.js';
import { maskWindow } from './mask-window.js';
import { quirkFields } from '../quirks.js';
import { maybeSliced, outputProjection, projectionNodes, projectionOf, splitHeads, type Sized } from './projection-pattern.js';
import { splitHeadsMaybeNormed } from './qk-norm-pattern.js';
import { maybeRope, nodesAbove, ropeInfo } from './rope-pattern.js';
import { traceRope } from './rope-source.js';
import { failed, maskRoot, matchCore, shapeDim, unfusedKind, type Step } from './unfused-core.js';

const Q = maybeRope('q', splitHeadsMaybeNormed('q', maybeSliced('q')));
const K = op('Transpose', [repeatKv('k', withPast('k', maybeRope('k', splitHeadsMaybeNormed('k', maybeSliced('k')))))], { attrs: { perm: [0, 1, 3, 2] } });
const V = repeatKv('v', withPast('v', splitHeads('v', maybeSliced('v'))));

const positive = (x: number | undefined): number | undefined => (x !== undefined && x > 0 ? x : undefined);

/** Head size: a constant last element of a q/k/v Reshape shape, else the width of full-rotary cos/sin. */
function headDimOf(q: Bindings, k: Bindings, v: Bindings): number | undefined {
  const fromShape = positive(shapeDim(q.values['q.shape'], 3)) ?? positive(shapeDim(k.values['k.shape'], 3)) ?? positive(shapeDim(v.values['v.shape'], 3));
  if (fromShape !== undefined || q.tags['q.rope'] !== 'full') return fromShape;
  return traceRope(q.values['q.cos']!, q.values['q.sin']!, q.tags['q.rot'] === 'interleaved').rotaryDim;
}

/** Heads of one projection: the Reshape constant, else its width / Dh (which must divide). */
function headsOf(b: Bindings, p: string, width: number, dh: number): Step<number> {
  const n = positive(shapeDim(b.values[`${p}.shape`], 2)) ?? width / dh;
  if (!Number.isInteger(n) || n * dh !== width) return { ok: false, reason: `${p} projection width ${width} is not heads × head size ${dh}` };
  return { ok: true, value: n };
}

function lift(softmax: Node, ctx: LiftContext): LiftResult {
  if (softmax.attr('axis') === undefined && (ctx.model.opset('') ?? 13) < 13) return { ok: false, reason: 'Softmax over axis 1 (opset < 13 default), not the last axis' };
  const core = matchCore(softmax);
  if (!core.ok) return core;
  const c = core.value;
  const qm = match(Q, c.q);
  if (!qm.ok) return failed('q path (expected [rope] ← [norm] ← Transpose ← [norm] ← Reshape ← [Slice] ← [Add bias] ← MatMul(hidden, W_q))', qm);
  const km = match(K, c.kT);
  if (!km.ok) return failed('k path (expected Transpose ← [repeat_kv] ← [Concat(past, ·)] ← [rope] ← [norm] ← Transpose ← [norm] ← Reshape ← [Slice] ← [Add bias] ← MatMul(hidden, W_k))', km);
  const vm = match(V, c.pv.input(1));
  if (!vm.ok) return failed('v path (expected [repeat_kv] ← [Concat(past, ·)] ← Transpose ← Reshape ← [Slice] ← [Add bias] ← MatMul(hidden, W_v))', vm);
  const [qb, kb, vb] = [qm.bindings, km.bindings, vm.bindings];

  const sized: Sized[] = [];
  for (const [b, p] of [[qb, 'q'], [kb, 'k'], [vb, 'v']] as const) {
    const r = projectionOf(b, p);
    if (!r.ok) return r;
    sized.push(r.value);
  }
  const [q, k, v] = sized as [Sized, Sized, Sized];
  const projs = [q.proj, k.proj, v.proj];
  const hidden = qb.values['q.hidden']!;
  if (kb.values['k.hidden'] !== hidden || vb.values['v.hidden'] !== hidden) return { ok: false, reason: 'q, k and v projections read different inputs (not self-attention)' };

  const headDim = headDimOf(qb, kb, vb);
  if (headDim === undefined) return { ok: false, reason: 'head size unknown: no constant in the q/k/v Reshape shapes and no rope tables' };
  const numHeads = headsOf(qb, 'q', q.width, headDim);
  if (!numHeads.ok) return numHeads;
  const numKvHeads = headsOf(kb, 'k', k.width, headDim);
  if (!numKvHeads.ok) return numKvHeads;
  if (v.width !== numKvHeads.value * headDim) return { ok: false, reason: `v projection width ${v.width} differs from k's ${k.width}` };
  if (kb.tags['k.repeat'] !== vb.tags['v.repeat']) return { ok: false, reason: 'repeat_kv on only one of k and v' };
  const g = groupSize(kb, 'k') ?? numHeads.value / numKvHeads.value;
  if (numHeads.value !== numKvHeads.value * g) return { ok: false, reason: `${numHeads.value} query heads are not ${numKvHeads.value} KV heads × group ${g}` };

  const graph = softmax.graph!;
  const kc = cacheOf(kb, 'k', graph.outputs);
  const vc = cacheOf(vb, 'v', graph.outputs);
  if (!kc !== !vc) return { ok: false, reason: 'only one of k and v is concatenated with a past cache' };
  const packed = [q, k, v].filter((x) => x.proj.columns).length;
  if (packed && (packed < 3 || q.output !== k.output || k.output !== v.output)) return { ok: false, reason: 'q, k and v are not all cut from one packed projection' };
  const notes: string[] = [`mask=${c.mask}`];
  const win = maskWindow(c.maskValue ?? c.maskCondition);
  if (!win.ok) return win;
  const quirks = quirkFields({ window: win.window, softcap: c.softcap });
  notes.push(...quirks.notes);
  // Per-head q/k RMSNorm (Qwen3, Gemma 3): the norm sits between the projection and rope.
  const qkNorm = qb.tags['q.qkNorm'] !== 'none' || kb.tags['k.qkNorm'] !== 'none';
  if (qkNorm) notes.push('qk-norm');
  if (kc && (!kc.present || !vc?.present)) notes.push('present-not-graph-output');

  const rope = ropeInfo(qb, kb, headDim);
  if (!rope.ok) return rope;

  const o = outputProjection(c.output);
  if (!o.ok) notes.push(o.reason);
  const owned = new Set<Node>([...projs.flatMap(projectionNodes), ...(o.ok ? projectionNodes(o.value) : [])]);
  const stopAt = new Set<Value>([hidden, ...sized.map((p) => p.output), ...(rope.value?.roots ?? [])]);
  const mask = maskRoot(c.maskValue);
  if (mask) stopAt.add(mask);
  const seeds = [...c.nodes, ...qm.nodes, ...km.nodes, ...vm.nodes].filter((n) => !owned.has(n));
  const nodes = exclusiveNodes(seeds, { stopAt, exclude: owned, graphOutputs: graph.outputs });
  if (rope.value) rope.value.info.nodes = nodesAbove(rope.value.tops, rope.value.inputs, nodes);

  return {
    ok: true,
    block: {
      form: (c.scaledQ && c.scaledK) || c.nanGuard ? 'sdpa' : 'unfused',
      numHeads: numHeads.value,
      numKvHeads: numKvHeads.value,
      headDim,
      scale: c.scale,
      qkvPacking: packed ? 'packed' : 'separate',
      q: q.proj,
      k: k.proj,
      v: v.proj,
      o: o.ok ? o.value : null,
      rope: rope.value?.info ?? null,
      kvLayout: 'bnsh',
      past: kc && vc ? { key: kc.past, value: vc.past } : null,
      present: kc?.present && vc?.present ? { key: kc.present, value: vc.present } : null,
      hidden,
      heads: { q: qb.values['q.roped']!, k: kb.values['k.new']!, v: vb.values['v.new']! },
      ...(qkNorm ? { normedHeads: { q: qb.values['q.heads']!, k: kb.values['k.heads']! } } : {}),
      output: c.output,
      anchor: softmax,
      nodes,
      notes,
      ...quirks.fields,
    },
  };
}

export const optimumUnfusedRule: LiftRule = {
  name: 'optimum-unfused',
  anchors: (node) => unfusedKind(node) === 'bnsh',
  lift,
};
