/**
 * @file A Node is one operator application. Its outputs are Values it owns (immutable list); its inputs are
 * changed only through `setInput` / `replaceInputWith`, which keep every Value's uses up to date.
 */
import type { Graph } from './graph.js';
import type { Attribute } from './attribute.js';
import { Value } from './value.js';

/** Optional inputs that are absent are `null` (the empty name in ONNX). */
export type Input = Value | null;

export interface NodeInit {
  opType: string;
  domain?: string;
  name?: string;
  inputs?: readonly Input[];
  /** Output names, or Values not yet produced by any node; '' or null for an absent optional output. */
  outputs?: readonly (string | Value | null)[];
  attributes?: readonly Attribute[];
  overload?: string;
  /** String metadata (ONNX metadata_props), e.g. `ai.attnpatch.rule`. */
  metadata?: Record<string, string>;
}

export class Node {
  opType: string;
  domain: string;
  name: string;
  overload: string;
  readonly attributes: Attribute[];
  readonly metadata: Map<string, string>;
  readonly outputs: readonly (Value | null)[];
  /** The graph (or function body) this node belongs to. */
  graph: Graph | null = null;
  /** Extras that serde carries across a round trip; never read by passes. */
  source: unknown;
  private readonly inputList: Input[] = [];

  constructor(init: NodeInit) {
    this.opType = init.opType;
    this.domain = init.domain ?? '';
    this.name = init.name ?? '';
    this.overload = init.overload ?? '';
    this.attributes = [...(init.attributes ?? [])];
    this.metadata = new Map(Object.entries(init.metadata ?? {}));
    this.outputs = (init.outputs ?? []).map((o, i) => {
      if (o === null || o === '') return null;
      const v = typeof o === 'string' ? new Value(o) : o;
      if (v.producer) throw new Error(`value ${v.name} is already produced by node ${v.producer.name}`);
      v.producer = this;
      v.outputIndex = i;
      return v;
    });
    for (const v of init.inputs ?? []) this.appendInput(v);
  }

  get inputs(): readonly Input[] {
    return this.inputList;
  }

  /** Input i, or null when absent or out of range. */
  input(i: number): Value | null {
    return this.inputList[i] ?? null;
  }

  /** Output i, throwing if absent (most ops always have output 0). */
  output(i = 0): Value {
    const v = this.outputs[i];
    if (!v) throw new Error(`node ${this.name || this.opType} has no output ${i}`);
    return v;
  }

  appendInput(v: Input): void {
    this.inputList.push(v);
    v?.addUse(this, this.inputList.length - 1);
  }

  setInput(i: number, v: Input): void {
    while (this.inputList.length <= i) this.inputList.push(null);
    const old = this.inputList[i];
    if (old === v) return;
    old?.removeUse(this, i);
    this.inputList[i] = v;
    v?.addUse(this, i);
  }

  /** Replaces every input slot holding `from` with `to`. */
  replaceInputWith(from: Value, to: Input): void {
    this.inputList.forEach((v, i) => {
      if (v === from) this.setInput(i, to);
    });
  }

  /** Drops all inputs (used when a node is removed). */
  clearInputs(): void {
    this.inputList.forEach((v, i) => v?.removeUse(this, i));
    this.inputList.length = 0;
  }

  /** Attribute by name. */
  attr(name: string): Attribute | undefined {
    return this.attributes.find((a) => a.name === name);
  }

  /** Sets (or replaces) an attribute, keeping attribute order. */
  setAttr(a: Attribute): void {
    const i = this.attributes.findIndex((x) => x.name === a.name);
    if (i >= 0) this.attributes[i] = a;
    else this.attributes.push(a);
  }

  /** `domain::opType` for display; the default domain prints as just the op type. */
  get qualifiedOp(): string {
    return this.domain && this.domain !== 'ai.onnx' ? `${this.domain}::${this.opType}` : this.opType;
  }

  toString(): string {
    return `Node(${this.qualifiedOp} ${this.name})`;
  }
}
