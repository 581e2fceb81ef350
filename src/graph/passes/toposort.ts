/**
 * @file Stable topological sort of every graph of a model: the main graph, each subgraph and each function body.
 *
 * Cases:
 * - a node comes after the producers of its inputs;
 * - a node holding subgraphs comes after the producers of every outer value its subgraphs read, at any depth
 *   (ONNX implicit inputs), including subgraph outputs that are outer values;
 * - among nodes that are ready, the one earliest in the current order goes first, so an already sorted graph
 *   keeps its order exactly;
 * - a cycle throws `CYCLE`, naming the graph and the nodes on the cycle.
 */
import { AttnpatchError } from '../../errors.js';
import type { Graph } from '../ir/graph.js';
import type { Node } from '../ir/node.js';
import type { Pass } from './pass.js';
import { graphSites, nodeLabel, nodeReads } from './walk.js';

/** For each node (by index), the indices of the nodes of the same graph it depends on. */
function predecessors(nodes: readonly Node[]): number[][] {
  const index = new Map(nodes.map((n, i) => [n, i]));
  return nodes.map((node) => {
    const preds = new Set<number>();
    for (const v of nodeReads(node)) {
      const j = v.producer ? index.get(v.producer) : undefined;
      if (j !== undefined) preds.add(j);
    }
    return [...preds];
  });
}

/** Follows unsorted predecessors from an unsorted node until one repeats; returns the cycle in data-flow order. */
function findCycle(nodes: readonly Node[], preds: readonly number[][], unsorted: ReadonlySet<number>): Node[] {
  const start = unsorted.values().next().value!;
  const path: number[] = [];
  const at = new Map<number, number>();
  let i = start;
  while (!at.has(i)) {
    at.set(i, path.length);
    path.push(i);
    // NOTE: an unsorted node always has an unsorted predecessor, or Kahn's algorithm would have emitted it.
    i = preds[i]!.find((j) => unsorted.has(j))!;
  }
  const cycle = path.slice(at.get(i)).reverse();
  // Start at the node that comes first in the graph, so the message does not depend on where the walk began.
  const first = cycle.indexOf(Math.min(...cycle));
  return [...cycle.slice(first), ...cycle.slice(0, first)].map((j) => nodes[j]!);
}

/** The CYCLE error for a cycle through the given nodes (in data-flow order). */
export function cycleError(cycle: readonly Node[], label: string): AttnpatchError {
  const names = cycle.map(nodeLabel);
  const shown = names.length > 6 ? [...names.slice(0, 6), '…'] : names;
  const first = cycle[0]!;
  const last = cycle[cycle.length - 1]!;
  const link = first.inputs.find((v) => v?.producer === last) ?? last.outputs.find((v) => v !== null);
  return new AttnpatchError(
    'CYCLE',
    `the graph has a cycle of ${cycle.length} node(s): ${[...shown, names[0]].join(' -> ')}${link ? ` (node ${names[0]} reads ${link.name})` : ''}`,
    { graph: label, node: names[0]! },
  );
}

/** Min-heap of node indices: the ready node earliest in the current order comes out first. */
class IndexHeap {
  private readonly a: number[] = [];
  get size(): number {
    return this.a.length;
  }
  push(x: number): void {
    const a = this.a;
    let i = a.push(x) - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]! <= x) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = x;
  }
  pop(): number {
    const a = this.a;
    const top = a[0]!;
    const x = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const c = l + 1 < a.length && a[l + 1]! < a[l]! ? l + 1 : l;
        if (a[c]! >= x) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = x;
    }
    return top;
  }
}

/**
 * Kahn's algorithm over one graph's nodes, taking the earliest ready node first: the indices of `nodes` in
 * sorted order, or the nodes of one cycle (in data-flow order) when there is none.
 */
export function topologicalOrder(nodes: readonly Node[]): { order: number[] } | { cycle: Node[] } {
  const preds = predecessors(nodes);
  const succs: number[][] = nodes.map(() => []);
  const waiting = new Int32Array(nodes.length);
  preds.forEach((ps, i) => {
    waiting[i] = ps.length;
    for (const j of ps) succs[j]!.push(i);
  });
  const ready = new IndexHeap();
  for (let i = 0; i < nodes.length; i++) if (waiting[i] === 0) ready.push(i);
  const order: number[] = [];
  while (ready.size > 0) {
    const i = ready.pop();
    order.push(i);
    for (const s of succs[i]!) if (--waiting[s]! === 0) ready.push(s);
  }
  if (order.length === nodes.length) return { order };
  const unsorted = new Set<number>();
  for (let i = 0; i < nodes.length; i++) if (waiting[i]! > 0) unsorted.add(i);
  return { cycle: findCycle(nodes, preds, unsorted) };
}

/**
 * Sorts one graph's nodes in place (subgraphs are not visited; see {@link toposort}). Returns how many nodes
 * changed position; throws CYCLE naming `label` and the nodes on a cycle.
 */
export function sortGraph(graph: Graph, label = graph.name || 'graph'): number {
  const result = topologicalOrder(graph.nodes);
  if ('cycle' in result) throw cycleError(result.cycle, label);
  let moved = 0;
  result.order.forEach((j, i) => {
    if (i !== j) moved++;
  });
  if (moved > 0) {
    const sorted = result.order.map((j) => graph.nodes[j]!);
    graph.nodes.length = 0;
    graph.nodes.push(...sorted);
  }
  return moved;
}

/** Sorts every graph of the model (main graph, subgraphs, function bodies); `count` is the number of nodes moved. */
export const toposort: Pass = {
  name: 'toposort',
  run(model) {
    let moved = 0;
    for (const site of graphSites(model)) moved += sortGraph(site.graph, site.label);
    return { modified: moved > 0, count: moved };
  },
};
