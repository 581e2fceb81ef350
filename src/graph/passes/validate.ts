/**
 * @file Structural checks of a model, as a list of issues (errors and warnings) rather than the first failure.
 *
 * Errors:
 * - a node input that is not a graph input, an initializer, the output of an earlier node, or (in a subgraph) a
 *   value of an enclosing graph defined before the node holding the subgraph;
 * - a node that reads a value produced later (not topologically sorted), or a cycle;
 * - a node whose domain has no opset import: the model's for graphs, the function's own for function bodies
 *   (a function relying on the model's import is a warning); calls of model-local functions included;
 * - a graph output that nothing defines.
 * Warnings:
 * - a value name defined more than once in one graph (real exports have duplicate Constant outputs; ORT takes them).
 */
import { AttnpatchError, type ErrorWhere } from '../../errors.js';
import type { Graph } from '../ir/graph.js';
import type { Model, OnnxFunction } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import type { Value } from '../ir/value.js';
import type { Pass } from './pass.js';
import { cycleError, topologicalOrder } from './toposort.js';
import { functionLabel, mainGraphLabel, nodeLabel, nodeSubgraphs, subgraphLabel } from './walk.js';

/** What an issue is about, for callers that filter (zod-style: issues are data, text is for humans). */
export type IssueKind = 'undefined-input' | 'unsorted' | 'cycle' | 'out-of-scope' | 'opset' | 'graph-output' | 'duplicate-name';

/** One finding; `where` names the graph (as a path for subgraphs and function bodies) and the node. */
export interface ValidationIssue {
  severity: 'error' | 'warning';
  kind: IssueKind;
  message: string;
  where: ErrorWhere;
}

/** Opset import lookup with '' and 'ai.onnx' as one domain. */
function imports(map: ReadonlyMap<string, number>, domain: string): boolean {
  if (domain === '' || domain === 'ai.onnx') return map.has('') || map.has('ai.onnx');
  return map.has(domain);
}

class Validator {
  readonly issues: ValidationIssue[] = [];
  constructor(private readonly model: Model) {}

  private add(severity: ValidationIssue['severity'], kind: IssueKind, message: string, where: ErrorWhere): void {
    this.issues.push({ severity, kind, message, where });
  }

  private checkDomain(node: Node, fn: OnnxFunction | undefined, where: ErrorWhere): void {
    const domain = node.domain;
    const shown = domain === '' ? 'the default domain' : `domain ${domain}`;
    const what = this.model.findFunction(domain, node.opType, node.overload) ? 'calls model-local function' : 'uses';
    if (fn && imports(fn.opsetImports, domain)) return;
    if (imports(this.model.opsetImports, domain)) {
      if (fn) this.add('warning', 'opset', `node ${nodeLabel(node)} ${what} ${node.opType} from ${shown}, which function ${fn.name} does not import (only the model does)`, where);
      return;
    }
    this.add('error', 'opset', `node ${nodeLabel(node)} ${what} ${node.opType} from ${shown}, which has no opset import in the ${fn ? `function ${fn.name} or the ` : ''}model`, where);
  }

  /** Checks one graph; `outer` holds the values of enclosing graphs visible here (innermost last). */
  graph(g: Graph, label: string, fn: OnnxFunction | undefined, outer: readonly Set<Value>[]): void {
    const local = new Set<Value>();
    const names = new Map<string, Value>();
    const define = (v: Value, by: string, where: ErrorWhere) => {
      if (local.has(v)) return;
      local.add(v);
      const seen = names.get(v.name);
      if (seen && seen !== v) {
        this.add('warning', 'duplicate-name', `value name ${v.name} is defined more than once (again as ${by})`, where);
      }
      names.set(v.name, v);
    };
    for (const v of g.inputs) define(v, 'a graph input', { graph: label });
    for (const v of g.initializers.values()) define(v, 'an initializer', { graph: label });

    const position = new Map(g.nodes.map((n, i) => [n, i]));
    const visible = (v: Value) => local.has(v) || outer.some((s) => s.has(v));
    let unordered = false;
    g.nodes.forEach((node, i) => {
      const where: ErrorWhere = { graph: label, node: nodeLabel(node) };
      this.checkDomain(node, fn, where);
      node.inputs.forEach((v, k) => {
        if (!v || visible(v)) return;
        const at = v.producer ? position.get(v.producer) : undefined;
        if (at !== undefined) {
          unordered = true;
          const by = at === i ? 'itself' : `node ${nodeLabel(v.producer!)}, which comes later`;
          this.add('error', 'unsorted', `input ${k} (${v.name}) of node ${nodeLabel(node)} is produced by ${by}: the graph is not topologically sorted`, where);
        } else if (v.producer) {
          this.add('error', 'out-of-scope', `input ${k} (${v.name}) of node ${nodeLabel(node)} is produced by node ${nodeLabel(v.producer)}, which is not in this graph or an enclosing one before it`, where);
        } else {
          this.add('error', 'undefined-input', `input ${k} (${v.name}) of node ${nodeLabel(node)} is not defined: no graph input, initializer or earlier node output has this value`, where);
        }
      });
      for (const [attr, sg] of nodeSubgraphs(node)) this.graph(sg, subgraphLabel(label, node, attr), fn, [...outer, local]);
      for (const v of node.outputs) if (v) define(v, `output of node ${nodeLabel(node)}`, where);
    });
    for (const v of g.outputs) {
      if (visible(v)) continue;
      this.add('error', 'graph-output', `graph output ${v.name} is not produced by any node${g.owner ? ' and is not an outer value' : ''} and is not a graph input or initializer`, { graph: label });
    }
    if (unordered) {
      const result = topologicalOrder(g.nodes);
      if ('cycle' in result) {
        const e = cycleError(result.cycle, label);
        this.issues.push({ severity: 'error', kind: 'cycle', message: e.rawMessage, where: e.where });
      }
    }
  }
}

/** Every issue found in the model: main graph, subgraphs and function bodies. */
export function validate(model: Model): ValidationIssue[] {
  const v = new Validator(model);
  v.graph(model.graph, mainGraphLabel(model), undefined, []);
  for (const f of model.functions) v.graph(f.body, functionLabel(f), f, []);
  return v.issues;
}

/** Throws INVALID_GRAPH with the first error (a cycle first), naming graph, node and value; returns the warnings otherwise. */
export function assertValid(model: Model): ValidationIssue[] {
  const issues = validate(model);
  // NOTE: a cycle also shows as unsorted inputs; name the cycle, it is the cause.
  const error = issues.find((i) => i.kind === 'cycle') ?? issues.find((i) => i.severity === 'error');
  if (error) {
    const more = issues.filter((i) => i.severity === 'error').length - 1;
    throw new AttnpatchError('INVALID_GRAPH', `${error.message}${more > 0 ? ` (and ${more} more error(s))` : ''}`, error.where);
  }
  return issues;
}

/** Validation as a pass: throws on the first error, reports warnings, never modifies the model. */
export const validatePass: Pass = {
  name: 'validate',
  run(model) {
    const warnings = assertValid(model).map((i) => i.message);
    return { modified: false, ...(warnings.length ? { warnings } : {}) };
  },
};
