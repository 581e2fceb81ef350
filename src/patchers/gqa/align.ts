/**
 * @file Align-then-merge (Jin et al., "Align Attention Heads Before Merging Them", arXiv 2412.20677), the
 * training-free part: before the KV heads of a merge group are mean-pooled, each is turned into a common basis
 * by a transform that leaves the model's function unchanged.
 *
 * - V/O: an orthogonal Q_j per KV head j. W_V's columns of head j become W_V·Q_j and W_O's rows of every query
 *   head reading j become Q_jᵀ·W_O (exact: attention is linear in v).
 * - Q/K: R_j made of 2×2 rotations (det +1) on each rope frequency plane (dims i and i + rotaryDim/2 for
 *   half-split rope, 2i and 2i+1 interleaved); dims past rotaryDim (or all dims without rope) take a full
 *   orthogonal. W_K's columns of head j and W_Q's columns of every query head reading j both become ·R_j, so
 *   qᵀk is unchanged, and 2-D rotations commute with rope's, so it holds at every position.
 *
 * The transforms come from generalized Procrustes over calibration activations of the k and v projections: the
 * heads of a group are rotated in turn onto the sum of the others until the fit stops improving. Only second
 * moments enter (V_iᵀV_j = blocks of the Gram matrix of the projection output), so a calibration is one
 * (Hkv·Dh)² Gram matrix per projection. Without a calibration the weights themselves are aligned (the Gram of
 * W, i.e. whitened inputs assumed).
 *
 * Row-vector convention throughout: k = x·W_K, k' = k·R.
 */
import { DataType } from '../../graph/ir/dtype.js';
import type { GraphBuilder } from '../../graph/build/builder.js';
import { toFloat32 } from '../../graph/tensor/decode.js';
import type { AttentionBlock, Projection } from '../attention/block.js';

/**
 * Second moments of the k and v projection outputs of the original model on calibration text: for each
 * projection output value (by name), Σ_t y_tᵀ·y_t over the calibration tokens, a row-major [n, n] float64 matrix
 * with n = Hkv·Dh. Collected by `collectKvCalibration` (runtime).
 */
export interface KvCalibration {
  /** Tokens the statistics were collected over. */
  readonly tokens: number;
  readonly grams: ReadonlyMap<string, Float64Array>;
  /** The calibration token ids, when the runtime kept them (the mla refit reruns the models on them). */
  readonly ids?: readonly number[];
}

/** True when `x` looks like a {@link KvCalibration}. */
export function isKvCalibration(x: unknown): x is KvCalibration {
  return typeof x === 'object' && x !== null && (x as KvCalibration).grams instanceof Map && typeof (x as KvCalibration).tokens === 'number';
}

// ---------------------------------------------------------------------------------------------------------------
// Small dense linear algebra (float64, row-major n×n).

/** One-sided Jacobi SVD of a square matrix: a = u·diag(s)·vᵀ with u, v orthogonal (zero singular values completed). */
export function svd(a: Float64Array, n: number): { u: Float64Array; s: Float64Array; v: Float64Array } {
  const u = Float64Array.from(a);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 80; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0; i < n; i++) {
          const up = u[i * n + p]!;
          const uq = u[i * n + q]!;
          alpha += up * up;
          beta += uq * uq;
          gamma += up * uq;
        }
        if (gamma === 0 || Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (const m of [u, v]) {
          for (let i = 0; i < n; i++) {
            const mp = m[i * n + p]!;
            const mq = m[i * n + q]!;
            m[i * n + p] = c * mp - s * mq;
            m[i * n + q] = s * mp + c * mq;
          }
        }
      }
    }
    if (!rotated) break;
  }
  const s = new Float64Array(n);
  let largest = 0;
  for (let j = 0; j < n; j++) {
    let norm = 0;
    for (let i = 0; i < n; i++) norm += u[i * n + j]! ** 2;
    s[j] = Math.sqrt(norm);
    largest = Math.max(largest, s[j]!);
  }
  // Normalize the columns; complete those of (numerically) zero singular values to an orthonormal basis.
  const weak: number[] = [];
  for (let j = 0; j < n; j++) {
    if (s[j]! > 1e-12 * largest && s[j]! > 0) for (let i = 0; i < n; i++) u[i * n + j]! /= s[j]!;
    else weak.push(j);
  }
  for (const j of weak) {
    for (let e = 0; e < n; e++) {
      for (let i = 0; i < n; i++) u[i * n + j] = i === e ? 1 : 0;
      for (let k = 0; k < n; k++) {
        if (k === j || (weak.includes(k) && weak.indexOf(k) > weak.indexOf(j))) continue;
        let dot = 0;
        for (let i = 0; i < n; i++) dot += u[i * n + j]! * u[i * n + k]!;
        for (let i = 0; i < n; i++) u[i * n + j]! -= dot * u[i * n + k]!;
      }
      let norm = 0;
      for (let i = 0; i < n; i++) norm += u[i * n + j]! ** 2;
      if (norm > 1e-6) {
        for (let i = 0; i < n; i++) u[i * n + j]! /= Math.sqrt(norm);
        break;
      }
    }
  }
  return { u, s, v };
}

