/**
 * @file The attention quirks a lowering must keep — a sliding window and a logit softcap — recorded the same way by
 * every lifter: as block fields (what gqa reads to re-emit them) and as notes (what dca and mla refuse on, and what
 * inspect shows).
 */
import type { AttentionBlock } from './block.js';

export interface Quirks {
  /** Keys a query sees, itself included. */
  window?: number | undefined;
  /** c in c·tanh(scores / c). */
  softcap?: number | undefined;
}

/** The block fields and notes for `q` (absent values give neither). */
export function quirkFields(q: Quirks): { fields: Pick<AttentionBlock, 'window' | 'softcap'>; notes: string[] } {
  const fields: Pick<AttentionBlock, 'window' | 'softcap'> = {};
  const notes: string[] = [];
  if (q.window !== undefined) {
    fields.window = q.window;
    notes.push(`sliding-window=${q.window}`);
  }
  if (q.softcap !== undefined) {
    fields.softcap = q.softcap;
    notes.push(`softcap=${+q.softcap.toPrecision(7)}`);
  }
  return { fields, notes };
}
