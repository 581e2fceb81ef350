/**
 * @file Helpers the passes share: the values a node reads through its subgraphs (implicit inputs), the graphs of
 * a model with where each one sits, and labels for messages (`main > /layers.0/If.then_branch`).
 */
import type { Graph } from '../ir/graph.js';
import type { Model, OnnxFunction } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import type { Value } from '../ir/value.js';

/** Subgraphs held by a node's attributes, with the attribute name. */
export function* nodeSubgraphs(node: Node): Generator<[attribute: string, graph: Graph]> {
  for (const a of node.attributes) {
    if (a.type === 'graph') yield [a.name, a.value];
    else if (a.type === 'graphs') for (const g of a.value) yield [a.name, g];
  }
}

/**
 * Values a node reads through its subgraphs, at any depth: inputs of subgraph nodes and subgraph outputs
 * (an If branch may output an outer value directly, which is no node's input). Includes values defined inside
 * the subgraphs; callers keep the ones that matter to them (e.g. produced in the node's own graph).
 */
export function subgraphReads(node: Node): Set<Value> {
  const out = new Set<Value>();
  const walk = (g: Graph) => {
    for (const v of g.outputs) out.add(v);
    for (const n of g.nodes) {
      for (const v of n.inputs) if (v) out.add(v);
      for (const [, sg] of nodeSubgraphs(n)) walk(sg);
    }
  };
  for (const [, g] of nodeSubgraphs(node)) walk(g);
  return out;
}

/** Everything a node depends on: its own inputs and what its subgraphs read. */
export function nodeReads(node: Node): Set<Value> {
  const reads = subgraphReads(node);
  for (const v of node.inputs) if (v) reads.add(v);
  return reads;
}

/** A graph of the model with its place: the enclosing function (if any), its label, and its nesting. */
export interface GraphSite {
  graph: Graph;
  /** Set for a function body and the subgraphs inside it. */
  fn: OnnxFunction | undefined;
  /** Human label: `main`, `main > If_3.then_branch`, `function ai.attnpatch::DCA`. */
  label: string;
}

/** Every graph of the model (main graph, subgraphs depth first, function bodies) with its site. */
export function* graphSites(model: Model): Generator<GraphSite> {
  const walk = function* (graph: Graph, fn: OnnxFunction | undefined, label: string): Generator<GraphSite> {
    yield { graph, fn, label };
    for (const n of graph.nodes) for (const [attr, sg] of nodeSubgraphs(n)) yield* walk(sg, fn, subgraphLabel(label, n, attr));
  };
  yield* walk(model.graph, undefined, mainGraphLabel(model));
  for (const f of model.functions) yield* walk(f.body, f, functionLabel(f));
}

/** `main graph <name>`. */
export function mainGraphLabel(model: Model): string {
  return model.graph.name ? `main graph ${model.graph.name}` : 'main graph';
}

/** `function <domain>::<name>[:<overload>]`. */
export function functionLabel(f: OnnxFunction): string {
  return `function ${f.domain}::${f.name}${f.overload ? `:${f.overload}` : ''}`;
}

/** `<parent> > <node>.<attribute>`. */
export function subgraphLabel(parent: string, node: Node, attribute: string): string {
  return `${parent} > ${nodeLabel(node)}.${attribute}`;
}

/** A node's name, or `OpType#index` for unnamed nodes. */
export function nodeLabel(node: Node): string {
  if (node.name) return node.name;
  const i = node.graph ? node.graph.nodes.indexOf(node) : -1;
  return `${node.opType}#${i}`;
}
