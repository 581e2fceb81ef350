/**
 * @file Options of the `mla` patch and their checks: the cache layout (one joint latent for K and V, or separate
 * latents), the factorization method (weight-only or activation-aware), and the ranks (fixed, or allocated under a
 * KV-cache byte budget). Nonsense is rejected with a message that says what would work.
 */
import { AttnpatchError } from '../../errors.js';
import { isKvCalibration, type KvCalibration } from '../gqa/align.js';

/** `joint`: one latent c = x·W_D shared by K and V (MHA2MLA's SVD_joint); `split`: separate K and V latents. */
export type MlaLayout = 'joint' | 'split';
/** `svd`: factor the weights alone; `asvd`: minimize the output error on calibration hidden states. */
export type MlaMethod = 'svd' | 'asvd';
/** How a kvRatio budget is spread: the same ratio everywhere, or greedily by the output energy each rank buys. */
export type RankAllocation = 'uniform' | 'energy';
/** How values are applied: W_UV folded into the output projection per head, or values rebuilt every step. */
export type ValueMode = 'fold' | 'reconstruct';

export interface MlaOptions {
  layout?: MlaLayout;
  /** Default: `asvd` when a calibration is given, else `svd`. */
  method?: MlaMethod;
  /** Latent width per layer (joint), or both r_k and r_v (split); 'full' keeps every rank (exact). */
  rank?: number | 'full';
  /** Split layout: key latent width (default `rank`). */
  rankK?: number | 'full';
  /** Split layout: value latent width (default `rank`). */
  rankV?: number | 'full';
  /** Target KV-cache bytes ÷ the original's, 0 < kvRatio ≤ 1; ranks are allocated per layer (and per K/V when split). */
  kvRatio?: number;
  /** With kvRatio: 'energy' (default) or 'uniform'. */
  allocation?: RankAllocation;
  /**
   * Second moments of each layer's attention input (the normed hidden states the projections read), by value name:
   * collect them with `collectHiddenCalibration` from the runtime (the CLI takes `calibration=FILE`).
   */
  calibration?: KvCalibration;
  /** Default 'fold' where the output projection can take it, else values are rebuilt. */
  value?: ValueMode;
  /**
   * After patching, refit each lossy block's folded output projection by least squares on the calibration text
   * (the runtime does it: `refitPatched` / `refitMlaOutputs`; the CLI does it by default when calibration=FILE).
   */
  refit?: boolean;
  /** Ridge damping of that refit, relative to the mean diagonal of the normal equations (default 1e-3). */
  ridge?: number;
  /** Longest context the rebuilt rope tables cover (default: max(4096, config max_position_embeddings)). */
  maxContext?: number;
  /** Throw instead of leaving blocks unpatched. */
  strict?: boolean;
}

/** A rank request: fixed widths, or a byte budget to allocate. `Infinity` means full rank. */
export type RankRequest =
  | { kind: 'fixed'; rank: number; rankK: number; rankV: number }
  | { kind: 'ratio'; kvRatio: number; allocation: RankAllocation };

export interface MlaParams {
  layout: MlaLayout;
  method: MlaMethod;
  ranks: RankRequest;
  calibration: KvCalibration | undefined;
  value: ValueMode;
}

const usage = (message: string, field: string) => new AttnpatchError('USAGE', message, { field: `mla.${field}` });

function oneOf<T extends string>(v: unknown, allowed: readonly T[], field: string): T | undefined {
  if (v === undefined) return undefined;
  if (!allowed.includes(v as T)) throw usage(`mla option ${field} must be one of ${allowed.join(', ')}; got ${String(v)}`, field);
  return v as T;
}

function rankOf(v: unknown, field: string): number | undefined {
  if (v === undefined) return undefined;
  if (v === 'full') return Infinity;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw usage(`mla option ${field} must be a positive integer or 'full', got ${String(v)}`, field);
  return v;
}

