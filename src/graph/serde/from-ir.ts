/**
 * @file IR → protobuf messages. Each message starts from the one the entity was read from (so unmodelled
 * fields, unknown fields and wire layout survive) and overlays what the IR models. A field absent in the
 * source stays absent while the IR holds its default, so an unmodified model re-encodes byte for byte.
 */
import type { Attribute } from '../ir/attribute.js';
import type { Graph } from '../ir/graph.js';
import type { Model, OnnxFunction } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import { sameType, type ValueType } from '../ir/types.js';
import type { Value } from '../ir/value.js';
import type { Tensor } from '../tensor/tensor.js';
import { ExternalTensor, InlineTensor } from './proto-tensor.js';
import type {
  AttributeProto, FunctionProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto, TypeProto, ValueInfoProto,
} from './schema.generated.js';
import { attributeOrigin, typeFromProto, type ValueSources } from './to-ir.js';

/** Decides how each tensor is written; the default keeps inline and external tensors as they were read. */
export type TensorWriter = (tensor: Tensor, name: string) => TensorProto;

/** Writes a tensor as it was read, or inline (raw_data referenced, not copied) when it is new. */
export const keepTensorLayout: TensorWriter = (tensor, name) => {
  if (tensor instanceof InlineTensor || tensor instanceof ExternalTensor) {
    return tensor.proto.name === name ? tensor.proto : { ...tensor.proto, name };
  }
  return inlineTensorProto(tensor, name);
};

/** A TensorProto carrying the tensor's bytes in raw_data, read only when written. */
export function inlineTensorProto(tensor: Tensor, name: string): TensorProto {
  const length = tensor.byteLength ?? tensor.bytes().byteLength;
  return { dims: [...tensor.dims], data_type: tensor.dtype, name, raw_data: { byteLength: length, read: () => tensor.bytes() } };
}

/** `value` unless it equals the default and the source never had the field. */
function keep<T>(src: object | undefined, field: string, value: T, dflt: T): T | undefined {
  return value === dflt && (src as Record<string, unknown> | undefined)?.[field] === undefined ? undefined : value;
}

function entries(src: StringStringEntryProto[] | undefined, map: ReadonlyMap<string, string>): StringStringEntryProto[] | undefined {
  const list = [...map];
  if (src && src.length === list.length && src.every((e, i) => (e.key ?? '') === list[i]![0] && (e.value ?? '') === list[i]![1])) return src;
  return list.length ? list.map(([key, value]) => ({ key, value })) : undefined;
}

function opsets(src: OperatorSetIdProto[] | undefined, map: ReadonlyMap<string, number>): OperatorSetIdProto[] {
  const list = [...map];
  if (src && src.length === list.length && src.every((o, i) => (o.domain ?? '') === list[i]![0] && Number(o.version ?? 0) === list[i]![1])) return src;
  return list.map(([domain, version]) => ({ domain, version }));
}

/** IR type → TypeProto, reusing the source's when it still describes the same type. */
function typeToProto(t: ValueType | undefined, src: TypeProto | undefined): TypeProto | undefined {
  if (!t) return undefined;
  if (src && sameType(typeFromProto(src), t)) return src;
  if (t.kind === 'opaque') return t.proto as TypeProto;
  const tensor_type: NonNullable<TypeProto['tensor_type']> = { elem_type: t.elemType };
  if (t.shape) {
    tensor_type.shape = { dim: t.shape.map((d) => (typeof d === 'number' ? { dim_value: d } : typeof d === 'string' ? { dim_param: d } : {})) };
  }
  return { tensor_type };
}

function valueInfo(v: Value, role: 'input' | 'output' | 'info'): ValueInfoProto {
  const sources = v.source as ValueSources | undefined;
  const src = sources?.[role];
  const unchanged = sources !== undefined && v.type === sources.loadedType;
  const type = unchanged ? src?.type : typeToProto(v.type, src?.type);
  if (src && src.name === v.name && src.type === type) return src;
  const out: ValueInfoProto = { ...src, name: v.name };
  if (type) out.type = type;
  else delete out.type;
  return out;
}

class Writer {
  constructor(private readonly writeTensor: TensorWriter) {}