/** a·b for n×n matrices. */
function matmul(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const x = a[i * n + k]!;
      if (x === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j]! += x * b[k * n + j]!;
    }
  }
  return out;
}

/** The orthogonal matrix closest to `a` (its polar factor u·vᵀ): the Q maximizing tr(Qᵀ·a). */
export function nearestOrthogonal(a: Float64Array, n: number): Float64Array {
  const { u, v } = svd(a, n);
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let x = 0;
      for (let k = 0; k < n; k++) x += u[i * n + k]! * v[j * n + k]!;
      out[i * n + j] = x;
    }
  }
  return out;
}

/** The 2×2 rotation (det +1) maximizing tr(Rᵀ·a): angle atan2(a10 − a01, a00 + a11). */
export function nearestRotation2(a: Float64Array): Float64Array {
  const theta = Math.atan2(a[2]! - a[1]!, a[0]! + a[3]!);
  const c = Math.cos(theta);
  const s = Math.sin(theta);
  return Float64Array.of(c, -s, s, c);
}

function identity(n: number): Float64Array {
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) m[i * n + i] = 1;
  return m;
}

function transpose(a: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[j * n + i] = a[i * n + j]!;
  return out;
}

/**
 * Generalized Procrustes over the heads of one group, on a subspace `dims` of each head: finds T_i (from `solve`,
 * orthogonal) maximizing Σ_{i<j} tr(T_iᵀ·Y_iᵀY_j·T_j), i.e. bringing the heads' activations Y_i·T_i together.
 * `gram` is the full [n, n] Gram of the projection output; heads are column blocks of `headDim`. Returns one m×m
 * transform per head, re-based so the first head's is the identity (only relative rotations matter).
 */
export function procrustesGroup(
  gram: Float64Array,
  n: number,
  heads: readonly number[],
  headDim: number,
  dims: readonly number[],
  solve: (a: Float64Array, m: number) => Float64Array,
): Float64Array[] {
  const m = dims.length;
  const block = (i: number, j: number) => {
    const out = new Float64Array(m * m);
    for (let a = 0; a < m; a++) {
      const row = (heads[i]! * headDim + dims[a]!) * n;
      for (let c = 0; c < m; c++) out[a * m + c] = gram[row + heads[j]! * headDim + dims[c]!]!;
    }
    return out;
  };
  const g = heads.length;
  const blocks: Float64Array[][] = Array.from({ length: g }, (_, i) => Array.from({ length: g }, (_, j) => block(i, j)));
  const t: Float64Array[] = Array.from({ length: g }, () => identity(m));
  const objective = () => {
    let s = 0;
    for (let i = 0; i < g; i++) {
      for (let j = i + 1; j < g; j++) {
        const bt = matmul(blocks[i]![j]!, t[j]!, m);
        for (let a = 0; a < m; a++) for (let c = 0; c < m; c++) s += t[i]![c * m + a]! * bt[c * m + a]!;
      }
    }
    return s;
  };
  let best = objective();
  for (let iter = 0; iter < 200; iter++) {
    for (let j = 0; j < g; j++) {
      // Y_jᵀ·Σ_{i≠j} Y_i·T_i: the Procrustes target of head j is the sum of the others, as they stand.
      const a = new Float64Array(m * m);
      for (let i = 0; i < g; i++) {
        if (i === j) continue;
        const bt = matmul(blocks[j]![i]!, t[i]!, m);
        for (let x = 0; x < m * m; x++) a[x]! += bt[x]!;
      }
      t[j] = solve(a, m);
    }
    const now = objective();
    const done = now - best <= 1e-12 * Math.abs(now);
    best = now;
    if (done) break;
  }
  const base = transpose(t[0]!, m);
  return t.map((x) => matmul(x, base, m));
}

/** Frequency planes of a head's rope dims, and the dims rope leaves alone. */
function ropePlanes(block: AttentionBlock): { planes: [number, number][]; free: number[] } {
  const d = block.headDim;
  const rope = block.rope;
  if (!rope) return { planes: [], free: Array.from({ length: d }, (_, i) => i) };
  const r = Math.min(rope.rotaryDim, d);
  const planes: [number, number][] = [];
  for (let i = 0; i < r / 2; i++) planes.push(rope.interleaved ? [2 * i, 2 * i + 1] : [i, i + r / 2]);
  return { planes, free: Array.from({ length: d - r }, (_, i) => r + i) };
}

