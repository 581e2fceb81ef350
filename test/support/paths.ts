/** Where tests find the shared fixtures: ../shared/models beside the repo (CI lays it there). */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const SHARED_MODELS = process.env.ATTNPATCH_SHARED_MODELS ?? join(REPO_ROOT, '..', 'shared', 'models');

if (!existsSync(SHARED_MODELS)) {
  throw new Error(`shared fixtures not found at ${SHARED_MODELS}; set ATTNPATCH_SHARED_MODELS`);
}

/** Absolute path of a file under ../shared/models. */
export const shared = (...parts: string[]): string => join(SHARED_MODELS, ...parts);

/** Every .onnx file under a folder (default: all shared fixtures), depth first. */
export function onnxFiles(dir: string = SHARED_MODELS): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) return onnxFiles(p);
    return e.endsWith('.onnx') ? [p] : [];
  });
}
