/**
 * @file Node side of the patching cache: originals come from the local model folder (or fetch), patched graphs
 * are written to a cache folder as `<cacheDir>/<hash>/<file>` with a `report.json`, and their unchanged external
 * data files are symlinked from the originals instead of copied. Imported only in Node.
 */
import { existsSync, mkdirSync, readFileSync, realpathSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { inlineTensorProto } from '../../graph/serde/from-ir.js';
import { saveModelToBytes } from '../../graph/io/bytes.js';
import { FolderSource, saveModelFile } from '../../graph/io/fs.js';
import { BufferSource } from '../../graph/serde/external-data.js';
import type { Model } from '../../graph/ir/model.js';
import type { PatchReport } from '../../patchers/patch.js';
import type { Artifact, Originals, PatchedStore, PatchEntry } from './custom-cache.js';

/** Default folder for patched models: $XDG_CACHE_HOME/attnpatch or ~/.cache/attnpatch. */
export function defaultCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'attnpatch');
}

/** The local file behind a key, when the model is a folder on disk. */
function localFile(entry: PatchEntry, file: string, key: string): string | undefined {
  if (isAbsolute(key) && existsSync(key) && statSync(key).isFile()) return key;
  if (existsSync(entry.id) && statSync(entry.id).isDirectory()) {
    const p = join(entry.id, file);
    if (existsSync(p)) return p;
  }
  return undefined;
}

async function fetchBytes(url: string): Promise<Uint8Array | undefined> {
  if (!/^https?:/.test(url)) return undefined;
  const r = await fetch(url);
  return r.ok ? new Uint8Array(await r.arrayBuffer()) : undefined;
}

export const nodeOriginals: Originals = {
  async read(entry, file, key) {
    const local = localFile(entry, file, key);
    return local ? readFileSync(local) : fetchBytes(key);
  },
  async external(entry, file, key, locations) {
    const local = localFile(entry, file, key);
    if (local) return new FolderSource(dirname(local));
    const files: Record<string, Uint8Array> = {};
    for (const loc of locations) {
      const bytes = await fetchBytes(new URL(loc, key).href);
      if (bytes) files[loc] = bytes;
    }
    return new BufferSource(files);
  },
};

interface Meta {
  reports: PatchReport[];
}

/** Patched-model store in a cache folder (or in memory when `cacheDir` is false). */
export function nodeStore(defaultDir: string = defaultCacheDir()): PatchedStore {
  const dirFor = (entry: PatchEntry, hash: string) => join(entry.cacheDir || defaultDir, hash);
  return {
    async load(hash: string, file: string, entry: PatchEntry): Promise<Artifact | undefined> {
      if (entry.cacheDir === false) return undefined;
      const dir = dirFor(entry, hash);
      const path = join(dir, basename(file));
      const meta = join(dir, 'report.json');
      if (!existsSync(path) || !existsSync(meta)) return undefined;
      return { path, reports: (JSON.parse(readFileSync(meta, 'utf8')) as Meta).reports };
    },
    async save(hash: string, file: string, model: Model, reports: PatchReport[], entry: PatchEntry, key: string): Promise<Artifact> {
      if (entry.cacheDir === false) {
        // In memory: ORT gets bytes, so every weight must travel inside them.
        return { bytes: saveModelToBytes(model, (t, name) => inlineTensorProto(t, name)), reports };
      }
      const dir = dirFor(entry, hash);
      mkdirSync(dir, { recursive: true });
      const path = join(dir, basename(file));
      saveModelFile(model, path, { externalData: 'reference' });
      // Unchanged external data stays where it is: link it beside the patched graph.
      const local = localFile(entry, file, key);
      for (const loc of referencedLocations(model)) {
        const target = join(dir, loc);
        if (existsSync(target) || !local) continue;
        mkdirSync(dirname(target), { recursive: true });
        symlinkSync(realpathSync(join(dirname(local), loc)), target);
      }
      writeFileSync(join(dir, 'report.json'), JSON.stringify({ reports } satisfies Meta));
      return { path, reports };
    },
  };
}

function referencedLocations(model: Model): string[] {
  const out = new Set<string>();
  for (const g of model.allGraphs()) {
    for (const v of g.initializers.values()) {
      const t = v.initializer as { location?: unknown; storage: string };
      if (t.storage === 'external' && typeof t.location === 'string') out.add(t.location);
    }
  }
  return [...out];
}
