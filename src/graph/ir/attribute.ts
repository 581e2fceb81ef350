/**
 * @file Node attributes as a discriminated union on `type`, with typed readers and constructors.
 */
import type { Tensor } from '../tensor/tensor.js';
import type { Graph } from './graph.js';

type Int64 = number | bigint;

interface Base {
  readonly name: string;
  /** In a function body: take the value of the caller's attribute with this name. */
  readonly refAttrName?: string;
  /** Extras that serde carries across a round trip; never read by passes. */
  readonly source?: unknown;
}

export type Attribute = Base &
  (
    | { readonly type: 'float'; readonly value: number }
    | { readonly type: 'int'; readonly value: Int64 }
    | { readonly type: 'string'; readonly value: Uint8Array }
    | { readonly type: 'tensor'; readonly value: Tensor }
    | { readonly type: 'graph'; readonly value: Graph }
    | { readonly type: 'floats'; readonly value: readonly number[] }
    | { readonly type: 'ints'; readonly value: readonly Int64[] }
    | { readonly type: 'strings'; readonly value: readonly Uint8Array[] }
    | { readonly type: 'tensors'; readonly value: readonly Tensor[] }
    | { readonly type: 'graphs'; readonly value: readonly Graph[] }
    /** Sparse tensors and type protos: carried, not interpreted. */
    | { readonly type: 'opaque'; readonly value: unknown }
    /** A function-body attribute that only references the caller's (`refAttrName`). */
    | { readonly type: 'ref'; readonly value: number }
  );

export type AttributeType = Attribute['type'];

const utf8 = new TextEncoder();
const utf8d = new TextDecoder();

/** Attribute constructors. */
export const attr = {
  float: (name: string, value: number): Attribute => ({ name, type: 'float', value }),
  int: (name: string, value: Int64): Attribute => ({ name, type: 'int', value }),
  string: (name: string, value: string): Attribute => ({ name, type: 'string', value: utf8.encode(value) }),
  tensor: (name: string, value: Tensor): Attribute => ({ name, type: 'tensor', value }),
  graph: (name: string, value: Graph): Attribute => ({ name, type: 'graph', value }),
  floats: (name: string, value: readonly number[]): Attribute => ({ name, type: 'floats', value }),
  ints: (name: string, value: readonly Int64[]): Attribute => ({ name, type: 'ints', value }),
  strings: (name: string, value: readonly string[]): Attribute => ({ name, type: 'strings', value: value.map((s) => utf8.encode(s)) }),
  /** A function-body attribute bound to the caller's attribute `ref` (its type code from AttributeProto). */
  ref: (name: string, ref: string, typeCode: number): Attribute => ({ name, type: 'ref', value: typeCode, refAttrName: ref }),
};

interface HasAttrs {
  attr(name: string): Attribute | undefined;
}

/** Integer attribute (int64 beyond 2^53 rounds: only sentinels like INT64_MAX get there). */
export function attrInt(n: HasAttrs, name: string): number | undefined;
export function attrInt(n: HasAttrs, name: string, fallback: number): number;
export function attrInt(n: HasAttrs, name: string, fallback?: number): number | undefined {
  const a = n.attr(name);
  return a?.type === 'int' ? Number(a.value) : fallback;
}

export function attrFloat(n: HasAttrs, name: string): number | undefined;
export function attrFloat(n: HasAttrs, name: string, fallback: number): number;
export function attrFloat(n: HasAttrs, name: string, fallback?: number): number | undefined {
  const a = n.attr(name);
  return a?.type === 'float' ? a.value : a?.type === 'int' ? Number(a.value) : fallback;
}

export function attrInts(n: HasAttrs, name: string): number[] | undefined {
  const a = n.attr(name);
  return a?.type === 'ints' ? a.value.map(Number) : undefined;
}

export function attrString(n: HasAttrs, name: string): string | undefined {
  const a = n.attr(name);
  return a?.type === 'string' ? utf8d.decode(a.value) : undefined;
}

export function attrTensor(n: HasAttrs, name: string): Tensor | undefined {
  const a = n.attr(name);
  return a?.type === 'tensor' ? a.value : undefined;
}
