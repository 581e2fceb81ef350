/**
 * @file Walking down and sideways, which patterns (that read upward) cannot do: `consumerOf` finds the node of a
 * given op that consumes a value, possibly through pass-through ops (Softmax → Cast → Cast → MatMul), and
 * `exclusiveNodes` grows a set of nodes by the producers that exist only to feed it (shape arithmetic, per-layer
 * constants), which is what can be removed together with the set.
 */
import type { Node } from '../ir/node.js';
import type { Value } from '../ir/value.js';

export type Found = { ok: true; node: Node; via: Node[] } | { ok: false; reason: string };

export interface ConsumerOptions {
  /** Ops walked through (their output 0), e.g. ['Cast']. */
  through?: readonly string[];
  /** Input slot the found node must read the value in. */
  index?: number;
  /** Pass-through hops allowed (default 4). */
  maxDepth?: number;
}

/**
 * The one node of `ops` reading `value` (directly or through `through` ops), breadth first; `via` lists the
 * pass-through nodes on the way. Several candidates at the nearest depth is a failure (ambiguous).
 */
export function consumerOf(value: Value, ops: string | readonly string[], options: ConsumerOptions = {}): Found {
  const want = typeof ops === 'string' ? [ops] : ops;
  const through = options.through ?? [];
  const seen = new Set<Node>();
  let frontier: { value: Value; via: Node[] }[] = [{ value, via: [] }];
  for (let depth = 0; depth <= (options.maxDepth ?? 4) && frontier.length; depth++) {
    const hits: { node: Node; via: Node[] }[] = [];
    const next: typeof frontier = [];
    for (const f of frontier) {
      for (const use of f.value.uses()) {
        const n = use.node;
        if (want.includes(n.opType) && (options.index === undefined || use.index === options.index)) {
          if (!hits.some((h) => h.node === n)) hits.push({ node: n, via: f.via });
        } else if (through.includes(n.opType) && !seen.has(n)) {
          seen.add(n);
          const out = n.outputs[0];
          if (out) next.push({ value: out, via: [...f.via, n] });
        }
      }
    }
    if (hits.length === 1) return { ok: true, ...hits[0]! };
    if (hits.length > 1) {
      return { ok: false, reason: `'${value.name}' feeds ${hits.length} ${want.join('/')} nodes (${hits.map((h) => h.node.name || h.node.opType).join(', ')})` };
    }
    frontier = next;
  }
  const via = through.length ? ` (through ${through.join(', ')})` : '';
  return { ok: false, reason: `no ${want.join(' or ')} reads '${value.name}'${via}` };
}

export interface ClosureOptions {
  /** Values whose producers are never added (e.g. the hidden state, shared rope tables). */
  stopAt?: ReadonlySet<Value>;
  /** Nodes never added (e.g. projections the caller reports separately). */
  exclude?: ReadonlySet<Node>;
  /** Graph outputs: a node producing one is never added. */
  graphOutputs?: readonly Value[];
}

/**
 * `seeds` plus, transitively, every producer of their inputs whose outputs are read only by nodes in the set
 * (and are not graph outputs): the nodes that exist only to feed the seeds.
 */
export function exclusiveNodes(seeds: Iterable<Node>, options: ClosureOptions = {}): Set<Node> {
  const set = new Set<Node>(seeds);
  const stack = [...set];
  const outputs = new Set(options.graphOutputs ?? []);
  const owned = (n: Node): boolean =>
    n.outputs.every((o) => !o || (!outputs.has(o) && o.uses().every((u) => set.has(u.node))));
  while (stack.length) {
    const node = stack.pop()!;
    for (const v of node.inputs) {
      const p = v?.producer;
      if (!v || !p || set.has(p) || options.stopAt?.has(v) || options.exclude?.has(p)) continue;
      if (!owned(p)) continue;
      set.add(p);
      stack.push(p);
    }
  }
  return set;
}
