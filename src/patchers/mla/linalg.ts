/**
 * @file The dense linear algebra MLA needs, on row-major float64 arrays: Wᵀ·C·W (a projection's output second
 * moments under an input covariance C) and the eigendecomposition of a symmetric matrix. The eigensolver is
 * ml-matrix's (Householder tridiagonalization + QL); we only sort and copy.
 *
 * NOTE: why an eigendecomposition of a Gram matrix rather than an SVD of the weight: the factors only need the
 * right singular vectors of L ᵀ·W (L Lᵀ = C), which are the eigenvectors of Wᵀ·C·W, an n×n problem with
 * n = Hkv·Dh (or 2·Hkv·Dh) no matter how wide d_model is; ml-matrix's EVD of the Gram is ~5× faster than its SVD of
 * W (shared/reference/dependencies.md; bench/mla.ts measures it here).
 */
import { CholeskyDecomposition, EigenvalueDecomposition, Matrix } from 'ml-matrix';

/** Eigen-pairs of a symmetric matrix, largest eigenvalue first. */
export interface SymmetricEigen {
  /** Eigenvalues, descending (tiny negative round-off clamped to 0). */
  values: Float64Array;
  /** Eigenvectors as the columns of an n×n row-major matrix, in the order of `values`. */
  vectors: Float64Array;
  n: number;
}

/** Eigendecomposition of the symmetric n×n row-major matrix `a`. */
export function symmetricEigen(a: Float64Array, n: number): SymmetricEigen {
  const m = new Matrix(n, n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) m.set(i, j, 0.5 * (a[i * n + j]! + a[j * n + i]!));
  const evd = new EigenvalueDecomposition(m, { assumeSymmetric: true });
  const raw = evd.realEigenvalues;
  const vec = evd.eigenvectorMatrix;
  const order = raw.map((_, i) => i).sort((x, y) => raw[y]! - raw[x]!);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    values[dst] = Math.max(0, raw[src]!);
    for (let i = 0; i < n; i++) vectors[i * n + dst] = vec.get(i, src);
  });
  return { values, vectors, n };
}

/** a·b for row-major a [m, k] and b [k, n] (float64 result; inputs may be float32). */
export function matmul(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const row = i * n;
    for (let p = 0; p < k; p++) {
      const x = a[i * k + p]!;
      if (x === 0) continue;
      const base = p * n;
      for (let j = 0; j < n; j++) out[row + j]! += x * b[base + j]!;
    }
  }
  return out;
}

/** aᵀ·b for row-major a [k, m] and b [k, n]: [m, n]. */
export function matmulTransA(a: ArrayLike<number>, b: ArrayLike<number>, k: number, m: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let p = 0; p < k; p++) {
    const aRow = p * m;
    const bRow = p * n;
    for (let i = 0; i < m; i++) {
      const x = a[aRow + i]!;
      if (x === 0) continue;
      const row = i * n;
      for (let j = 0; j < n; j++) out[row + j]! += x * b[bRow + j]!;
    }
  }
  return out;
}

/**
 * Wᵀ·C·W for W [rows, cols] and a symmetric C [rows, rows]; with C null, Wᵀ·W (C = I). This is Σ_t y_tᵀ·y_t of
 * the projection outputs y = x·W when C = Σ_t x_tᵀ·x_t.
 */
export function weightedGram(w: ArrayLike<number>, rows: number, cols: number, c: Float64Array | null): Float64Array {
  const cw = c ? matmul(c, w, rows, rows, cols) : w;
  return matmulTransA(w, cw, rows, cols, cols);
}

/** The first `r` columns of an n×n row-major matrix, as a [n, r] row-major matrix. */
export function leadingColumns(m: Float64Array, n: number, r: number): Float64Array {
  const out = new Float64Array(n * r);
  for (let i = 0; i < n; i++) for (let j = 0; j < r; j++) out[i * r + j] = m[i * n + j]!;
  return out;
}

/** Transpose of a row-major [m, n] matrix. */
export function transpose(a: ArrayLike<number>, m: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out[j * m + i] = a[i * n + j]!;
  return out;
}

/**
 * Ridge least squares: X [n, m] minimizing ‖Z·X − Y‖² + ridge·mean(diag ZᵀZ)·‖X‖², from the normal equations
 * a = ZᵀZ [n, n] (symmetric) and b = ZᵀY [n, m]. Cholesky of the damped a (positive definite for ridge > 0).
 */
export function ridgeSolve(a: Float64Array, b: Float64Array, n: number, m: number, ridge: number): Float64Array {
  let trace = 0;
  for (let i = 0; i < n; i++) trace += a[i * n + i]!;
  const damp = Math.max(ridge * (trace / n), Number.MIN_VALUE);
  const am = new Matrix(n, n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) am.set(i, j, 0.5 * (a[i * n + j]! + a[j * n + i]!) + (i === j ? damp : 0));
  const bm = new Matrix(n, m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) bm.set(i, j, b[i * m + j]!);
  const x = new CholeskyDecomposition(am).solve(bm);
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) out[i * m + j] = x.get(i, j);
  return out;
}
