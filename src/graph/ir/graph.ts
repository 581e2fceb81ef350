/**
 * @file A Graph: ordered nodes, inputs, outputs, initializers and typed intermediate values. Subgraphs (If,
 * Loop, Scan bodies) are Graphs whose `owner` is the node holding them; their nodes may use outer values
 * directly, and those uses are recorded on the outer Value like any other.
 */
import type { Tensor } from '../tensor/tensor.js';
import type { Node } from './node.js';
import type { ValueType } from './types.js';
import { Value, type Use } from './value.js';

export class Graph {
  name: string;
  readonly nodes: Node[] = [];
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  /** Initializers by name, in file order. */
  readonly initializers = new Map<string, Value>();
  /** Values listed in value_info (types of intermediates), in file order. */
  readonly valueInfo: Value[] = [];
  /** The node holding this graph as an attribute, for subgraphs. */
  owner: Node | null = null;
  /** Extras that serde carries across a round trip; never read by passes. */
  source: unknown;

  constructor(name = '') {
    this.name = name;
  }

  /** Adds a graph input. */
  addInput(name: string, type?: ValueType): Value {
    const v = new Value(name, type);
    this.inputs.push(v);
    return v;
  }

  /** Adds an initializer holding `tensor`. */
  addInitializer(name: string, tensor: Tensor, type?: ValueType): Value {
    if (this.initializers.has(name)) throw new Error(`initializer ${name} already exists`);
    const v = new Value(name, type);
    v.initializer = tensor;
    this.initializers.set(name, v);
    return v;
  }

  /** Removes an initializer that nothing uses any more. */
  removeInitializer(v: Value): void {
    if (v.useCount > 0) throw new Error(`initializer ${v.name} still has ${v.useCount} uses`);
    this.initializers.delete(v.name);
    this.dropValueInfo(v);
    const i = this.inputs.indexOf(v);
    if (i >= 0) this.inputs.splice(i, 1);
  }

  /** Appends nodes, or inserts them before `before`. */
  insert(nodes: Node | readonly Node[], before?: Node): void {
    const list = Array.isArray(nodes) ? nodes : [nodes as Node];
    for (const n of list) {
      if (n.graph && n.graph !== this) throw new Error(`${n} already belongs to another graph`);
      n.graph = this;
    }
    const at = before ? this.nodes.indexOf(before) : -1;
    if (at < 0) this.nodes.push(...list);
    else this.nodes.splice(at, 0, ...list);
  }

  /** Inserts nodes right after `after`. */
  insertAfter(after: Node, nodes: Node | readonly Node[]): void {
    const i = this.nodes.indexOf(after);
    const next = i >= 0 ? this.nodes[i + 1] : undefined;
    this.insert(nodes, next);
  }

  /**
   * Removes nodes. With `safe` (default) it first checks that no output of a removed node is still used
   * by a node that stays or is a graph output, and changes nothing if one is.
   */
  remove(nodes: Node | readonly Node[], options: { safe?: boolean } = {}): void {
    const list = Array.isArray(nodes) ? nodes : [nodes as Node];
    const doomed = new Set(list);
    if (options.safe !== false) {
      for (const n of list) {
        for (const out of n.outputs) {
          if (!out) continue;
          const live = out.uses().find((u: Use) => !doomed.has(u.node));
          if (live) throw new Error(`cannot remove ${n}: output ${out.name} is used by ${live.node}`);
          if (this.outputs.includes(out)) throw new Error(`cannot remove ${n}: output ${out.name} is a graph output`);
        }
      }
    }
    for (const n of list) {
      n.clearInputs();
      n.graph = null;
      for (const out of n.outputs) if (out) this.dropValueInfo(out);
    }
    const keep = this.nodes.filter((n) => !doomed.has(n));
    this.nodes.length = 0;
    this.nodes.push(...keep);
  }

  private dropValueInfo(v: Value): void {
    const i = this.valueInfo.indexOf(v);
    if (i >= 0) this.valueInfo.splice(i, 1);
  }

  /**
   * Points every use of `from` at `to`. Graph outputs are replaced too unless `graphOutputs` is false; the
   * replacement then takes over the old name, so the names runtimes look up (`present.0.key`, `logits`) survive.
   */
  replaceAllUsesWith(from: Value, to: Value, options: { graphOutputs?: boolean } = {}): void {
    for (const u of from.uses()) u.node.setInput(u.index, to);
    if (options.graphOutputs === false) return;
    for (let i = 0; i < this.outputs.length; i++) {
      if (this.outputs[i] !== from) continue;
      const name = from.name;
      from.name = `${name}__replaced`;
      to.name = name;
      to.type ??= from.type;
      this.outputs[i] = to;
    }
  }

  /** The value with this name defined in this graph (input, initializer or node output), if any. */
  findValue(name: string): Value | undefined {
    return this.inputs.find((v) => v.name === name) ?? this.initializers.get(name) ?? this.producedValue(name);
  }

  private producedValue(name: string): Value | undefined {
    for (const n of this.nodes) for (const o of n.outputs) if (o?.name === name) return o;
    return undefined;
  }

  /** Graph input by name. */
  input(name: string): Value | undefined {
    return this.inputs.find((v) => v.name === name);
  }

  /** Graph output by name. */
  output(name: string): Value | undefined {
    return this.outputs.find((v) => v.name === name);
  }

  /** Every node of this graph and, depth first, of its subgraphs. */
  *allNodes(): Generator<Node> {
    for (const n of this.nodes) {
      yield n;
      for (const a of n.attributes) {
        if (a.type === 'graph') yield* a.value.allNodes();
        else if (a.type === 'graphs') for (const g of a.value) yield* g.allNodes();
      }
    }
  }

  /** Direct subgraphs of this graph's nodes. */
  *subgraphs(): Generator<Graph> {
    for (const n of this.nodes) {
      for (const a of n.attributes) {
        if (a.type === 'graph') yield a.value;
        else if (a.type === 'graphs') yield* a.value;
      }
    }
  }
}
