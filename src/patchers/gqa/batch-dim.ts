/**
 * @file Names the batch dimension of the cache inputs `batch_size`. transformers.js builds the first, empty cache
 * from the declared input shapes and only recognises the batch dimension by that exact name; any other name makes
 * it an empty batch of 0, which the original Concat-based graph tolerates but GroupQueryAttention refuses
 * ("Input 'past_key' dimension 0 should be batch_size, got 0"). Renaming a symbolic dimension changes nothing else.
 */
import type { AttentionBlock } from '../attention/block.js';
import { tensorType } from '../../graph/ir/types.js';

/** Renames dim 0 of each block's past inputs (4-D, [B, Hkv, P, Dh]) to `batch_size`; returns the renamed inputs. */
export function nameCacheBatchDim(blocks: readonly AttentionBlock[]): string[] {
  const renamed: string[] = [];
  for (const block of blocks) {
    if (block.kvLayout !== 'bnsh' || !block.past) continue;
    for (const v of new Set([block.past.key, block.past.value])) {
      const t = v.type;
      if (t?.kind !== 'tensor' || t.shape?.length !== 4) continue;
      const [batch, ...rest] = t.shape;
      if (batch === 'batch_size' || typeof batch === 'number') continue;
      v.type = tensorType(t.elemType, ['batch_size', ...rest]);
      renamed.push(v.name);
    }
  }
  return renamed;
}
