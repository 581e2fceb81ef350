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
import { contextLengthOf, mergeGenaiConfig } from '../recipes/genai.js';
import { configValue, type ModelConfig } from '../recipes/match.js';

export interface ModelLocation {
  /** The folder given (transformers.js layout), or undefined for a bare .onnx file. */
  folder: string | undefined;
  /** The .onnx file inside it (or the file given). */
  file: string;
}

/**
 * Where the model of a path is: a file; a folder's `onnx/model.onnx` or `model.onnx`; in an onnxruntime-genai folder
 * the decoder its genai_config.json names (`past.onnx`…); else the folder's only .onnx file.
 */
export function locateModel(path: string): ModelLocation {
  const folder = existsSync(path) && statSync(path).isDirectory() ? resolve(path) : undefined;
  const genai = folder ? genaiDecoderFile(folder) : undefined;
  const file = genai && !existsSync(join(folder!, 'onnx', 'model.onnx')) ? genai : resolveModelFile(path);
  return { folder, file: resolve(file) };
}

/** The decoder file a folder's genai_config.json names, when it exists. */
function genaiDecoderFile(folder: string): string | undefined {
  const name = configValue(readJson(join(folder, 'genai_config.json')) as ModelConfig | undefined, 'model.decoder.filename');
  if (typeof name !== 'string' || !name || name.includes('..')) return undefined;
  const file = join(folder, name);
  return existsSync(file) && statSync(file).isFile() ? file : undefined;
}

/** A JSON file's value, or undefined when it is missing or not JSON. */
export function readJson(path: string): unknown {
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
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

/**
 * config.json of a model (in its folder, or beside / one level above a bare .onnx file) with the `model` object of
 * an onnxruntime-genai genai_config.json found the same way merged in under `model` (see recipes/genai.ts). A
 * folder with only genai_config.json gives `{ model: {...} }`; neither gives undefined.
 */
export function readConfig(location: ModelLocation): Record<string, unknown> | undefined {
  const dirs = location.folder ? [location.folder, dirname(location.file)] : [dirname(location.file), dirname(dirname(location.file))];
  const first = (name: string) => dirs.map((d) => join(d, name)).find((p) => existsSync(p));
  const configFile = first('config.json');
  const config = configFile ? (JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>) : undefined;
  const genaiFile = first('genai_config.json');
  return genaiFile ? mergeGenaiConfig(config, readJson(genaiFile)) : config;
}

/** What patches may know from the config: the trained length (max_position_embeddings, else GenAI's context_length). */
export function patchContextOf(config: Record<string, unknown> | undefined): PatchContext {
  const n = contextLengthOf(config);
  return n !== undefined ? { maxPositionEmbeddings: n } : {};
}

/** Loads the model of a file or folder. */
export function loadLocated(path: string, options: { allowMissingExternalData?: boolean } = {}): { model: Model; location: ModelLocation } {
  const location = locateModel(path);
  return { model: loadModelFile(location.file, options), location };
}
