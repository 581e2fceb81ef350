/**
 * @file Rotary embedding as unfused exports apply it per layer: `Add(Mul(x, cos), Mul(rotate(x), sin))` where
 * rotate is rotate_half (`Concat(Neg(Slice(x, Dh/2:)), Slice(x, :Dh/2))`, half-split pairs i, i + d/2) or
 * rotate_every_two (`Reshape(Concat(Unsqueeze(Neg(Slice(x, 1::2))), Unsqueeze(Slice(x, ::2))))`, interleaved
 * pairs 2i, 2i+1); partial rotary wraps it as `Concat(rope(Slice(x, :rd)), Slice(x, rd:))`. Then `ropeInfo`
 * assembles RopeInfo for q and k from what the patterns bound and where cos/sin come from.
 */
import type { Node } from '../../../graph/ir/node.js';
import type { Value } from '../../../graph/ir/value.js';
import { any, cap, oneOf, op, type Bindings, type Pattern } from '../../../graph/pattern/index.js';
import type { RopeInfo } from '../block.js';
import { constInts } from '../const.js';
import { traceRope } from './rope-source.js';
import type { Step } from './unfused-core.js';

/** rotate(x) for the value bound as `${p}.x`; tag `${p}.rot` = 'half' | 'interleaved'. */
function rotate(p: string): Pattern {
  const x = any(`${p}.x`);
  const half = op('Concat', [op('Neg', [op('Slice', [x])]), op('Slice', [x])]);
  const pairs = op('Concat', [op('Unsqueeze', [op('Neg', [op('Slice', [x])])]), op('Unsqueeze', [op('Slice', [x])])]);
  const interleaved = op(['Reshape', 'Flatten'], [pairs]);
  return oneOf([half, interleaved], { tag: `${p}.rot`, labels: ['half', 'interleaved'] });
}

/** `Add(Mul(x, cos), Mul(rotate(x), sin))` with x matching `x`; binds `${p}.cos`, `${p}.sin`, `${p}.add`. */
function ropeAdd(p: string, x: Pattern): Pattern {
  const mulCos = op('Mul', [cap(`${p}.x`, x), any(`${p}.cos`)], { commute: true });
  const mulSin = op('Mul', [rotate(p), any(`${p}.sin`)], { commute: true });
  return op('Add', [mulCos, mulSin], { commute: true, as: `${p}.add` });
}

/**
 * `heads` with rope applied, partially applied, or not at all: tag `${p}.rope` = 'partial' | 'full' | 'none'.
 * Binds `${p}.roped` (the result: what attention reads for this side before the cache).
 */
export function maybeRope(p: string, heads: Pattern): Pattern {
  const full = any(`${p}.full`);
  const partial = op('Concat', [ropeAdd(p, op('Slice', [cap(`${p}.full`, heads)], { as: `${p}.rotSlice` })), op('Slice', [full])], { as: `${p}.partial` });
  return cap(`${p}.roped`, oneOf([partial, ropeAdd(p, heads), heads], { tag: `${p}.rope`, labels: ['partial', 'full', 'none'] }));
}

export interface RopeFound {
  info: RopeInfo;
  /** The per-layer rope result nodes (Add, or the partial Concat) for q and k. */
  tops: Node[];
  /** Where rope nodes stop: the un-roped heads of q and k. */
  inputs: Value[];
  /** Model-level cos/sin (or tables) the block reads but does not own. */
  roots: Value[];
}

/** RopeInfo from the q and k rope matches (null when neither side has rope); `headDim` for full rotary. */
export function ropeInfo(q: Bindings, k: Bindings, headDim: number): Step<RopeFound | null> {
  const qTag = q.tags['q.rope'];
  const kTag = k.tags['k.rope'];
  if (qTag === 'none' && kTag === 'none') return { ok: true, value: null };
  if (qTag === 'none' || kTag === 'none') return { ok: false, reason: `rope: q has ${qTag} rope, k has ${kTag}` };
  if (q.tags['q.rot'] !== k.tags['k.rot']) return { ok: false, reason: `rope: q rotates ${q.tags['q.rot']}, k rotates ${k.tags['k.rot']}` };
  const interleaved = q.tags['q.rot'] === 'interleaved';
  const cos = q.values['q.cos']!;
  const sin = q.values['q.sin']!;
  const src = traceRope(cos, sin, interleaved);
  const kSrc = traceRope(k.values['k.cos']!, k.values['k.sin']!, interleaved);
  if (src.roots.some((r, i) => r !== kSrc.roots[i])) return { ok: false, reason: 'rope: q and k read different cos/sin' };
  const sliceEnd = qTag === 'partial' ? constInts(q.ops['q.rotSlice']?.input(2))?.[0] : undefined;
  const rotaryDim = src.rotaryDim ?? sliceEnd ?? (qTag === 'full' ? headDim : undefined);
  if (rotaryDim === undefined) return { ok: false, reason: 'rope: partial rotary with an unknown rotary dim' };
  if (rotaryDim > headDim || rotaryDim % 2) return { ok: false, reason: `rope: rotary dim ${rotaryDim} does not fit head size ${headDim}` };
  if (qTag === 'full' && rotaryDim !== headDim) return { ok: false, reason: `rope: cos/sin cover ${rotaryDim} dims but rope rotates all ${headDim}` };
  const info: RopeInfo = { interleaved, rotaryDim, source: src.source, nodes: [] };
  if (src.theta !== undefined) info.theta = src.theta;
  const top = (b: Bindings, p: string) => (b.tags[`${p}.rope`] === 'partial' ? b.ops[`${p}.partial`] : b.ops[`${p}.add`])!;
  const input = (b: Bindings, p: string) => (b.tags[`${p}.rope`] === 'partial' ? b.values[`${p}.full`] : b.values[`${p}.x`])!;
  return { ok: true, value: { info, tops: [top(q, 'q'), top(k, 'k')], inputs: [input(q, 'q'), input(k, 'k')], roots: src.roots } };
}

/** Nodes of `owned` reachable upward from `tops` without crossing `stops`: the rope nodes a block owns. */
export function nodesAbove(tops: readonly Node[], stops: readonly Value[], owned: ReadonlySet<Node>): Node[] {
  const out = new Set<Node>();
  const stack = tops.filter((n) => owned.has(n));
  for (const n of stack) out.add(n);
  while (stack.length) {
    for (const v of stack.pop()!.inputs) {
      const p = v?.producer;
      if (!v || !p || stops.includes(v) || out.has(p) || !owned.has(p)) continue;
      out.add(p);
      stack.push(p);
    }
  }
  return [...out];
}
