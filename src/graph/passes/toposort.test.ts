import { describe, expect, it } from 'vitest';
import { isAttnpatchError } from '../../errors.js';
import { Graph } from '../ir/graph.js';
import { ifNode, input, localFunction, modelOf, names, op } from '../../../test/support/graphs.js';
import { sortGraph, toposort } from './toposort.js';

describe('toposort', () => {
  it('leaves a sorted graph exactly as it is', () => {
    const g = new Graph('g');
    const x = input(g, 'x');
    const a = op(g, 'Relu', [x], ['a']);
    const b = op(g, 'Neg', [x], ['b']);
    g.outputs.push(op(g, 'Add', [a.output(), b.output()], ['c']).output());
    const r = toposort.run(modelOf(g));
    expect(r).toEqual({ modified: false, count: 0 });
    expect(names(g)).toEqual(['a', 'b', 'c']);
  });

  it('moves producers before consumers and keeps independent nodes in their order', () => {
    const g = new Graph('g');
    const x = input(g, 'x');
    const c = op(g, 'Add', [x, x], ['c']);
    const p = op(g, 'Relu', [x], ['p']);
    op(g, 'Neg', [x], ['q']);
    const a = op(g, 'Relu', [x], ['a']);
    c.setInput(1, a.output());
    c.setInput(0, p.output());
    const r = toposort.run(modelOf(g));
    expect(names(g)).toEqual(['p', 'q', 'a', 'c']);
    expect(r.modified).toBe(true);
    expect(r.count).toBe(4);
  });

  it('orders a node holding a subgraph after the producers of the outer values the subgraph reads', () => {
    const g = new Graph('g');
    const cond = g.addInput('cond');
    const x = input(g, 'x');
    const thenG = new Graph('then');
    thenG.outputs.push(op(thenG, 'Identity', [x], ['t']).output()); // placeholder input, rewired below
    const elseG = new Graph('else');
    const nested = new Graph('nested');
    const ifN = ifNode(g, cond, thenG, elseG, 'if');
    const late = op(g, 'Relu', [x], ['late']);
    const late2 = op(g, 'Neg', [x], ['late2']);
    thenG.nodes[0]!.setInput(0, late.output());
    // else branch: an If inside it whose own branch outputs the outer value directly (no node reads it).
    const inner = new Graph('inner');
    inner.outputs.push(late2.output());
    elseG.outputs.push(ifNode(elseG, cond, inner, nested, 'innerIf').output());
    nested.outputs.push(x);
    g.outputs.push(ifN.output());
    expect(sortGraph(g)).toBe(3);
    expect(names(g)).toEqual(['late', 'late2', 'if']);
  });

  it('sorts subgraphs and function bodies too', () => {
    const g = new Graph('g');
    const cond = g.addInput('cond');
    const x = input(g, 'x');
    const thenG = new Graph('then');
    const t2 = op(thenG, 'Neg', [x], ['t2']);
    const t1 = op(thenG, 'Relu', [x], ['t1']);
    t2.setInput(0, t1.output());
    thenG.outputs.push(t2.output());
    const elseG = new Graph('else');
    elseG.outputs.push(x);
    g.outputs.push(ifNode(g, cond, thenG, elseG, 'if').output());
    const f = localFunction('local', 'F', (body, fx) => {
      const b = op(body, 'Neg', [fx], ['fb']);
      const a = op(body, 'Relu', [fx], ['fa']);
      b.setInput(0, a.output());
      return b.output();
    });
    const m = modelOf(g, { local: 1 });
    m.functions.push(f);
    expect(toposort.run(m).count).toBe(4);
    expect(names(thenG)).toEqual(['t1', 't2']);
    expect(names(f.body)).toEqual(['fa', 'fb']);
  });

  it('throws CYCLE naming the graph and the nodes on the cycle', () => {
    const g = new Graph('main');
    const x = input(g, 'x');
    op(g, 'Relu', [x], ['before']);
    const a = op(g, 'Add', [x, x], ['a']);
    const b = op(g, 'Neg', [a.output()], ['b']);
    a.setInput(1, b.output());
    g.outputs.push(b.output());
    let err: unknown;
    try {
      toposort.run(modelOf(g));
    } catch (e) {
      err = e;
    }
    expect(isAttnpatchError(err) && err.code).toBe('CYCLE');
    expect((err as Error).message).toMatch(/cycle of 2 node\(s\): (a -> b -> a|b -> a -> b)/);
    expect((err as Error).message).toMatch(/graph="main graph main"/);
    expect(names(g)).toEqual(['before', 'a', 'b']); // nothing moved
  });

  it('finds a cycle through a subgraph: an If whose branch reads its own output', () => {
    const g = new Graph('main');
    const cond = g.addInput('cond');
    const thenG = new Graph('then');
    const elseG = new Graph('else');
    const ifN = ifNode(g, cond, thenG, elseG, 'loopy');
    thenG.outputs.push(op(thenG, 'Identity', [ifN.output()], ['t']).output());
    elseG.outputs.push(cond);
    expect(() => sortGraph(g, 'main')).toThrow(/cycle of 1 node\(s\): loopy -> loopy/);
  });
});
