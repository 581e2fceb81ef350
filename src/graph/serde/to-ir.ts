/**
 * @file Decoded protobuf messages → IR. Each IR entity remembers the message it came from (`source`) so the
 * reverse direction can reproduce every field the IR does not model.
 */
import { AttnpatchError, withContext } from '../../errors.js';
import type { Attribute } from '../ir/attribute.js';
import { Graph } from '../ir/graph.js';
import { Model, OnnxFunction } from '../ir/model.js';
import { Node } from '../ir/node.js';
import { tensorType, type Dim, type ValueType } from '../ir/types.js';
import { Value } from '../ir/value.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ExternalDataSource } from './external-data.js';
import { ExternalTensor, InlineTensor, isExternalProto } from './proto-tensor.js';
import type { AttributeProto, FunctionProto, GraphProto, ModelProto, NodeProto, TensorProto, TypeProto, ValueInfoProto } from './schema.generated.js';

/** The ValueInfoProtos a value was read from, by role. */
export interface ValueSources {
  input?: ValueInfoProto;
  output?: ValueInfoProto;
  info?: ValueInfoProto;
  /** The value's type right after loading: while it is unchanged, each role re-emits its own proto type. */
  loadedType?: ValueType | undefined;
}

/** Attributes decoded from a proto, mapped to that proto (an unchanged attribute is re-emitted as read). */
export const attributeOrigin = new WeakMap<Attribute, AttributeProto>();

export interface ReadContext {
  file?: string;
  external?: ExternalDataSource;
  /** Load graphs whose external data files are absent (structure only); reading such a tensor then fails. */
  allowMissingExternalData?: boolean;
}

const utf8 = new TextDecoder();

/** TypeProto → IR type; tensors are modelled, anything else is carried opaquely. */
export function typeFromProto(t: TypeProto | undefined): ValueType | undefined {
  if (!t) return undefined;
  const tt = t.tensor_type;
  if (!tt || t.denotation !== undefined) return { kind: 'opaque', proto: t };
  if (!tt.shape) return tensorType(tt.elem_type ?? 0);
  const shape: Dim[] = (tt.shape.dim ?? []).map((d) =>
    d.dim_value !== undefined ? Number(d.dim_value) : d.dim_param !== undefined ? d.dim_param : null,
  );
  return tensorType(tt.elem_type ?? 0, shape);
}

/** TensorProto → Tensor (inline view, or external data checked now and read later). */
export function tensorFromProto(p: TensorProto, ctx: ReadContext, name = p.name ?? ''): Tensor {
  const where = ctx.file === undefined ? { tensor: name } : { file: ctx.file, tensor: name };
  try {
    if (isExternalProto(p)) {
      if (!ctx.external) {
        throw new AttnpatchError('EXTERNAL_DATA', 'tensor data is external but no external data was supplied', where);
      }
      return new ExternalTensor(p, ctx.external, where, ctx.allowMissingExternalData === true);
    }
    return new InlineTensor(p, name);
  } catch (e) {
    // NOTE: errors from the data source (unsafe link, unreadable file) and size checks name the tensor too.
    throw withContext(e, where);
  }
}

const ATTR_TYPES: Record<number, Attribute['type']> = {
  1: 'float', 2: 'int', 3: 'string', 4: 'tensor', 5: 'graph', 6: 'floats', 7: 'ints', 8: 'strings', 9: 'tensors', 10: 'graphs',
};

type Scope = (name: string) => Value | undefined;

function attributeFromProto(a: AttributeProto, scope: Scope, ctx: ReadContext): Attribute {
  const name = a.name ?? '';
  let out: Attribute;
  if (a.ref_attr_name !== undefined) {
    out = { name, type: 'ref', value: a.type ?? 0, refAttrName: a.ref_attr_name };
  } else {
    // Old files may omit `type`; infer it from the field that is set.
    const type = ATTR_TYPES[a.type ?? 0] ?? inferAttrType(a);
    switch (type) {
      case 'float': out = { name, type, value: a.f ?? 0 }; break;
      case 'int': out = { name, type, value: a.i ?? 0 }; break;
      case 'string': out = { name, type, value: (a.s as Uint8Array | undefined) ?? new Uint8Array() }; break;
      case 'tensor': out = { name, type, value: tensorFromProto(a.t ?? {}, ctx) }; break;
      case 'graph': out = { name, type, value: graphFromProto(a.g ?? {}, scope, ctx) }; break;
      case 'floats': out = { name, type, value: a.floats ?? [] }; break;
      case 'ints': out = { name, type, value: a.ints ?? [] }; break;
      case 'strings': out = { name, type, value: (a.strings ?? []) as Uint8Array[] }; break;
      case 'tensors': out = { name, type, value: (a.tensors ?? []).map((t) => tensorFromProto(t, ctx)) }; break;
      case 'graphs': out = { name, type, value: (a.graphs ?? []).map((g) => graphFromProto(g, scope, ctx)) }; break;
      default: out = { name, type: 'opaque', value: a };
    }
  }
  attributeOrigin.set(out, a);
  return out;
}

function inferAttrType(a: AttributeProto): Attribute['type'] | undefined {
  if (a.f !== undefined) return 'float';
  if (a.i !== undefined) return 'int';
  if (a.s !== undefined) return 'string';
  if (a.t !== undefined) return 'tensor';
  if (a.g !== undefined) return 'graph';
  if (a.floats?.length) return 'floats';
  if (a.ints?.length) return 'ints';
  if (a.strings?.length) return 'strings';
  if (a.tensors?.length) return 'tensors';
  if (a.graphs?.length) return 'graphs';
  return undefined;
}

