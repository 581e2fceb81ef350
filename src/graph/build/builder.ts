/**
 * @file A small graph builder: `b.op('MatMul', [x, w])` appends (or inserts) a node with fresh names and returns
 * its output; constants become initializers. Every node it makes is stamped with the rule that made it
 * (`metadata_props["ai.attnpatch.rule"]`), so a patched graph says where each new node came from.
 */
import { attr, type Attribute } from '../ir/attribute.js';
import { DataType } from '../ir/dtype.js';
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import { Node, type Input } from '../ir/node.js';
import { tensorType, type Dim } from '../ir/types.js';
import type { Value } from '../ir/value.js';
import { MemoryTensor, viewBytes } from '../tensor/tensor.js';
import { NameAuthority } from './names.js';

export const RULE_KEY = 'ai.attnpatch.rule';

export interface OpOptions {
  domain?: string;
  name?: string;
  /** Output names; default one fresh output. A number asks for that many fresh outputs. */
  outputs?: readonly string[] | number;
  attributes?: Record<string, number | bigint | string | readonly number[] | readonly bigint[] | Attribute> | readonly Attribute[];
}

function toAttributes(a: OpOptions['attributes']): Attribute[] {
  if (!a) return [];
  if (Array.isArray(a)) return [...(a as Attribute[])];
  return Object.entries(a).map(([name, v]) => {
    if (typeof v === 'object' && v !== null && 'type' in v && 'name' in v) return { ...(v as Attribute), name };
    if (typeof v === 'string') return attr.string(name, v);
    if (typeof v === 'bigint') return attr.int(name, v);
    if (typeof v === 'number') return Number.isInteger(v) && !Object.is(v, -0) ? attr.int(name, v) : attr.float(name, v);
    const list = v as readonly (number | bigint)[];
    return list.every((x) => typeof x === 'bigint' || Number.isInteger(x)) ? attr.ints(name, list) : attr.floats(name, list as number[]);
  });
}

/** Builds nodes into one graph of a model. */
export class GraphBuilder {
  readonly names: NameAuthority;
  /** Nodes made so far, in order. */
  readonly made: Node[] = [];
  /** Insert new nodes before this node (default: append). */
  before: Node | undefined;

  constructor(
    readonly model: Model,
    readonly graph: Graph = model.graph,
    readonly rule = 'attnpatch',
    names?: NameAuthority,
  ) {
    this.names = names ?? new NameAuthority(model);
  }

  /** Adds a node; returns its outputs (one Value, or an array when several were asked for). */
  op(opType: string, inputs: readonly Input[], options: OpOptions & { outputs: number | readonly string[] }): Value[];
  op(opType: string, inputs: readonly Input[], options?: OpOptions): Value;
  op(opType: string, inputs: readonly Input[], options: OpOptions = {}): Value | Value[] {
    const prefix = `${this.rule}/${opType}`;
    const outs = options.outputs;
    const outputNames =
      typeof outs === 'number' ? Array.from({ length: outs }, (_, i) => this.names.fresh(`${prefix}_out${i}`)) : outs ? [...outs] : [this.names.fresh(`${prefix}_out`)];
    for (const n of outputNames) if (n) this.names.reserve(n);
    const node = new Node({
      opType,
      domain: options.domain ?? '',
      name: options.name ?? this.names.fresh(prefix),
      inputs,
      outputs: outputNames,
      attributes: toAttributes(options.attributes),
      metadata: { [RULE_KEY]: this.rule },
    });
    this.graph.insert(node, this.before);
    this.made.push(node);
    const values = node.outputs.filter((v): v is Value => v !== null);
    return outs === undefined ? values[0]! : values;
  }

  /** A float32 initializer. */
  floats(base: string, dims: readonly number[], data: Float32Array | readonly number[]): Value {
    const arr = data instanceof Float32Array ? data : Float32Array.from(data);
    return this.initializer(base, DataType.FLOAT, dims, viewBytes(arr));
  }

  /** An int64 initializer (shapes, axes, indices). */
  int64s(base: string, dims: readonly number[], data: readonly (number | bigint)[]): Value {
    return this.initializer(base, DataType.INT64, dims, viewBytes(BigInt64Array.from(data, (x) => BigInt(x))));
  }

  /** An int64 scalar or 1-D initializer from a plain list. */
  ints(base: string, data: readonly number[], scalar = false): Value {
    return this.int64s(base, scalar ? [] : [data.length], data);
  }

  /** A Constant node (function bodies cannot hold initializers). */
  constant(dtype: number, dims: readonly number[], bytes: Uint8Array): Value {
    return this.op('Constant', [], { attributes: [attr.tensor('value', new MemoryTensor(dtype, dims, bytes))] });
  }

  /** An int64 Constant node: a scalar, or 1-D when `scalar` is false. */
  constInts(values: readonly number[], scalar = false): Value {
    return this.constant(DataType.INT64, scalar ? [] : [values.length], viewBytes(BigInt64Array.from(values, (x) => BigInt(x))));
  }

  /** A float32 scalar Constant node. */
  constFloat(value: number): Value {
    return this.constant(DataType.FLOAT, [], viewBytes(Float32Array.of(value)));
  }

  /** A Constant node taking its value from the calling node's attribute `ref` (function bodies only). */
  constRef(ref: string, kind: 'int' | 'float'): Value {
    // AttributeProto.AttributeType: INT = 2, FLOAT = 1.
    return this.op('Constant', [], { attributes: [attr.ref(kind === 'int' ? 'value_int' : 'value_float', ref, kind === 'int' ? 2 : 1)] });
  }

  initializer(base: string, dtype: number, dims: readonly number[], bytes: Uint8Array): Value {
    const name = this.names.fresh(`${this.rule}/${base}`);
    return this.graph.addInitializer(name, new MemoryTensor(dtype, dims, bytes), tensorType(dtype, dims as Dim[]));
  }
}
