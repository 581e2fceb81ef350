/**
 * @file The `mla` patch: multi-head latent attention by low-rank factorization of each layer's K and V projections
 * (MHA2MLA / Palu style, training-free). The KV cache holds latents instead of keys and values, in the existing
 * cache slots (names kept, shapes [batch_size, 1, T, width]); keys are rebuilt and rotated at their true positions
 * every step (exact RoPE), and W_UV is folded into the output projection. Full rank is exact; lower ranks trade
 * quality for cache bytes (measure with `attnpatch eval ppl`).
 */
import { GraphBuilder } from '../../graph/build/builder.js';
import type { Model } from '../../graph/ir/model.js';
import { eliminateDeadCode } from '../../graph/passes/dce.js';
import { toposort } from '../../graph/passes/toposort.js';
import { enforceStrict, type PatchReport } from '../patch.js';
import { buildMlaFunction, MLA_DOMAIN, MLA_MIN_OPSET, mlaFunctionName } from './function.js';
import { lowerToMla, type MlaContext } from './lower.js';
import type { MlaOptions } from './options.js';
import { planMla } from './plan.js';

export type { MlaOptions, MlaLayout, MlaMethod, RankAllocation, ValueMode } from './options.js';
export { planMla, effectiveWeights, type MlaPlan, type PlannedBlock } from './plan.js';

/** Model-local functions need IR version 8 or later. */
const MIN_IR_FOR_FUNCTIONS = 8;

/** Applies the mla patch in place and reports what it did. */
export function applyMla(model: Model, options: MlaOptions = {}): PatchReport {
  const plan = planMla(model, options);
  const { params, allocation } = plan;
  const report: PatchReport = { patch: 'mla', patched: [], left: [...plan.left], warnings: [...allocation.notes], lossy: false };
  const mask = model.graph.input('attention_mask');
  if ((model.opset('') ?? 0) < MLA_MIN_OPSET || !mask) {
    const reason = mask ? `the model's opset ${model.opset('')} is below ${MLA_MIN_OPSET}, which the MLA function needs` : 'the graph has no attention_mask input';
    for (const p of plan.blocks) report.left.push({ layer: p.source.block.layer, form: p.source.block.form, reason });
    enforceStrict(report, options.strict);
    return report;
  }
  const ctx: MlaContext = { b: new GraphBuilder(model, model.graph, 'mla'), mask, tables: new Map(), layouts: new Set() };
  let quantized = false;
  const ranks: string[] = [];
  for (const p of plan.blocks) {
    const { block } = p.source;
    const r = lowerToMla(p, ctx);
    if (!r.ok) {
      report.left.push({ layer: block.layer, form: block.form, reason: r.reason });
      continue;
    }
    report.patched.push({ layer: block.layer, from: block.form, to: r.to });
    ranks.push(`${block.layer}:${p.ranks.join('/')}`);
    quantized ||= p.source.quantized;
    if (p.ranks.some((r2, i) => r2 < p.units[i]!.maxRank)) report.lossy = true;
  }
  if (ctx.layouts.size) {
    for (const layout of ctx.layouts) if (!model.findFunction(MLA_DOMAIN, mlaFunctionName(layout))) model.functions.push(buildMlaFunction(model, layout));
    model.opsetImports.set(MLA_DOMAIN, 1);
    if (model.irVersion < MIN_IR_FOR_FUNCTIONS) model.irVersion = MIN_IR_FOR_FUNCTIONS;
    const patchedBlocks = plan.blocks.filter((p) => report.patched.some((x) => x.layer === p.source.block.layer));
    const after = patchedBlocks.reduce((s, p) => s + p.ranks.reduce((a, b) => a + b, 0), 0);
    const before = patchedBlocks.reduce((s, p) => s + 2 * p.source.k.cols, 0);
    report.details = { layout: params.layout, method: params.method, ranks: ranks.join(' '), kvElementsPerToken: after, originalKvElementsPerToken: before, kvRatio: +(after / before).toFixed(4) };
    if (params.calibration) report.details.calibrationTokens = params.calibration.tokens;
    if (report.lossy) {
      report.warnings.push(
        `mla: ${params.layout} latents (${params.method === 'asvd' ? `activation-aware, calibrated on ${params.calibration!.tokens} tokens` : 'weights only'}) keep ${((100 * after) / before).toFixed(1)}% of the KV cache; quality drops without fine-tuning — measure it (attnpatch eval ppl)`,
      );
    }
    if (quantized) report.warnings.push('mla: MatMulNBits (quantized) k/v/o projections were dequantized exactly and the MLA projections are emitted in float (larger than the 4-bit source)');
    report.warnings.push('mla: the KV cache holds latents; it cannot be mixed with an unpatched model\'s cache');
  }
  eliminateDeadCode(model);
  toposort.run(model);
  enforceStrict(report, options.strict);
  return report;
}
