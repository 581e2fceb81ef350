/**
 * @file The one tensor interface of the IR and its in-memory backings. A tensor is data only (dtype, dims,
 * bytes); its name lives on the Value that holds it. `dtype`, `dims` and `byteLength` never do I/O; `bytes()`
 * may (external data is read when asked for, not at load).
 */
import { AttnpatchError } from '../../errors.js';
import { dtypeByteLength, dtypeName } from '../ir/dtype.js';

/** Where a tensor's bytes live. */
export type TensorStorage = 'inline' | 'external' | 'memory' | 'lazy';

/** A constant tensor: an initializer, a Constant's value or a tensor attribute. */
export interface Tensor {
  readonly dtype: number;
  readonly dims: readonly number[];
  /** Size of the raw little-endian data in bytes (undefined for strings). */
  readonly byteLength: number | undefined;
  readonly storage: TensorStorage;
  /** Raw little-endian bytes: a view of the input where possible, read from disk for external data. */
  bytes(): Uint8Array;
}

/** Number of elements of a shape. */
export function elementCount(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** Checks that `bytes` has exactly the size dtype × dims asks for. */
export function checkByteLength(dtype: number, dims: readonly number[], actual: number, tensor?: string): void {
  const expected = dtypeByteLength(dtype, elementCount(dims));
  if (expected !== undefined && expected !== actual) {
    throw new AttnpatchError(
      'SHAPE',
      `tensor data has ${actual} bytes but ${dtypeName(dtype)}[${dims.join(',')}] needs ${expected}`,
      tensor === undefined ? {} : { tensor },
    );
  }
}

/** A tensor over bytes already in memory (built by a patch, e.g. cos/sin caches or merged weights). */
export class MemoryTensor implements Tensor {
  readonly storage = 'memory';
  constructor(
    readonly dtype: number,
    readonly dims: readonly number[],
    private readonly data: Uint8Array,
  ) {
    checkByteLength(dtype, dims, data.byteLength);
  }
  get byteLength(): number {
    return this.data.byteLength;
  }
  bytes(): Uint8Array {
    return this.data;
  }
}

/** A tensor computed on first use and then kept (e.g. factors of an SVD). */
export class LazyTensor implements Tensor {
  readonly storage = 'lazy';
  private data: Uint8Array | undefined;
  constructor(
    readonly dtype: number,
    readonly dims: readonly number[],
    private readonly compute: () => Uint8Array,
  ) {}
  get byteLength(): number | undefined {
    return dtypeByteLength(this.dtype, elementCount(this.dims));
  }
  bytes(): Uint8Array {
    if (!this.data) {
      const data = this.compute();
      checkByteLength(this.dtype, this.dims, data.byteLength);
      this.data = data;
    }
    return this.data;
  }
}

/** Bytes of a typed array, as a view (no copy). */
export function viewBytes(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
