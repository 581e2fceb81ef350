/**
 * @file Reading a lifted projection as a plain float32 matrix W [in, out] (y = x·W + b), whatever held it: a MatMul
 * initializer (float32/float16/bfloat16), a Gemm or MatMul(x, Transpose(W)) with W stored [out, in], the columns of
 * a packed QKV projection, or a com.microsoft MatMulNBits weight, dequantized exactly (the factors are computed and
 * emitted in float, so a q4 source gives a float MLA projection).
 */
import { DataType } from '../../graph/ir/dtype.js';
import type { Value } from '../../graph/ir/value.js';
import type { GraphBuilder } from '../../graph/build/builder.js';
import { dequantizeMatMulNBits } from '../../graph/tensor/nbits.js';
import { floatToHalf, toFloat32 } from '../../graph/tensor/decode.js';
import { viewBytes } from '../../graph/tensor/tensor.js';
import type { Projection } from '../attention/block.js';
import { constValue } from '../attention/const.js';
import { sliceColumns } from './factorize.js';
import { transpose } from './linalg.js';

export interface DenseProjection {
  /** [rows = in, cols = out] row-major. */
  w: Float32Array;
  rows: number;
  cols: number;
  bias: Float32Array | null;
  /** True when the source was MatMulNBits (dequantized). */
  quantized: boolean;
}

/** The dense matrix of a projection, or why it cannot be read. */
export function readProjection(p: Projection, what: string): DenseProjection | string {
  const t = constValue(p.weight);
  if (!t) return `the ${what} projection has no constant weight`;
  let w: Float32Array;
  let rows: number;
  let cols: number;
  if (p.quant) {
    const { k, n, bits, blockSize } = p.quant;
    const scales = constValue(p.quant.scales);
    const zeros = p.quant.zeroPoints ? constValue(p.quant.zeroPoints) : null;
    if (!scales || zeros === undefined || !k || !n || !blockSize) return `the ${what} MatMulNBits weight has non-constant scales or zero points, or no K/N/block_size`;
    w = dequantizeMatMulNBits(t, scales, zeros, { k, n, bits, blockSize });
    [rows, cols] = [k, n];
  } else {
    if (t.dims.length !== 2) return `the ${what} weight is not 2-D`;
    if (![DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16].includes(t.dtype as 1)) return `the ${what} weight is not a float tensor`;
    const f = toFloat32(t, p.weight!.name);
    const [a, b] = t.dims as [number, number];
    if (p.transposed) {
      w = Float32Array.from(transpose(f, a, b));
      [rows, cols] = [b, a];
    } else {
      w = f;
      [rows, cols] = [a, b];
    }
  }
  let bias: Float32Array | null = null;
  if (p.bias) {
    const bt = constValue(p.bias);
    if (!bt) return `the ${what} bias is not constant`;
    bias = toFloat32(bt, p.bias.name);
    if (bias.length !== cols) return `the ${what} bias has ${bias.length} values for ${cols} outputs`;
  }
  if (p.columns) {
    w = sliceColumns(w, rows, cols, p.columns.start, p.columns.end);
    bias = bias ? bias.slice(p.columns.start, p.columns.end) : null;
    cols = p.columns.end - p.columns.start;
  }
  return { w, rows, cols, bias, quantized: p.quant !== undefined };
}

/** A weight initializer in the attention's float type (float32, or float16 for float16 models). */
export function emitWeight(b: GraphBuilder, base: string, dims: readonly number[], data: Float32Array, dtype: number): Value {
  if (dtype === DataType.FLOAT16) return b.initializer(base, DataType.FLOAT16, dims, viewBytes(Uint16Array.from(data, floatToHalf)));
  return b.floats(base, dims, data);
}

/** True when every value is zero (a bias that can be dropped). */
export function allZero(x: Float32Array | null): boolean {
  return !x || x.every((v) => v === 0);
}
