/** The MLA factorization math, checked against ml-matrix's SVD and Cholesky (an independent route to each claim). */
import { CholeskyDecomposition, Matrix, SingularValueDecomposition, solve } from 'ml-matrix';
import { describe, expect, it } from 'vitest';
import { isAttnpatchError } from '../../errors.js';
import { analyzeUnit, concatColumns, factorsAt, lostEnergy, sliceColumns } from './factorize.js';
import { matmul, matmulTransA, ridgeSolve, weightedGram } from './linalg.js';
import { mlaParams, type MlaOptions } from './options.js';
import { allocateRanks, type LayerUnits } from './ranks.js';

function lcg(seed: number): () => number {
  let x = seed;
  return () => (x = (x * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5;
}
const random = (n: number, seed: number) => Float32Array.from({ length: n }, lcg(seed));

/** X [t, rows] with correlated, unevenly scaled columns (like hidden states). */
function activations(t: number, rows: number, seed: number): Float64Array {
  const r = lcg(seed);
  const mix = Float64Array.from({ length: rows * rows }, r);
  const x = new Float64Array(t * rows);
  for (let i = 0; i < t; i++) for (let a = 0; a < rows; a++) x[i * rows + a] = r() * (1 + 4 * (a % 3));
  return matmul(x, mix, t, rows, rows);
}

/** ‖X·(A − B)‖²_F (X null: ‖A − B‖²_F). */
function error(x: Float64Array | null, t: number, a: Float32Array, b: ArrayLike<number>, rows: number, cols: number): number {
  const d = Float64Array.from(a, (v, i) => v - b[i]!);
  const y = x ? matmul(x, d, t, rows, cols) : d;
  return y.reduce((s, v) => s + v * v, 0);
}

const product = (f: { down: Float32Array; up: Float32Array }, rows: number, r: number, cols: number) => matmul(f.down, f.up, rows, r, cols);

describe('factorsAt', () => {
  const [rows, cols, t] = [24, 16, 200];
  const w = random(rows * cols, 3);
  const x = activations(t, rows, 5);
  const c = matmulTransA(x, x, t, rows, rows); // XᵀX

  it('is exact at full rank, weight-only and activation-aware', () => {
    for (const cov of [null, c]) {
      const u = analyzeUnit(w, rows, cols, cov);
      expect(u.maxRank).toBe(cols);
      expect(error(null, 0, w, product(factorsAt(u, cols), rows, cols, cols), rows, cols)).toBeLessThan(1e-10);
      expect(lostEnergy(u, cols)).toBeLessThan(1e-12);
    }
  });

  it('weight-only: the error is the tail of the singular values (Eckart–Young, ml-matrix SVD)', () => {
    const s = new SingularValueDecomposition(new Matrix([...Array(rows)].map((_, i) => [...w.subarray(i * cols, (i + 1) * cols)]))).diagonal;
    const u = analyzeUnit(w, rows, cols, null);
    for (const r of [1, 5, 11]) {
      const tail = s.slice(r).reduce((a, v) => a + v * v, 0);
      expect(error(null, 0, w, product(factorsAt(u, r), rows, r, cols), rows, cols)).toBeCloseTo(tail, 8);
    }
  });

  it('asvd equals SVD-LLM whitening (Cholesky L of XᵀX, truncated SVD of Lᵀ·W, then L⁻ᵀ) and beats weight-only on X', () => {
    const lm = new CholeskyDecomposition(Matrix.from1DArray(rows, rows, Array.from(c))).lowerTriangularMatrix;
    const wm = Matrix.from1DArray(rows, cols, Array.from(w));
    const svd = new SingularValueDecomposition(lm.transpose().mmul(wm));
    const u = analyzeUnit(w, rows, cols, c);
    for (const r of [3, 8]) {
      const ur = svd.leftSingularVectors.subMatrix(0, rows - 1, 0, r - 1);
      const sr = Matrix.diag(svd.diagonal.slice(0, r));
      const vr = svd.rightSingularVectors.subMatrix(0, cols - 1, 0, r - 1);
      const whitened = solve(lm.transpose(), ur.mmul(sr).mmul(vr.transpose())); // L⁻ᵀ·U_r·Σ_r·V_rᵀ
      const ours = product(factorsAt(u, r), rows, r, cols);
      const scale = Math.max(...w.map(Math.abs));
      expect(Math.max(...whitened.to1DArray().map((v: number, i: number) => Math.abs(v - ours[i]!)))).toBeLessThan(1e-5 * scale);
      const svdOnly = product(factorsAt(analyzeUnit(w, rows, cols, null), r), rows, r, cols);
      expect(error(x, t, w, ours, rows, cols)).toBeLessThan(error(x, t, w, svdOnly, rows, cols));
      // The lost energy is the activation-weighted error it predicts.
      expect(error(x, t, w, ours, rows, cols) / u.total).toBeCloseTo(lostEnergy(u, r), 6);
    }
  });

  it('joint [W_K | W_V] columns round-trip through concat and slice', () => {
    const a = random(rows * 4, 1);
    const b = random(rows * 6, 2);
    const j = concatColumns(a, b, rows, 4, 6);
    expect([...sliceColumns(j, rows, 10, 0, 4)]).toEqual([...a]);
    expect([...sliceColumns(j, rows, 10, 4, 10)]).toEqual([...b]);
  });

  it('weightedGram is Wᵀ·C·W, and ridgeSolve solves the normal equations (tiny ridge)', () => {
    const g = weightedGram(w, rows, cols, c);
    const xw = matmul(x, w, t, rows, cols);
    expect(Math.max(...matmulTransA(xw, xw, t, cols, cols).map((v, i) => Math.abs(v - g[i]!)))).toBeLessThan(1e-6 * Math.max(...g));
    const z = activations(50, 6, 9);
    const truth = Float64Array.from({ length: 6 * 3 }, lcg(4));
    const y = matmul(z, truth, 50, 6, 3);
    const fit = ridgeSolve(matmulTransA(z, z, 50, 6, 6), matmulTransA(z, y, 50, 6, 3), 6, 3, 1e-12);
    expect(Math.max(...fit.map((v, i) => Math.abs(v - truth[i]!)))).toBeLessThan(1e-6);
  });
});

describe('allocateRanks', () => {
  const unit = (spectrum: number[]) => {
    const cols = spectrum.length;
    const w = new Float32Array(cols * cols);
    spectrum.forEach((s, i) => (w[i * cols + i] = Math.sqrt(s)));
    return analyzeUnit(w, cols, cols, null);
  };
  // Layer 0's energy is spread out, layer 1's is concentrated: layer 0 should get more ranks.
  const layers: LayerUnits[] = [
    { layer: 0, units: [unit([4, 3, 2, 1, 1, 1, 1, 1])], original: 8 },
    { layer: 1, units: [unit([20, 1, 0.5, 0.1, 0, 0, 0, 0])], original: 8 },
  ];

  it('fixed ranks are clamped to what a unit holds; uniform splits the ratio; energy spends the budget greedily', () => {
    expect(allocateRanks(layers, { kind: 'fixed', rank: 6, rankK: 6, rankV: 6 }, 'joint').ranks).toEqual([[6], [6]]);
    const full = allocateRanks(layers, { kind: 'fixed', rank: 99, rankK: 99, rankV: 99 }, 'joint');
    expect(full.ranks).toEqual([[8], [8]]);
    expect(full.notes[0]).toMatch(/rank 99 exceeds the 8 this projection can use/);
    expect(allocateRanks(layers, { kind: 'ratio', kvRatio: 0.5, allocation: 'uniform' }, 'joint').ranks).toEqual([[4], [4]]);
    const greedy = allocateRanks(layers, { kind: 'ratio', kvRatio: 0.5, allocation: 'energy' }, 'joint');
    expect(greedy.elements).toBe(8);
    expect(greedy.ranks[0]![0]!).toBeGreaterThan(greedy.ranks[1]![0]!);
    expect(greedy.ranks[1]![0]!).toBeGreaterThanOrEqual(2); // the joint minimum
  });
});

describe('mla options', () => {
  const cases: [MlaOptions, RegExp][] = [
    [{}, /exactly one of rank .* and kvRatio/],
    [{ rank: 8, kvRatio: 0.5 }, /exactly one of rank/],
    [{ method: 'asvd', rank: 8 }, /method asvd needs calibration/],
    [{ layout: 'joint', rankK: 8, rankV: 8 }, /rankK\/rankV need layout=split/],
    [{ layout: 'split', rankK: 8 }, /needs rankK and rankV/],
    [{ kvRatio: 1.5 }, /kvRatio must be a number in \(0, 1\]/],
    [{ rank: 1 }, /joint rank must be at least 2/],
    [{ rank: 8, allocation: 'energy' }, /allocation applies to kvRatio only/],
    [{ rank: 8, calibration: 'calib.txt' as never }, /calibration text file is read by the runtime and the CLI/],
    [{ rank: 8, refit: true }, /refit needs calibration/],
  ];
  it.each(cases)('%j is refused', (options, message) => {
    try {
      mlaParams(options);
      expect.unreachable();
    } catch (e) {
      expect(isAttnpatchError(e) && e.code).toBe('USAGE');
      expect((e as Error).message).toMatch(message);
    }
  });

  it('defaults: joint, svd without calibration, energy allocation, values folded; rankK/rankV imply split', () => {
    expect(mlaParams({ kvRatio: 0.5 })).toMatchObject({ layout: 'joint', method: 'svd', value: 'fold', ranks: { kind: 'ratio', kvRatio: 0.5, allocation: 'energy' } });
    expect(mlaParams({ rankK: 8, rankV: 'full' })).toMatchObject({ layout: 'split', ranks: { kind: 'fixed', rankK: 8, rankV: Infinity } });
  });
});
