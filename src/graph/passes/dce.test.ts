import { describe, expect, it } from 'vitest';
import { Graph } from '../ir/graph.js';
import { ifNode, input, localFunction, modelOf, names, op, weight } from '../../../test/support/graphs.js';
import { dce, eliminateDeadCode } from './dce.js';

describe('dce', () => {
  it('removes nodes that reach no output and keeps the rest', () => {
    const g = new Graph('g');
    const x = input(g, 'x');
    const a = op(g, 'Relu', [x], ['a']);
    const dead1 = op(g, 'Neg', [a.output()], ['dead1']);
    op(g, 'Abs', [dead1.output()], ['dead2']);
    g.outputs.push(op(g, 'Exp', [a.output()], ['out']).output());
    const r = dce.run(modelOf(g));
    expect(r).toMatchObject({ modified: true, count: 2, removed: { nodes: 2, initializers: 0, functions: 0 } });
    expect(names(g)).toEqual(['a', 'out']);
    expect(a.output().useCount).toBe(1);
  });

  it('changes nothing when everything is live', () => {
    const g = new Graph('g');
    const x = input(g, 'x');
    const w = weight(g, 'w');
    g.outputs.push(op(g, 'Add', [x, w], ['y']).output(), w);
    expect(dce.run(modelOf(g))).toMatchObject({ modified: false, count: 0 });
    expect(g.initializers.size).toBe(1);
  });

  it('removes unused initializers, but not those that are graph inputs', () => {
    const g = new Graph('g');
    const x = input(g, 'x');
    const used = weight(g, 'used');
    weight(g, 'unused');
    const overridable = weight(g, 'overridable');
    g.inputs.push(overridable);
    const onlyDead = weight(g, 'onlyDead');
    op(g, 'Mul', [x, onlyDead], ['dead']);
    g.outputs.push(op(g, 'Add', [x, used], ['y']).output());
    expect(eliminateDeadCode(modelOf(g))).toEqual({ nodes: 1, initializers: 2, functions: 0 });
    expect([...g.initializers.keys()]).toEqual(['used', 'overridable']);
  });

  it('keeps outer values that a live subgraph reads, and only the subgraph nodes that reach its outputs', () => {
    const g = new Graph('g');
    const cond = g.addInput('cond');
    const x = input(g, 'x');
    const w = weight(g, 'w');
    const readInside = op(g, 'Relu', [x], ['readInside']);
    const direct = op(g, 'Neg', [x], ['direct']);
    const thenG = new Graph('then');
    thenG.outputs.push(op(thenG, 'Mul', [readInside.output(), w], ['t']).output());
    op(thenG, 'Abs', [x], ['deadInside']);
    const elseG = new Graph('else');
    elseG.outputs.push(direct.output()); // an outer value as a branch output: no node reads it
    g.outputs.push(ifNode(g, cond, thenG, elseG, 'if').output());
    expect(eliminateDeadCode(modelOf(g))).toEqual({ nodes: 1, initializers: 0, functions: 0 });
    expect(names(g)).toEqual(['readInside', 'direct', 'if']);
    expect(names(thenG)).toEqual(['t']);
  });

  it('removes a dead If with its subgraphs and lets go of the outer values they read', () => {
    const g = new Graph('g');
    const cond = g.addInput('cond');
    const x = input(g, 'x');
    const w = weight(g, 'w');
    const onlyInside = op(g, 'Relu', [x], ['onlyInside']);
    const thenG = new Graph('then');
    thenG.outputs.push(op(thenG, 'Mul', [onlyInside.output(), w], ['t']).output());
    const elseG = new Graph('else');
    elseG.outputs.push(x);
    ifNode(g, cond, thenG, elseG, 'deadIf');
    g.outputs.push(op(g, 'Neg', [x], ['y']).output());
    // deadIf, its then-branch node, and onlyInside; then `w`, which only the removed branch read.
    expect(eliminateDeadCode(modelOf(g))).toEqual({ nodes: 3, initializers: 1, functions: 0 });
    expect(names(g)).toEqual(['y']);
    expect(x.consumers().map((n) => n.name)).toEqual(['y']);
  });

  it('removes unused model-local functions, keeps called ones (also from subgraphs and other functions) and prunes their bodies', () => {
    const g = new Graph('g');
    const cond = g.addInput('cond');
    const x = input(g, 'x');
    const inner = localFunction('local', 'Inner', (body, fx) => op(body, 'Relu', [fx], ['ir']).output());
    const outer = localFunction('local', 'Outer', (body, fx) => {
      op(body, 'Abs', [fx], ['deadInBody']);
      return op(body, 'Inner', [fx], ['call'], { domain: 'local' }).output();
    }, { '': 21, local: 1 });
    const fromSub = localFunction('local', 'FromSub', (body, fx) => op(body, 'Neg', [fx], ['n']).output());
    const unused = localFunction('local', 'Unused', (body, fx) => op(body, 'Exp', [fx], ['e']).output());
    const thenG = new Graph('then');
    thenG.outputs.push(op(thenG, 'FromSub', [x], ['viaSub'], { domain: 'local' }).output());
    const elseG = new Graph('else');
    elseG.outputs.push(x);
    const y = op(g, 'Outer', [x], ['y'], { domain: 'local' }).output();
    g.outputs.push(y, ifNode(g, cond, thenG, elseG, 'if').output());
    const m = modelOf(g, { local: 1 });
    m.functions.push(inner, outer, fromSub, unused);
    expect(eliminateDeadCode(m)).toEqual({ nodes: 1, initializers: 0, functions: 1 });
    expect(m.functions.map((f) => f.name)).toEqual(['Inner', 'Outer', 'FromSub']);
    expect(names(outer.body)).toEqual(['call']);
  });

  it('removes a function called only by a dead node', () => {
    const g = new Graph('g');
    const x = input(g, 'x');
    op(g, 'F', [x], ['dead'], { domain: 'local' });
    g.outputs.push(x);
    const m = modelOf(g, { local: 1 });
    m.functions.push(localFunction('local', 'F', (body, fx) => op(body, 'Relu', [fx], ['r']).output()));
    expect(eliminateDeadCode(m)).toEqual({ nodes: 1, initializers: 0, functions: 1 });
    expect(m.functions).toEqual([]);
  });
});
