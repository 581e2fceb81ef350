/**
 * @file Schema-driven protobuf encoder for ONNX messages. Writes fields in field-number order with unknown
 * fields last (what C++ protobuf writes), or in the recorded `$wire` order of a decoded message that was
 * laid out differently. Output is a list of chunks: large byte payloads (weights) are referenced, not
 * copied, so saving a model costs memory for its metadata only.
 */
import { SCHEMA, type Bytes, type FieldSpec, type Int64, type WireLayout } from './schema.generated.js';
import { varint32Size, varint64Size, WIRE_I32, WIRE_I64, WIRE_LEN, WIRE_VARINT, WireWriter, type Chunk } from './wire.js';

type Obj = Record<string, unknown> & { $unknown?: Uint8Array[]; $wire?: WireLayout };

/** Encoded message: its chunks in order and their total length. */
export interface Encoded {
  chunks: Chunk[];
  length: number;
}

const BY_NUMBER: Record<string, Map<number, FieldSpec>> = Object.fromEntries(
  Object.entries(SCHEMA).map(([type, fields]) => [type, new Map(fields.map((f) => [f[0], f]))]),
);

const utf8 = new TextEncoder();

function isPacked(spec: FieldSpec, wire: WireLayout | undefined): boolean {
  const [num, , kind, repeated, packed] = spec;
  if (!repeated || kind === 'string' || kind === 'bytes' || kind === 'message') return false;
  return wire?.flipped?.includes(num) ? !packed : packed;
}

function wireType(kind: FieldSpec[2]): number {
  if (kind === 'double') return WIRE_I64;
  if (kind === 'float') return WIRE_I32;
  if (kind === 'string' || kind === 'bytes' || kind === 'message') return WIRE_LEN;
  return WIRE_VARINT;
}

/** Encodes messages; string encodings and message sizes are memoised for the one write that follows. */
class Encoder {
  private readonly sizes = new Map<object, number>();
  private readonly strings = new Map<string, Uint8Array>();

  private str(s: string): Uint8Array {
    let b = this.strings.get(s);
    if (!b) this.strings.set(s, (b = utf8.encode(s)));
    return b;
  }

  private scalarSize(kind: FieldSpec[2], v: unknown, sub: string | undefined): number {
    switch (kind) {
      case 'double':
        return 8;
      case 'float':
        return 4;
      case 'int64':
      case 'uint64':
        return varint64Size(v as Int64);
      case 'int32':
      case 'enum':
        return (v as number) < 0 ? 10 : varint32Size(v as number);
      case 'string': {
        const n = this.str(v as string).length;
        return varint32Size(n) + n;
      }
      case 'bytes': {
        const n = (v as Bytes).byteLength;
        return varint32Size(n) + n;
      }
      case 'message': {
        const n = this.size(v as Obj, sub!);
        return varint32Size(n) + n;
      }
    }
  }

  /** Iterates (spec, values) in the order the message will be written. */
  private *plan(msg: Obj, type: string): Generator<[FieldSpec, unknown[], boolean] | Uint8Array> {
    const fields = BY_NUMBER[type]!;
    const order = msg.$wire?.order;
    if (order && this.orderFits(msg, type, order)) {
      const cursor = new Map<number, number>();
      let unknown = 0;
      for (const num of order) {
        if (num < 0) {
          yield msg.$unknown![unknown++]!;
          continue;
        }
        const spec = fields.get(num)!;
        const value = msg[spec[1]];
        if (!spec[3]) {
          yield [spec, [value], false];
          continue;
        }
        const list = value as unknown[];
        if (isPacked(spec, msg.$wire)) {
          // Several packed runs of one field are merged into the first.
          if (!cursor.has(num)) yield [spec, list, true];
          cursor.set(num, list.length);
          continue;
        }
        const i = cursor.get(num) ?? 0;
        cursor.set(num, i + 1);
        yield [spec, [list[i]], false];
      }
      return;
    }
    for (const spec of SCHEMA[type]!) {
      const value = msg[spec[1]];
      if (value === undefined) continue;
      if (!spec[3]) yield [spec, [value], false];
      else if ((value as unknown[]).length > 0) yield [spec, value as unknown[], isPacked(spec, msg.$wire)];
    }
    for (const u of msg.$unknown ?? []) yield u;
  }

