/**
 * @file A transformers.js custom cache (`env.customCache`) that patches models as they load. transformers.js asks
 * its one cache for every file before going to disk or network; for the `.onnx` of a model registered here we
 * answer with the patched graph (memoised per file, content hash and patch spec), and leave every other file
 * to the base cache or to transformers.js's own loading. Rules it follows (see docs/architecture.md):
 * both key forms map to the same file; a fresh Response on every match (a body reads once); patched bytes are
 * never stored under the original key; `put` stores only originals.
 */
import { contextLengthOf, genaiContextLength, mergeGenaiConfig } from '../../recipes/genai.js';
import type { ModelConfig } from '../../recipes/match.js';
import { AttnpatchError, withContext } from '../../errors.js';
import { loadModelFromBytes } from '../../graph/io/bytes.js';
import { decodeModelProto } from '../../graph/serde/decode.js';
import type { ExternalDataSource } from '../../graph/serde/external-data.js';
import type { Model } from '../../graph/ir/model.js';
import type { PatchReport } from '../../patchers/patch.js';
import { applyPatches, specKey, type PatchContext, type PatchSpec } from '../../patchers/spec.js';
import { IS_NODE, sha256Hex } from '../hash.js';
import { fileInModel } from './keys.js';

/** The Web Cache API subset transformers.js uses. */
export interface CacheLike {
  match(key: string): Promise<Response | string | undefined | unknown>;
  put(key: string, response: Response): Promise<void>;
}

/** One model to patch. */
export interface PatchEntry {
  /** The model id or folder path exactly as given to `pipeline()`. */
  id: string;
  patches: PatchSpec[];
  /** Node: folder for patched models (false: keep them in memory). */
  cacheDir?: string | false;
  onReport?: (file: string, reports: PatchReport[]) => void;
}

/** A patched graph: bytes (browser, or Node without disk cache) or a file path (Node). */
export interface Artifact {
  bytes?: Uint8Array;
  path?: string;
  reports: PatchReport[];
}

/** Where original bytes come from: the base cache, the local file system (Node) or fetch. */
export interface Originals {
  /** The original bytes of `file` in the model, or undefined when absent. */
  read(entry: PatchEntry, file: string, key: string): Promise<Uint8Array | undefined>;
  /** A source for the external data files of `file`, read before patching. */
  external(entry: PatchEntry, file: string, key: string, locations: string[]): Promise<ExternalDataSource | undefined>;
}

/** Where patched graphs are kept between loads. */
export interface PatchedStore {
  load(hash: string, file: string, entry: PatchEntry): Promise<Artifact | undefined>;
  save(hash: string, file: string, model: Model, reports: PatchReport[], entry: PatchEntry, key: string): Promise<Artifact>;
}

/** Version of the patcher, part of every cache key so an upgrade never serves stale patched models. */
export const PATCHER_VERSION = 'attnpatch-0.1.0';

/** The external-data locations a model file references. */
export function externalLocations(bytes: Uint8Array): string[] {
  const proto = decodeModelProto(bytes);
  const out = new Set<string>();
  const visit = (g: typeof proto.graph) => {
    for (const t of g?.initializer ?? []) {
      if (t.data_location !== 1) continue;
      const loc = t.external_data?.find((e) => e.key === 'location')?.value;
      if (loc) out.add(loc);
    }
    for (const n of g?.node ?? []) for (const a of n.attribute ?? []) {
      if (a.g) visit(a.g);
      for (const sg of a.graphs ?? []) visit(sg);
    }
  };
  visit(proto.graph);
  return [...out];
}

export class PatchingCache implements CacheLike {
  private readonly entries = new Map<string, PatchEntry>();
  private readonly memo = new Map<string, Promise<Artifact>>();
  private readonly reported = new WeakMap<PatchEntry, Set<string>>();

  constructor(
    private readonly originals: Originals,
    private readonly store: PatchedStore,
    public base: CacheLike | undefined = undefined,
  ) {}

