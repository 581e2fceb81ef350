/**
 * @file MLA under Dual Chunk Attention (`LatentDualChunkAttention`, the variant of function.ts a dca-patched model
 * gets): the DCA function caches keys already rotated at their DCA positions, but an MLA cache holds latents, so
 * every step rebuilds the keys of all T tokens from the latents and rotates key j at j mod L (L = chunk_size −
 * local_window) here; queries are rotated at their three DCA positions — i mod L (intra-chunk keys), min(L + i mod L,
 * chunk_size) (the previous chunk), chunk_size (older chunks) — and each (query, key) pair takes the score of its
 * chunk distance, in one softmax (shared/reference/algorithms.md §1.2–1.4). The optional temperature f(T)² and
 * inter-chunk bias −γ·ln(#inter chunks) follow the dca patch's function (dca/function.ts) exactly. Positions are
 * absolute token indices (no left padding), as in every DCA implementation.
 */
import { attr } from '../../graph/ir/attribute.js';
import { DataType } from '../../graph/ir/dtype.js';
import type { Value } from '../../graph/ir/value.js';
import type { BodyContext } from './function.js';

/** The DCA attributes a call passes besides the ordinary ones (names and meaning as the dca patch's). */
export const MLA_DCA_ATTRIBUTES = ['chunk_size', 'local_window', 'temperature_coef', 'trained_length', 'inter_bias'] as const;
export const MLA_DCA_DEFAULTS = [attr.float('temperature_coef', 0), attr.int('trained_length', 1), attr.float('inter_bias', 0)];

/** cos/sin rows of every key at its DCA position j mod L, transposed to [Dh, T] (broadcast over batch and heads). */
export function dcaKeyRows(c: BodyContext, cosTable: Value, sinTable: Value): { cos: Value; sin: Value } {
  const { b } = c;
  const L = b.op('Sub', [b.constRef('chunk_size', 'int'), b.constRef('local_window', 'int')]);
  const keyPos = b.op('Mod', [b.op('Range', [b.constInts([0], true), c.T, b.constInts([1], true)]), L]);
  const rows = (t: Value) => b.op('Transpose', [b.op('Gather', [t, keyPos], { attributes: { axis: 0 } })], { attributes: { perm: [1, 0] } });
  return { cos: rows(cosTable), sin: rows(sinTable) };
}

/**
 * Scaled scores [B,Hkv,G·S,T] (queries grouped by KV head): `queryAt(positions [S])` gives the queries rotated at
 * those positions, grouped; `kT` the keys rotated at their DCA positions, [B,Hkv,Dh,T].
 */
export function dcaScores(c: BodyContext, queryAt: (positions: Value) => Value, kT: Value): Value {
  const { b, T, S } = c;
  const one = b.constInts([1], true);
  const cs = b.constRef('chunk_size', 'int');
  const L = b.op('Sub', [cs, b.constRef('local_window', 'int')]);
  const pos = b.op('Range', [c.P, T, one]); // [S]
  const posMod = b.op('Mod', [pos, L]);
  const score = (positions: Value) => b.op('MatMul', [queryAt(positions), kT]);
  const sIntra = score(posMod);
  const sSucc = score(b.op('Min', [b.op('Add', [posMod, L]), cs]));
  let sInter = score(b.op('Expand', [cs, c.unsq(S)]));

  // Temperature f(T)² with f = max(1, coef·ln(T / trained_length) + 1), folded into the scale.
  const tF = b.op('Cast', [T], { attributes: { to: DataType.FLOAT } });
  const ratio = b.op('Div', [tF, b.op('Cast', [b.constRef('trained_length', 'int')], { attributes: { to: DataType.FLOAT } })]);
  const f = b.op('Max', [b.op('Add', [b.op('Mul', [b.constRef('temperature_coef', 'float'), b.op('Log', [ratio])]), b.constFloat(1)]), b.constFloat(1)]);
  const factor = b.op('Mul', [b.constRef('scale', 'float'), b.op('Mul', [f, f])]);
  // Inter-chunk bias −γ·ln(max(chunk(i) − 1, 1)) per query, added before scaling (hence ÷ factor).
  const chunkOf = (x: Value) => b.op('Div', [x, L]);
  const chunks = b.op('Max', [b.op('Cast', [b.op('Sub', [chunkOf(pos), one])], { attributes: { to: DataType.FLOAT } }), b.constFloat(1)]);
  const bias = c.toFloatType(b.op('Neg', [b.op('Mul', [b.op('Div', [b.constRef('inter_bias', 'float'), factor]), b.op('Log', [chunks])])]));
  const groups = b.op('Concat', [c.unsq(b.op('Div', [c.h, c.hkv])), b.constInts([1])], { attributes: { axis: 0 } });
  sInter = b.op('Add', [sInter, b.op('Tile', [b.op('Unsqueeze', [bias, b.constInts([1])]), groups])]);

  // dn = chunk(query) − chunk(key): 0 intra, 1 successive, ≥ 2 inter; tiled over the G query groups.
  const keyIdx = b.op('Range', [b.constInts([0], true), T, one]);
  const dn = b.op('Tile', [b.op('Sub', [b.op('Unsqueeze', [chunkOf(pos), b.constInts([1])]), b.op('Unsqueeze', [chunkOf(keyIdx), b.constInts([0])])]), groups]);
  const is = (k: number) => b.op('Equal', [dn, b.constInts([k], true)]);
  const pick = b.op('Where', [is(0), sIntra, b.op('Where', [is(1), sSucc, sInter])]);
  return b.op('Mul', [pick, c.toFloatType(factor)]);
}
