/**
 * @file onnxruntime-web (wasm) below its JS API, for `bench/gqa.ts`: keeps the KV cache inside the WebAssembly
 * heap so no step copies it across the JS boundary.
 *
 * The public `session.run` of onnxruntime-web 1.30 mallocs and copies every input into the heap and copies every
 * output out of it (wasm-core-impl.ts `prepareInputOutputTensor` / "ProcessOutputTensor"); it has no CPU-side IO
 * binding, and preallocated CPU outputs are not copied back (microsoft/onnxruntime#25786). Here:
 *   - `captureWasmModule` points `env.wasm.wasmPaths.mjs` at a generated wrapper of the real
 *     `ort-wasm-simd-threaded.mjs` factory that keeps the Emscripten module it builds (a supported override, no
 *     change to node_modules), so the exported C API (`_OrtCreateTensor`, `_OrtRun`, …) is reachable;
 *   - `HeapStepper` runs a session created by the public API through `_OrtRun` directly, with its session handle:
 *     'dynamic' feeds the present OrtValues of one step as the past of the next (ORT still concatenates inside the
 *     kernel, but nothing crosses into JS); 'static' allocates one [1, Hkv, C, Dh] heap buffer per cache tensor and
 *     binds it as both past input and preallocated present output (GroupQueryAttention's shared buffer, in place).
 * Only logits (one row per step) are read back. This is a prototype: it relies on ORT-web internals
 * (`session.handler.sessionId`, the module's C exports) that are not public API.
 */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as OrtNs from 'onnxruntime-common';
import { fillRandom, type CacheShape, type StepResult, type Stepper } from './gqa-cache.js';

/** The parts of the Emscripten module of onnxruntime-web we call. */
interface OrtWasm {
  PTR_SIZE: number;
  HEAPU8: Uint8Array;
  HEAP32: Int32Array;
  _malloc(n: number): number;
  _free(p: number): void;
  stringToUTF8(s: string, p: number, max: number): void;
  lengthBytesUTF8(s: string): number;
  UTF8ToString(p: number): string;
  _OrtCreateTensor(type: number, data: number, bytes: number, dims: number, ndims: number, location: number): number;
  _OrtGetTensorData(t: number, type: number, data: number, dims: number, ndims: number): number;
  _OrtReleaseTensor(t: number): number;
  _OrtFree(p: number): number;
  _OrtRun(s: number, inNames: number, inValues: number, nIn: number, outNames: number, nOut: number, outValues: number, runOptions: number): number | Promise<number>;
  _OrtGetLastError(code: number, msg: number): number;
}

const KEY = '__attnpatchOrtWasm';
const FLOAT = 1;
const INT64 = 7;
const CPU = 1;

/** Must run before the first onnxruntime-web session: routes the wasm factory through a capturing wrapper. */
export function captureWasmModule(ortWeb: { env: { wasm: { wasmPaths?: unknown } } }, tmpDir: string): void {
  const require = createRequire(import.meta.url);
  const dist = dirname(require.resolve('onnxruntime-web'));
  const factory = pathToFileURL(join(dist, 'ort-wasm-simd-threaded.mjs')).href;
  const wrapper = join(tmpDir, 'ort-wasm-capture.mjs');
  writeFileSync(
    wrapper,
    `import factory from ${JSON.stringify(factory)};\nexport default async function capture(config) {\n  const m = await factory(config);\n  globalThis[${JSON.stringify(KEY)}] = m;\n  return m;\n}\n`,
  );
  ortWeb.env.wasm.wasmPaths = { mjs: pathToFileURL(wrapper).href, wasm: pathToFileURL(join(dist, 'ort-wasm-simd-threaded.wasm')).href };
}

