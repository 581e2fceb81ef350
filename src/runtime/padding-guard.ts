/**
 * @file A guard for GroupQueryAttention models fed padded batches. GroupQueryAttention reads each row's length from
 * attention_mask (seqlens_k = Σmask − 1) and assumes a row's real tokens are contiguous from position 0: left
 * padding (and right padding once generation appends tokens after the pads) puts keys at the wrong positions and
 * silently gives wrong text. The guard wraps the session's `run` and refuses such a mask with a message saying what
 * to do, rather than let it through.
 */
import type * as OrtNs from 'onnxruntime-common';
import { AttnpatchError } from '../errors.js';

type Tensor = OrtNs.Tensor;
type Run = (feeds: Record<string, Tensor>, ...rest: unknown[]) => Promise<Record<string, Tensor>>;

/** The first row of a [B, T] mask with a 0 before a 1 (a hole GroupQueryAttention cannot express), or −1. */
export function holedRow(mask: Tensor): number {
  const [b, t] = mask.dims as [number, number];
  const data = mask.data as ArrayLike<number | bigint>;
  for (let r = 0; r < b; r++) {
    let seenZero = false;
    for (let c = 0; c < t; c++) {
      const on = Number(data[r * t + c]) !== 0;
      if (!on) seenZero = true;
      else if (seenZero) return r;
    }
  }
  return -1;
}

/** Wraps `session.run` so a holed attention_mask throws instead of producing wrong text. */
export function guardPadding(session: { run: Run }): void {
  const inner = session.run;
  const guarded = async (feeds: Record<string, Tensor>, ...rest: unknown[]) => {
    const mask = feeds.attention_mask;
    const row = mask && mask.dims.length === 2 ? holedRow(mask) : -1;
    if (row >= 0) {
      throw new AttnpatchError(
        'USAGE',
        `attention_mask row ${row} has padding before real tokens; this model runs GroupQueryAttention, which takes each row's tokens as contiguous from ` +
          'position 0 (seqlens_k = sum(mask) − 1), so a padded batch would give wrong text. Generate prompts of different lengths one at a time (batch of 1)',
        { field: 'attention_mask' },
      );
    }
    return inner.call(session, feeds, ...rest);
  };
  // Keep the marks other wrappers left (chunked prefill's `prefillChunk`).
  session.run = Object.assign(guarded, inner);
}
