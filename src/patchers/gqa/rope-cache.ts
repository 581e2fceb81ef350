/**
 * @file cos/sin caches for GroupQueryAttention's built-in rotary ([maxPositions, rotaryDim/2] each), rebuilt
 * from the lifted rope: from `inv_freq` (× attention scaling), or taken from constant tables.
 */
import { DataType } from '../../graph/ir/dtype.js';
import type { Value } from '../../graph/ir/value.js';
import type { GraphBuilder } from '../../graph/build/builder.js';
import { floatToHalf, toFloat32 } from '../../graph/tensor/decode.js';
import { viewBytes } from '../../graph/tensor/tensor.js';
import type { RopeInfo } from '../attention/block.js';

export interface RopeCaches {
  cos: Value;
  sin: Value;
  maxPositions: number;
}

/** Constant tensor behind a value, following one Constant node or an initializer. */
function constTensor(v: Value): ReturnType<typeof toFloat32> | undefined {
  if (v.initializer) return toFloat32(v.initializer, v.name);
  const p = v.producer;
  if (p?.opType === 'Constant') {
    const a = p.attr('value');
    if (a?.type === 'tensor') return toFloat32(a.value, v.name);
  }
  return undefined;
}

/** The rotaryDim/2 angular frequencies of a rope, or why they cannot be known. */
export function ropeFrequencies(rope: RopeInfo): { freqs: Float32Array; scaling: number } | string {
  const half = rope.rotaryDim / 2;
  const src = rope.source;
  if (src.kind === 'inv-freq') {
    const f = constTensor(src.invFreq);
    if (!f) return `inv_freq ${src.invFreq.name} is not a constant`;
    if (f.length < half) return `inv_freq has ${f.length} values, rope needs ${half}`;
    return { freqs: f.slice(0, half), scaling: src.attentionScaling };
  }
  return `rope source '${src.kind}' is not rebuilt from frequencies`;
}

/** Caches for positions [0, maxPositions), in the dtype of the attention inputs (float32 or float16). */
export function buildRopeCaches(b: GraphBuilder, rope: RopeInfo, maxPositions: number, dtype: number): RopeCaches | string {
  const src = rope.source;
  if (src.kind === 'cache') {
    const cos = src.cos.initializer;
    if (!cos) return `cos_cache ${src.cos.name} is not an initializer`;
    return { cos: src.cos, sin: src.sin, maxPositions: cos.dims[0] ?? 0 };
  }
  const f = ropeFrequencies(rope);
  if (typeof f === 'string') return f;
  const half = f.freqs.length;
  const cos = new Float32Array(maxPositions * half);
  const sin = new Float32Array(maxPositions * half);
  for (let p = 0; p < maxPositions; p++) {
    for (let i = 0; i < half; i++) {
      // NOTE: the angle is computed in float32 like torch's (inv_freq @ position_ids) before cos/sin.
      const angle = Math.fround(p * f.freqs[i]!);
      cos[p * half + i] = Math.cos(angle) * f.scaling;
      sin[p * half + i] = Math.sin(angle) * f.scaling;
    }
  }
  const make = (name: string, data: Float32Array) =>
    dtype === DataType.FLOAT16
      ? b.initializer(name, DataType.FLOAT16, [maxPositions, half], viewBytes(Uint16Array.from(data, floatToHalf)))
      : b.floats(name, [maxPositions, half], data);
  return { cos: make('cos_cache', cos), sin: make('sin_cache', sin), maxPositions };
}
