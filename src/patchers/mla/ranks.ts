/**
 * @file Which rank each factored unit gets. Fixed ranks are clamped to what a unit can hold; a kvRatio is a budget
 * of cached elements per token (kvRatio × the original 2·Hkv·Dh per layer) spread either uniformly or greedily: every
 * unit starts at its minimum, then each further cached element goes to the unit whose next rank captures the largest
 * share of that unit's output energy (λ_i / Σλ, activation-weighted under asvd). Because each unit's eigenvalues are
 * sorted, the greedy choice is the top of all units' normalized spectra merged.
 */
import type { FactorUnit } from './factorize.js';
import type { MlaLayout, RankRequest } from './options.js';

/** One layer's units: joint [K|V], or split K then V; `original` is its cached elements per token before MLA. */
export interface LayerUnits {
  layer: number;
  units: FactorUnit[];
  original: number;
}

export interface Allocation {
  /** Per layer, the rank of each unit (joint: [r]; split: [r_k, r_v]). */
  ranks: number[][];
  /** Cached elements per token after / before, all layers. */
  elements: number;
  original: number;
  notes: string[];
}

/** The smallest rank a unit may have: the joint latent fills two cache slots. */
const minRank = (layout: MlaLayout) => (layout === 'joint' ? 2 : 1);

/** Allocates ranks for every layer. */
export function allocateRanks(layers: readonly LayerUnits[], request: RankRequest, layout: MlaLayout): Allocation {
  const notes: string[] = [];
  const original = layers.reduce((s, l) => s + l.original, 0);
  const lo = minRank(layout);
  let ranks: number[][];
  if (request.kind === 'fixed') {
    const wanted = layout === 'joint' ? [request.rank] : [request.rankK, request.rankV];
    ranks = layers.map((l) =>
      l.units.map((u, i) => {
        const r = Math.max(lo, Math.min(wanted[i]!, u.maxRank));
        if (Number.isFinite(wanted[i]!) && wanted[i]! > u.maxRank) notes.push(`layer ${l.layer}: rank ${wanted[i]} exceeds the ${u.maxRank} this projection can use; using ${u.maxRank} (exact)`);
        return r;
      }),
    );
  } else if (request.allocation === 'uniform') {
    ranks = layers.map((l) => l.units.map((u) => Math.max(lo, Math.min(u.maxRank, Math.round((request.kvRatio * l.original) / l.units.length)))));
  } else {
    ranks = greedy(layers, Math.floor(request.kvRatio * original), lo, notes);
  }
  const elements = ranks.reduce((s, r) => s + r.reduce((a, b) => a + b, 0), 0);
  return { ranks, elements, original, notes };
}

/** Greedy by normalized energy under a budget of cached elements. */
function greedy(layers: readonly LayerUnits[], budget: number, lo: number, notes: string[]): number[][] {
  const ranks = layers.map((l) => l.units.map((u) => Math.min(lo, u.maxRank)));
  let left = budget - ranks.reduce((s, r) => s + r.reduce((a, b) => a + b, 0), 0);
  if (left < 0) notes.push(`the KV budget of ${budget} elements per token is below the minimum of ${budget - left}; every unit keeps its minimum rank`);
  const candidates: { score: number; layer: number; unit: number }[] = [];
  layers.forEach((l, li) =>
    l.units.forEach((u, ui) => {
      for (let i = ranks[li]![ui]!; i < u.maxRank; i++) candidates.push({ score: u.total > 0 ? u.eigen.values[i]! / u.total : 0, layer: li, unit: ui });
    }),
  );
  // NOTE: stable sort keeps earlier units first on ties, so equal spectra (e.g. zero weights) fill in layer order.
  candidates.sort((a, b) => b.score - a.score);
  for (const c of candidates) {
    if (left <= 0) break;
    ranks[c.layer]![c.unit]!++;
    left--;
  }
  return ranks;
}
