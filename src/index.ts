/**
 * @file The attnpatch package root: load, inspect and save models; errors as data.
 */
export * from './graph/index.js';
export * from './patchers/index.js';
export { AttnpatchError, isAttnpatchError, ERROR_CODES, type ErrorCode, type ErrorWhere } from './errors.js';
export { loadModelFile, saveModelFile, resolveModelFile, type SaveOptions } from './graph/io/fs.js';
