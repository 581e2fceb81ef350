/**
 * @file Node file-system I/O: load a model from a file or a transformers.js folder (external data read lazily
 * from files that must stay inside the model folder), and save atomically (temp file + rename), never over
 * an input, with optional external data.
 */
import { closeSync, constants, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, realpathSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { AttnpatchError, withContext } from '../../errors.js';
import type { Model } from '../ir/model.js';
import type { Chunk } from '../serde/wire.js';
import type { ExternalDataSource } from '../serde/external-data.js';
import { ExternalTensor, InlineTensor } from '../serde/proto-tensor.js';
import { inlineTensorProto, keepTensorLayout, type TensorWriter } from '../serde/from-ir.js';
import type { TensorProto } from '../serde/schema.generated.js';
import { encodeModel, loadModelFromBytes, type LoadOptions } from './bytes.js';

/** Reads external data files under one folder; refuses files that resolve (via links) outside it. */
export class FolderSource implements ExternalDataSource {
  private readonly root: string;
  private readonly fds = new Map<string, number>();
  readonly files = new Set<string>();

  constructor(readonly dir: string) {
    this.root = realpathSync(dir);
  }

  get label(): string {
    return this.dir;
  }

  private path(location: string): string | undefined {
    const p = join(this.dir, location);
    if (!existsSync(p)) return undefined;
    const real = realpathSync(p);
    const rel = relative(this.root, real);
    if (rel.startsWith('..') || resolve(this.root, rel) !== real) {
      throw new AttnpatchError('UNSAFE_PATH', `external data file ${location} resolves outside the model folder (to ${real})`, { file: p });
    }
    return real;
  }

  size(location: string): number | undefined {
    const p = this.path(location);
    if (p === undefined) return undefined;
    this.files.add(p);
    return statSync(p).size;
  }

  read(location: string, offset: number, length: number): Uint8Array {
    let fd = this.fds.get(location);
    if (fd === undefined) {
      const p = this.path(location);
      if (p === undefined) throw new AttnpatchError('EXTERNAL_DATA', `external data file ${location} disappeared`, { file: location });
      fd = openSync(p, 'r');
      this.fds.set(location, fd);
    }
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(fd, out, done, length - done, offset + done);
      if (n === 0) throw new AttnpatchError('EXTERNAL_DATA', `external data file ${location} is shorter than recorded`, { file: location });
      done += n;
    }
    return out;
  }

  /** Closes open file descriptors (reads reopen them). */
  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

/** Where a loaded model came from: its file and the data files it reads. */
interface Origin {
  file: string;
  source: FolderSource;
}
const origins = new WeakMap<Model, Origin>();

/** The .onnx file for a path: the file itself, or in a folder `onnx/model.onnx`, `model.onnx`, or the only .onnx. */
export function resolveModelFile(path: string, fileName = 'model.onnx'): string {
  if (!existsSync(path)) throw new AttnpatchError('IO', 'no such file or folder', { file: path });
  if (!statSync(path).isDirectory()) return path;
  for (const candidate of [join(path, 'onnx', fileName), join(path, fileName)]) if (existsSync(candidate)) return candidate;
  const found = [join(path, 'onnx'), path].flatMap((d) => (existsSync(d) ? readdirSync(d).filter((f) => f.endsWith('.onnx')).map((f) => join(d, f)) : []));
  if (found.length === 1) return found[0]!;
  throw new AttnpatchError(
    'USAGE',
    found.length === 0 ? 'no .onnx model in this folder' : `several .onnx files here (${found.map((f) => basename(f)).join(', ')}); name one`,
    { file: path },
  );
}

/** Loads a model from a .onnx file or a transformers.js folder; external data is read lazily from disk. */
export function loadModelFile(path: string, options: Omit<LoadOptions, 'externalData' | 'file'> & { fileName?: string } = {}): Model {
  const file = resolveModelFile(path, options.fileName);
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw withContext(e, { file });
  }
  const source = new FolderSource(dirname(file));
  const model = loadModelFromBytes(bytes, { ...options, file, externalData: source });
  origins.set(model, { file: realpathSync(file), source });
  return model;
}

export interface SaveOptions {
  /**
   * External data for the output. `false` puts every tensor in the .onnx file; an object moves tensors of at
   * least `threshold` bytes (default 1024) into `location` (default `<file>_data`) beside the model. Without
   * this option, tensors stay where they were read from (inline or external). `'reference'` keeps external tensors
   * pointing at their data files without writing them: the caller makes those files reachable beside the output
   * (e.g. links to the originals in a cache folder).
   */
  externalData?: false | 'reference' | { location?: string; threshold?: number };
}

const ALIGN = 64;

/** Writes chunks to a file descriptor, reading referenced bytes one chunk at a time. */
function writeChunks(fd: number, chunks: readonly Chunk[]): void {
  for (const c of chunks) {
    const b = c instanceof Uint8Array ? c : c.read();
    let done = 0;
    while (done < b.length) done += writeSync(fd, b, done, b.length - done);
  }
}

