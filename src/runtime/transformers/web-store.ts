/**
 * @file Browser side of the patching cache: originals come from the base cache or `fetch` (the same URLs
 * transformers.js would fetch), external data is fetched before patching, and patched graphs are kept in the
 * Cache API under their own `attnpatch` keys (never under the original URL).
 */
import { saveModelToBytes } from '../../graph/io/bytes.js';
import { BufferSource } from '../../graph/serde/external-data.js';
import type { Model } from '../../graph/ir/model.js';
import type { PatchReport } from '../../patchers/patch.js';
import type { Artifact, CacheLike, Originals, PatchedStore, PatchEntry } from './custom-cache.js';

async function responseBytes(r: unknown): Promise<Uint8Array | undefined> {
  if (r instanceof Response && r.ok) return new Uint8Array(await r.arrayBuffer());
  return undefined;
}

/** Reads originals through `base` first, then `fetch`. */
export function webOriginals(base: () => CacheLike | undefined, fetcher: (url: string) => Promise<Response> = (u) => fetch(u)): Originals {
  const get = async (key: string) => (await responseBytes(await base()?.match(key))) ?? (await responseBytes(await fetcher(key).catch(() => undefined)));
  return {
    read: (_entry, _file, key) => get(key),
    async external(_entry, _file, key, locations) {
      const files: Record<string, Uint8Array> = {};
      const baseUrl = new URL(key, globalThis.location?.href ?? 'http://localhost/');
      for (const loc of locations) {
        const bytes = await get(new URL(loc, baseUrl).href);
        if (bytes) files[loc] = bytes;
      }
      return new BufferSource(files);
    },
  };
}

const CACHE_NAME = 'attnpatch';

/** Patched graphs in the Cache API when it exists, else only in memory for this page. */
export function webStore(): PatchedStore {
  const open = async () => (typeof caches !== 'undefined' ? caches.open(CACHE_NAME).catch(() => undefined) : undefined);
  const keyFor = (hash: string, file: string) => `https://attnpatch.invalid/${hash}/${file}`;
  return {
    async load(hash: string, file: string): Promise<Artifact | undefined> {
      const cache = await open();
      const r = await cache?.match(keyFor(hash, file));
      const meta = await cache?.match(`${keyFor(hash, file)}.report.json`);
      if (!r || !meta) return undefined;
      return { bytes: new Uint8Array(await r.arrayBuffer()), reports: (await meta.json()) as PatchReport[] };
    },
    async save(hash: string, file: string, model: Model, reports: PatchReport[], _entry: PatchEntry): Promise<Artifact> {
      const bytes = saveModelToBytes(model);
      const cache = await open();
      await cache?.put(keyFor(hash, file), new Response(bytes as unknown as BodyInit)).catch(() => undefined);
      await cache?.put(`${keyFor(hash, file)}.report.json`, new Response(JSON.stringify(reports))).catch(() => undefined);
      return { bytes, reports };
    },
  };
}
