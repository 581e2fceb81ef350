/**
 * @file Schema-driven protobuf decoder for ONNX messages. Produces plain objects keyed by the .proto field
 * names (`ModelProto`, `NodeProto`, …). Bytes fields are views of the input (weights are never copied),
 * unknown fields are kept verbatim, and any deviation from canonical field order or packing is recorded in
 * `$wire` so that re-encoding an unmodified message reproduces the input byte for byte.
 */
import { AttnpatchError } from '../../errors.js';
import { SCHEMA, type FieldSpec, type ModelProto, type WireLayout } from './schema.generated.js';
import { WIRE_I32, WIRE_I64, WIRE_LEN, WIRE_VARINT, WireError, WireReader } from './wire.js';

/** Options for decoding; all optional. */
export interface DecodeOptions {
  /** Maximum nesting depth of messages (guards hostile input). */
  recursionLimit: number;
  /** Name of the file the bytes came from, for error messages. */
  file?: string;
}

const DEFAULTS: DecodeOptions = Object.freeze({ recursionLimit: 100 });
const utf8 = new TextDecoder('utf-8');

type Obj = Record<string, unknown> & { $unknown?: Uint8Array[]; $wire?: WireLayout };

/** Per message type: field number → spec, built once. */
const BY_NUMBER: Record<string, Map<number, FieldSpec>> = Object.fromEntries(
  Object.entries(SCHEMA).map(([type, fields]) => [type, new Map(fields.map((f) => [f[0], f]))]),
);

function scalarWireType(kind: FieldSpec[2]): number {
  switch (kind) {
    case 'double':
      return WIRE_I64;
    case 'float':
      return WIRE_I32;
    case 'string':
    case 'bytes':
    case 'message':
      return WIRE_LEN;
    default:
      return WIRE_VARINT;
  }
}

function readScalar(r: WireReader, kind: FieldSpec[2]): unknown {
  switch (kind) {
    case 'double':
      return r.double();
    case 'float':
      return r.float();
    case 'int64':
      return r.int64();
    case 'uint64':
      return r.uint64();
    case 'int32':
    case 'enum':
      return r.int32();
    case 'string':
      return utf8.decode(r.bytes());
    case 'bytes':
      return r.bytes();
    default:
      throw new WireError(`not a scalar kind: ${kind}`, r.pos);
  }
}

interface Ctx {
  root: Uint8Array;
  opts: DecodeOptions;
  path: string[];
}

function decodeInto(bytes: Uint8Array, type: string, depth: number, ctx: Ctx): Obj {
  try {
    return decodeFields(bytes, type, depth, ctx);
  } catch (e) {
    // Reader offsets are relative to this message's view; report them from the start of the file.
    if (e instanceof WireError && !e.absolute) {
      e.offset += bytes.byteOffset - ctx.root.byteOffset;
      e.absolute = true;
    }
    throw e;
  }
}

function decodeFields(bytes: Uint8Array, type: string, depth: number, ctx: Ctx): Obj {
  if (depth > ctx.opts.recursionLimit) {
    throw new WireError(`nesting deeper than recursionLimit ${ctx.opts.recursionLimit}`, 0);
  }
  const fields = BY_NUMBER[type];
  if (!fields) throw new Error(`unknown message type ${type}`);
  const r = new WireReader(bytes);
  const msg: Obj = {};
  const order: number[] = [];
  let canonical = true;
  let last = 0;
  let sawUnknown = false;
  let flipped: number[] | undefined;
  while (!r.done) {
    const tagStart = r.pos;
    const tag = r.uint32();
    const num = tag >>> 3;
    const wt = tag & 7;
    if (num === 0) throw new WireError('field number 0', tagStart);
    const spec = fields.get(num);
    const [, name, kind, repeated, packed, sub] = spec ?? [num, '', 'bytes', false, false, undefined];
    const expected = spec ? scalarWireType(kind) : -1;
    const packedRun = spec !== undefined && repeated && kind !== 'string' && kind !== 'bytes' && kind !== 'message' && wt === WIRE_LEN;
    if (!spec || (wt !== expected && !packedRun)) {
      // Unknown field, or a known number with the wrong wire type: protobuf keeps it as unknown.
      r.skip(wt);
      (msg.$unknown ??= []).push(bytes.subarray(tagStart, r.pos));
      sawUnknown = true;
      order.push(-num); // negative: an unknown occurrence
      continue;
    }
    if (num < last || sawUnknown) canonical = false;
    last = num;
    order.push(num);
    ctx.path.push(name);
    let value: unknown;
    if (kind === 'message') {
      const payload = r.bytes();
      value = decodeInto(payload, sub!, depth + 1, ctx);
    } else if (packedRun) {
      const payload = r.bytes();
      const pr = new WireReader(payload);
      const list = (msg[name] as unknown[] | undefined) ?? [];
      while (!pr.done) list.push(readScalar(pr, kind));
      msg[name] = list;
      if (!packed) (flipped ??= []).push(num);
      ctx.path.pop();
      continue;
    } else {
      value = readScalar(r, kind);
      if (repeated && packed) (flipped ??= []).push(num);
    }
    ctx.path.pop();
    if (repeated) ((msg[name] as unknown[] | undefined) ?? (msg[name] = [] as unknown[]) as unknown[]).push(value);
    else msg[name] = value;
  }
  if (!canonical || flipped) {
    msg.$wire = {};
    if (!canonical) msg.$wire.order = order;
    if (flipped) msg.$wire.flipped = [...new Set(flipped)];
  }
  return msg;
}

/** Decodes one message of the given schema type; errors name the file, the field path and the byte offset. */
export function decodeMessage<T>(bytes: Uint8Array, type: string, options: Partial<DecodeOptions> = {}): T {
  const opts = { ...DEFAULTS, ...options };
  const ctx: Ctx = { root: bytes, opts, path: [type] };
  try {
    return decodeInto(bytes, type, 0, ctx) as T;
  } catch (e) {
    if (e instanceof WireError) {
      const where = opts.file === undefined ? { field: ctx.path.join('.') } : { file: opts.file, field: ctx.path.join('.') };
      throw new AttnpatchError('PARSE', `not a valid ONNX protobuf: ${e.message} (at byte ${e.offset})`, where);
    }
    throw e;
  }
}

/** Decodes a ModelProto and checks the minimum that makes it a model (a graph). */
export function decodeModelProto(bytes: Uint8Array, options: Partial<DecodeOptions> = {}): ModelProto {
  if (bytes.byteLength === 0) {
    throw new AttnpatchError('PARSE', 'not a valid ONNX model: the file is empty', options.file === undefined ? {} : { file: options.file });
  }
  const model = decodeMessage<ModelProto>(bytes, 'ModelProto', options);
  if (!model.graph || model.ir_version === undefined) {
    const missing = !model.graph ? 'graph' : 'ir_version';
    throw new AttnpatchError('PARSE', `not a valid ONNX model: no ${missing} field`, options.file === undefined ? { field: missing } : { file: options.file, field: missing });
  }
  return model;
}
