/**
 * @file A Value is a named edge of the graph: produced by at most one node output, or a graph input, or an
 * initializer (it then holds a Tensor). The IR keeps its uses up to date on every edit.
 */
import type { Tensor } from '../tensor/tensor.js';
import type { Node } from './node.js';
import type { ValueType } from './types.js';

/** One use of a value: input `index` of `node`. */
export interface Use {
  readonly node: Node;
  readonly index: number;
}

export class Value {
  /** The node whose output this is, or null for graph inputs, initializers and outer-scope names. */
  producer: Node | null = null;
  /** Output index within the producer. */
  outputIndex = -1;
  /** Constant data when this value is an initializer. */
  initializer: Tensor | undefined;
  /** Free-form extras that serde carries across a round trip (doc strings, metadata); never read by passes. */
  source: unknown;
  private readonly useList: Use[] = [];

  constructor(
    public name: string,
    public type?: ValueType,
  ) {}

  /** All uses, as a copy (safe to iterate while editing). */
  uses(): Use[] {
    return [...this.useList];
  }

  /** Distinct consuming nodes, in use order. */
  consumers(): Node[] {
    return [...new Set(this.useList.map((u) => u.node))];
  }

  get useCount(): number {
    return this.useList.length;
  }

  /** True when this value is constant data held by the graph. */
  get isInitializer(): boolean {
    return this.initializer !== undefined;
  }

  /** @internal Called by Node when an input slot starts or stops pointing here. */
  addUse(node: Node, index: number): void {
    this.useList.push({ node, index });
  }

  /** @internal */
  removeUse(node: Node, index: number): void {
    const i = this.useList.findIndex((u) => u.node === node && u.index === index);
    if (i >= 0) this.useList.splice(i, 1);
  }

  toString(): string {
    return `Value(${this.name})`;
  }
}
