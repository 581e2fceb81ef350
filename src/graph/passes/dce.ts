/**
 * @file Dead code elimination: removes what no graph output depends on.
 *
 * Cases:
 * - a node is live when one of its outputs is a main-graph output or is read by a live node; a live node holding
 *   subgraphs makes those subgraphs' outputs live, so what the subgraphs read from outer scopes stays;
 * - nodes inside subgraphs and function bodies are kept only when they reach their graph's outputs;
 * - a model-local function is live when a live node (anywhere, function bodies included) calls it; others go;
 * - an initializer goes when nothing live reads it, unless it is also a graph input (callers may override it);
 * - ONNX operators have no side effects, so nothing else keeps a node alive.
 */
import type { Graph } from '../ir/graph.js';
import type { Model, OnnxFunction } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import type { Value } from '../ir/value.js';
import type { Pass, PassResult } from './pass.js';
import { graphSites, nodeSubgraphs } from './walk.js';

/** How much dead code was removed, by kind (subgraph nodes included in `nodes`). */
export interface DceCounts {
  nodes: number;
  initializers: number;
  functions: number;
}

interface Live {
  nodes: Set<Node>;
  values: Set<Value>;
  functions: Set<OnnxFunction>;
}

/** Marks everything the main graph's outputs depend on, through subgraphs and function calls. */
function markLive(model: Model): Live {
  const live: Live = { nodes: new Set(), values: new Set(), functions: new Set() };
  const work: Value[] = [...model.graph.outputs];
  const markNode = (n: Node) => {
    live.nodes.add(n);
    for (const v of n.inputs) if (v) work.push(v);
    for (const [, sg] of nodeSubgraphs(n)) work.push(...sg.outputs);
    const f = model.findFunction(n.domain, n.opType, n.overload);
    if (f && !live.functions.has(f)) {
      live.functions.add(f);
      work.push(...f.body.outputs);
    }
  };
  for (let v = work.pop(); v; v = work.pop()) {
    if (live.values.has(v)) continue;
    live.values.add(v);
    if (v.producer && !live.nodes.has(v.producer)) markNode(v.producer);
  }
  return live;
}

/** Removes dead nodes, unused initializers and unused model-local functions; returns what it removed. */
export function eliminateDeadCode(model: Model): DceCounts {
  const live = markLive(model);
  const counts: DceCounts = { nodes: 0, initializers: 0, functions: 0 };

  const unused = model.functions.filter((f) => !live.functions.has(f));
  counts.functions = unused.length;
  if (unused.length) {
    const keep = model.functions.filter((f) => live.functions.has(f));
    model.functions.length = 0;
    model.functions.push(...keep);
  }

  // NOTE: collect the graphs first: subgraphs of dead nodes are visited too, so that their nodes let go of the
  // outer values they read (those uses would otherwise keep initializers alive).
  const graphs: Graph[] = [...graphSites(model)].map((s) => s.graph);
  for (const g of graphs) {
    const dead = g.nodes.filter((n) => !live.nodes.has(n));
    if (dead.length === 0) continue;
    counts.nodes += dead.length;
    // Unsafe removal: a dead subgraph's outputs are produced by its own dead nodes, which the safe check refuses.
    g.remove(dead, { safe: false });
  }

  for (const { graph } of graphSites(model)) {
    for (const v of [...graph.initializers.values()]) {
      if (live.values.has(v) || v.useCount > 0 || graph.inputs.includes(v)) continue;
      graph.removeInitializer(v);
      counts.initializers++;
    }
  }
  return counts;
}

/** DCE as a pass: `count` is nodes + initializers + functions removed; `removed` has the breakdown. */
export const dce: Pass & { run(model: Model): PassResult & { removed: DceCounts } } = {
  name: 'dce',
  run(model) {
    const removed = eliminateDeadCode(model);
    const count = removed.nodes + removed.initializers + removed.functions;
    return { modified: count > 0, count, removed };
  },
};
