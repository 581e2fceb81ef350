/**
 * @file The sliding window of an unfused block, read from its model-level mask. transformers ≥ 4.53 builds the mask
 * of a sliding layer from `kv_idx > q_idx − W` (`sliding_window_overlay`), which exports as
 * `Greater(k, Sub(q, W))` (or `Less(Sub(q, W), k)`) with a constant W, combined with the causal and padding terms.
 * The window is found by searching the mask's producers (a bounded walk that stops at graph inputs) for that
 * comparison. A mask with no such comparison is full causal; two different windows in one mask are not guessed at.
 */
import type { Node } from '../../../graph/ir/node.js';
import type { Value } from '../../../graph/ir/value.js';
import { constInts } from '../const.js';

/** Nodes visited at most: the model-level mask is a few dozen ops, at most a few hundred. */
const MAX_NODES = 256;

/** W when `cmp` says `k > q − W` (Greater(k, Sub(q, W)) or Less(Sub(q, W), k)). */
function windowOf(cmp: Node): number | undefined {
  const sub = cmp.opType === 'Greater' ? cmp.input(1)?.producer : cmp.opType === 'Less' ? cmp.input(0)?.producer : undefined;
  if (!sub || sub.opType !== 'Sub') return undefined;
  const w = constInts(sub.input(1));
  return w?.length === 1 && w[0]! > 0 ? w[0] : undefined;
}

export type MaskWindow = { ok: true; window: number | undefined } | { ok: false; reason: string };

/** The sliding window the mask applies, undefined for a full causal mask. */
export function maskWindow(mask: Value | null): MaskWindow {
  const seen = new Set<Node>();
  const stack: Node[] = mask?.producer ? [mask.producer] : [];
  const found = new Set<number>();
  while (stack.length && seen.size < MAX_NODES) {
    const n = stack.pop()!;
    if (seen.has(n)) continue;
    seen.add(n);
    const w = windowOf(n);
    if (w !== undefined) found.add(w);
    for (const v of n.inputs) if (v?.producer && !seen.has(v.producer)) stack.push(v.producer);
  }
  if (found.size > 1) return { ok: false, reason: `mask: several sliding windows (${[...found].join(', ')}) in one mask` };
  return { ok: true, window: [...found][0] };
}
