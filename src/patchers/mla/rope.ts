/**
 * @file Exact RoPE for MLA. Keys are rebuilt from cached latents every step, so every cached key is rotated again at
 * its true position, and that must stay cheap over T keys. RoPE is x·cos + rotate(x)·sin, and rotate is a signed
 * permutation of each head's dims: rotate(x)[i] = sign_i·x[perm_i]. With the signs folded into the sin table, a
 * rotation is x·cos + x[perm]·sin' — one row gather (contiguous rows of T values in the [B, Hkv, Dh, T] key layout),
 * two products and a sum, with no slicing, negation or concatenation over T·Hkv·Dh and no second matmul. cos/sin come
 * from constant [positions, Dh] tables (cos·scaling, sign·sin·scaling on rotary dims; 1 and 0 past them), gathered
 * once per step for all layers at positions from attention_mask, as transformers.js counts them.
 */
import { DataType } from '../../graph/ir/dtype.js';
import type { Value } from '../../graph/ir/value.js';
import type { GraphBuilder } from '../../graph/build/builder.js';
import { floatToHalf, toFloat32 } from '../../graph/tensor/decode.js';
import { viewBytes } from '../../graph/tensor/tensor.js';
import type { RopeInfo } from '../attention/block.js';
import { ropeFrequencies } from '../gqa/rope-cache.js';

/** The constant tables of one rope: cos and signed sin [rows, Dh] (full width), and perm [Dh] (int64). */
export interface RopeTables {
  cos: Value;
  sin: Value;
  perm: Value;
}

/** cos/sin rows gathered at every position of the call and transposed, [B, Dh, T] (keys are laid out [B, Hkv, Dh, T]). */
export interface PositionRows {
  cos: Value;
  sin: Value;
}

/** A stable key for the rope a block uses (blocks sharing it share the tables). */
export function ropeKey(rope: RopeInfo, headDim: number, dtype: number): string {
  const s = rope.source;
  const id = s.kind === 'inv-freq' ? `${s.invFreq.name}*${s.attentionScaling}` : 'cos' in s ? s.cos.name : '';
  return `${s.kind}:${id}:${rope.rotaryDim}:${rope.interleaved}:${headDim}:${dtype}`;
}

/** The rotary partner of dim i and its sign: rotate(x)[i] = sign·x[partner]; null past the rotary dims. */
function partner(rope: RopeInfo, i: number): [number, number] | null {
  const R = rope.rotaryDim;
  if (i >= R) return null;
  if (rope.interleaved) return i % 2 === 0 ? [i + 1, -1] : [i - 1, 1];
  return i < R / 2 ? [i + R / 2, -1] : [i - R / 2, 1];
}

/** perm and sign with rotate(x)[i] = sign_i·x[perm_i] (sign 0 past the rotary dims, where sin is 0). */
export function rotationPermutation(rope: RopeInfo, headDim: number): { perm: number[]; sign: number[] } {
  const perm: number[] = [];
  const sign: number[] = [];
  for (let i = 0; i < headDim; i++) {
    const q = partner(rope, i);
    perm.push(q ? q[0] : i);
    sign.push(q ? q[1] : 0);
  }
  return { perm, sign };
}

/** Full-width cos and signed sin rows for positions [0, rows), or why the rope cannot be rebuilt. */
function fullTables(rope: RopeInfo, headDim: number, maxContext: number): { cos: Float32Array; sin: Float32Array; rows: number } | string {
  const half = rope.rotaryDim / 2;
  const src = rope.source;
  let angleCos: (p: number, k: number) => number;
  let angleSin: (p: number, k: number) => number;
  let rows: number;
  if (src.kind === 'cache' || src.kind === 'table') {
    const [c, s] = [src.cos.initializer, src.sin.initializer];
    if (!c || !s) return 'its cos/sin tables are not initializers';
    if (c.dims.length !== 2 || c.dims[1] !== half) return `its cos/sin tables have shape [${c.dims.join(', ')}]; expected [positions, ${half}]`;
    const [cv, sv] = [toFloat32(c), toFloat32(s)];
    rows = c.dims[0]!;
    angleCos = (p, k) => cv[p * half + k]!;
    angleSin = (p, k) => sv[p * half + k]!;
  } else {
    const f = ropeFrequencies(rope);
    if (typeof f === 'string') return f;
    rows = maxContext;
    // NOTE: float32 position × frequency, then cos/sin, as the exported rope computes it (inv_freq @ positions).
    angleCos = (p, k) => Math.cos(Math.fround(p * f.freqs[k]!)) * f.scaling;
    angleSin = (p, k) => Math.sin(Math.fround(p * f.freqs[k]!)) * f.scaling;
  }
  const { sign } = rotationPermutation(rope, headDim);
  const cos = new Float32Array(rows * headDim);
  const sin = new Float32Array(rows * headDim);
  for (let p = 0; p < rows; p++) {
    for (let i = 0; i < headDim; i++) {
      const k = i >= rope.rotaryDim ? -1 : rope.interleaved ? i >> 1 : i % half;
      cos[p * headDim + i] = k < 0 ? 1 : angleCos(p, k);
      sin[p * headDim + i] = k < 0 ? 0 : sign[i]! * angleSin(p, k);
    }
  }
  return { cos, sin, rows };
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

/**
 * The constant tables of a rope. `maxContext` bounds inv-freq ropes (the table's length: a longer context fails in
 * Gather rather than silently rotating wrong); cached tables keep their own length.
 */
export function buildRopeTables(b: GraphBuilder, rope: RopeInfo, headDim: number, dtype: number, maxContext: number): RopeTables | string {
  const t = fullTables(rope, headDim, maxContext);
  if (typeof t === 'string') return t;
  const make = (name: string, dims: number[], data: Float32Array) =>
    dtype === DataType.FLOAT16 ? b.initializer(name, DataType.FLOAT16, dims, viewBytes(Uint16Array.from(data, floatToHalf))) : b.floats(name, dims, data);
  return {
    cos: make('mla/cos_table', [t.rows, headDim], t.cos),
    sin: make('mla/sin_table', [t.rows, headDim], t.sin),
    perm: b.ints('mla/rotate_index', rotationPermutation(rope, headDim).perm),
  };
}

/** The tables' rows at `positions` [B, T], transposed to [B, Dh, T]: one Gather per step, shared by all layers. */
export function gatherRows(b: GraphBuilder, tables: RopeTables, positions: Value): PositionRows {
  const rows = (table: Value) => b.op('Transpose', [b.op('Gather', [table, positions], { attributes: { axis: 0 } })], { attributes: { perm: [0, 2, 1] } });
  return { cos: rows(tables.cos), sin: rows(tables.sin) };
}
