/**
 * @file Value types: tensor types with symbolic shapes; other ONNX types (sequence, map, optional, sparse)
 * are carried opaquely so they survive a round trip.
 */

/** One dimension: a fixed size, a symbolic name (`batch_size`), or null when unknown. */
export type Dim = number | string | null;

/** A dense tensor type; `shape` undefined means unknown rank. */
export interface TensorType {
  readonly kind: 'tensor';
  readonly elemType: number;
  readonly shape?: readonly Dim[];
}

/** Any non-tensor type, kept as the serde layer decoded it. */
export interface OpaqueType {
  readonly kind: 'opaque';
  readonly proto: unknown;
}

export type ValueType = TensorType | OpaqueType;

/** Builds a tensor type. */
export function tensorType(elemType: number, shape?: readonly Dim[]): TensorType {
  return shape === undefined ? { kind: 'tensor', elemType } : { kind: 'tensor', elemType, shape };
}

/** Structural equality of two value types (opaque types compare by identity). */
export function sameType(a: ValueType | undefined, b: ValueType | undefined): boolean {
  if (a === b) return true;
  if (!a || !b || a.kind !== b.kind) return false;
  if (a.kind === 'opaque' || b.kind === 'opaque') return false;
  if (a.elemType !== b.elemType) return false;
  if (a.shape === undefined || b.shape === undefined) return a.shape === b.shape;
  return a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape![i]);
}