  attribute(a: Attribute): AttributeProto {
    const origin = attributeOrigin.get(a);
    if (origin && a.type !== 'graph' && a.type !== 'graphs') return origin;
    const out: AttributeProto = origin ? { ...origin } : { name: a.name };
    out.name = a.name;
    switch (a.type) {
      case 'float': out.f = a.value; out.type = 1; break;
      case 'int': out.i = a.value; out.type = 2; break;
      case 'string': out.s = a.value; out.type = 3; break;
      case 'tensor': out.t = this.writeTensor(a.value, ''); out.type = 4; break;
      case 'graph': out.g = this.graph(a.value); out.type = origin?.type ?? 5; break;
      case 'floats': out.floats = [...a.value]; out.type = 6; break;
      case 'ints': out.ints = [...a.value]; out.type = 7; break;
      case 'strings': out.strings = [...a.value]; out.type = 8; break;
      case 'tensors': out.tensors = a.value.map((t) => this.writeTensor(t, '')); out.type = 9; break;
      case 'graphs': out.graphs = a.value.map((g) => this.graph(g)); out.type = origin?.type ?? 10; break;
      case 'opaque': return a.value as AttributeProto;
      case 'ref': out.ref_attr_name = a.refAttrName!; out.type = a.value; break;
    }
    return out;
  }

  node(n: Node): NodeProto {
    const src = n.source as NodeProto | undefined;
    const out: NodeProto = { ...src };
    const set = <K extends keyof NodeProto>(k: K, v: NodeProto[K] | undefined) => {
      if (v === undefined) delete out[k];
      else out[k] = v;
    };
    set('input', n.inputs.map((v) => v?.name ?? ''));
    set('output', n.outputs.map((v) => v?.name ?? ''));
    set('name', keep(src, 'name', n.name, ''));
    set('op_type', n.opType);
    set('domain', keep(src, 'domain', n.domain, ''));
    set('overload', keep(src, 'overload', n.overload, ''));
    set('attribute', n.attributes.map((a) => this.attribute(a)));
    set('metadata_props', entries(src?.metadata_props, n.metadata));
    return out;
  }

  graph(g: Graph): GraphProto {
    const src = g.source as GraphProto | undefined;
    const out: GraphProto = { ...src };
    out.node = g.nodes.map((n) => this.node(n));
    const name = keep(src, 'name', g.name, '');
    if (name === undefined) delete out.name;
    else out.name = name;
    out.initializer = [...g.initializers.values()].map((v) => this.writeTensor(v.initializer!, v.name));
    out.input = g.inputs.map((v) => valueInfo(v, 'input'));
    out.output = g.outputs.map((v) => valueInfo(v, 'output'));
    out.value_info = g.valueInfo.map((v) => valueInfo(v, 'info'));
    return out;
  }

  function(f: OnnxFunction): FunctionProto {
    const src = f.source as FunctionProto | undefined;
    const out: FunctionProto = { ...src };
    out.name = f.name;
    const domain = keep(src, 'domain', f.domain, '');
    if (domain === undefined) delete out.domain;
    else out.domain = domain;
    const overload = keep(src, 'overload', f.overload, '');
    if (overload === undefined) delete out.overload;
    else out.overload = overload;
    out.input = f.body.inputs.map((v) => v.name);
    out.output = f.body.outputs.map((v) => v.name);
    out.attribute = [...f.attributeNames];
    out.attribute_proto = f.attributeDefaults.map((a) => this.attribute(a));
    out.node = f.body.nodes.map((n) => this.node(n));
    out.opset_import = opsets(src?.opset_import, f.opsetImports);
    out.value_info = f.body.valueInfo.map((v) => valueInfo(v, 'info'));
    return out;
  }

  model(m: Model): ModelProto {
    const src = m.source as ModelProto | undefined;
    const out: ModelProto = { ...src };
    const set = <K extends keyof ModelProto>(k: K, v: ModelProto[K] | undefined) => {
      if (v === undefined) delete out[k];
      else out[k] = v;
    };
    set('ir_version', m.irVersion);
    set('opset_import', opsets(src?.opset_import, m.opsetImports));
    set('producer_name', keep(src, 'producer_name', m.producerName, ''));
    set('producer_version', keep(src, 'producer_version', m.producerVersion, ''));
    set('domain', keep(src, 'domain', m.domain, ''));
    set('model_version', keep(src, 'model_version', m.modelVersion as number | bigint, 0));
    set('doc_string', keep(src, 'doc_string', m.docString, ''));
    set('graph', this.graph(m.graph));
    set('metadata_props', entries(src?.metadata_props, m.metadata));
    set('functions', m.functions.map((f) => this.function(f)));
    return out;
  }
}

/** Model → ModelProto, writing tensors with `writeTensor` (default: as they were read). */
export function modelToProto(m: Model, writeTensor: TensorWriter = keepTensorLayout): ModelProto {
  return new Writer(writeTensor).model(m);
}
