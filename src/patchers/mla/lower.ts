/**
 * @file Rewrites one planned block into MLA. The k/v projections become one down-projection c = x·W_D whose key and
 * value slots are appended to the existing cache inputs/outputs (names kept, shapes [batch_size, 1, T, width]). Each
 * step rebuilds the unrotated keys of all T positions, K = c_K·W_UK (+ b_K), and calls LatentAttention (or, after
 * dca, LatentDualChunkAttention), which rotates them at their positions (rope.ts). Values: W_UV is folded into the output projection per head (exact: softmax rows sum to
 * one, so even b_V folds into a constant), or rebuilt when there is no foldable output projection.
 */
import { attr } from '../../graph/ir/attribute.js';
import { DataType } from '../../graph/ir/dtype.js';
import { tensorType, type Dim } from '../../graph/ir/types.js';
import type { Value } from '../../graph/ir/value.js';
import type { GraphBuilder } from '../../graph/build/builder.js';
import { MLA_DCA_FUNCTION, MLA_DOMAIN, MLA_FUNCTION } from './function.js';
import { transpose } from './linalg.js';
import { MLA_EXACT_KEY, MLA_FOLD_BIAS_KEY, MLA_FOLD_KEY, MLA_INFO_KEY, MLA_LAYER_KEY, type MlaCallInfo } from './metadata.js';
import { blockFactors, type BlockFactors, type PlannedBlock } from './plan.js';
import { buildPositions, buildRopeTables, gatherRows, ropeKey, type PositionRows, type RopeTables } from './rope.js';
import type { MlaSource } from './source.js';
import { allZero, emitWeight } from './weights.js';

/** Per-model state shared by every block. */
export interface MlaContext {
  b: GraphBuilder;
  mask: Value;
  positions?: Value;
  mask64?: Value;
  tables: Map<string, RopeTables | string>;
  /** Rows of each rope's tables at the positions of the call (ordinary attention). */
  rows: Map<string, PositionRows>;
  /** Rows of the cos/sin tables built from inv_freq: the longest context the patched model runs. */
  maxContext: number;
  /** The function variants the model's calls need. */
  variants: Set<'ordinary' | 'dca'>;
  /** True when some table was built from inv_freq at maxContext rows (the context limit to report). */
  builtTables?: boolean;
}

export type Lowered = { ok: true; to: string } | { ok: false; reason: string };

/** The cache type [batch_size, 1, seq, width], keeping the declared sequence dim. */
function cacheType(v: Value, dtype: number, width: number): ReturnType<typeof tensorType> {
  const shape = v.type?.kind === 'tensor' ? v.type.shape : undefined;
  const batch: Dim = typeof shape?.[0] === 'number' ? shape[0] : 'batch_size';
  const seq: Dim = shape?.[2] ?? null;
  return tensorType(dtype, [batch, 1, seq, width]);
}

/** W_O·W_UV per query head: [H·c, d_model], and Σ_h b_V,h·W_O,h when b_V ≠ 0. */
export function foldValue(src: MlaSource, f: BlockFactors): { w: Float32Array; bias: Float32Array | null } {
  const { numHeads: H, numKvHeads: Hkv, headDim: Dh } = src.block;
  const n = Hkv * Dh;
  const dModel = src.k.rows;
  const c = f.valueWidth;
  const wo = src.o!.w; // [H·Dh, d_model]
  const out = new Float64Array(H * c * dModel);
  const bias = allZero(src.v.bias) ? null : new Float64Array(dModel);
  for (let h = 0; h < H; h++) {
    const j = Math.floor(h / (H / Hkv));
    for (let a = 0; a < c; a++) {
      const row = (h * c + a) * dModel;
      for (let d = 0; d < Dh; d++) {
        const u = f.upV[a * n + j * Dh + d]!;
        if (u === 0) continue;
        const oRow = (h * Dh + d) * dModel;
        for (let m = 0; m < dModel; m++) out[row + m]! += u * wo[oRow + m]!;
      }
    }
    if (bias) for (let d = 0; d < Dh; d++) for (let m = 0; m < dModel; m++) bias[m]! += src.v.bias![j * Dh + d]! * wo[(h * Dh + d) * dModel + m]!;
  }
  return { w: Float32Array.from(out), bias: bias ? Float32Array.from(bias) : null };
}

