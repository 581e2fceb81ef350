/**
 * @file Converting a model file or a transformers.js model folder into a new one (Node only). A folder is
 * copied whole (config, tokenizer, generation config…) with its .onnx replaced by the converted model, at the
 * same relative path, so transformers.js loads the output exactly like the input.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { AttnpatchError } from '../errors.js';
import type { Model } from '../graph/ir/model.js';
import { loadModelFile, resolveModelFile, saveModelFile, type SaveOptions } from '../graph/io/fs.js';
import type { PatchContext } from '../patchers/spec.js';

export interface ModelLocation {
  /** The folder given (transformers.js layout), or undefined for a bare .onnx file. */
  folder: string | undefined;
  /** The .onnx file inside it (or the file given). */
  file: string;
}

/** Where the model of a path is: a file, or a folder's `onnx/model.onnx`. */
export function locateModel(path: string): ModelLocation {
  const file = resolveModelFile(path);
  return { folder: statSync(path).isDirectory() ? resolve(path) : undefined, file: resolve(file) };
}

/** Output location mirroring the input: a folder gives a folder, a file gives a file (into a folder if `out` is one). */
export function outputLocation(input: ModelLocation, out: string): ModelLocation {
  const target = resolve(out);
  if (input.folder) return { folder: target, file: join(target, relative(input.folder, input.file)) };
  const intoDir = out.endsWith('/') || (existsSync(target) && statSync(target).isDirectory());
  return { folder: undefined, file: intoDir ? join(target, basename(input.file)) : target };
}

function samePath(a: string, b: string): boolean {
  return existsSync(a) && existsSync(b) && realpathSync(a) === realpathSync(b);
}

/**
 * Writes `model` (loaded from `input`) to `out`: for a folder, first copies every file except the model and its
 * external data, then saves the model atomically. Never writes over the input.
 */
export function writeModelLike(model: Model, input: ModelLocation, out: string, options: SaveOptions = {}): ModelLocation {
  const target = outputLocation(input, out);
  if (samePath(target.file, input.file) || (input.folder && target.folder && samePath(target.folder, input.folder))) {
    throw new AttnpatchError('USAGE', 'the output is the input; choose another output path', { file: out });
  }
  if (input.folder && target.folder) {
    mkdirSync(target.folder, { recursive: true });
    const modelDir = dirname(input.file);
    const skip = new Set([input.file, ...dataFilesOf(modelDir, basename(input.file))]);
    cpSync(input.folder, target.folder, { recursive: true, filter: (src) => !skip.has(resolve(src)) && !src.endsWith('.onnx') });
  }
  saveModelFile(model, target.file, options);
  return target;
}

/** Data files that belong to a model file by name (`model.onnx_data`, `model.onnx.data`, `model.onnx_data_1`…). */
function dataFilesOf(dir: string, file: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f !== file && (f.startsWith(`${file}_data`) || f.startsWith(`${file}.data`)))
    .map((f) => resolve(dir, f));
}

/** config.json of a model: in its folder, or beside / one level above a bare .onnx file. */
export function readConfig(location: ModelLocation): Record<string, unknown> | undefined {
  const dirs = location.folder ? [location.folder] : [dirname(location.file), dirname(dirname(location.file))];
  for (const d of dirs) {
    const p = join(d, 'config.json');
    if (existsSync(p)) return JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
  }
  return undefined;
}

/** What patches may know from config.json. */
export function patchContextOf(config: Record<string, unknown> | undefined): PatchContext {
  const n = config?.max_position_embeddings;
  return typeof n === 'number' ? { maxPositionEmbeddings: n } : {};
}

/** Loads the model of a file or folder. */
export function loadLocated(path: string, options: { allowMissingExternalData?: boolean } = {}): { model: Model; location: ModelLocation } {
  const location = locateModel(path);
  return { model: loadModelFile(location.file, options), location };
}
