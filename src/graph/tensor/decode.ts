/**
 * @file Reading tensor values: float32/float16/bfloat16/int8/uint8 to Float32Array, integer types to numbers,
 * on demand. Nothing is cached; callers that need a value twice keep it.
 */
import { AttnpatchError } from '../../errors.js';
import { DataType, dtypeName } from '../ir/dtype.js';
import { elementCount, type Tensor } from './tensor.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half → float. */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** bfloat16 → float. */
export function bfloat16ToFloat(b: number): number {
  u32[0] = b << 16;
  return f32[0]!;
}

/** float → IEEE half (round to nearest even). */
export function floatToHalf(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  e = half >> 10;
  return sign | half;
}

function dataView(t: Tensor): DataView {
  const b = t.bytes();
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Values of a float or small-integer tensor as float32. */
export function toFloat32(t: Tensor, name = 'tensor'): Float32Array {
  const n = elementCount(t.dims);
  const v = dataView(t);
  const out = new Float32Array(n);
  switch (t.dtype) {
    case DataType.FLOAT:
      for (let i = 0; i < n; i++) out[i] = v.getFloat32(i * 4, true);
      return out;
    case DataType.FLOAT16:
      for (let i = 0; i < n; i++) out[i] = halfToFloat(v.getUint16(i * 2, true));
      return out;
    case DataType.BFLOAT16:
      for (let i = 0; i < n; i++) out[i] = bfloat16ToFloat(v.getUint16(i * 2, true));
      return out;
    case DataType.DOUBLE:
      for (let i = 0; i < n; i++) out[i] = v.getFloat64(i * 8, true);
      return out;
    case DataType.INT8:
      for (let i = 0; i < n; i++) out[i] = v.getInt8(i);
      return out;
    case DataType.UINT8:
      for (let i = 0; i < n; i++) out[i] = v.getUint8(i);
      return out;
    default:
      throw new AttnpatchError('UNSUPPORTED', `cannot read ${dtypeName(t.dtype)} as float32`, { tensor: name });
  }
}

/** Values of an integer tensor as numbers (int64 beyond 2^53 loses precision; INT64_MAX sentinels stay huge). */
export function toNumbers(t: Tensor, name = 'tensor'): number[] {
  const n = elementCount(t.dims);
  const v = dataView(t);
  const out: number[] = new Array<number>(n);
  switch (t.dtype) {
    case DataType.INT64:
      for (let i = 0; i < n; i++) out[i] = Number(v.getBigInt64(i * 8, true));
      return out;
    case DataType.UINT64:
      for (let i = 0; i < n; i++) out[i] = Number(v.getBigUint64(i * 8, true));
      return out;
    case DataType.INT32:
      for (let i = 0; i < n; i++) out[i] = v.getInt32(i * 4, true);
      return out;
    case DataType.UINT32:
      for (let i = 0; i < n; i++) out[i] = v.getUint32(i * 4, true);
      return out;
    case DataType.INT16:
      for (let i = 0; i < n; i++) out[i] = v.getInt16(i * 2, true);
      return out;
    case DataType.UINT16:
      for (let i = 0; i < n; i++) out[i] = v.getUint16(i * 2, true);
      return out;
    case DataType.INT8:
      for (let i = 0; i < n; i++) out[i] = v.getInt8(i);
      return out;
    case DataType.UINT8:
    case DataType.BOOL:
      for (let i = 0; i < n; i++) out[i] = v.getUint8(i);
      return out;
    default:
      return Array.from(toFloat32(t, name));
  }
}

/** Unpacks 4-bit values (low nibble first, as ONNX and MatMulNBits store them). */
export function unpackUint4(packed: Uint8Array, count: number): Uint8Array {
  const out = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const b = packed[i >> 1]!;
    out[i] = i & 1 ? b >> 4 : b & 0x0f;
  }
  return out;
}
