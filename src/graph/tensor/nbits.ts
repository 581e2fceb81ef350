/**
 * @file Dequantizing com.microsoft MatMulNBits weights: B is uint8 [N, blocks, blockSize·bits/8] (low bits
 * first), scales [N·blocks], optional zero points (packed uint8 like B, or one per block in the scales' type;
 * default 2^(bits−1)). The result is the equivalent MatMul weight, [K, N] row-major, as float32.
 */
import { AttnpatchError } from '../../errors.js';
import { DataType } from '../ir/dtype.js';
import { toFloat32 } from './decode.js';
import type { Tensor } from './tensor.js';

export interface NBitsLayout {
  k: number;
  n: number;
  bits: number;
  blockSize: number;
}

/** W such that MatMulNBits(A, B, …) = A · W, [K, N] float32. */
export function dequantizeMatMulNBits(b: Tensor, scales: Tensor, zeroPoints: Tensor | null, layout: NBitsLayout): Float32Array {
  const { k, n, bits, blockSize } = layout;
  if (bits < 2 || bits > 8) throw new AttnpatchError('UNSUPPORTED', `MatMulNBits with ${bits} bits`, { field: 'bits' });
  const blocks = Math.ceil(k / blockSize);
  const blob = (blockSize * bits) / 8;
  const q = b.bytes();
  if (q.byteLength < n * blocks * blob) throw new AttnpatchError('SHAPE', `MatMulNBits B has ${q.byteLength} bytes, needs ${n * blocks * blob}`);
  const s = toFloat32(scales);
  const mask = (1 << bits) - 1;
  let zpAt: (col: number, blk: number) => number = () => 1 << (bits - 1);
  if (zeroPoints) {
    if (zeroPoints.dtype === DataType.UINT8) {
      const zp = zeroPoints.bytes();
      const perCol = Math.ceil((blocks * bits) / 8);
      zpAt = (col, blk) => {
        const bit = blk * bits;
        return (zp[col * perCol + (bit >> 3)]! >> (bit & 7)) & mask;
      };
    } else {
      const zp = toFloat32(zeroPoints);
      zpAt = (col, blk) => zp[col * blocks + blk]!;
    }
  }
  const w = new Float32Array(k * n);
  for (let col = 0; col < n; col++) {
    for (let blk = 0; blk < blocks; blk++) {
      const scale = s[col * blocks + blk]!;
      const zero = zpAt(col, blk);
      const base = (col * blocks + blk) * blob;
      for (let i = 0; i < blockSize; i++) {
        const row = blk * blockSize + i;
        if (row >= k) break;
        const bit = i * bits;
        // Values may straddle a byte boundary for 3/5/6/7 bits.
        const lo = q[base + (bit >> 3)]!;
        const hi = (bit & 7) + bits > 8 ? q[base + (bit >> 3) + 1]! : 0;
        const v = ((lo | (hi << 8)) >> (bit & 7)) & mask;
        w[row * n + col] = (v - zero) * scale;
      }
    }
  }
  return w;
}