  /** Starts patching a model; a later registration for the same id replaces it. */
  register(entry: PatchEntry): void {
    this.entries.set(entry.id, entry);
  }

  unregister(id: string): void {
    this.entries.delete(id);
  }

  get size(): number {
    return this.entries.size;
  }

  async match(key: string): Promise<Response | string | undefined | unknown> {
    for (const entry of this.entries.values()) {
      const file = fileInModel(key, entry.id);
      if (file === undefined || !file.endsWith('.onnx')) continue;
      const artifact = await this.patched(entry, file, key);
      if (artifact === undefined) return undefined;
      // Report once per registration, whether the graph was patched now, memoised, or read from the store.
      if (!this.reported.get(entry)?.has(file)) {
        this.reported.set(entry, (this.reported.get(entry) ?? new Set()).add(file));
        entry.onReport?.(file, artifact.reports);
      }
      // NOTE: Node loads a path string straight from disk (external data resolves beside it); a Response body can
      // be read only once, so every call gets a new one.
      if (artifact.path && IS_NODE) return artifact.path;
      const bytes = artifact.bytes!;
      return new Response(bytes as unknown as BodyInit, { status: 200, headers: { 'content-length': String(bytes.byteLength), 'content-type': 'application/octet-stream' } });
    }
    return this.base?.match(key);
  }

  /** Stores originals only (patched graphs live under their own keys in the store). */
  async put(key: string, response: Response): Promise<void> {
    await this.base?.put(key, response);
  }

  private patched(entry: PatchEntry, file: string, key: string): Promise<Artifact | undefined> {
    const memoKey = `${entry.id}\0${file}\0${specKey(entry.patches)}`;
    let p = this.memo.get(memoKey);
    if (!p) {
      p = this.build(entry, file, key);
      this.memo.set(memoKey, p);
      // A failure is not memoised: the next load tries again.
      p.catch(() => this.memo.delete(memoKey));
    }
    return p.then((a) => (a.bytes || a.path ? a : undefined));
  }

  /**
   * What patches may know from the model's config.json (read like any original file); without its
   * max_position_embeddings, from genai_config.json's model.context_length.
   */
  private async context(entry: PatchEntry, file: string, key: string): Promise<PatchContext> {
    const depth = file.split('/').length - 1;
    const json = async (name: string): Promise<unknown> => {
      const bytes = await this.originals.read(entry, name, key.split('/').slice(0, -1 - depth).concat(name).join('/')).catch(() => undefined);
      if (!bytes) return undefined;
      try {
        return JSON.parse(new TextDecoder().decode(bytes)) as unknown;
      } catch {
        return undefined;
      }
    };
    const config = (await json('config.json')) as ModelConfig | undefined;
    const n = contextLengthOf(config) ?? genaiContextLength(mergeGenaiConfig(undefined, await json('genai_config.json')));
    return n !== undefined ? { maxPositionEmbeddings: n } : {};
  }

  private async build(entry: PatchEntry, file: string, key: string): Promise<Artifact> {
    const original = await this.originals.read(entry, file, key);
    if (!original) return { reports: [] };
    const hash = await sha256Hex(original, '\0', specKey(entry.patches), '\0', PATCHER_VERSION);
    const cached = await this.store.load(hash, file, entry);
    if (cached) return cached;
    const locations = externalLocations(original);
    const external = locations.length ? await this.originals.external(entry, file, key, locations) : undefined;
    let model: Model;
    try {
      model = loadModelFromBytes(original, { file, ...(external ? { externalData: external } : {}) });
    } catch (e) {
      throw e instanceof AttnpatchError ? e : new AttnpatchError('PARSE', `cannot load ${file}: ${(e as Error).message}`, { file });
    }
    const context = await this.context(entry, file, key);
    let reports: PatchReport[];
    try {
      reports = applyPatches(model, entry.patches, context);
    } catch (e) {
      throw withContext(e, { file }); // strict patches and bad options name the graph they failed on
    }
    return this.store.save(hash, file, model, reports, entry, key);
  }
}