function module(): OrtWasm {
  const m = (globalThis as Record<string, unknown>)[KEY] as OrtWasm | undefined;
  if (!m) throw new Error('onnxruntime-web module not captured: call captureWasmModule before the first session');
  if (m.PTR_SIZE !== 4) throw new Error(`wasm64 build (PTR_SIZE ${m.PTR_SIZE}) not supported by this prototype`);
  return m;
}

/** The native session handle behind a public onnxruntime-web session (internal field). */
function sessionHandle(session: OrtNs.InferenceSession): number {
  const id = (session as unknown as { handler?: { sessionId?: number } }).handler?.sessionId;
  if (typeof id !== 'number') throw new Error('cannot reach the onnxruntime-web session handle');
  return id;
}

class Heap {
  readonly w = module();
  private readonly strings = new Map<string, number>();

  /** _malloc that refuses a block beyond the (possibly stale) views, so no write through them can be dropped. */
  malloc(n: number): number {
    const p = this.w._malloc(n);
    if (p === 0) throw new Error(`wasm malloc(${n}) failed`);
    if (p + n > this.w.HEAPU8.length) throw new Error('stale wasm heap view (memory grown by another thread)');
    return p;
  }

  /** A float32 view of heap memory. NOTE: the module refreshes its HEAP* views only in the thread that grew the
   * memory; a stale view is still correct inside its old length (shared memory), so only the bounds are checked. */
  f32(ptr: number, count: number): Float32Array {
    const buf = this.w.HEAPU8.buffer;
    if (ptr + 4 * count > buf.byteLength) throw new Error('stale wasm heap view (memory grown by another thread)');
    return new Float32Array(buf, ptr, count);
  }

  cstr(s: string): number {
    let p = this.strings.get(s);
    if (p === undefined) {
      const n = this.w.lengthBytesUTF8(s) + 1;
      p = this.malloc(n);
      this.w.stringToUTF8(s, p, n);
      this.strings.set(s, p);
    }
    return p;
  }

  check(code: number, what: string): void {
    if (code === 0) return;
    const p = this.malloc(8);
    this.w._OrtGetLastError(p, p + 4);
    const msg = this.w.UTF8ToString(this.w.HEAP32[(p + 4) >> 2]!);
    this.w._free(p);
    throw new Error(`${what}: ${msg} (code ${code})`);
  }

  /** An OrtValue over `bytes` of heap at `ptr` (borrowed, not copied). */
  tensor(type: number, ptr: number, bytes: number, dims: readonly number[]): number {
    const d = this.malloc(4 * Math.max(1, dims.length));
    dims.forEach((x, i) => (this.w.HEAP32[(d >> 2) + i] = x));
    const t = this.w._OrtCreateTensor(type, ptr, bytes, d, dims.length, CPU);
    this.w._free(d);
    if (t === 0) this.check(1, 'OrtCreateTensor');
    return t;
  }

  /** Data pointer and dims of an OrtValue. */
  data(t: number): { ptr: number; dims: number[] } {
    const w = this.w;
    const out = this.malloc(16);
    this.check(w._OrtGetTensorData(t, out, out + 4, out + 8, out + 12), 'OrtGetTensorData');
    const ptr = w.HEAP32[(out + 4) >> 2]!;
    const dimsPtr = w.HEAP32[(out + 8) >> 2]!;
    const n = w.HEAP32[(out + 12) >> 2]!;
    if (dimsPtr + 4 * n > w.HEAPU8.length) throw new Error('stale wasm heap view (memory grown by another thread)');
    const dims = Array.from({ length: n }, (_, i) => w.HEAP32[(dimsPtr >> 2) + i]!);
    w._OrtFree(dimsPtr);
    w._free(out);
    return { ptr, dims };
  }
}

/** An int64 [1, n] tensor in a fresh heap block; returns [tensor, block]. */
function int64Tensor(h: Heap, values: readonly number[]): [number, number] {
  const bytes = 8 * values.length;
  const p = h.malloc(Math.max(8, bytes));
  const view = new BigInt64Array(h.w.HEAPU8.buffer, p, values.length);
  values.forEach((v, i) => (view[i] = BigInt(v)));
  return [h.tensor(INT64, p, bytes, [1, values.length]), p];
}

