/**
 * @file Planning an MLA rewrite without touching the graph: which blocks qualify, each block's factored units
 * (joint [W_K | W_V], or W_K and W_V apart) under its calibration covariance, and the ranks. The factors of a plan
 * are what the lowering emits, so tests can rebuild the effective weights W_D·W_U from the same plan.
 */
import type { Model } from '../../graph/ir/model.js';
import { liftAttention } from '../attention/lift.js';
import type { LeftBlock } from '../patch.js';
import { analyzeUnit, concatColumns, factorsAt, sliceColumns, type FactorUnit } from './factorize.js';
import { mlaParams, type MlaOptions, type MlaParams } from './options.js';
import { allocateRanks, type Allocation } from './ranks.js';
import { mlaSource, type MlaSource } from './source.js';

export interface PlannedBlock {
  source: MlaSource;
  /** joint: [K|V]; split: [K, V]. */
  units: FactorUnit[];
  /** joint: [r]; split: [r_k, r_v]. */
  ranks: number[];
}

export interface MlaPlan {
  params: MlaParams;
  blocks: PlannedBlock[];
  left: LeftBlock[];
  allocation: Allocation;
}

/** The factors a planned block is lowered with. */
export interface BlockFactors {
  /** [d_model, r_k + r_v]: the latent, key slot then value slot. */
  down: Float32Array;
  /** Widths of the key and value cache slots. */
  slotK: number;
  slotV: number;
  /** W_UK [a, n] reading the first a latent columns (joint: the whole latent; split: the key slot). */
  upK: Float32Array;
  /** W_UV [c, n] reading the value latent (joint: the whole latent; split: the value slot). */
  upV: Float32Array;
  /** Rows of upK / upV. */
  keyWidth: number;
  valueWidth: number;
}

/** Plans the rewrite of every block of `model` (the graph is not changed). */
export function planMla(model: Model, options: MlaOptions): MlaPlan {
  const params = mlaParams(options);
  const { blocks, unsupported } = liftAttention(model);
  const left: LeftBlock[] = unsupported.map((u) => ({ layer: -1, form: 'unfused', reason: `${u.node}: ${u.reason}` }));
  const planned: PlannedBlock[] = [];
  for (const block of blocks) {
    const source = mlaSource(block, params.value);
    if (typeof source === 'string') {
      left.push({ layer: block.layer, form: block.form, reason: source });
      continue;
    }
    const { k, v, hidden } = source;
    let covariance: Float64Array | null = null;
    if (params.method === 'asvd') {
      covariance = params.calibration?.grams.get(hidden.name) ?? null;
      if (!covariance || covariance.length !== k.rows * k.rows) {
        left.push({ layer: block.layer, form: block.form, reason: `the calibration has no ${k.rows}×${k.rows} statistics for its input '${hidden.name}' (collected on another model?)` });
        continue;
      }
    }
    const units =
      params.layout === 'joint'
        ? [analyzeUnit(concatColumns(k.w, v.w, k.rows, k.cols, v.cols), k.rows, k.cols + v.cols, covariance)]
        : [analyzeUnit(k.w, k.rows, k.cols, covariance), analyzeUnit(v.w, v.rows, v.cols, covariance)];
    planned.push({ source, units, ranks: [] });
  }
  const allocation = allocateRanks(
    planned.map((p) => ({ layer: p.source.block.layer, units: p.units, original: 2 * p.source.k.cols })),
    params.ranks,
    params.layout,
  );
  planned.forEach((p, i) => (p.ranks = allocation.ranks[i]!));
  return { params, blocks: planned, left, allocation };
}

/** The factors of one planned block at its ranks. */
export function blockFactors(p: PlannedBlock): BlockFactors {
  const n = p.source.k.cols;
  const rows = p.source.k.rows;
  if (p.units.length === 1) {
    const r = p.ranks[0]!;
    const { down, up } = factorsAt(p.units[0]!, r);
    // NOTE: the joint latent is cut in two only to fill the key and value cache slots; both halves feed both ups.
    return { down, slotK: Math.ceil(r / 2), slotV: Math.floor(r / 2), upK: sliceColumns(up, r, 2 * n, 0, n), upV: sliceColumns(up, r, 2 * n, n, 2 * n), keyWidth: r, valueWidth: r };
  }
  const [rk, rv] = p.ranks as [number, number];
  const fk = factorsAt(p.units[0]!, rk);
  const fv = factorsAt(p.units[1]!, rv);
  return { down: concatColumns(fk.down, fv.down, rows, rk, rv), slotK: rk, slotV: rv, upK: fk.up, upV: fv.up, keyWidth: rk, valueWidth: rv };
}

/** The effective K and V weights of a planned block, W_D·W_U as [d_model, n] each (for checks). */
export function effectiveWeights(p: PlannedBlock): { k: Float32Array; v: Float32Array } {
  const f = blockFactors(p);
  const rows = p.source.k.rows;
  const n = p.source.k.cols;
  const r = f.slotK + f.slotV;
  const mul = (from: number, width: number, up: Float32Array) => {
    const out = new Float32Array(rows * n);
    for (let i = 0; i < rows; i++)
      for (let a = 0; a < width; a++) {
        const x = f.down[i * r + from + a]!;
        for (let j = 0; j < n; j++) out[i * n + j]! += x * up[a * n + j]!;
      }
    return out;
  };
  const split = p.units.length === 2;
  return { k: mul(0, f.keyWidth, f.upK), v: mul(split ? f.slotK : 0, f.valueWidth, f.upV) };
}
