/**
 * @file Protobuf wire primitives: a bounds-checked reader over a byte view and a chunked writer.
 * Length-delimited payloads are returned as `subarray` views (never copied); the writer emits large byte
 * payloads as references to their original bytes instead of copying them into one growing buffer.
 */
import type { Int64 } from './schema.generated.js';

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

/** Thrown by the reader on malformed input; the decoder turns it into an AttnpatchError with a location. */
export class WireError extends Error {
  /** True once `offset` counts from the start of the whole input rather than a nested view. */
  absolute = false;
  constructor(
    message: string,
    public offset: number,
  ) {
    super(message);
  }
}

const TWO_32 = 4294967296;

/** Reads protobuf wire data from a view; `pos` is relative to the view. */
export class WireReader {
  pos = 0;
  private readonly view: DataView;

  constructor(readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  /** Reads a varint as an unsigned 64-bit value split into two 32-bit halves. */
  private varint64(): [lo: number, hi: number] {
    let lo = 0;
    let hi = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) throw new WireError('truncated varint', this.pos);
      const b = this.buf[this.pos++]!;
      if (shift < 28) lo |= (b & 0x7f) << shift;
      else if (shift === 28) {
        lo |= (b & 0x0f) << 28;
        hi |= (b & 0x7f) >>> 4;
      } else hi |= (b & 0x7f) << (shift - 32);
      if ((b & 0x80) === 0) return [lo >>> 0, hi >>> 0];
      shift += 7;
    }
    throw new WireError('varint longer than 10 bytes', this.pos);
  }

  /** A varint read as a (possibly negative) 64-bit integer: number when safe, bigint otherwise. */
  int64(): Int64 {
    const [lo, hi] = this.varint64();
    if (hi & 0x80000000) {
      // Negative two's complement value.
      const v = (BigInt(hi) << 32n) | BigInt(lo);
      const s = BigInt.asIntN(64, v);
      return s >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(s) : s;
    }
    const n = hi * TWO_32 + lo;
    return n <= Number.MAX_SAFE_INTEGER ? n : (BigInt(hi) << 32n) | BigInt(lo);
  }

  uint64(): Int64 {
    const [lo, hi] = this.varint64();
    const n = hi * TWO_32 + lo;
    return n <= Number.MAX_SAFE_INTEGER ? n : (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** int32 / enum: the low 32 bits, sign-extended. */
  int32(): number {
    return this.varint64()[0] | 0;
  }

  /** A varint used as a tag or length; must fit in a safe 32-bit range. */
  uint32(): number {
    const [lo, hi] = this.varint64();
    if (hi !== 0) throw new WireError('length or tag out of range', this.pos);
    return lo;
  }

  float(): number {
    this.need(4);
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  double(): number {
    this.need(8);
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** A length-delimited payload as a view of the input. */
  bytes(): Uint8Array {
    const len = this.uint32();
    this.need(len);
    const v = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return v;
  }

  /** Skips a field of the given wire type and returns the skipped bytes (tag excluded). */
  skip(wireType: number): void {
    switch (wireType) {
      case WIRE_VARINT:
        this.varint64();
        return;
      case WIRE_I64:
        this.need(8);
        this.pos += 8;
        return;
      case WIRE_LEN:
        this.bytes();
        return;
      case WIRE_I32:
        this.need(4);
        this.pos += 4;
        return;
      default:
        throw new WireError(`unsupported wire type ${wireType}`, this.pos);
    }
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) {
      throw new WireError(`truncated: need ${n} bytes at offset ${this.pos}, have ${this.buf.length - this.pos}`, this.pos);
    }
  }
}

/** Number of bytes of the varint encoding of an unsigned 32-bit value. */
export function varint32Size(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** Number of bytes of the varint encoding of a 64-bit integer (negative values take 10 bytes). */
export function varint64Size(v: Int64): number {
  if (typeof v === 'number') {
    if (v < 0) return 10;
    if (v < TWO_32) return varint32Size(v);
    let n = 5;
    let x = Math.floor(v / 2 ** 35);
    while (x > 0) {
      n++;
      x = Math.floor(x / 128);
    }
    return n;
  }
  let x = BigInt.asUintN(64, v);
  let n = 1;
  while (x >= 128n) {
    x >>= 7n;
    n++;
  }
  return n;
}

/** A byte payload emitted by reference: the writer asks for its bytes only when it writes them. */
export interface ByteSource {
  readonly byteLength: number;
  /** The bytes; may read them from disk. Called once per write. */
  read(): Uint8Array;
}

/** A run of output: bytes already in memory, or a source read at write time. */
export type Chunk = Uint8Array | ByteSource;

/** Payloads at least this long are referenced, not copied into the scratch buffer. */
const REFERENCE_THRESHOLD = 1024;
const BLOCK = 1 << 16;

/** Writes wire data as a list of chunks: small fields into scratch blocks, large payloads by reference. */
export class WireWriter {
  private readonly chunks: Chunk[] = [];
  private block = new Uint8Array(BLOCK);
  private view = new DataView(this.block.buffer);
  private start = 0;
  private pos = 0;
  /** Total bytes written so far. */
  length = 0;

  /** Makes room for n bytes and returns the write position. */
  private reserve(n: number): number {
    if (this.pos + n > this.block.length) {
      this.flush();
      this.block = new Uint8Array(Math.max(BLOCK, n));
      this.view = new DataView(this.block.buffer);
      this.start = 0;
      this.pos = 0;
    }
    return this.pos;
  }

  private advance(to: number): void {
    this.length += to - this.pos;
    this.pos = to;
  }

  private flush(): void {
    if (this.pos > this.start) this.chunks.push(this.block.subarray(this.start, this.pos));
    this.start = this.pos;
  }

  tag(field: number, wireType: number): void {
    this.uint32(field * 8 + wireType);
  }

  uint32(v: number): void {
    let p = this.reserve(5);
    while (v >= 0x80) {
      this.block[p++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.block[p++] = v;
    this.advance(p);
  }

  int64(v: Int64): void {
    if (typeof v === 'number' && v >= 0 && v < TWO_32) {
      this.uint32(v);
      return;
    }
    let x = BigInt.asUintN(64, BigInt(v));
    let p = this.reserve(10);
    while (x >= 128n) {
      this.block[p++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
    }
    this.block[p++] = Number(x);
    this.advance(p);
  }

  /** int32 / enum: negative values are sign-extended to 10 bytes, as the protobuf spec requires. */
  int32(v: number): void {
    if (v >= 0) this.uint32(v);
    else this.int64(v);
  }

  float(v: number): void {
    const p = this.reserve(4);
    this.view.setFloat32(p, v, true);
    this.advance(p + 4);
  }

  double(v: number): void {
    const p = this.reserve(8);
    this.view.setFloat64(p, v, true);
    this.advance(p + 8);
  }

  /** Raw bytes (no length prefix): copied when small, referenced when large or not in memory. */
  raw(data: Chunk): void {
    const n = data.byteLength;
    if (n >= REFERENCE_THRESHOLD || !(data instanceof Uint8Array)) {
      this.flush();
      this.chunks.push(data);
      this.length += n;
      return;
    }
    const p = this.reserve(n);
    this.block.set(data, p);
    this.advance(p + n);
  }

  /** Closes the open scratch run and returns all chunks in order. */
  finish(): Chunk[] {
    this.flush();
    return this.chunks;
  }
}