/** Decoder steps through `_OrtRun`, cache resident in the wasm heap ('dynamic' chained presents or 'static' shared buffer). */
export class HeapStepper implements Stepper {
  private readonly h = new Heap();
  private readonly handle: number;
  private n = 0;
  /** dynamic: current past OrtValues (and heap blocks we own for seeded ones). */
  private past: number[] = [];
  private owned: number[] = [];
  /** static: heap buffer, input OrtValue and output OrtValue per cache tensor (same memory). */
  private readonly buffers: { ptr: number; input: number; output: number }[] = [];

  constructor(
    readonly label: string,
    readonly session: OrtNs.InferenceSession,
    private readonly shape: CacheShape,
    readonly mode: 'dynamic' | 'static',
    readonly capacity = 0,
  ) {
    this.handle = sessionHandle(session);
    if (mode === 'static') {
      const bytes = 4 * shape.kvHeads * capacity * shape.headDim;
      const dims = [1, shape.kvHeads, capacity, shape.headDim];
      for (let i = 0; i < shape.pairs.length; i++) {
        const ptr = this.h.malloc(bytes);
        this.h.w.HEAPU8.fill(0, ptr, ptr + bytes);
        this.buffers.push({ ptr, input: this.h.tensor(FLOAT, ptr, bytes, dims), output: this.h.tensor(FLOAT, ptr, bytes, dims) });
      }
    }
    this.reset();
  }

  get length(): number {
    return this.n;
  }

  private dropPast(): void {
    for (const t of this.past) this.h.w._OrtReleaseTensor(t);
    for (const p of this.owned) this.h.w._free(p);
    this.past = [];
    this.owned = [];
  }

  private seededPast(len: number, seed?: number): void {
    this.dropPast();
    const { kvHeads, headDim } = this.shape;
    const count = kvHeads * len * headDim;
    this.shape.pairs.forEach((_, i) => {
      const p = this.h.malloc(Math.max(4, 4 * count));
      if (count > 0) {
        const a = new Float32Array(count);
        if (seed !== undefined) fillRandom(a, seed + i);
        this.h.f32(p, count).set(a);
      }
      this.owned.push(p);
      this.past.push(this.h.tensor(FLOAT, p, 4 * count, [1, kvHeads, len, headDim]));
    });
  }

  reset(): void {
    this.n = 0;
    if (this.mode === 'dynamic') this.seededPast(0);
  }

  seed(p: number): void {
    if (this.mode === 'dynamic') this.seededPast(p, 1);
    else {
      if (p > this.capacity) throw new Error(`seed ${p} > capacity ${this.capacity}`);
      const { kvHeads, headDim } = this.shape;
      const rows = new Float32Array(p * headDim);
      this.buffers.forEach((b, i) => {
        for (let h = 0; h < kvHeads; h++) {
          fillRandom(rows, 1 + i * 131 + h);
          this.h.f32(b.ptr + 4 * h * this.capacity * headDim, rows.length).set(rows);
        }
      });
    }
    this.n = p;
  }