/** Per-head Dh×Dh transforms R_j for K (and Q): plane rotations on rope dims, orthogonal on the rest. */
export function keyTransforms(block: AttentionBlock, gram: Float64Array, groupSize: number): Float64Array[] {
  const d = block.headDim;
  const n = block.numKvHeads * d;
  const { planes, free } = ropePlanes(block);
  const out = Array.from({ length: block.numKvHeads }, () => new Float64Array(d * d));
  for (let g = 0; g < block.numKvHeads / groupSize; g++) {
    const heads = Array.from({ length: groupSize }, (_, i) => g * groupSize + i);
    const place = (dims: readonly number[], ts: Float64Array[]) => {
      const m = dims.length;
      ts.forEach((t, i) => {
        for (let a = 0; a < m; a++) for (let c = 0; c < m; c++) out[heads[i]!]![dims[a]! * d + dims[c]!] = t[a * m + c]!;
      });
    };
    for (const p of planes) place(p, procrustesGroup(gram, n, heads, d, p, (a) => nearestRotation2(a)));
    if (free.length) place(free, procrustesGroup(gram, n, heads, d, free, nearestOrthogonal));
  }
  return out;
}

/** Per-head Dh×Dh orthogonal transforms Q_j for V (and O). */
export function valueTransforms(block: AttentionBlock, gram: Float64Array, groupSize: number): Float64Array[] {
  const d = block.headDim;
  const n = block.numKvHeads * d;
  const all = Array.from({ length: d }, (_, i) => i);
  const out: Float64Array[] = [];
  for (let g = 0; g < block.numKvHeads / groupSize; g++) {
    const heads = Array.from({ length: groupSize }, (_, i) => g * groupSize + i);
    out.push(...procrustesGroup(gram, n, heads, d, all, nearestOrthogonal));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Applying the transforms to the weights.

/** `w` ([rows, cols]) with the column block of each listed head (`headOf(col block) → transform`) multiplied by T. */
function transformColumns(w: Float32Array, rows: number, cols: number, headDim: number, transformOf: (head: number) => Float64Array): Float32Array {
  const out = new Float32Array(w.length);
  const heads = cols / headDim;
  for (let r = 0; r < rows; r++) {
    for (let h = 0; h < heads; h++) {
      const t = transformOf(h);
      const base = r * cols + h * headDim;
      for (let c = 0; c < headDim; c++) {
        let x = 0;
        for (let a = 0; a < headDim; a++) x += w[base + a]! * t[a * headDim + c]!;
        out[base + c] = x;
      }
    }
  }
  return out;
}

/** `w` ([rows, cols]) with the row block of each head multiplied on the left by Tᵀ. */
function transformRows(w: Float32Array, cols: number, headDim: number, heads: number, transformOf: (head: number) => Float64Array): Float32Array {
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    const t = transformOf(h);
    for (let a = 0; a < headDim; a++) {
      const dst = (h * headDim + a) * cols;
      for (let b = 0; b < headDim; b++) {
        const x = t[b * headDim + a]!; // (Tᵀ)[a, b]
        if (x === 0) continue;
        const src = (h * headDim + b) * cols;
        for (let c = 0; c < cols; c++) out[dst + c]! += x * w[src + c]!;
      }
    }
  }
  return out;
}

/** Why a projection's weight cannot be transformed in place, or undefined. */
function plainWeight(p: Projection | null, what: string, rows: number | undefined, cols: number | undefined): string | undefined {
  const w = p?.weight?.initializer;
  if (!p || !w || p.quant || p.columns || p.transposed) return `the ${what} projection is not a plain MatMul with an initializer weight`;
  if (w.dtype !== DataType.FLOAT || w.dims.length !== 2) return `the ${what} weight is not a 2-D float32 matrix`;
  if ((rows !== undefined && w.dims[0] !== rows) || (cols !== undefined && w.dims[1] !== cols)) return `the ${what} weight is [${w.dims.join(', ')}], expected [${rows ?? '?'}, ${cols ?? '?'}]`;
  if (p.bias && !p.bias.initializer) return `the ${what} bias is not constant`;
  return undefined;
}

/** Why the block's heads cannot be aligned (checked before anything changes), or undefined. */
export function unalignable(block: AttentionBlock, calibration: KvCalibration | undefined): string | undefined {
  const { numHeads: h, numKvHeads: hkv, headDim: d } = block;
  if (h % hkv !== 0) return `${h} heads are not a multiple of ${hkv} KV heads`;
  for (const note of ['qk-norm', 'output-gate']) if (block.notes.includes(note)) return `aligning heads is not exact with ${note}`;
  const why =
    plainWeight(block.q, 'q', undefined, h * d) ??
    plainWeight(block.k, 'k', undefined, hkv * d) ??
    plainWeight(block.v, 'v', undefined, hkv * d) ??
    plainWeight(block.o, 'o', h * d, undefined);
  if (why) return `aligned merge: ${why}`;
  if (!block.o!.node.inputs.includes(block.output)) return 'aligned merge: the o projection does not read the attention output directly';
  if (calibration) {
    for (const p of [block.k!, block.v!]) {
      const g = p.output ? calibration.grams.get(p.output.name) : undefined;
      if (!g) return `aligned merge: the calibration has no activations of ${p.output?.name ?? 'the projection'}`;
      if (g.length !== (hkv * d) ** 2) return `aligned merge: the calibration of ${p.output!.name} is ${Math.sqrt(g.length)} wide, expected ${hkv * d}`;
    }
  }
  return undefined;
}

/** Gram matrix Wᵀ·W of a [rows, n] weight: the projection's output second moment under whitened inputs. */
function weightGram(w: Float32Array, rows: number, n: number): Float64Array {
  const g = new Float64Array(n * n);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < n; i++) {
      const x = w[r * n + i]!;
      for (let j = 0; j < n; j++) g[i * n + j]! += x * w[r * n + j]!;
    }
  }
  return g;
}

