/**
 * @file MHA→GQA / GQA→fewer groups: mean-pools the K and V projection columns (and biases) of each group of
 * adjacent KV heads (Ainslie et al. 2023), and narrows the cache inputs/outputs to the new head count.
 * Query head h keeps reading KV head ⌊h / (H / Hkv')⌋, which is the merged group it belonged to, so no
 * query weights move. Lossy: the caller warns. With `merge: 'aligned'` the heads of each group are first
 * rotated into a common basis (align.ts), which moves q/o weights too but leaves the function unchanged.
 */
import { DataType } from '../../graph/ir/dtype.js';
import { tensorType } from '../../graph/ir/types.js';
import type { Value } from '../../graph/ir/value.js';
import type { GraphBuilder } from '../../graph/build/builder.js';
import { toFloat32 } from '../../graph/tensor/decode.js';
import type { AttentionBlock, Projection } from '../attention/block.js';
import { alignKvHeads, unalignable, type KvCalibration } from './align.js';

/** How the heads of a group become one. */
export type MergeMode = 'mean' | 'aligned';

export interface MergeOptions {
  /** 'mean' (default): plain mean of the K/V columns; 'aligned': align-then-merge (Jin et al. 2024). */
  merge?: MergeMode;
  /** Activation statistics for 'aligned'; without them the weights alone are aligned. */
  calibration?: KvCalibration;
}

/** Column blocks of `w` ([rows, heads·Dh], row-major) averaged in groups of `r` heads. */
export function meanPoolHeads(w: Float32Array, rows: number, heads: number, headDim: number, r: number): Float32Array {
  const cols = heads * headDim;
  const outHeads = heads / r;
  const out = new Float32Array(rows * outHeads * headDim);
  for (let i = 0; i < rows; i++) {
    for (let g = 0; g < outHeads; g++) {
      for (let d = 0; d < headDim; d++) {
        let s = 0;
        for (let j = 0; j < r; j++) s += w[i * cols + (g * r + j) * headDim + d]!;
        out[i * outHeads * headDim + g * headDim + d] = s / r;
      }
    }
  }
  return out;
}

/** Why a projection cannot be mean-pooled, or undefined when it can. */
function unmergeable(p: Projection, block: AttentionBlock, what: string): string | undefined {
  const w = p.weight?.initializer;
  if (!w || p.quant || p.columns || p.transposed) return `the ${what} projection is not a plain MatMul with an initializer weight`;
  if (w.dtype !== DataType.FLOAT || w.dims.length !== 2) return `the ${what} weight is not a 2-D float32 matrix`;
  if (w.dims[1] !== block.numKvHeads * block.headDim) return `the ${what} weight has ${w.dims[1]} columns, expected ${block.numKvHeads}×${block.headDim}`;
  if (p.bias && !p.bias.initializer) return `the ${what} bias is not constant`;
  return undefined;
}

function mergeProjection(b: GraphBuilder, p: Projection, block: AttentionBlock, kvHeads: number, what: string): void {
  const w = p.weight!.initializer!;
  const rows = w.dims[0]!;
  const r = block.numKvHeads / kvHeads;
  const merged = meanPoolHeads(toFloat32(w, p.weight!.name), rows, block.numKvHeads, block.headDim, r);
  p.node.replaceInputWith(p.weight!, b.floats(`${what}_merged_weight`, [rows, kvHeads * block.headDim], merged));
  if (p.bias?.initializer) {
    const bias = toFloat32(p.bias.initializer, p.bias.name);
    const pooled = meanPoolHeads(bias, 1, block.numKvHeads, block.headDim, r);
    const add = p.output?.producer;
    if (add) add.replaceInputWith(p.bias, b.floats(`${what}_merged_bias`, [kvHeads * block.headDim], pooled));
  }
}

/** Narrows a cache input/output's declared head axis (axis 1 of [batch_size, Hkv, T, Dh]). */
function narrow(v: Value, kvHeads: number): void {
  const t = v.type;
  if (t?.kind !== 'tensor' || !t.shape || t.shape.length !== 4) return;
  v.type = tensorType(t.elemType, [t.shape[0]!, kvHeads, t.shape[2]!, t.shape[3]!]);
}

/** Merges the block's KV heads down to `kvHeads`; returns a reason when it cannot. Updates the block. */
export function mergeKvHeads(b: GraphBuilder, block: AttentionBlock, kvHeads: number, options: MergeOptions = {}): string | undefined {
  if (kvHeads === block.numKvHeads) return undefined;
  if (kvHeads > block.numKvHeads || block.numKvHeads % kvHeads !== 0) {
    return `${block.numKvHeads} KV heads cannot be merged into ${kvHeads} (it must divide them)`;
  }
  if (!block.k || !block.v) return 'its K/V projections were not lifted';
  // Check both before changing either, so a refusal leaves the graph untouched.
  const aligned = options.merge === 'aligned';
  const why = unmergeable(block.k, block, 'k') ?? unmergeable(block.v, block, 'v') ?? (aligned ? unalignable(block, options.calibration) : undefined);
  if (why) return why;
  if (aligned) alignKvHeads(b, block, block.numKvHeads / kvHeads, options.calibration);
  mergeProjection(b, block.k, block, kvHeads, 'k');
  mergeProjection(b, block.v, block, kvHeads, 'v');
  for (const v of [block.past?.key, block.past?.value, block.present?.key, block.present?.value]) if (v) narrow(v, kvHeads);
  block.numKvHeads = kvHeads;
  return undefined;
}
