/**
 * @file Exact RoPE for MLA. Keys are rebuilt from cached latents every step, so every cached key must be rotated
 * again at its true position: the main graph builds cos/sin for all T = P + S positions once per model
 * ([B, T, R/2], positions from attention_mask as transformers.js counts them), and the attention function rotates
 * keys at all rows and queries at the last S rows (`rotate`).
 */
import { DataType } from '../../graph/ir/dtype.js';
import type { Value } from '../../graph/ir/value.js';
import type { GraphBuilder } from '../../graph/build/builder.js';
import type { RopeInfo } from '../attention/block.js';
import { ropeFrequencies } from '../gqa/rope-cache.js';

export type RopeLayout = 'half' | 'interleaved';

/** cos/sin of every position of the call, [B, T, R/2], in the attention's float type. */
export interface PositionTables {
  cos: Value;
  sin: Value;
}

/** A stable key for the rope a block uses (blocks sharing it share the tables). */
export function ropeKey(rope: RopeInfo, dtype: number): string {
  const s = rope.source;
  const id = s.kind === 'inv-freq' ? `${s.invFreq.name}*${s.attentionScaling}` : 'cos' in s ? s.cos.name : '';
  return `${s.kind}:${id}:${rope.rotaryDim}:${dtype}`;
}

/**
 * Positions of all T tokens, [B, T] int64: cumsum(attention_mask) − 1, floored at 0 — what transformers.js feeds as
 * position_ids (padding slots differ, but they are masked). Built once per model.
 */
export function buildPositions(b: GraphBuilder, mask: Value): Value {
  const mask64 = b.op('Cast', [mask], { attributes: { to: DataType.INT64 } });
  const count = b.op('CumSum', [mask64, b.ints('axis1_scalar', [1], true)]);
  return b.op('Max', [b.op('Sub', [count, b.ints('one_i64', [1], true)]), b.ints('zero_i64', [0], true)], { outputs: [b.names.fresh('mla/positions')] })[0]!;
}

/** cos/sin tables for every position, or why the rope cannot be rebuilt. */
export function buildPositionTables(b: GraphBuilder, rope: RopeInfo, positions: Value, dtype: number): PositionTables | string {
  const half = rope.rotaryDim / 2;
  const src = rope.source;
  let cos: Value;
  let sin: Value;
  if (src.kind === 'cache' || src.kind === 'table') {
    const c = src.cos.initializer;
    const s = src.sin.initializer;
    if (!c || !s) return `its cos/sin tables are not initializers`;
    if (c.dims.length !== 2 || c.dims[1] !== half) return `its cos/sin tables have shape [${c.dims.join(', ')}]; expected [positions, ${half}]`;
    // NOTE: the tables bound the context; positions past their length would make Gather fail at run time.
    const gather = (t: Value) => b.op('Gather', [t, positions], { attributes: { axis: 0 } });
    cos = gather(src.cos);
    sin = gather(src.sin);
  } else {
    const f = ropeFrequencies(rope);
    if (typeof f === 'string') return f;
    const freqs = b.floats('mla/inv_freq', [half], f.freqs);
    // NOTE: float32 position × frequency, then cos/sin, as the exported rope computes it (inv_freq @ positions).
    const posF = b.op('Unsqueeze', [b.op('Cast', [positions], { attributes: { to: DataType.FLOAT } }), b.ints('axis_last', [-1])]);
    const angles = b.op('Mul', [posF, freqs]);
    cos = b.op('Cos', [angles]);
    sin = b.op('Sin', [angles]);
    if (f.scaling !== 1) {
      const scaling = b.floats('mla/attention_scaling', [], [f.scaling]);
      cos = b.op('Mul', [cos, scaling]);
      sin = b.op('Mul', [sin, scaling]);
    }
  }
  const tableType = src.kind === 'cache' || src.kind === 'table' ? src.cos.initializer!.dtype : DataType.FLOAT;
  if (tableType !== dtype) {
    cos = b.op('Cast', [cos], { attributes: { to: dtype } });
    sin = b.op('Cast', [sin], { attributes: { to: dtype } });
  }
  return { cos, sin };
}

/** Constants the rotation needs inside a function body (built once per body). */
export interface RotateConsts {
  zero: Value;
  one: Value;
  two: Value;
  last: Value;
  /** [R], [R/2] and [Dh] as 1-D int64. */
  rot: Value;
  halfRot: Value;
  headDim: Value;
}

/**
 * Rotates the first R dims of x [.., N, rows, Dh] by cos/sin [.., 1, rows, R/2] (broadcast over heads); dims past R
 * pass through (partial rotary).
 */
export function rotate(b: GraphBuilder, x: Value, cos: Value, sin: Value, k: RotateConsts, layout: RopeLayout): Value {
  const rot = b.op('Slice', [x, k.zero, k.rot, k.last]);
  const pass = b.op('Slice', [x, k.rot, k.headDim, k.last]);
  let c: Value;
  let s: Value;
  let turned: Value;
  if (layout === 'half') {
    c = b.op('Concat', [cos, cos], { attributes: { axis: -1 } });
    s = b.op('Concat', [sin, sin], { attributes: { axis: -1 } });
    const first = b.op('Slice', [rot, k.zero, k.halfRot, k.last]);
    const second = b.op('Slice', [rot, k.halfRot, k.rot, k.last]);
    turned = b.op('Concat', [b.op('Neg', [second]), first], { attributes: { axis: -1 } });
  } else {
    // Pairs (2i, 2i+1): cos/sin repeat per pair; rotate(x)[2i] = −x[2i+1], rotate(x)[2i+1] = x[2i].
    const pairwise = (t: Value) => {
      const pair = b.op('Concat', [b.op('Unsqueeze', [t, k.last]), b.op('Unsqueeze', [t, k.last])], { attributes: { axis: -1 } });
      const shape = b.op('Concat', [b.op('Slice', [b.op('Shape', [t]), k.zero, b.constInts([-1])]), k.rot], { attributes: { axis: 0 } });
      return b.op('Reshape', [pair, shape]);
    };
    c = pairwise(cos);
    s = pairwise(sin);
    const even = b.op('Slice', [rot, k.zero, k.rot, k.last, k.two]);
    const odd = b.op('Slice', [rot, k.one, k.rot, k.last, k.two]);
    const stacked = b.op('Concat', [b.op('Unsqueeze', [b.op('Neg', [odd]), k.last]), b.op('Unsqueeze', [even, k.last])], { attributes: { axis: -1 } });
    turned = b.op('Reshape', [stacked, b.op('Shape', [rot])]);
  }
  const rotated = b.op('Add', [b.op('Mul', [rot, c]), b.op('Mul', [turned, s])]);
  return b.op('Concat', [rotated, pass], { attributes: { axis: -1 } });
}
