/**
 * @file The `gqa` patch: lowers every lifted attention block to com.microsoft.GroupQueryAttention, optionally
 * merging KV heads (`kvHeads`) or limiting attention to a sliding window (`window`). Blocks it cannot lower
 * stay as they were and are reported with the reason (`strict` turns that into an error).
 */
import { AttnpatchError } from '../../errors.js';
import { attr } from '../../graph/ir/attribute.js';
import type { Model } from '../../graph/ir/model.js';
import { GraphBuilder } from '../../graph/build/builder.js';
import { eliminateDeadCode } from '../../graph/passes/dce.js';
import { toposort } from '../../graph/passes/toposort.js';
import { liftAttention } from '../attention/lift.js';
import { enforceStrict, type PatchReport } from '../patch.js';
import { nameCacheBatchDim } from './batch-dim.js';
import { lowerToGqa, type LowerContext, type RotaryMode } from './lower.js';
import { isKvCalibration, type KvCalibration } from './align.js';
import { mergeKvHeads, type MergeMode } from './merge-kv-heads.js';
import { buildSequenceInputs, type SequenceInputs } from './seqlens.js';
import { GQA_TARGETS, gqaCapabilities, type GqaTarget } from './targets.js';

export interface GqaOptions {
  /** Merge KV heads down to this many per layer (lossy: mean-pooled K/V projections). */
  kvHeads?: number;
  /**
   * How merged KV heads are formed: 'mean' (default) mean-pools K/V; 'aligned' first rotates the heads of each
   * group into a common basis (Jin et al. 2024; function-preserving on its own), then mean-pools.
   */
  merge?: MergeMode;
  /**
   * Activation statistics of the original model for `merge: 'aligned'` (collect them with
   * `collectKvCalibration` from the runtime). Without them the weights alone are aligned.
   */
  calibration?: KvCalibration;
  /** Sliding-window attention: each query sees its last `window` keys (lossy past the window). */
  window?: number;
  /** Longest context the rebuilt cos/sin caches cover (default 4096). */
  maxContext?: number;
  /** Rope placement: GQA's built-in rotary where possible ('auto'), always ('fused'), or the source's ('keep'). */
  rotary?: RotaryMode;
  /** Throw instead of leaving blocks unpatched. */
  strict?: boolean;
  /** Where the model will run: the emitted form is one that EP's kernel accepts (default 'cpu'). */
  target?: GqaTarget;
}

function checkOptions(o: GqaOptions): void {
  const positive = (k: keyof GqaOptions) => {
    const v = o[k];
    if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 1)) {
      throw new AttnpatchError('USAGE', `gqa option ${k} must be a positive integer, got ${String(v)}`, { field: `gqa.${k}` });
    }
  };
  positive('kvHeads');
  positive('window');
  positive('maxContext');
  if (o.target !== undefined && !(o.target in GQA_TARGETS)) {
    throw new AttnpatchError('USAGE', `gqa option target must be one of ${Object.keys(GQA_TARGETS).join(', ')}; got ${String(o.target)}`, { field: 'gqa.target' });
  }
  if (o.rotary !== undefined && !['auto', 'fused', 'keep'].includes(o.rotary)) {
    throw new AttnpatchError('USAGE', `gqa option rotary must be one of auto, fused, keep; got ${String(o.rotary)}`, { field: 'gqa.rotary' });
  }
  if (o.merge !== undefined && o.merge !== 'mean' && o.merge !== 'aligned') {
    throw new AttnpatchError('USAGE', `gqa option merge must be one of mean, aligned; got ${String(o.merge)}`, { field: 'gqa.merge' });
  }
  if (o.calibration !== undefined && !isKvCalibration(o.calibration)) {
    // NOTE: a text or file name arrives here from a string spec; turning it into statistics needs the tokenizer and
    // ONNX Runtime, which live in the runtime layer (collectKvCalibration / resolveCalibration), not in a patch.
    throw new AttnpatchError('USAGE', 'gqa option calibration must be KV statistics from collectKvCalibration(); calibration text is read by the runtime and the CLI', { field: 'gqa.calibration' });
  }
}

