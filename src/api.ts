/**
 * @file The lower-level API: load a model, patch it, save it, inspect it. Works in Node (paths) and the browser
 * (bytes or URLs); Node-only file access is imported on demand so browser bundles never see node:fs.
 */
import { AttnpatchError } from './errors.js';
import { loadModelFromBytes, saveModelToBytes, type LoadOptions } from './graph/io/bytes.js';
import type { SaveOptions } from './graph/io/fs.js';
import type { Model } from './graph/ir/model.js';
import { inspectModel, type InspectReport } from './patchers/inspect.js';
import type { PatchReport } from './patchers/patch.js';
import { applyPatches, type PatchContext, type PatchSpec } from './patchers/spec.js';
import { IS_NODE } from './runtime/hash.js';

/**
 * Loads a model from bytes, a URL (fetched), or — in Node — a .onnx path or a transformers.js folder.
 * External data: from `options.externalData` buffers, or read from beside the file in Node.
 */
export async function loadModel(source: Uint8Array | string, options: LoadOptions & { allowMissingExternalData?: boolean } = {}): Promise<Model> {
  if (source instanceof Uint8Array) return loadModelFromBytes(source, options);
  if (/^(https?|blob|data):/.test(source) || !IS_NODE) {
    const r = await fetch(source);
    if (!r.ok) throw new AttnpatchError('IO', `fetch failed with status ${r.status}`, { file: source });
    return loadModelFromBytes(new Uint8Array(await r.arrayBuffer()), { file: source, ...options });
  }
  const { loadModelFile } = await import('./graph/io/fs.js');
  return loadModelFile(source, options);
}

/**
 * Applies patches in order (in place) and returns one report per patch. `context` carries what config.json would
 * say (`maxPositionEmbeddings`: dca's and mla's default trained length); the pipeline and CLI fill it from the folder.
 */
export function patchModel(model: Model, patches: PatchSpec | readonly PatchSpec[], context: PatchContext = {}): PatchReport[] {
  return applyPatches(model, Array.isArray(patches) ? (patches as PatchSpec[]) : [patches as PatchSpec], context);
}

/** Encodes a model to bytes, or (Node) writes it to a file atomically with its external data. */
export async function saveModel(model: Model): Promise<Uint8Array>;
export async function saveModel(model: Model, path: string, options?: SaveOptions): Promise<void>;
export async function saveModel(model: Model, path?: string, options: SaveOptions = {}): Promise<Uint8Array | void> {
  if (path === undefined) return saveModelToBytes(model);
  if (!IS_NODE) throw new AttnpatchError('USAGE', 'saving to a path needs Node; call saveModel(model) for bytes', { file: path });
  const { saveModelFile } = await import('./graph/io/fs.js');
  saveModelFile(model, path, options);
}

/** The attention blocks of a model, what could not be lifted, and the KV-cache bytes per token. */
export function inspect(model: Model): InspectReport {
  return inspectModel(model);
}
