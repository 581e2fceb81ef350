/**
 * @file Rewrites one planned block into MLA. The k/v projections become one down-projection c = x·W_D whose key and
 * value slots are appended to the existing cache inputs/outputs (names kept, shapes [batch_size, 1, T, width]); each
 * step rebuilds the unrotated keys of all T positions, K = c_K·W_UK (+ b_K), and calls LatentAttention, which rotates
 * them at their true positions. Values: W_UV is folded into the output projection per head (exact: softmax rows
 * sum to one, so even b_V folds into a constant), or rebuilt when there is no foldable output projection.
 */
import { attr } from '../../graph/ir/attribute.js';
import { DataType } from '../../graph/ir/dtype.js';
import { tensorType, type Dim } from '../../graph/ir/types.js';
import type { Value } from '../../graph/ir/value.js';
import type { GraphBuilder } from '../../graph/build/builder.js';
import { MLA_DOMAIN, mlaFunctionName } from './function.js';
import { blockFactors, type BlockFactors, type PlannedBlock } from './plan.js';
import { buildPositions, buildPositionTables, ropeKey, type PositionTables, type RopeLayout } from './rope.js';
import type { MlaSource } from './source.js';
import { allZero, emitWeight } from './weights.js';

/** Per-model state shared by every block. */
export interface MlaContext {
  b: GraphBuilder;
  mask: Value;
  positions?: Value;
  mask64?: Value;
  tables: Map<string, PositionTables | string>;
  /** Rope layouts whose function the model needs. */
  layouts: Set<RopeLayout>;
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
  const out = new Float32Array(H * c * dModel);
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
  return { w: out, bias: bias ? Float32Array.from(bias) : null };
}

/** Lowers one planned block, or says why it stays as it was. */
export function lowerToMla(p: PlannedBlock, ctx: MlaContext): Lowered {
  const { b } = ctx;
  const src = p.source;
  const { block, dtype } = src;
  const key = ropeKey(src.rope, dtype);
  ctx.positions ??= buildPositions(b, ctx.mask);
  if (!ctx.tables.has(key)) ctx.tables.set(key, buildPositionTables(b, src.rope, ctx.positions, dtype));
  const tables = ctx.tables.get(key)!;
  if (typeof tables === 'string') return { ok: false, reason: tables };
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
    const latent = b.op('MatMul', [src.hidden, emitWeight(b, `mla/l${L}_down`, [dModel, f.slotK + f.slotV], f.down, dtype)]);
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

    // Keys of all T positions, unrotated: [B,1,T,Hkv·Dh].
    const keyLatent = joint ? b.op('Concat', [presentK, presentV], { attributes: { axis: -1 } }) : presentK;
    let keys = b.op('MatMul', [keyLatent, emitWeight(b, `mla/l${L}_up_k`, [f.keyWidth, n], f.upK, dtype)]);
    if (!allZero(src.k.bias)) keys = b.op('Add', [keys, emitWeight(b, `mla/l${L}_k_bias`, [n], src.k.bias!, dtype)]);

    // Values: the latent itself when W_UV folds into W_O, else rebuilt per KV head [B,Hkv,T,Dh].
    const valueLatent = joint ? keyLatent : presentV;
    let values = valueLatent;
    if (!src.o) {
      let flat = b.op('MatMul', [valueLatent, emitWeight(b, `mla/l${L}_up_v`, [f.valueWidth, n], f.upV, dtype)]);
      if (!allZero(src.v.bias)) flat = b.op('Add', [flat, emitWeight(b, `mla/l${L}_v_bias`, [n], src.v.bias!, dtype)]);
      const heads = b.op('Reshape', [flat, b.ints(`mla/l${L}_v_heads`, [0, -1, block.numKvHeads, block.headDim])]);
      values = b.op('Transpose', [heads], { attributes: { perm: [0, 2, 1, 3] } });
    }

    const layout: RopeLayout = src.rope.interleaved ? 'interleaved' : 'half';
    ctx.layouts.add(layout);
    const [out] = b.op('LatentAttention' + (layout === 'half' ? '' : 'Interleaved'), [src.query, keys, values, tables.cos, tables.sin, ctx.mask64], {
      domain: MLA_DOMAIN,
      // NOTE: ORT wants every function output named on the call; probs is what a debug run may expose.
      outputs: [b.names.fresh('mla/output'), b.names.fresh('mla/probs')],
      attributes: [
        attr.int('num_heads', block.numHeads),
        attr.int('kv_num_heads', block.numKvHeads),
        attr.float('scale', block.scale),
        attr.int('float_type', dtype),
      ],
    }) as [Value];
    const call = out.producer!;
    call.metadata.set('ai.attnpatch.mla.layer', String(L));

    if (src.o) {
      const folded = foldValue(src, f);
      let y = b.op('MatMul', [out, emitWeight(b, `mla/l${L}_o_fold`, [block.numHeads * f.valueWidth, dModel], folded.w, dtype)]);
      if (folded.bias) y = b.op('Add', [y, emitWeight(b, `mla/l${L}_o_fold_bias`, [dModel], folded.bias, dtype)]);
      b.graph.replaceAllUsesWith(src.o.node.output(0), y);
    } else {
      b.graph.replaceAllUsesWith(block.output, out);
    }
    const ranks = joint ? `joint r=${p.ranks[0]}` : `r_k=${p.ranks[0]}, r_v=${p.ranks[1]}`;
    return { ok: true, to: `${mlaFunctionName(layout)}(${ranks}, values ${src.o ? 'folded into o_proj' : 'rebuilt'})` };
  } finally {
    b.before = saved;
  }
}
