/**
 * @file Reading small constants out of a graph: the tensor behind a value that is an initializer or the output of
 * a `Constant` node (through `Identity`), and its numbers. Shapes and dtypes are free; bytes are read only when a
 * caller asks for numbers, and a tensor whose bytes cannot be read (external data not loaded) reads as unknown
 * rather than throwing, so lift rules can treat "not a readable constant" as one case.
 */
import { attrFloat, attrInt, attrTensor } from '../../graph/ir/attribute.js';
import { DataType } from '../../graph/ir/dtype.js';
import type { Value } from '../../graph/ir/value.js';
import { toFloat32, toNumbers } from '../../graph/tensor/decode.js';
import { MemoryTensor, type Tensor, viewBytes } from '../../graph/tensor/tensor.js';

/** Identity chains longer than this are not followed (guards against odd or cyclic graphs). */
const MAX_IDENTITY_HOPS = 8;

/** The tensor a value holds when it is constant: an initializer, or a `Constant` node's output (via `Identity`). */
export function constValue(value: Value | null | undefined): Tensor | undefined {
  let v = value ?? undefined;
  for (let hop = 0; v && hop <= MAX_IDENTITY_HOPS; hop++) {
    if (v.initializer) return v.initializer;
    const p = v.producer;
    if (!p || (p.domain !== '' && p.domain !== 'ai.onnx')) return undefined;
    if (p.opType === 'Constant') return constantNodeTensor(p);
    if (p.opType !== 'Identity') return undefined;
    v = p.input(0) ?? undefined;
  }
  return undefined;
}

/** True when the value is constant (no bytes are read). */
export function isConstant(value: Value | null | undefined): boolean {
  return constValue(value) !== undefined;
}

/** Integer values of a constant (any numeric dtype), or undefined when not constant or not readable. */
export function constInts(value: Value | null | undefined): number[] | undefined {
  const t = constValue(value);
  if (!t) return undefined;
  try {
    return toNumbers(t).map((x) => Math.trunc(x));
  } catch {
    return undefined;
  }
}

/** The single number of a one-element float or integer constant (scalar or shape [1], [1,1], …). */
export function constFloat(value: Value | null | undefined): number | undefined {
  const t = constValue(value);
  if (!t || t.dims.reduce((a, b) => a * b, 1) !== 1) return undefined;
  try {
    const isFloat = t.dtype === DataType.FLOAT || t.dtype === DataType.FLOAT16 || t.dtype === DataType.BFLOAT16 || t.dtype === DataType.DOUBLE;
    return isFloat ? toFloat32(t)[0] : toNumbers(t)[0];
  } catch {
    return undefined;
  }
}

/** The single integer of a one-element constant. */
export function constInt(value: Value | null | undefined): number | undefined {
  const x = constFloat(value);
  return x !== undefined && Number.isInteger(x) ? x : undefined;
}

/** The tensor of a `Constant` node, from whichever `value*` attribute it uses (sparse and string forms excluded). */
function constantNodeTensor(node: NonNullable<Value['producer']>): Tensor | undefined {
  const t = attrTensor(node, 'value');
  if (t) return t;
  const a = node.attributes.find((x) => x.name.startsWith('value_'));
  switch (a?.type) {
    case 'int':
      return int64Tensor([Number(attrInt(node, a.name))], []);
    case 'ints':
      return int64Tensor(a.value.map(Number), [a.value.length]);
    case 'float':
      return new MemoryTensor(DataType.FLOAT, [], viewBytes(new Float32Array([attrFloat(node, a.name) ?? 0])));
    case 'floats':
      return new MemoryTensor(DataType.FLOAT, [a.value.length], viewBytes(new Float32Array(a.value)));
    default:
      return undefined;
  }
}

function int64Tensor(values: readonly number[], dims: readonly number[]): Tensor {
  return new MemoryTensor(DataType.INT64, dims, viewBytes(new BigInt64Array(values.map((x) => BigInt(x)))));
}
