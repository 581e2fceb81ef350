/**
 * @file Finds every attention block of a model: runs each lift rule on the nodes it anchors, numbers the
 * blocks by layer, and reports every anchor that could not be lifted with the reason.
 */
import type { Model } from '../../graph/ir/model.js';
import type { Node } from '../../graph/ir/node.js';
import type { AttentionBlock, LiftFailure, LiftRule } from './block.js';
import { LIFT_RULES } from './rules/index.js';

export interface LiftReport {
  blocks: AttentionBlock[];
  unsupported: LiftFailure[];
}

/** Layer index from a cache name like `past_key_values.3.key`, `present.3.value` or `past_3`. */
export function layerFromName(name: string): number | undefined {
  const m = /(?:past_key_values|present|past|key_cache|value_cache)[._](\d+)/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** Lifts every attention block of the main graph (and of subgraphs, e.g. If branches). */
export function liftAttention(model: Model, rules: readonly LiftRule[] = LIFT_RULES): LiftReport {
  const blocks: AttentionBlock[] = [];
  const unsupported: LiftFailure[] = [];
  const claimed = new Set<Node>();
  for (const graph of model.allGraphs()) {
    for (const node of graph.nodes) {
      if (claimed.has(node)) continue;
      for (const rule of rules) {
        if (!rule.anchors(node)) continue;
        const r = rule.lift(node, { model });
        if (r.ok) {
          const b = r.block;
          const layer = b.layer ?? (b.past ? layerFromName(b.past.key.name) : undefined) ?? (b.present ? layerFromName(b.present.key.name) : undefined);
          blocks.push({ ...b, layer: layer ?? -1 });
          for (const n of b.nodes) claimed.add(n);
        } else {
          unsupported.push({ node: node.name || `${node.opType}#${graph.nodes.indexOf(node)}`, reason: `${rule.name}: ${r.reason}` });
        }
        break;
      }
    }
  }
  // Blocks without a cache name are numbered in graph order after the named ones.
  let next = Math.max(-1, ...blocks.map((b) => b.layer)) + 1;
  for (const b of blocks) if (b.layer < 0) b.layer = next++;
  blocks.sort((a, b) => a.layer - b.layer);
  return { blocks, unsupported };
}
