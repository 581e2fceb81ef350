/**
 * @file A Model: the main graph, model-local functions, opset imports and model metadata.
 */
import type { Attribute } from './attribute.js';
import { Graph } from './graph.js';

/** A model-local function (ONNX FunctionProto); its body is a Graph whose inputs/outputs are untyped. */
export class OnnxFunction {
  /** Names of the attributes callers may pass. */
  readonly attributeNames: string[] = [];
  /** Attributes with defaults (`attribute_proto`). */
  readonly attributeDefaults: Attribute[] = [];
  readonly opsetImports = new Map<string, number>();
  /** Extras that serde carries across a round trip. */
  source: unknown;

  constructor(
    public name: string,
    public domain: string,
    readonly body: Graph = new Graph(name),
    public overload = '',
  ) {}

  /** Key used by nodes to call it: domain, name and overload. */
  get key(): string {
    return functionKey(this.domain, this.name, this.overload);
  }
}

export function functionKey(domain: string, name: string, overload = ''): string {
  return `${domain}::${name}${overload ? `:${overload}` : ''}`;
}

export class Model {
  irVersion: number;
  readonly opsetImports: Map<string, number>;
  producerName = '';
  producerVersion = '';
  domain = '';
  modelVersion = 0;
  docString = '';
  readonly metadata = new Map<string, string>();
  readonly functions: OnnxFunction[] = [];
  /** Extras that serde carries across a round trip (training info, configuration, unknown fields). */
  source: unknown;

  constructor(
    readonly graph: Graph,
    init: { irVersion?: number; opsetImports?: Record<string, number> } = {},
  ) {
    this.irVersion = init.irVersion ?? 10;
    this.opsetImports = new Map(Object.entries(init.opsetImports ?? { '': 21 }));
  }

  /** Opset version imported for a domain ('' and 'ai.onnx' are the same domain). */
  opset(domain: string): number | undefined {
    if (domain === 'ai.onnx' || domain === '') return this.opsetImports.get('') ?? this.opsetImports.get('ai.onnx');
    return this.opsetImports.get(domain);
  }

  /** The model-local function a node calls, if any. */
  findFunction(domain: string, name: string, overload = ''): OnnxFunction | undefined {
    const key = functionKey(domain, name, overload);
    return this.functions.find((f) => f.key === key);
  }

  /** The main graph, every subgraph, and every function body. */
  *allGraphs(): Generator<Graph> {
    const walk = function* (g: Graph): Generator<Graph> {
      yield g;
      for (const s of g.subgraphs()) yield* walk(s);
    };
    yield* walk(this.graph);
    for (const f of this.functions) yield* walk(f.body);
  }
}