  async step(ids: readonly number[]): Promise<StepResult> {
    const { h } = this;
    const w = h.w;
    const s = ids.length;
    if (this.mode === 'static' && this.n + s > this.capacity) throw new Error(`cache full: ${this.n} + ${s} > ${this.capacity}`);
    const t0 = performance.now();
    const small: [number, number][] = [
      int64Tensor(h, ids),
      int64Tensor(h, new Array<number>(this.n + s).fill(1)),
      int64Tensor(h, ids.map((_, i) => this.n + i)),
    ];
    const pastInputs = this.mode === 'static' ? this.buffers.map((b) => b.input) : this.past;
    const inNames = ['input_ids', 'attention_mask', 'position_ids', ...this.shape.pairs.map((p) => p.past)];
    const inValues = [...small.map(([t]) => t), ...pastInputs];
    const outNames = ['logits', ...this.shape.pairs.map((p) => p.present)];
    const outValues = [0, ...(this.mode === 'static' ? this.buffers.map((b) => b.output) : this.shape.pairs.map(() => 0))];
    const arrays = h.malloc(4 * (2 * inNames.length + 2 * outNames.length));
    const [inN, inV, outN, outV] = [arrays, arrays + 4 * inNames.length, arrays + 8 * inNames.length, arrays + 8 * inNames.length + 4 * outNames.length];
    inNames.forEach((name, i) => {
      w.HEAP32[(inN >> 2) + i] = h.cstr(name);
      w.HEAP32[(inV >> 2) + i] = inValues[i]!;
    });
    outNames.forEach((name, i) => {
      w.HEAP32[(outN >> 2) + i] = h.cstr(name);
      w.HEAP32[(outV >> 2) + i] = outValues[i]!;
    });
    let last: Float32Array;
    try {
      h.check(await w._OrtRun(this.handle, inN, inV, inNames.length, outN, outNames.length, outV, 0), 'OrtRun');
      const outs = outNames.map((_, i) => w.HEAP32[(outV >> 2) + i]!);
      const logits = h.data(outs[0]!);
      const vocab = logits.dims.at(-1)!;
      const count = logits.dims.reduce((a, b) => a * b, 1);
      last = h.f32(logits.ptr + 4 * (count - vocab), vocab).slice();
      w._OrtReleaseTensor(outs[0]!);
      if (this.mode === 'dynamic') {
        this.dropPast();
        this.past = outs.slice(1);
      }
    } finally {
      for (const [t, p] of small) {
        w._OrtReleaseTensor(t);
        w._free(p);
      }
      w._free(arrays);
    }
    const ms = performance.now() - t0;
    this.n += s;
    return { ms, last };
  }

  async release(): Promise<void> {
    this.dropPast();
    for (const b of this.buffers) {
      this.h.w._OrtReleaseTensor(b.input);
      this.h.w._OrtReleaseTensor(b.output);
      this.h.w._free(b.ptr);
    }
    this.buffers.length = 0;
    await this.session.release();
  }
}

/**
 * Splits onnxruntime-web's public `session.run` into its phases using ORT-web's own trace points
 * (`env.trace = true` makes it call console.time/timeEnd around "wasm prepareInputOutputTensor" — malloc + copy of
 * every input into the heap — and "wasm ProcessOutputTensor" — copy of every output out of it). The console
 * methods are swapped for recorders while enabled.
 */
export class WasmRunTrace {
  private starts = new Map<string, number>();
  totals = new Map<string, number>();
  private saved: Pick<Console, 'time' | 'timeEnd' | 'timeStamp'> | undefined;

  constructor(private readonly env: { trace?: boolean }) {}

  enable(): void {
    this.saved = { time: console.time, timeEnd: console.timeEnd, timeStamp: console.timeStamp };
    console.time = (label = '') => void this.starts.set(label, performance.now());
    console.timeEnd = (label = '') => {
      const t = this.starts.get(label);
      if (t !== undefined) this.totals.set(label, (this.totals.get(label) ?? 0) + performance.now() - t);
    };
    console.timeStamp = () => {};
    this.env.trace = true;
  }

  /** Phase totals since the last take, then cleared: copy-in and copy-out ms. */
  take(): { copyInMs: number; copyOutMs: number } {
    const r = { copyInMs: this.totals.get('ORT::wasm prepareInputOutputTensor') ?? 0, copyOutMs: this.totals.get('ORT::wasm ProcessOutputTensor') ?? 0 };
    this.totals.clear();
    return r;
  }

  disable(): void {
    this.env.trace = false;
    if (this.saved) Object.assign(console, this.saved);
  }
}
