/**
 * ONNX decoders of the test families (`families.ts`), built with `GraphBuilder`, in the two export forms attnpatch
 * meets most: `optimum` (`family-optimum.ts`: eager attention as Optimum / torch.onnx write it) and `genai`
 * (`family-genai.ts`: fused GroupQueryAttention as the onnxruntime-genai builder writes it); shared parts in
 * `family-parts.ts`.
 */
import type { Model } from '../../src/graph/ir/model.js';
import { buildGenai } from './family-genai.js';
import { buildOptimum } from './family-optimum.js';
import type { FamilySpec, FamilyWeights } from './families.js';

export type ExportForm = 'optimum' | 'genai';

export { buildGenai, buildOptimum };

/** Builds one form. */
export function buildFamily(form: ExportForm, s: FamilySpec, w: FamilyWeights): Model {
  return form === 'optimum' ? buildOptimum(s, w) : buildGenai(s, w);
}
