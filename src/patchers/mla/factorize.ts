/**
 * @file The low-rank factorization behind MLA: a projection W [d_model, n] (row-vector convention, y = x·W) becomes
 * W ≈ W_D·W_U with a down-projection W_D [d_model, r] whose output is cached and an up-projection W_U [r, n].
 *
 * - `svd` (weight only, MHA2MLA): minimize ‖W − W_D·W_U‖_F.
 * - `asvd` (activation-aware, SVD-LLM / Palu): minimize ‖X·W − X·W_D·W_U‖_F over calibration inputs X, i.e. the
 *   error of the projection outputs on real hidden states. With C = XᵀX = L·Lᵀ the classic recipe whitens (SVD of
 *   Lᵀ·W, then W_D = L⁻ᵀ·U_r·Σ_r). Its rank-r truncation equals W·V_r·V_rᵀ, where V_r are the top eigenvectors of
 *   Wᵀ·C·W (the right singular vectors of Lᵀ·W). So we take W_D = W·V_r and W_U = V_rᵀ: the same optimum with no
 *   Cholesky factor and no inverse (nothing to regularize when C is ill-conditioned), and an n×n eigenproblem.
 *
 * The latent c = x·W·V_r is the projection output in its principal basis, so it has the output's own scale (safe
 * for float16 caches), and at full rank V is orthogonal and W_D·W_U = W exactly (up to rounding).
 */
import { leadingColumns, matmul, symmetricEigen, transpose, weightedGram, type SymmetricEigen } from './linalg.js';

/** One matrix factored as a whole (W_K, W_V, or [W_K | W_V] for the joint layout). */
export interface FactorUnit {
  rows: number;
  cols: number;
  /** The weight, [rows, cols] row-major. */
  weight: Float32Array;
  /** Eigen-pairs of Wᵀ·C·W (C = I for weight-only): λ_i is the output energy rank i captures. */
  eigen: SymmetricEigen;
  /** The largest rank that can still gain anything: min(rows, cols). */
  maxRank: number;
  /** Σ λ_i: the output energy of the projection. */
  total: number;
}

/** Analyzes W [rows, cols] under input covariance `covariance` ([rows, rows]; null: weight-only). */
export function analyzeUnit(weight: Float32Array, rows: number, cols: number, covariance: Float64Array | null): FactorUnit {
  const eigen = symmetricEigen(weightedGram(weight, rows, cols, covariance), cols);
  let total = 0;
  for (const x of eigen.values) total += x;
  return { rows, cols, weight, eigen, maxRank: Math.min(rows, cols), total };
}

/** W_D [rows, r] and W_U [r, cols] (float32) of the best rank-r approximation. */
export function factorsAt(u: FactorUnit, r: number): { down: Float32Array; up: Float32Array } {
  if (!Number.isInteger(r) || r < 1 || r > u.cols) throw new RangeError(`rank ${r} outside 1..${u.cols}`);
  const vr = leadingColumns(u.eigen.vectors, u.cols, r); // [cols, r]
  return { down: Float32Array.from(matmul(u.weight, vr, u.rows, u.cols, r)), up: Float32Array.from(transpose(vr, u.cols, r)) };
}

/** Fraction of the output energy a rank-r factorization loses: Σ_{i≥r} λ_i / Σ λ_i (0 when W is zero). */
export function lostEnergy(u: FactorUnit, r: number): number {
  if (u.total <= 0) return 0;
  let kept = 0;
  for (let i = 0; i < Math.min(r, u.eigen.values.length); i++) kept += u.eigen.values[i]!;
  return Math.max(0, 1 - kept / u.total);
}

/** [a | b]: columns of a [rows, ca] then b [rows, cb]. */
export function concatColumns(a: Float32Array, b: Float32Array, rows: number, ca: number, cb: number): Float32Array {
  const out = new Float32Array(rows * (ca + cb));
  for (let i = 0; i < rows; i++) {
    out.set(a.subarray(i * ca, (i + 1) * ca), i * (ca + cb));
    out.set(b.subarray(i * cb, (i + 1) * cb), i * (ca + cb) + ca);
  }
  return out;
}

/** Columns [start, end) of m [rows, cols]. */
export function sliceColumns(m: Float32Array, rows: number, cols: number, start: number, end: number): Float32Array {
  const w = end - start;
  const out = new Float32Array(rows * w);
  for (let i = 0; i < rows; i++) out.set(m.subarray(i * cols + start, i * cols + end), i * w);
  return out;
}