function replaceWeight(b: GraphBuilder, p: Projection, what: string, data: Float32Array): void {
  const dims = p.weight!.initializer!.dims;
  const next = b.floats(`${what}_aligned_weight`, dims, data);
  p.node.replaceInputWith(p.weight!, next);
  p.weight = next;
}

function replaceBias(b: GraphBuilder, p: Projection, what: string, headDim: number, transformOf: (head: number) => Float64Array): void {
  if (!p.bias?.initializer) return;
  const bias = toFloat32(p.bias.initializer, p.bias.name);
  const next = b.floats(`${what}_aligned_bias`, p.bias.initializer.dims, transformColumns(bias, 1, bias.length, headDim, transformOf));
  const add = p.output?.producer;
  if (add) add.replaceInputWith(p.bias, next);
  p.bias = next;
}

/**
 * Rotates the heads of each group of `groupSize` adjacent KV heads into a common basis (function-preserving),
 * replacing the q/k/v/o weights (and biases) of the block. Call {@link unalignable} first. Returns the transforms.
 */
export function alignKvHeads(b: GraphBuilder, block: AttentionBlock, groupSize: number, calibration?: KvCalibration): { key: Float64Array[]; value: Float64Array[] } {
  const { numHeads: h, numKvHeads: hkv, headDim: d } = block;
  const n = hkv * d;
  const q = block.q!;
  const k = block.k!;
  const v = block.v!;
  const o = block.o!;
  const wk = toFloat32(k.weight!.initializer!, k.weight!.name);
  const wv = toFloat32(v.weight!.initializer!, v.weight!.name);
  const dModelK = k.weight!.initializer!.dims[0]!;
  const dModelV = v.weight!.initializer!.dims[0]!;
  const gramK = calibration?.grams.get(k.output!.name) ?? weightGram(wk, dModelK, n);
  const gramV = calibration?.grams.get(v.output!.name) ?? weightGram(wv, dModelV, n);
  const key = keyTransforms(block, gramK, groupSize);
  const value = valueTransforms(block, gramV, groupSize);
  const perQuery = h / hkv; // query head i reads KV head ⌊i / perQuery⌋
  const kvOf = (i: number) => Math.floor(i / perQuery);

  replaceWeight(b, k, 'k', transformColumns(wk, dModelK, n, d, (j) => key[j]!));
  replaceBias(b, k, 'k', d, (j) => key[j]!);
  const wq = toFloat32(q.weight!.initializer!, q.weight!.name);
  replaceWeight(b, q, 'q', transformColumns(wq, q.weight!.initializer!.dims[0]!, h * d, d, (i) => key[kvOf(i)]!));
  replaceBias(b, q, 'q', d, (i) => key[kvOf(i)]!);
  replaceWeight(b, v, 'v', transformColumns(wv, dModelV, n, d, (j) => value[j]!));
  replaceBias(b, v, 'v', d, (j) => value[j]!);
  const wo = toFloat32(o.weight!.initializer!, o.weight!.name);
  replaceWeight(b, o, 'o', transformRows(wo, o.weight!.initializer!.dims[1]!, d, h, (i) => value[kvOf(i)]!));
  return { key, value };
}
