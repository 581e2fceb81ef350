/**
 * @file `attnpatch/patchers`: lifting attention into normalized blocks, and the patches that lower them.
 */
export { liftAttention, type LiftReport } from './attention/lift.js';
export type { AttentionBlock, AttentionForm, Projection, RopeInfo, RopeSource, KvLayout, LiftFailure, LiftRule } from './attention/block.js';
export { inspectModel, type InspectReport, type BlockReport } from './inspect.js';
export { applyPatches, parsePatchSpec, PATCHES, type PatchContext, type PatchSpec, type PatchStep } from './spec.js';
export type { PatchReport, PatchedBlock, LeftBlock } from './patch.js';
export { applyGqa, type GqaOptions } from './gqa/index.js';
export { applyDca, type DcaOptions } from './dca/index.js';
export { applyMla, planMla, type MlaOptions, type MlaLayout, type MlaMethod, type RankAllocation } from './mla/index.js';
export type { KvCalibration } from './gqa/align.js';