function nodeFromProto(p: NodeProto, define: (v: Value) => void): Node {
  const node = new Node({
    opType: p.op_type ?? '',
    domain: p.domain ?? '',
    name: p.name ?? '',
    overload: p.overload ?? '',
    outputs: (p.output ?? []).map((o) => (o === '' ? null : o)),
    metadata: Object.fromEntries((p.metadata_props ?? []).map((e) => [e.key ?? '', e.value ?? ''])),
  });
  node.source = p;
  for (const o of node.outputs) if (o) define(o);
  return node;
}

/** Builds a graph; `outer` resolves names from enclosing graphs (subgraphs capture outer values). */
export function graphFromProto(p: GraphProto, outer: Scope | undefined, ctx: ReadContext, into?: Graph): Graph {
  const g = into ?? new Graph(p.name ?? '');
  g.source = p;
  // name → definitions in order. Some real exports define a name twice (two Constants with one output
  // name); ONNX Runtime accepts them and uses the last definition for every use, so we do too.
  const scope = new Map<string, Value[]>();
  const define = (v: Value) => {
    const defs = scope.get(v.name);
    if (defs) defs.push(v);
    else scope.set(v.name, [v]);
  };
  const sources = (v: Value): ValueSources => (v.source ??= {}) as ValueSources;

  for (const t of p.initializer ?? []) {
    const name = t.name ?? '';
    const tensor = tensorFromProto(t, ctx, name);
    define(g.addInitializer(name, tensor, tensorType(tensor.dtype, tensor.dims)));
  }
  for (const vi of p.input ?? []) {
    const name = vi.name ?? '';
    // Older IR versions list initializers as inputs too: the same value.
    const v = g.initializers.get(name) ?? new Value(name);
    if (!v.isInitializer) define(v);
    v.type = typeFromProto(vi.type) ?? v.type;
    sources(v).input = vi;
    g.inputs.push(v);
  }
  // Pass 1: nodes and their outputs (so a node may name a value defined later; validation reports order).
  const protos = p.node ?? [];
  const nodes = protos.map((np) => nodeFromProto(np, define));
  const latest = (name: string): Value | undefined => scope.get(name)?.at(-1);
  const lookup: Scope = (name) => latest(name) ?? outer?.(name);
  const dangling = new Map<string, Value>();
  const resolve = (name: string): Value => {
    const v = latest(name) ?? outer?.(name) ?? dangling.get(name);
    if (v) return v;
    const d = new Value(name); // undefined name: kept so validation can name it
    dangling.set(name, d);
    return d;
  };
  // Pass 2: wire inputs and attributes (subgraphs see this graph's scope).
  nodes.forEach((node, i) => {
    const np = protos[i]!;
    for (const name of np.input ?? []) node.appendInput(name === '' ? null : resolve(name));
    for (const a of np.attribute ?? []) node.attributes.push(attributeFromProto(a, lookup, ctx));
    for (const a of node.attributes) {
      if (a.type === 'graph') a.value.owner = node;
      else if (a.type === 'graphs') for (const sg of a.value) sg.owner = node;
    }
  });
  g.insert(nodes);
  for (const vi of p.output ?? []) {
    const v = resolve(vi.name ?? '');
    v.type = typeFromProto(vi.type) ?? v.type;
    sources(v).output = vi;
    g.outputs.push(v);
  }
  for (const vi of p.value_info ?? []) {
    const v = resolve(vi.name ?? '');
    v.type = typeFromProto(vi.type) ?? v.type;
    sources(v).info = vi;
    g.valueInfo.push(v);
  }
  for (const defs of scope.values()) for (const v of defs) if (v.source) (v.source as ValueSources).loadedType = v.type;
  for (const v of [...g.outputs, ...g.valueInfo]) if (v.source) (v.source as ValueSources).loadedType = v.type;
  return g;
}

function functionFromProto(p: FunctionProto, ctx: ReadContext): OnnxFunction {
  const body = new Graph(p.name ?? '');
  const f = new OnnxFunction(p.name ?? '', p.domain ?? '', body, p.overload ?? '');
  f.source = p;
  // A function body is a graph whose inputs and outputs are untyped names.
  const asGraph: GraphProto = {
    node: p.node ?? [],
    input: (p.input ?? []).map((name) => ({ name })),
    output: (p.output ?? []).map((name) => ({ name })),
    value_info: p.value_info ?? [],
  };
  graphFromProto(asGraph, undefined, ctx, body);
  f.attributeNames.push(...(p.attribute ?? []));
  for (const a of p.attribute_proto ?? []) f.attributeDefaults.push(attributeFromProto(a, () => undefined, ctx));
  for (const o of p.opset_import ?? []) f.opsetImports.set(o.domain ?? '', Number(o.version ?? 0));
  return f;
}

/** ModelProto → Model. */
export function modelFromProto(p: ModelProto, ctx: ReadContext = {}): Model {
  const graph = graphFromProto(p.graph ?? {}, undefined, ctx);
  const m = new Model(graph, { irVersion: Number(p.ir_version ?? 0), opsetImports: {} });
  m.source = p;
  for (const o of p.opset_import ?? []) m.opsetImports.set(o.domain ?? '', Number(o.version ?? 0));
  m.producerName = p.producer_name ?? '';
  m.producerVersion = p.producer_version ?? '';
  m.domain = p.domain ?? '';
  m.modelVersion = Number(p.model_version ?? 0);
  m.docString = p.doc_string ?? '';
  for (const e of p.metadata_props ?? []) m.metadata.set(e.key ?? '', e.value ?? '');
  for (const f of p.functions ?? []) m.functions.push(functionFromProto(f, ctx));
  return m;
}

/** Decodes a bytes attribute as UTF-8. */
export function utf8String(b: Uint8Array): string {
  return utf8.decode(b);
}