/** Applies the gqa patch in place and reports what it did. */
export function applyGqa(model: Model, options: GqaOptions = {}): PatchReport {
  checkOptions(options);
  const report: PatchReport = { patch: 'gqa', patched: [], left: [], warnings: [], lossy: options.kvHeads !== undefined };
  // A window is lossy only where it is not the block's own (Mistral's sliding window given back as gqa:window is not).
  let windowChanged = false;
  const { blocks, unsupported } = liftAttention(model);
  for (const u of unsupported) report.left.push({ layer: -1, form: 'unfused', reason: `${u.node}: ${u.reason}` });
  const b = new GraphBuilder(model, model.graph, 'gqa');
  let seq: SequenceInputs | string | undefined;
  const ctx: LowerContext = { b, sequence: () => (seq ??= buildSequenceInputs(b)), caches: new Map() };
  const maxContext = options.maxContext ?? 4096;
  const merge = { merge: options.merge ?? 'mean', ...(options.calibration ? { calibration: options.calibration } : {}) } as const;

  for (const block of blocks) {
    if (options.window !== undefined && block.window !== options.window && block.form !== 'dca') windowChanged = true;
    if (block.form === 'dca') {
      report.left.push({ layer: block.layer, form: block.form, reason: 'it is already Dual Chunk Attention; apply gqa before dca (gqa → dca composes)' });
      continue;
    }
    if (block.form === 'gqa') {
      // Already GroupQueryAttention: only the options can change it.
      if (options.kvHeads !== undefined && options.kvHeads !== block.numKvHeads) {
        report.left.push({ layer: block.layer, form: block.form, reason: 'merging KV heads of an already fused GroupQueryAttention is not supported yet' });
        continue;
      }
      if (options.window !== undefined) block.anchor.setAttr(attr.int('local_window_size', options.window));
      report.patched.push({ layer: block.layer, from: block.form, to: options.window !== undefined ? `GroupQueryAttention(window=${options.window})` : 'GroupQueryAttention (unchanged)' });
      continue;
    }
    const r = lowerToGqa(block, ctx, {
      maxContext,
      rotary: options.rotary ?? 'auto',
      capabilities: gqaCapabilities(options.target),
      ...(options.window !== undefined ? { window: options.window } : {}),
      ...(options.kvHeads !== undefined ? { prepare: (bl) => mergeKvHeads(b, bl, options.kvHeads!, merge) } : {}),
    });
    if (r.ok) report.patched.push({ layer: block.layer, from: block.form, to: r.to });
    else report.left.push({ layer: block.layer, form: block.form, reason: r.reason });
  }
  if (options.kvHeads !== undefined) {
    const how = options.merge === 'aligned' ? `aligns (${options.calibration ? `calibrated on ${options.calibration.tokens} tokens` : 'weights only, no calibration'}) then mean-pools` : 'mean-pools';
    report.warnings.push(`gqa: merging KV heads to ${options.kvHeads} ${how} K/V projections; quality drops without fine-tuning — measure it (attnpatch eval ppl)`);
  }
  if (windowChanged) {
    report.lossy = true;
    report.warnings.push(`gqa: a ${options.window}-token sliding window drops attention to older tokens`);
  }
  const lowered = blocks.filter((bl) => report.patched.some((p) => p.layer === bl.layer && p.from !== 'gqa'));
  if (lowered.length > 0) {
    // The contrib op's domain must be imported for the ONNX checker (ORT alone would not mind).
    if (!model.opsetImports.has('com.microsoft')) model.opsetImports.set('com.microsoft', 1);
    const renamed = nameCacheBatchDim(lowered);
    if (renamed.length) report.warnings.push(`gqa: named the batch dimension of ${renamed.length} cache inputs batch_size (${renamed[0]}, …), so transformers.js builds a first cache of batch 1 that GroupQueryAttention accepts`);
  }
  const caveat = gqaCapabilities(options.target).caveat;
  if (caveat && report.patched.some((p) => p.from !== 'gqa')) report.warnings.push(`gqa: ${caveat}`);
  eliminateDeadCode(model);
  toposort.run(model);
  enforceStrict(report, options.strict);
  return report;
}
