/**
 * @file Tiny graph builders for tests: `op(g, 'Add', [a, b], ['c'])` appends a node and returns it.
 * Used by the pass unit tests and the bad-input suite.
 */
import { attr } from '../../src/graph/ir/attribute.js';
import { Graph } from '../../src/graph/ir/graph.js';
import { Model, OnnxFunction } from '../../src/graph/ir/model.js';
import { Node, type Input } from '../../src/graph/ir/node.js';
import { tensorType } from '../../src/graph/ir/types.js';
import type { Value } from '../../src/graph/ir/value.js';
import { DataType } from '../../src/graph/ir/dtype.js';
import { MemoryTensor } from '../../src/graph/tensor/tensor.js';

/** Appends a node to `g`; outputs are names. */
export function op(g: Graph, opType: string, inputs: readonly Input[], outputs: readonly string[], init: { name?: string; domain?: string } = {}): Node {
  const n = new Node({ opType, inputs, outputs, name: init.name ?? outputs[0] ?? opType, ...(init.domain === undefined ? {} : { domain: init.domain }) });
  g.insert(n);
  return n;
}

/** A float input of shape [2]. */
export function input(g: Graph, name: string): Value {
  return g.addInput(name, tensorType(DataType.FLOAT, [2]));
}

/** A float [2] initializer. */
export function weight(g: Graph, name: string): Value {
  return g.addInitializer(name, new MemoryTensor(DataType.FLOAT, [2], new Uint8Array(8)));
}

/** A model around `g` importing the default domain (opset 21) plus `extra`. */
export function modelOf(g: Graph, extra: Record<string, number> = {}): Model {
  return new Model(g, { opsetImports: { '': 21, ...extra } });
}

/** An If node on `cond` holding `then` and `else` subgraphs (each owned by the node). */
export function ifNode(g: Graph, cond: Value, thenBranch: Graph, elseBranch: Graph, out: string): Node {
  const n = new Node({ opType: 'If', name: out, inputs: [cond], outputs: [out], attributes: [attr.graph('then_branch', thenBranch), attr.graph('else_branch', elseBranch)] });
  thenBranch.owner = n;
  elseBranch.owner = n;
  g.insert(n);
  return n;
}

/** A model-local function `domain::name` with body built by `build(body, x)` from one input `x`. */
export function localFunction(domain: string, name: string, build: (body: Graph, x: Value) => Value, imports: Record<string, number> = { '': 21 }): OnnxFunction {
  const f = new OnnxFunction(name, domain);
  const x = f.body.addInput('x');
  f.body.outputs.push(build(f.body, x));
  for (const [d, v] of Object.entries(imports)) f.opsetImports.set(d, v);
  return f;
}

/** Node names of a graph, in order. */
export const names = (g: Graph): string[] => g.nodes.map((n) => n.name);
