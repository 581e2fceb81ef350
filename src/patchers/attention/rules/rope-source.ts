/**
 * @file Where an unfused rope's cos/sin come from, read upward from the per-layer Mul operands:
 * - `inv-freq`: `[Cast] ← [Mul(attention_scaling)] ← Cos(Concat(freqs, freqs)) ← … MatMul(inv_freq, position_ids)`
 *   (transformers ≥ 4.38 model-level rotary; inv_freq is a constant, position_ids a graph input);
 * - `table`: `Gather(cos_cached, position_ids)` of constant tables (older transformers);
 * - `computed`: anything else, reported as the model-level cos/sin values.
 * The per-layer `Unsqueeze(cos, 1)` is stripped first; what remains is model-level and shared by every block.
 * theta is recovered from inv_freq[1] = theta^(-2/rotaryDim) (or the angle at position 1 of the tables).
 */
import type { Node } from '../../../graph/ir/node.js';
import type { Value } from '../../../graph/ir/value.js';
import { toFloat32 } from '../../../graph/tensor/decode.js';
import type { RopeSource } from '../block.js';
import { constValue } from '../const.js';
import { scalarOf } from './unfused-core.js';

export interface RopeTrace {
  source: RopeSource;
  rotaryDim?: number;
  theta?: number;
  /** The model-level cos and sin (or the constant tables): boundaries of what a block owns. */
  roots: [Value, Value];
}

/** Tables larger than this are not read for theta. */
const MAX_TABLE_ELEMENTS = 1 << 22;

function producer(v: Value | null, ...ops: string[]): Node | undefined {
  const n = v?.producer;
  return n && ops.includes(n.opType) ? n : undefined;
}

function skip(v: Value | null, ops: readonly string[]): Value | null {
  for (let i = 0; i < 8 && v?.producer && ops.includes(v.producer.opType); i++) v = v.producer.input(0);
  return v;
}

/** The graph input a value is computed from by reshaping / casting only (position_ids), if any. */
function graphInputOf(v: Value | null): Value | null {
  const x = skip(v, ['Cast', 'Unsqueeze', 'Expand', 'Reshape', 'Transpose', 'Squeeze']);
  return x && !x.producer && !x.initializer ? x : null;
}

/** inv_freq behind the freqs MatMul / Mul: a constant reached through Expand / Cast / Reshape / Unsqueeze. */
function invFreqOf(freqsOp: Node): { invFreq: Value; positionIds: Value | null } | undefined {
  for (const [a, b] of [
    [0, 1],
    [1, 0],
  ] as const) {
    const c = skip(freqsOp.input(a), ['Cast', 'Expand', 'Reshape', 'Unsqueeze', 'Transpose']);
    const t = constValue(c);
    if (c && t && t.dims.reduce((x, y) => x * y, 1) >= 1) return { invFreq: c, positionIds: graphInputOf(freqsOp.input(b)) };
  }
  return undefined;
}

function thetaFrom(inv1: number, rotaryDim: number): number | undefined {
  if (!(inv1 > 0 && inv1 < 1) || rotaryDim < 4) return undefined;
  return Number((inv1 ** (-rotaryDim / 2)).toPrecision(6));
}

/** Follows one of cos / sin to its source; `fn` is 'Cos' or 'Sin'. */
function trace1(v: Value, fn: 'Cos' | 'Sin', interleaved: boolean) {
  let root = v;
  const unsq = producer(v, 'Unsqueeze');
  if (unsq) root = unsq.input(0)!;
  let x = skip(root, ['Cast']);
  let scaling = 1;
  const mul = producer(x, 'Mul');
  if (mul) {
    const s0 = scalarOf(mul.input(0));
    const s1 = scalarOf(mul.input(1));
    if (s0 !== undefined || s1 !== undefined) {
      scaling = s1 ?? s0!;
      x = skip(s1 !== undefined ? mul.input(0) : mul.input(1), ['Cast']);
    }
  }
  const trig = producer(x, fn);
  if (trig) {
    // emb = Concat(freqs, freqs) (half-split) or an interleaving reshape of freqs; freqs = MatMul / Mul of inv_freq.
    let f = trig.input(0);
    const cat = producer(f, 'Concat');
    if (cat && cat.input(0) === cat.input(1)) f = cat.input(0);
    const freqsOp = producer(skip(f, ['Transpose', 'Cast', 'Reshape', 'Expand', 'Unsqueeze', 'Tile']), 'MatMul', 'Mul');
    const found = freqsOp && invFreqOf(freqsOp);
    if (found) return { kind: 'inv-freq' as const, root, emb: trig.input(0), scaling, ...found };
    return { kind: 'computed' as const, root };
  }
  const gather = producer(x, 'Gather');
  const table = gather && skip(gather.input(0), ['Slice', 'Cast']);
  if (gather && table && constValue(table)) {
    return { kind: 'table' as const, root: table, table, positionIds: graphInputOf(gather.input(1)), interleaved };
  }
  return { kind: 'computed' as const, root };
}

/** Where the cos/sin a rope multiplies by come from. */
export function traceRope(cos: Value, sin: Value, interleaved: boolean): RopeTrace {
  const c = trace1(cos, 'Cos', interleaved);
  const s = trace1(sin, 'Sin', interleaved);
  if (c.kind === 'inv-freq' && s.kind === 'inv-freq' && c.emb === s.emb && c.invFreq === s.invFreq) {
    const f = toFloat32(constValue(c.invFreq)!);
    const rotaryDim = 2 * f.length;
    const out: RopeTrace = {
      source: { kind: 'inv-freq', invFreq: c.invFreq, positionIds: c.positionIds, attentionScaling: c.scaling },
      rotaryDim,
      roots: [c.root, s.root],
    };
    const theta = Math.abs(f[0]! - 1) < 1e-6 && f.length > 1 ? thetaFrom(f[1]!, rotaryDim) : undefined;
    if (theta !== undefined) out.theta = theta;
    return out;
  }
  if (c.kind === 'table' && s.kind === 'table') {
    const ct = constValue(c.table)!;
    const rotaryDim = ct.dims[ct.dims.length - 1];
    const out: RopeTrace = { source: { kind: 'table', cos: c.table, sin: s.table, positionIds: c.positionIds }, roots: [c.table, s.table] };
    if (rotaryDim !== undefined) out.rotaryDim = rotaryDim;
    const theta = rotaryDim === undefined ? undefined : tableTheta(c.table, s.table, rotaryDim, interleaved);
    if (theta !== undefined) out.theta = theta;
    return out;
  }
  return { source: { kind: 'computed', cos: c.root, sin: s.root }, roots: [c.root, s.root] };
}

/** theta from the angle of frequency 1 at position 1 of [maxPos, rotaryDim] cos/sin tables. */
function tableTheta(cos: Value, sin: Value, rotaryDim: number, interleaved: boolean): number | undefined {
  const ct = constValue(cos)!;
  const st = constValue(sin);
  const n = ct.dims.reduce((x, y) => x * y, 1);
  if (!st || ct.dims.length !== 2 || (ct.dims[0] ?? 0) < 2 || n > MAX_TABLE_ELEMENTS) return undefined;
  try {
    const col = rotaryDim + (interleaved ? 2 : 1); // row 1, frequency 1
    const angle = Math.atan2(toFloat32(st)[col]!, toFloat32(ct)[col]!);
    return thetaFrom(angle, rotaryDim);
  } catch {
    return undefined;
  }
}
