/**
 * @file Tensors backed by a decoded TensorProto: inline data (raw_data stays a view of the input; typed
 * fields are converted on demand) or external data (read through an ExternalDataSource when asked for).
 */
import { AttnpatchError } from '../../errors.js';
import { DataType, dtypeByteLength, dtypeName } from '../ir/dtype.js';
import { checkByteLength, elementCount, type Tensor } from '../tensor/tensor.js';
import { checkLocation, type ExternalDataSource } from './external-data.js';
import type { TensorProto } from './schema.generated.js';

const EXTERNAL = 1;

function dimsOf(p: TensorProto, name: string): number[] {
  return (p.dims ?? []).map((d) => {
    const n = Number(d);
    if (!Number.isSafeInteger(n) || n < 0) throw new AttnpatchError('SHAPE', `tensor has invalid dim ${String(d)}`, { tensor: name });
    return n;
  });
}

/** Typed-field data (float_data, int64_data, …) as raw little-endian bytes. */
function typedFieldBytes(p: TensorProto, dtype: number, count: number, name: string): Uint8Array {
  const bytes = new Uint8Array(dtypeByteLength(dtype, count) ?? 0);
  const v = new DataView(bytes.buffer);
  const need = (arr: readonly unknown[] | undefined, n: number, field: string): readonly unknown[] => {
    if ((arr?.length ?? 0) < n) {
      throw new AttnpatchError('SHAPE', `${field} has ${arr?.length ?? 0} values but ${dtypeName(dtype)}[${p.dims?.join(',') ?? ''}] needs ${n}`, { tensor: name, field });
    }
    return arr!;
  };
  switch (dtype) {
    case DataType.FLOAT: {
      const a = need(p.float_data, count, 'float_data') as number[];
      for (let i = 0; i < count; i++) v.setFloat32(i * 4, a[i]!, true);
      break;
    }
    case DataType.DOUBLE: {
      const a = need(p.double_data, count, 'double_data') as number[];
      for (let i = 0; i < count; i++) v.setFloat64(i * 8, a[i]!, true);
      break;
    }
    case DataType.INT64: {
      const a = need(p.int64_data, count, 'int64_data') as (number | bigint)[];
      for (let i = 0; i < count; i++) v.setBigInt64(i * 8, BigInt(a[i]!), true);
      break;
    }
    case DataType.UINT64:
    case DataType.UINT32: {
      const a = need(p.uint64_data, count, 'uint64_data') as (number | bigint)[];
      for (let i = 0; i < count; i++) {
        if (dtype === DataType.UINT64) v.setBigUint64(i * 8, BigInt(a[i]!), true);
        else v.setUint32(i * 4, Number(a[i]!), true);
      }
      break;
    }
    case DataType.INT32:
    case DataType.INT16:
    case DataType.UINT16:
    case DataType.INT8:
    case DataType.UINT8:
    case DataType.BOOL:
    case DataType.FLOAT16:
    case DataType.BFLOAT16: {
      const a = need(p.int32_data, count, 'int32_data') as number[];
      const bits = dtype === DataType.INT32 ? 32 : dtype === DataType.INT8 || dtype === DataType.UINT8 || dtype === DataType.BOOL ? 8 : 16;
      for (let i = 0; i < count; i++) {
        if (bits === 32) v.setInt32(i * 4, a[i]!, true);
        else if (bits === 16) v.setUint16(i * 2, a[i]! & 0xffff, true);
        else v.setUint8(i, a[i]! & 0xff);
      }
      break;
    }
    default:
      if (count > 0) throw new AttnpatchError('UNSUPPORTED', `cannot read ${dtypeName(dtype)} values stored in typed fields`, { tensor: name });
  }
  return bytes;
}

/** A tensor stored in the model file itself. */
export class InlineTensor implements Tensor {
  readonly storage = 'inline';
  readonly dtype: number;
  readonly dims: readonly number[];
  constructor(
    readonly proto: TensorProto,
    private readonly name: string,
  ) {
    this.dtype = proto.data_type ?? DataType.UNDEFINED;
    this.dims = dimsOf(proto, name);
    const raw = proto.raw_data;
    if (raw !== undefined) checkByteLength(this.dtype, this.dims, raw.byteLength, name);
  }
  get byteLength(): number | undefined {
    return this.proto.raw_data?.byteLength ?? dtypeByteLength(this.dtype, elementCount(this.dims));
  }
  bytes(): Uint8Array {
    const raw = this.proto.raw_data;
    if (raw instanceof Uint8Array) return raw;
    if (raw) return raw.read();
    return typedFieldBytes(this.proto, this.dtype, elementCount(this.dims), this.name);
  }
}

/** A tensor whose bytes live in an external data file; checked at load, read on demand. */
export class ExternalTensor implements Tensor {
  readonly storage = 'external';
  readonly dtype: number;
  readonly dims: readonly number[];
  /** Normalized relative location of the data file. */
  readonly location: string;
  readonly offset: number;
  readonly length: number;

  /** Set when the data file was missing and the caller chose to defer that error to `bytes()`. */
  readonly missing: AttnpatchError | undefined;

  constructor(
    readonly proto: TensorProto,
    private readonly source: ExternalDataSource,
    where: { file?: string; tensor: string },
    deferMissing = false,
  ) {
    this.dtype = proto.data_type ?? DataType.UNDEFINED;
    this.dims = dimsOf(proto, where.tensor);
    const info = new Map((proto.external_data ?? []).map((e) => [e.key ?? '', e.value ?? '']));
    const location = info.get('location');
    if (location === undefined) throw new AttnpatchError('EXTERNAL_DATA', 'external tensor has no location', { ...where, field: 'external_data' });
    this.location = checkLocation(location, where);
    let size = source.size(this.location);
    if (size === undefined) {
      const err = new AttnpatchError('EXTERNAL_DATA', `external data file ${this.location} not found${source.label ? ` in ${source.label}` : ''}`, where);
      if (!deferMissing) throw err;
      this.missing = err;
      size = Infinity;
    }
    const num = (key: string, fallback: number): number => {
      const s = info.get(key);
      if (s === undefined) return fallback;
      const n = Number(s);
      if (!/^\d+$/.test(s) || !Number.isSafeInteger(n)) throw new AttnpatchError('EXTERNAL_DATA', `external_data ${key} ${JSON.stringify(s)} is not a byte count`, { ...where, field: `external_data.${key}` });
      return n;
    };
    this.offset = num('offset', 0);
    const expected = dtypeByteLength(this.dtype, elementCount(this.dims));
    this.length = num('length', expected ?? (Number.isFinite(size) ? size - this.offset : 0));
    if (this.offset + this.length > size) {
      throw new AttnpatchError('EXTERNAL_DATA', `external data [${this.offset}, ${this.offset + this.length}) is past the end of ${this.location} (${size} bytes)`, where);
    }
    checkByteLength(this.dtype, this.dims, this.length, where.tensor);
  }

  get byteLength(): number {
    return this.length;
  }

  bytes(): Uint8Array {
    if (this.missing) throw this.missing;
    return this.source.read(this.location, this.offset, this.length);
  }
}

/** True when a TensorProto keeps its data in an external file. */
export function isExternalProto(p: TensorProto): boolean {
  return p.data_location === EXTERNAL;
}
