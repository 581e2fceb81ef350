/**
 * @file The attnpatch package root (Node and browser): the transformers.js pipeline with `patch`, the
 * load/patch/save/inspect API, the graph IR, the patchers, and errors as data. Node-only file helpers are in
 * `attnpatch/node`.
 */
export { pipeline, type PatchOptions } from './runtime/transformers/pipeline.js';
export { loadModel, patchModel, saveModel, inspect } from './api.js';
export * from './graph/index.js';
export * from './patchers/index.js';
export * from './recipes/index.js';
export { AttnpatchError, isAttnpatchError, ERROR_CODES, type ErrorCode, type ErrorWhere } from './errors.js';
