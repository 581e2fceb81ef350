/**
 * @file The sliding window of a block, read from its mask (an unfused model-level mask, or opset-24 Attention's). transformers ≥ 4.53 builds the mask
 * of a sliding layer from `kv_idx > q_idx − W` (`sliding_window_overlay`), which exports as
 * `Greater(k, Sub(q, W))` (or `Less(Sub(q, W), k)`, `Add(q, −W)`, `Less(Sub(q, k), W)`, `LessOrEqual(Sub(q, k), W − 1)`)
 * with a constant W, combined
 * with the causal and padding terms.
 * The window is found by searching the mask's producers (a bounded walk that stops at graph inputs) for that
 * comparison. A mask with no such comparison is full causal; two different windows in one mask are not guessed at.
 */
import type { Node } from '../../../graph/ir/node.js';
import type { Value } from '../../../graph/ir/value.js';
import { constInts } from '../const.js';

/** Nodes visited at most: the model-level mask is a few dozen ops, at most a few hundred. */
const MAX_NODES = 256;

/** A positive integer constant W behind `v`, or −W behind `v` when `negated`. */
function constW(v: Value | null, negated = false): number | undefined {
  const c = constInts(v);
  const w = c?.length === 1 ? (negated ? -c[0]! : c[0]!) : undefined;
  return w !== undefined && w > 0 ? w : undefined;
}

/** The constant W of `q − W` (Sub(q, W) or Add(q, −W)). */
function minusW(v: Value | null): number | undefined {
  const n = v?.producer;
  if (n?.opType === 'Sub') return constW(n.input(1));
  if (n?.opType === 'Add') return constW(n.input(1), true) ?? constW(n.input(0), true);
  return undefined;
}

/**
 * W when `cmp` says `k > q − W`: Greater(k, q − W), Less(q − W, k), or `q − k < W`: Less(Sub(q, k), W),
 * Greater(W, Sub(q, k)).
 */
function windowOf(cmp: Node): number | undefined {
  const [a, b] = [cmp.input(0), cmp.input(1)];
  if (cmp.opType === 'Greater') return minusW(b) ?? (a && b?.producer?.opType === 'Sub' ? constW(a) : undefined);
  if (cmp.opType === 'Less') return minusW(a) ?? (b && a?.producer?.opType === 'Sub' ? constW(b) : undefined);
  // `q − k ≤ W − 1` (the opset-24 Attention masks write it this way).
  if (cmp.opType === 'LessOrEqual' && a?.producer?.opType === 'Sub') {
    const c = constInts(b);
    return c?.length === 1 && c[0]! >= 0 ? c[0]! + 1 : undefined;
  }
  return undefined;
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
  if (found.size > 1) return { ok: false, reason: `mask: several sliding windows (${[...found].sort((x, y) => x - y).join(', ')}) in one mask` };
  return { ok: true, window: [...found][0] };
}
