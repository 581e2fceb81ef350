/**
 * @file What every patch returns: which blocks it lowered, which it left as they were and why, and warnings
 * (e.g. a lossy option). A patch never silently skips a block.
 */
import { AttnpatchError } from '../errors.js';
import type { AttentionForm } from './attention/block.js';

export interface PatchedBlock {
  layer: number;
  from: AttentionForm;
  /** What the block became, e.g. 'GroupQueryAttention(do_rotary=1)'. */
  to: string;
}

export interface LeftBlock {
  layer: number;
  form: AttentionForm;
  reason: string;
}

export interface PatchReport {
  patch: string;
  patched: PatchedBlock[];
  left: LeftBlock[];
  warnings: string[];
  /** True when the patch changes results (merging KV heads, windows, low-rank factors…). */
  lossy: boolean;
  /** Facts the runtime needs, e.g. dca's chunk length for chunked prefill. */
  details?: Record<string, number | string | boolean>;
}

/** Raises when `strict` and some blocks were left. */
export function enforceStrict(report: PatchReport, strict: boolean | undefined): void {
  if (!strict || report.left.length === 0) return;
  const list = report.left.map((l) => `layer ${l.layer} (${l.form}): ${l.reason}`).join('; ');
  throw new AttnpatchError('PATCH', `${report.patch} could not lower ${report.left.length} block(s): ${list}`);
}
