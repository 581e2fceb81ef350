/**
 * @file `attnpatch/node`: everything in the root entry plus synchronous file I/O, verification, perplexity and
 * calibration (for the aligned KV-head merge) on onnxruntime-node.
 */
export * from './index.js';
export { loadModelFile, saveModelFile, resolveModelFile, FolderSource, type SaveOptions } from './graph/io/fs.js';
export { verifyModels, type VerifyOptions, type VerifyReport } from './runtime/verify.js';
export { evaluatePerplexity, evaluatePerplexityIds, type PerplexityOptions, type PerplexityIdsOptions, type PerplexityResult } from './runtime/eval/perplexity.js';
export { collectKvCalibration, collectKvCalibrationFromText, collectHiddenCalibration, resolveCalibration, type CalibrationOptions } from './runtime/eval/calibrate.js';
export { refitMlaOutputs, refitPatched, type MlaRefitOptions, type MlaRefitReport } from './runtime/eval/mla-refit.js';
