/**
 * @file `attnpatch/node`: everything in the root entry plus synchronous file I/O and verification on
 * onnxruntime-node.
 */
export * from './index.js';
export { loadModelFile, saveModelFile, resolveModelFile, FolderSource, type SaveOptions } from './graph/io/fs.js';
export { verifyModels, type VerifyOptions, type VerifyReport } from './runtime/verify.js';