function tempPath(path: string): string {
  return `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Refuses to write over the model's own file or any data file it still reads from. */
function checkNotInput(model: Model, targets: string[]): void {
  const origin = origins.get(model);
  if (!origin) return;
  const inputs = new Set([origin.file, ...origin.source.files]);
  for (const t of targets) {
    if (!existsSync(t)) continue;
    if (inputs.has(realpathSync(t))) throw new AttnpatchError('USAGE', 'refusing to write over an input of the model; choose another output path', { file: t });
  }
}

/** Saves a model to a file atomically, with its external data beside it when asked or when it had some. */
export function saveModelFile(model: Model, path: string, options: SaveOptions = {}): void {
  const out = resolve(path);
  mkdirSync(dirname(out), { recursive: true });
  const plan = planExternal(model, out, options);
  checkNotInput(model, [out, ...(plan ? [join(dirname(out), plan.location)] : [])]);
  const temps: string[] = [];
  let closeData = () => {};
  try {
    let writer: TensorWriter = options.externalData === false ? (t, name) => inlineTensorProto(t, name) : keepTensorLayout;
    let dataTemp: string | undefined;
    if (plan) {
      dataTemp = tempPath(join(dirname(out), plan.location));
      temps.push(dataTemp);
      // NOTE: a copy-on-write clone where the file system has them (btrfs, xfs, APFS): instant, no extra disk; else a
      // kernel-side copy. Copying the unchanged data file is most of the cost of saving a large model.
      if (plan.copyFrom) copyFileSync(plan.copyFrom, dataTemp, constants.COPYFILE_FICLONE);
      else ({ writer, close: closeData } = writeDataFile(dataTemp, plan));
    }
    const encoded = encodeModel(model, writer);
    const modelTemp = tempPath(out);
    temps.push(modelTemp);
    const fd = openSync(modelTemp, 'w');
    try {
      writeChunks(fd, encoded.chunks);
    } finally {
      closeSync(fd);
    }
    closeData();
    if (dataTemp) renameSync(dataTemp, join(dirname(out), plan!.location));
    renameSync(modelTemp, out);
  } catch (e) {
    closeData(); // NOTE: a tensor that fails to read mid-encode leaves the data file open otherwise
    for (const t of temps) rmSync(t, { force: true });
    throw withContext(e, { file: out });
  }
}

interface ExternalPlan {
  location: string;
  /** Tensors (by initializer name) that go to the data file. */
  names: Set<string>;
  /** When the data file can be copied as is: the input data file. */
  copyFrom?: string;
}

/** Decides which tensors go external and whether the input data file can be reused unchanged. */
function planExternal(model: Model, out: string, options: SaveOptions): ExternalPlan | undefined {
  if (options.externalData === false || options.externalData === 'reference') return undefined;
  const inits = [...model.graph.initializers.values()];
  const external = inits.filter((v) => v.initializer instanceof ExternalTensor);
  if (options.externalData === undefined) {
    if (external.length === 0) return undefined;
    const locations = new Set(external.map((v) => (v.initializer as ExternalTensor).location));
    const location = locations.size === 1 ? [...locations][0]! : `${basename(out)}_data`;
    const names = new Set(external.map((v) => v.name));
    const origin = origins.get(model);
    // Same single data file, every tensor unchanged: copy it and keep the protos (byte-identical output).
    const untouched = locations.size === 1 && external.every((v) => (v.initializer as ExternalTensor).proto.name === v.name);
    const from = origin ? join(dirname(origin.file), location) : undefined;
    if (untouched && from && existsSync(from)) return { location, names, copyFrom: from };
    return { location, names };
  }
  const threshold = options.externalData.threshold ?? 1024;
  const location = options.externalData.location ?? `${basename(out)}_data`;
  const names = new Set(inits.filter((v) => (v.initializer!.byteLength ?? 0) >= threshold).map((v) => v.name));
  return { location, names };
}

/** Writes the planned tensors into a fresh data file; returns the writer that references them and a `close`. */
function writeDataFile(path: string, plan: ExternalPlan): { writer: TensorWriter; close: () => void } {
  const fd = openSync(path, 'w');
  let open = true;
  const close = () => {
    if (open) closeSync(fd);
    open = false;
  };
  let offset = 0;
  const written = new Map<string, TensorProto>();
  const writer: TensorWriter = (tensor, name) => {
    if (!plan.names.has(name)) {
      return tensor instanceof InlineTensor ? keepTensorLayout(tensor, name) : inlineTensorProto(tensor, name);
    }
    const known = written.get(name);
    if (known) return known;
    const bytes = tensor.bytes();
    const pad = (ALIGN - (offset % ALIGN)) % ALIGN;
    if (pad) writeSync(fd, new Uint8Array(pad));
    offset += pad;
    let done = 0;
    while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
    const base = tensor instanceof InlineTensor || tensor instanceof ExternalTensor ? tensor.proto : {};
    const proto: TensorProto = { ...base, name, dims: [...tensor.dims], data_type: tensor.dtype, data_location: 1, external_data: [
      { key: 'location', value: plan.location },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(bytes.length) },
    ] };
    delete proto.raw_data;
    delete proto.float_data;
    delete proto.int32_data;
    delete proto.int64_data;
    delete proto.double_data;
    delete proto.uint64_data;
    offset += bytes.length;
    written.set(name, proto);
    if (written.size === plan.names.size) close();
    return proto;
  };
  if (plan.names.size === 0) close();
  return { writer, close };
}
