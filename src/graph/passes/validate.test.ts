import { describe, expect, it } from 'vitest';
import { isAttnpatchError } from '../../errors.js';
import { Graph } from '../ir/graph.js';
import { Value } from '../ir/value.js';
import { ifNode, input, localFunction, modelOf, op, weight } from '../../../test/support/graphs.js';
import { toposort } from './toposort.js';
import { assertValid, validate, validatePass } from './validate.js';

/** `kind: message` of every issue, for compact assertions. */
const summary = (issues: ReturnType<typeof validate>) => issues.map((i) => `${i.severity} ${i.kind}: ${i.message}`);

describe('validate', () => {
  it('accepts a well-formed graph with a subgraph reading earlier outer values', () => {
    const g = new Graph('g');
    const cond = g.addInput('cond');
    const x = input(g, 'x');
    const w = weight(g, 'w');
    const a = op(g, 'Add', [x, w], ['a']);
    const thenG = new Graph('then');
    thenG.outputs.push(op(thenG, 'Mul', [a.output(), w], ['t']).output());
    const elseG = new Graph('else');
    elseG.outputs.push(a.output());
    g.outputs.push(ifNode(g, cond, thenG, elseG, 'if').output());
    expect(validate(modelOf(g))).toEqual([]);
    expect(assertValid(modelOf(g))).toEqual([]);
  });

  it('reports an undefined input, naming node and value; assertValid throws INVALID_GRAPH', () => {
    const g = new Graph('g');
    const x = input(g, 'x');
    g.outputs.push(op(g, 'Add', [x, new Value('ghost')], ['y'], { name: 'the_add' }).output());
    const m = modelOf(g);
    expect(summary(validate(m))).toEqual([
      'error undefined-input: input 1 (ghost) of node the_add is not defined: no graph input, initializer or earlier node output has this value',
    ]);
    let err: unknown;
    try {
      assertValid(m);
    } catch (e) {
      err = e;
    }
    expect(isAttnpatchError(err) && err.code).toBe('INVALID_GRAPH');
    expect((err as Error).message).toBe(
      'input 1 (ghost) of node the_add is not defined: no graph input, initializer or earlier node output has this value [graph="main graph g" node=the_add]',
    );
  });

  it('reports a node reading a later value as unsorted, and toposort fixes it', () => {
    const g = new Graph('g');
    const x = input(g, 'x');
    const b = op(g, 'Neg', [x], ['b']);
    const a = op(g, 'Relu', [x], ['a']);
    b.setInput(0, a.output());
    g.outputs.push(b.output());
    const m = modelOf(g);
    expect(summary(validate(m))).toEqual([
      'error unsorted: input 0 (a) of node b is produced by node a, which comes later: the graph is not topologically sorted',
    ]);
    toposort.run(m);
    expect(validate(m)).toEqual([]);
  });

  it('reports a cycle and assertValid names it first', () => {
    const g = new Graph('g');
    const x = input(g, 'x');
    const a = op(g, 'Add', [x, x], ['a']);
    const b = op(g, 'Neg', [a.output()], ['b']);
    a.setInput(1, b.output());
    g.outputs.push(b.output());
    const issues = validate(modelOf(g));
    expect(issues.map((i) => i.kind)).toEqual(['unsorted', 'cycle']);
    expect(() => assertValid(modelOf(g))).toThrow(/^the graph has a cycle of 2 node\(s\): a -> b -> a \(node a reads b\) \(and 1 more error\(s\)\) \[graph="main graph g" node=a\]$/);
  });

  it('warns about duplicate value names without failing', () => {
    const g = new Graph('g');
    const x = input(g, 'x');
    op(g, 'Constant', [], ['c'], { name: 'c1' });
    const c2 = op(g, 'Constant', [], ['c'], { name: 'c2' });
    g.outputs.push(op(g, 'Add', [x, c2.output()], ['y']).output());
    const issues = assertValid(modelOf(g));
    expect(summary(issues)).toEqual([
      'warning duplicate-name: value name c is defined more than once (again as output of node c2)',
    ]);
    expect(issues[0]!.where).toEqual({ graph: 'main graph g', node: 'c2' });
  });

  it('reports domains without an opset import: in graphs, subgraphs, function bodies and function calls', () => {
    const g = new Graph('g');
    const cond = g.addInput('cond');
    const x = input(g, 'x');
    op(g, 'Attention', [x], ['att'], { domain: 'com.microsoft' });
    const thenG = new Graph('then');
    thenG.outputs.push(op(thenG, 'Foo', [x], ['foo'], { domain: 'custom' }).output());
    const elseG = new Graph('else');
    elseG.outputs.push(x);
    const ifN = ifNode(g, cond, thenG, elseG, 'if');
    const call = op(g, 'F', [ifN.output()], ['call'], { domain: 'local' });
    g.outputs.push(call.output(), op(g, 'G', [x], ['g'], { domain: 'ai.attnpatch' }).output());
    const m = modelOf(g, { 'ai.attnpatch': 1 });
    m.functions.push(
      localFunction('local', 'F', (body, fx) => op(body, 'Relu', [op(body, 'Bar', [fx], ['bar'], { domain: 'com.microsoft' }).output()], ['r']).output(), {}),
      localFunction('ai.attnpatch', 'G', (body, fx) => op(body, 'Neg', [fx], ['n']).output(), { '': 21 }),
    );
    expect(summary(validate(m))).toEqual([
      'error opset: node att uses Attention from domain com.microsoft, which has no opset import in the model',
      'error opset: node foo uses Foo from domain custom, which has no opset import in the model',
      'error opset: node call calls model-local function F from domain local, which has no opset import in the model',
      'error opset: node bar uses Bar from domain com.microsoft, which has no opset import in the function F or the model',
      'warning opset: node r uses Relu from the default domain, which function F does not import (only the model does)',
    ]);
    expect(validate(m)[1]!.where).toEqual({ graph: 'main graph g > if.then_branch', node: 'foo' });
  });

  it('reports graph outputs nothing defines, in graphs and subgraphs', () => {
    const g = new Graph('g');
    const cond = g.addInput('cond');
    const thenG = new Graph('then');
    thenG.outputs.push(new Value('nowhere'));
    const elseG = new Graph('else');
    elseG.outputs.push(cond);
    g.outputs.push(ifNode(g, cond, thenG, elseG, 'if').output(), new Value('missing'));
    expect(summary(validate(modelOf(g)))).toEqual([
      'error graph-output: graph output nowhere is not produced by any node and is not an outer value and is not a graph input or initializer',
      'error graph-output: graph output missing is not produced by any node and is not a graph input or initializer',
    ]);
  });

  it('reports a subgraph reading an outer value defined after its node, or a sibling subgraph value', () => {
    const g = new Graph('g');
    const cond = g.addInput('cond');
    const x = input(g, 'x');
    const thenG = new Graph('then');
    const inThen = op(thenG, 'Relu', [x], ['inThen']);
    thenG.outputs.push(inThen.output());
    const elseG = new Graph('else');
    const stray = op(elseG, 'Neg', [inThen.output()], ['stray']);
    elseG.outputs.push(stray.output());
    const ifN = ifNode(g, cond, thenG, elseG, 'if');
    const late = op(g, 'Abs', [x], ['late']);
    inThen.setInput(0, late.output());
    g.outputs.push(ifN.output());
    expect(summary(validate(modelOf(g)))).toEqual([
      'error out-of-scope: input 0 (late) of node inThen is produced by node late, which is not in this graph or an enclosing one before it',
      'error out-of-scope: input 0 (inThen) of node stray is produced by node inThen, which is not in this graph or an enclosing one before it',
    ]);
  });

  it('validatePass passes warnings through and throws on errors', () => {
    const g = new Graph('g');
    const x = input(g, 'x');
    op(g, 'Constant', [], ['c'], { name: 'c1' });
    g.outputs.push(op(g, 'Constant', [], ['c'], { name: 'c2' }).output(), x);
    expect(validatePass.run(modelOf(g))).toEqual({ modified: false, warnings: [expect.stringMatching(/^value name c is defined more than once/)] });
    g.outputs.push(new Value('missing'));
    expect(() => validatePass.run(modelOf(g))).toThrow(/graph output missing/);
  });
});