/** Lowers one planned block, or says why it stays as it was. */
export function lowerToMla(p: PlannedBlock, ctx: MlaContext): Lowered {
  const { b } = ctx;
  const src = p.source;
  const { block, dtype } = src;
  const key = ropeKey(src.rope, block.headDim, dtype);
  if (!ctx.tables.has(key)) ctx.tables.set(key, buildRopeTables(b, src.rope, block.headDim, dtype, ctx.maxContext));
  const tables = ctx.tables.get(key)!;
  if (typeof tables === 'string') return { ok: false, reason: tables };
  // NOTE: DCA positions never exceed chunk_size, so only ordinary attention is bounded by the table's length.
  if (src.rope.source.kind === 'inv-freq' && !src.dca) ctx.builtTables = true;
  // Ordinary attention takes the rows at every position (gathered once per step); DCA picks its own rows inside.
  let rows: PositionRows = tables;
  if (!src.dca) {
    ctx.positions ??= buildPositions(b, ctx.mask);
    if (!ctx.rows.has(key)) ctx.rows.set(key, gatherRows(b, tables, ctx.positions));
    rows = ctx.rows.get(key)!;
  }
  ctx.mask64 ??= b.op('Cast', [ctx.mask], { attributes: { to: DataType.INT64 } });

  const f = blockFactors(p);
  const dModel = src.k.rows;
  const n = src.k.cols;
  const joint = p.units.length === 1;
  const L = block.layer;
  const anchor = src.o?.node ?? block.o?.node ?? block.output.consumers()[0];
  const saved = b.before;
  b.before = anchor;
  try {
    // Latent and cache: c = x·W_D, split into the key and value slots, appended to the past.
    const named = (what: string) => b.names.fresh(`mla/l${L}/${what}`);
    const latent = b.op('MatMul', [src.hidden, emitWeight(b, `mla/l${L}_down`, [dModel, f.slotK + f.slotV], f.down, dtype)], { name: named('down') });
    const [ck, cv] = b.op('Split', [latent, b.ints(`mla/l${L}_slots`, [f.slotK, f.slotV])], { outputs: 2, attributes: { axis: -1 } }) as [Value, Value];
    const axis1 = b.ints('axis1', [1]);
    const presentK = b.op('Concat', [src.past.key, b.op('Unsqueeze', [ck, axis1])], { attributes: { axis: 2 } });
    const presentV = b.op('Concat', [src.past.value, b.op('Unsqueeze', [cv, axis1])], { attributes: { axis: 2 } });
    src.past.key.type = cacheType(src.past.key, dtype, f.slotK);
    src.past.value.type = cacheType(src.past.value, dtype, f.slotV);
    presentK.type = cacheType(src.present.key, dtype, f.slotK);
    presentV.type = cacheType(src.present.value, dtype, f.slotV);
    b.graph.replaceAllUsesWith(src.present.key, presentK);
    b.graph.replaceAllUsesWith(src.present.value, presentV);

    // Keys of all T positions, unrotated and transposed, [B,1,Hkv·Dh,T].
    // NOTE: W_UKᵀ·cᵀ rather than (c·W_UK)ᵀ: ORT fuses the Transpose into the MatMul, so nothing is copied over T.
    const keyLatent = joint ? b.op('Concat', [presentK, presentV], { attributes: { axis: -1 } }) : presentK;
    const latentT = b.op('Transpose', [keyLatent], { attributes: { perm: [0, 1, 3, 2] } });
    const upT = emitWeight(b, `mla/l${L}_up_k`, [n, f.keyWidth], Float32Array.from(transpose(f.upK, f.keyWidth, n)), dtype);
    let keys = b.op('MatMul', [upT, latentT], { name: named('key_up') });
    if (!allZero(src.k.bias)) keys = b.op('Add', [keys, emitWeight(b, `mla/l${L}_k_bias`, [n, 1], src.k.bias!, dtype)], { name: named('key_up_bias') });

    // Values: the latent itself when W_UV folds into W_O, else rebuilt per KV head [B,Hkv,T,Dh].
    const valueLatent = joint ? keyLatent : presentV;
    let values = valueLatent;
    if (!src.o) {
      let flat = b.op('MatMul', [valueLatent, emitWeight(b, `mla/l${L}_up_v`, [f.valueWidth, n], f.upV, dtype)], { name: named('value_up') });
      if (!allZero(src.v.bias)) flat = b.op('Add', [flat, emitWeight(b, `mla/l${L}_v_bias`, [n], src.v.bias!, dtype)]);
      const heads = b.op('Reshape', [flat, b.ints(`mla/l${L}_v_heads`, [0, -1, block.numKvHeads, block.headDim])]);
      values = b.op('Transpose', [heads], { attributes: { perm: [0, 2, 1, 3] } });
    }

    ctx.variants.add(src.dca ? 'dca' : 'ordinary');
    const dca = src.dca
      ? [attr.int('chunk_size', src.dca.chunkSize), attr.int('local_window', src.dca.localWindow), attr.float('temperature_coef', src.dca.temperatureCoef), attr.int('trained_length', src.dca.trainedLength), attr.float('inter_bias', src.dca.interBias)]
      : [];
    const fn = src.dca ? MLA_DCA_FUNCTION : MLA_FUNCTION;
    const [out] = b.op(fn, [src.query, keys, values, rows.cos, rows.sin, ctx.mask64, tables.perm], {
      domain: MLA_DOMAIN,
      name: named('attention'),
      // NOTE: ORT wants every function output named on the call; probs is what a debug run may expose.
      outputs: [b.names.fresh('mla/output'), b.names.fresh('mla/probs')],
      attributes: [
        attr.int('num_heads', block.numHeads),
        attr.int('kv_num_heads', block.numKvHeads),
        attr.float('scale', block.scale),
        attr.int('float_type', dtype),
        ...dca,
      ],
    }) as [Value];
    const call = out.producer!;
    call.metadata.set(MLA_LAYER_KEY, String(L));
    // NOTE: what the lift rule (lift.ts) cannot read from the call's inputs: the cache and the head size.
    const info: MlaCallInfo = { headDim: block.headDim, rotaryDim: src.rope.rotaryDim, interleaved: src.rope.interleaved, past: [src.past.key.name, src.past.value.name], present: [presentK.name, presentV.name] };
    call.metadata.set(MLA_INFO_KEY, JSON.stringify(info));

    if (src.o) {
      const folded = foldValue(src, f);
      let y = b.op('MatMul', [out, emitWeight(b, `mla/l${L}_o_fold`, [block.numHeads * f.valueWidth, dModel], folded.w, dtype)], { name: named('o_fold') });
      // NOTE: marked so the runtime can refit the folded weight on calibration data (runtime/eval/mla-refit.ts).
      y.producer!.metadata.set(MLA_FOLD_KEY, String(L));
      if (p.ranks.every((r, i) => r >= p.units[i]!.maxRank)) y.producer!.metadata.set(MLA_EXACT_KEY, 'true');
      if (folded.bias) {
        y = b.op('Add', [y, emitWeight(b, `mla/l${L}_o_fold_bias`, [dModel], folded.bias, dtype)]);
        y.producer!.metadata.set(MLA_FOLD_BIAS_KEY, String(L));
      }
      b.graph.replaceAllUsesWith(src.o.node.output(0), y);
    } else {
      b.graph.replaceAllUsesWith(block.output, out);
    }
    const ranks = joint ? `joint r=${p.ranks[0]}` : `r_k=${p.ranks[0]}, r_v=${p.ranks[1]}`;
    const chunks = src.dca ? `, chunk ${src.dca.chunkSize}, window ${src.dca.localWindow}` : '';
    return { ok: true, to: `${fn}(${ranks}${chunks}, values ${src.o ? 'folded into o_proj' : 'rebuilt'})` };
  } finally {
    b.before = saved;
  }
}
