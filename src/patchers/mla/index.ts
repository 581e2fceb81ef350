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
import { buildMlaFunction, MLA_DCA_FUNCTION, MLA_DOMAIN, MLA_FUNCTION, MLA_MIN_OPSET } from './function.js';
import { lowerToMla, type MlaContext } from './lower.js';
import type { MlaOptions } from './options.js';
import { planMla } from './plan.js';

export type { MlaOptions, MlaLayout, MlaMethod, RankAllocation, ValueMode } from './options.js';
export { planMla, effectiveWeights, type MlaPlan, type PlannedBlock } from './plan.js';

/** Rows of the cos/sin tables built from inv_freq when neither maxContext nor the config says more. */
const DEFAULT_MAX_CONTEXT = 4096;
/** Model-local functions need IR version 8 or later. */
const MIN_IR_FOR_FUNCTIONS = 8;

/** Applies the mla patch in place; `configLength` is config.json's max_position_embeddings when known. */
export function applyMla(model: Model, options: MlaOptions = {}, configLength?: number): PatchReport {
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
  const maxContext = options.maxContext ?? Math.max(DEFAULT_MAX_CONTEXT, configLength ?? 0);
  const ctx: MlaContext = { b: new GraphBuilder(model, model.graph, 'mla'), mask, tables: new Map(), rows: new Map(), maxContext, variants: new Set() };
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
  if (ctx.variants.size) {
    for (const v of ctx.variants) if (!model.findFunction(MLA_DOMAIN, v === 'dca' ? MLA_DCA_FUNCTION : MLA_FUNCTION)) model.functions.push(buildMlaFunction(model, v));
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
    if (ctx.builtTables) {
      report.warnings.push(`mla: the rebuilt rope tables cover ${maxContext} positions (maxContext); a longer context fails at run time`);
      report.details.maxContext = maxContext;
    }
  }
  eliminateDeadCode(model);
  toposort.run(model);
  enforceStrict(report, options.strict);
  return report;
}
