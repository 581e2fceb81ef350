/**
 * @file The `dca` patch: Dual Chunk Attention (An et al. 2024) for training-free long context. Every lifted block
 * with rope becomes a call of the model-local function `ai.attnpatch::DualChunkAttention`; graph inputs and outputs
 * keep their names and shapes, so transformers.js drives the model unchanged. The KV cache then holds keys rotated
 * at DCA positions and cannot be mixed with an unpatched model's cache.
 */
import { GraphBuilder } from '../../graph/build/builder.js';
import type { Model } from '../../graph/ir/model.js';
import { eliminateDeadCode } from '../../graph/passes/dce.js';
import { toposort } from '../../graph/passes/toposort.js';
import { liftAttention } from '../attention/lift.js';
import { enforceStrict, type PatchReport } from '../patch.js';
import { buildDcaFunction, DCA_DOMAIN } from './function.js';
import { lowerToDca, type DcaContext } from './lower.js';
import { dcaParams, type DcaOptions } from './params.js';

export type { DcaOptions } from './params.js';

/** Model-local functions need IR version 8 or later. */
const MIN_IR_FOR_FUNCTIONS = 8;

/** Applies the dca patch in place; `configLength` is config.json's max_position_embeddings when known. */
export function applyDca(model: Model, options: DcaOptions = {}, configLength?: number): PatchReport {
  const params = dcaParams(options, configLength);
  const report: PatchReport = { patch: 'dca', patched: [], left: [], warnings: [], lossy: false };
  const { blocks, unsupported } = liftAttention(model);
  for (const u of unsupported) report.left.push({ layer: -1, form: 'unfused', reason: `${u.node}: ${u.reason}` });
  const ctx: DcaContext = { b: new GraphBuilder(model, model.graph, 'dca'), tables: new Map(), layouts: new Set() };
  for (const block of blocks) {
    if (block.form === 'dca') {
      report.left.push({ layer: block.layer, form: block.form, reason: 'it is already Dual Chunk Attention' });
      continue;
    }
    const r = lowerToDca(block, ctx, params);
    if (r.ok) report.patched.push({ layer: block.layer, from: block.form, to: r.to });
    else report.left.push({ layer: block.layer, form: block.form, reason: r.reason });
  }
  if (ctx.layouts.size) {
    for (const layout of ctx.layouts) if (!model.findFunction(DCA_DOMAIN, layout === 'half' ? 'DualChunkAttention' : 'DualChunkAttentionInterleaved')) model.functions.push(buildDcaFunction(model, layout));
    model.opsetImports.set(DCA_DOMAIN, 1);
    if (model.irVersion < MIN_IR_FOR_FUNCTIONS) model.irVersion = MIN_IR_FOR_FUNCTIONS;
    // NOTE: beyond the trained length the model sees only positions ≤ chunk size; within CS + 1 tokens it is exact.
    report.lossy = true;
    report.details = { chunkSize: params.chunkSize, localWindow: params.localWindow, chunkLength: params.chunkLength, trainedLength: params.trainedLength };
    report.warnings.push(
      `dca: exact up to ${params.chunkSize + 1} tokens; beyond that, positions are remapped (chunk ${params.chunkSize}, local window ${params.localWindow}, temperature ${params.temperature}); the KV cache holds DCA-rotated keys`,
    );
  }
  eliminateDeadCode(model);
  toposort.run(model);
  enforceStrict(report, options.strict);
  return report;
}