/** Resolves and checks the options. */
export function mlaParams(o: MlaOptions): MlaParams {
  const rank = rankOf(o.rank, 'rank');
  const rankK = rankOf(o.rankK, 'rankK');
  const rankV = rankOf(o.rankV, 'rankV');
  let layout = oneOf(o.layout, ['joint', 'split'] as const, 'layout');
  if (rankK !== undefined || rankV !== undefined) {
    if (layout === 'joint') throw usage('mla options rankK/rankV need layout=split (the joint layout has one latent: use rank)', 'rankK');
    layout = 'split';
  }
  layout ??= 'joint';
  if (o.calibration !== undefined && !isKvCalibration(o.calibration)) {
    // NOTE: a file name arrives here from a string spec; reading it needs the tokenizer and ONNX Runtime, which live in
    // the runtime layer (collectHiddenCalibration / resolveCalibration), not in a patch.
    throw usage('mla option calibration must be hidden-state statistics from collectHiddenCalibration(); a calibration text file is read by the runtime and the CLI', 'calibration');
  }
  const method = oneOf(o.method, ['svd', 'asvd'] as const, 'method') ?? (o.calibration ? 'asvd' : 'svd');
  if (method === 'asvd' && !o.calibration) {
    throw usage('mla method asvd needs calibration: calibration=FILE (a text file) on the CLI, or collectHiddenCalibration() statistics in code; method=svd needs none', 'calibration');
  }
  if (o.refit !== undefined && typeof o.refit !== 'boolean') throw usage(`mla option refit must be true or false, got ${String(o.refit)}`, 'refit');
  if (o.refit === true && !o.calibration) throw usage('mla option refit needs calibration (it refits on the calibration text)', 'refit');
  if (o.maxContext !== undefined && !(Number.isInteger(o.maxContext) && o.maxContext >= 1)) throw usage(`mla option maxContext must be a positive integer, got ${String(o.maxContext)}`, 'maxContext');
  if (o.ridge !== undefined && !(typeof o.ridge === 'number' && o.ridge > 0)) throw usage(`mla option ridge must be a number > 0, got ${String(o.ridge)}`, 'ridge');
  const allocation = oneOf(o.allocation, ['uniform', 'energy'] as const, 'allocation');
  const value = oneOf(o.value, ['fold', 'reconstruct'] as const, 'value') ?? 'fold';
  const given = [rank !== undefined || rankK !== undefined || rankV !== undefined, o.kvRatio !== undefined].filter(Boolean).length;
  if (given !== 1) throw usage('mla needs exactly one of rank (or rankK/rankV with layout=split) and kvRatio, e.g. mla:rank=32 or mla:kvRatio=0.5', 'rank');
  let ranks: RankRequest;
  if (o.kvRatio !== undefined) {
    if (typeof o.kvRatio !== 'number' || !(o.kvRatio > 0 && o.kvRatio <= 1)) throw usage(`mla option kvRatio must be a number in (0, 1], got ${String(o.kvRatio)}`, 'kvRatio');
    ranks = { kind: 'ratio', kvRatio: o.kvRatio, allocation: allocation ?? 'energy' };
  } else {
    if (allocation !== undefined) throw usage('mla option allocation applies to kvRatio only', 'allocation');
    const k = rankK ?? rank;
    const v = rankV ?? rank;
    if (layout === 'split' && (k === undefined || v === undefined)) throw usage('mla layout=split needs rankK and rankV (or rank for both)', k === undefined ? 'rankK' : 'rankV');
    if (layout === 'joint' && rank !== undefined && rank < 2) throw usage('mla joint rank must be at least 2 (the latent fills the key and value cache slots)', 'rank');
    ranks = { kind: 'fixed', rank: rank ?? Infinity, rankK: k ?? Infinity, rankV: v ?? Infinity };
  }
  return { layout, method, ranks, calibration: method === 'asvd' ? o.calibration : undefined, value };
}