  /** A recorded order applies only while the message still holds exactly what was read. */
  private orderFits(msg: Obj, type: string, order: number[]): boolean {
    const expected = new Map<number, number>();
    for (const spec of SCHEMA[type]!) {
      const value = msg[spec[1]];
      if (value === undefined) continue;
      const count = !spec[3] ? 1 : isPacked(spec, msg.$wire) ? Math.min(1, (value as unknown[]).length) : (value as unknown[]).length;
      if (count > 0) expected.set(spec[0], count);
    }
    let unknown = 0;
    for (const n of order) {
      if (n < 0) {
        unknown++;
        continue;
      }
      const left = expected.get(n);
      if (left === undefined) return false;
      if (left === 1) expected.delete(n);
      else expected.set(n, left - 1);
    }
    return expected.size === 0 && unknown === (msg.$unknown?.length ?? 0);
  }

  size(msg: Obj, type: string): number {
    const known = this.sizes.get(msg);
    if (known !== undefined) return known;
    let n = 0;
    for (const item of this.plan(msg, type)) {
      if (item instanceof Uint8Array) {
        n += item.length;
        continue;
      }
      const [spec, values, packed] = item;
      const [num, , kind, , , sub] = spec;
      const tagSize = varint32Size(num * 8);
      if (packed) {
        let body = 0;
        for (const v of values) body += this.scalarSize(kind, v, sub);
        n += tagSize + varint32Size(body) + body;
      } else {
        for (const v of values) n += tagSize + this.scalarSize(kind, v, sub);
      }
    }
    this.sizes.set(msg, n);
    return n;
  }

  private scalar(w: WireWriter, kind: FieldSpec[2], v: unknown, sub: string | undefined): void {
    switch (kind) {
      case 'double':
        return w.double(v as number);
      case 'float':
        return w.float(v as number);
      case 'int64':
      case 'uint64':
        return w.int64(v as Int64);
      case 'int32':
      case 'enum':
        return w.int32(v as number);
      case 'string': {
        const b = this.str(v as string);
        w.uint32(b.length);
        return w.raw(b);
      }
      case 'bytes':
        w.uint32((v as Bytes).byteLength);
        return w.raw(v as Bytes);
      case 'message':
        w.uint32(this.size(v as Obj, sub!));
        return this.write(w, v as Obj, sub!);
    }
  }

  write(w: WireWriter, msg: Obj, type: string): void {
    for (const item of this.plan(msg, type)) {
      if (item instanceof Uint8Array) {
        w.raw(item);
        continue;
      }
      const [spec, values, packed] = item;
      const [num, , kind, , , sub] = spec;
      if (packed) {
        let body = 0;
        for (const v of values) body += this.scalarSize(kind, v, sub);
        w.tag(num, WIRE_LEN);
        w.uint32(body);
        for (const v of values) this.scalar(w, kind, v, sub);
      } else {
        for (const v of values) {
          w.tag(num, wireType(kind));
          this.scalar(w, kind, v, sub);
        }
      }
    }
  }
}

/** Encodes a message of the given schema type into chunks (weights referenced, not copied). */
export function encodeMessage(msg: object, type: string): Encoded {
  const enc = new Encoder();
  const w = new WireWriter();
  enc.write(w, msg as Obj, type);
  return { chunks: w.finish(), length: w.length };
}

/** Joins chunks into one buffer (the only place weights are copied, once). */
export function concatChunks(encoded: Encoded): Uint8Array {
  const out = new Uint8Array(encoded.length);
  let at = 0;
  for (const c of encoded.chunks) {
    const b = c instanceof Uint8Array ? c : c.read();
    out.set(b, at);
    at += b.length;
  }
  return out;
}
