/** The pattern matcher on tiny hand-built graphs: each feature positive and negative, plus pinned failure text. */
import { describe, expect, it } from 'vitest';
import { attr } from '../ir/attribute.js';
import { DataType } from '../ir/dtype.js';
import { Graph } from '../ir/graph.js';
import { Node } from '../ir/node.js';
import type { Value } from '../ir/value.js';
import { MemoryTensor, viewBytes } from '../tensor/tensor.js';
import {
  any,
  cap,
  commute,
  constant,
  consumerOf,
  exclusiveNodes,
  explain,
  graphInput,
  is,
  match,
  oneOf,
  op,
  optional,
  where,
  type MatchResult,
  type TraceEvent,
} from './index.js';

/** A graph with a tiny node-adding helper. */
function tiny() {
  const g = new Graph('t');
  let i = 0;
  const add = (opType: string, inputs: (Value | null)[], attributes: ReturnType<typeof attr.int>[] = [], outputs = 1): Value => {
    const n = new Node({ opType, name: `${opType}_${i}`, inputs, outputs: Array.from({ length: outputs }, (_, k) => `${opType}_${i}_o${k}`), attributes });
    i++;
    g.insert(n);
    return n.output(0);
  };
  const scalar = (name: string, x: number) => g.addInitializer(name, new MemoryTensor(DataType.FLOAT, [], viewBytes(new Float32Array([x]))));
  return { g, add, scalar };
}

function ok(r: MatchResult) {
  if (!r.ok) throw new Error(`expected a match: ${explain(r)}`);
  return r;
}
function bad(r: MatchResult) {
  if (r.ok) throw new Error('expected no match');
  return r;
}

describe('op and inputs', () => {
  it('matches by op type and input sub-patterns, listing the consumed nodes', () => {
    const { g, add } = tiny();
    const x = g.addInput('x');
    const w = g.addInitializer('w', new MemoryTensor(DataType.FLOAT, [1], viewBytes(new Float32Array([2]))));
    const y = add('MatMul', [x, w]);
    const r = ok(match(op('MatMul', [any('x'), constant('w')], { as: 'mm' }), y));
    expect(r.bindings.values.x).toBe(x);
    expect(r.bindings.values.w).toBe(w);
    expect(r.bindings.ops.mm).toBe(y.producer);
    expect(r.nodes).toEqual([y.producer]);
  });

  it('rejects another op type, and a graph input where a node is expected', () => {
    const { g, add } = tiny();
    const x = g.addInput('x');
    const t = add('Transpose', [x]);
    expect(bad(match(op('MatMul'), t)).reason).toBe('expected MatMul, found Transpose');
    expect(bad(match(op('Transpose', [op('Reshape')]), t)).reason).toBe("expected Reshape, found graph input 'x'");
  });

  it('checks attributes and the output index', () => {
    const { g, add } = tiny();
    const x = g.addInput('x');
    const t = add('Transpose', [x], [attr.ints('perm', [0, 2, 1, 3])]);
    ok(match(op('Transpose', [any()], { attrs: { perm: [0, 2, 1, 3] } }), t));
    expect(bad(match(op('Transpose', [any()], { attrs: { perm: [0, 1, 3, 2] } }), t)).reason).toBe('Transpose perm=[0,2,1,3], expected [0,1,3,2]');
    expect(bad(match(op('Transpose', [any()], { attrs: { axis: 1 } }), t)).reason).toBe('Transpose has no attribute axis, expected 1');
    const split = add('Split', [x], [], 3).producer!;
    ok(match(op('Split', undefined, { output: 2 }), split.output(2)));
    expect(bad(match(op('Split', undefined, { output: 0 }), split.output(1))).reason).toBe('expected output 0 of Split, found output 1');
  });

  it('exact arity', () => {
    const { g, add } = tiny();
    const gemm = add('Gemm', [g.addInput('a'), g.addInput('b'), g.addInput('c')]);
    ok(match(op('Gemm', [any(), any()]), gemm));
    expect(bad(match(op('Gemm', [any(), any()], { exact: true }), gemm)).reason).toBe('Gemm has 3 inputs, expected 2');
  });

  it('absent inputs fail `any`', () => {
    const { g, add } = tiny();
    const y = add('Clip', [g.addInput('x'), null]);
    expect(bad(match(op('Clip', [any(), any('min')]), y)).reason).toBe('input is absent');
  });
});

describe('commutative inputs', () => {
  it('matches Add(mask, scores) against Add(scores, mask) only when commute is set', () => {
    const { g, add } = tiny();
    const mask = g.addInput('mask');
    const s = add('MatMul', [g.addInput('q'), g.addInput('k')]);
    const y = add('Add', [mask, s]);
    const p = op('Add', [op('MatMul'), any('mask')]);
    bad(match(p, y));
    const r = ok(match(commute(p), y));
    expect(r.bindings.values.mask).toBe(mask);
    ok(match(op('Add', [op('MatMul'), any()], { commute: true }), y));
  });

  it('backtracks into the other order when a later repeated capture disagrees', () => {
    // Mul(cos, x) + Mul(Neg(x), sin): the first order binds x = cos and fails later; the swap succeeds.
    const { g, add } = tiny();
    const x = g.addInput('x');
    const cos = g.addInput('cos');
    const y = add('Add', [add('Mul', [cos, x]), add('Mul', [add('Neg', [x]), g.addInput('sin')])]);
    const p = op('Add', [op('Mul', [any('x'), any('cos')], { commute: true }), op('Mul', [op('Neg', [any('x')]), any('sin')])]);
    const r = ok(match(p, y));
    expect(r.bindings.values.x).toBe(x);
    expect(r.bindings.values.cos).toBe(cos);
  });
});

describe('captures', () => {
  it('a repeated name must bind the same value', () => {
    const { g, add } = tiny();
    const a = g.addInput('a');
    const b = g.addInput('b');
    ok(match(op('Mul', [any('x'), any('x')]), add('Mul', [a, a])));
    expect(bad(match(op('Mul', [any('x'), any('x')]), add('Mul', [a, b]))).reason).toBe("'x' is already bound to 'a', not 'b'");
  });

  it('cap binds the value a sub-pattern matched', () => {
    const { g, add } = tiny();
    const t = add('Transpose', [g.addInput('a')]);
    const y = add('Neg', [t]);
    const r = ok(match(op('Neg', [cap('t', op('Transpose'))]), y));
    expect(r.bindings.values.t).toBe(t);
  });

  it('a repeated node name must bind the same node', () => {
    const { g, add } = tiny();
    const a = g.addInput('a');
    const y = add('Add', [add('Neg', [a]), add('Neg', [a])]);
    bad(match(op('Add', [op('Neg', undefined, { as: 'n' }), op('Neg', undefined, { as: 'n' })]), y));
  });
});

describe('alternatives', () => {
  it('oneOf tags the branch that matched', () => {
    const { g, add } = tiny();
    const x = g.addInput('x');
    const p = oneOf([op('Mul', [any(), any()]), op('Div', [any(), any()])], { tag: 'kind', labels: ['mul', 'div'] });
    expect(ok(match(p, add('Div', [x, x]))).bindings.tags.kind).toBe('div');
    expect(ok(match(p, add('Mul', [x, x]))).bindings.tags.kind).toBe('mul');
  });

  it('equally deep failures of the options merge into one reason', () => {
    const { g } = tiny();
    const x = g.addInput('x');
    expect(bad(match(oneOf([op('Mul'), op(['Div', 'Sqrt'])]), x)).reason).toBe("expected Mul or Div or Sqrt, found graph input 'x'");
  });
});

describe('optional nodes', () => {
  const p = op('Softmax', [optional(op('Cast', [cap('s', op('MatMul'))]))]);

  it('matches through the optional node', () => {
    const { g, add } = tiny();
    const s = add('MatMul', [g.addInput('a'), g.addInput('b')]);
    const r = ok(match(p, add('Softmax', [add('Cast', [s])])));
    expect(r.bindings.values.s).toBe(s);
    expect(r.nodes.map((n) => n.opType)).toEqual(['Softmax', 'Cast', 'MatMul']);
  });

  it('matches without it', () => {
    const { g, add } = tiny();
    const s = add('MatMul', [g.addInput('a'), g.addInput('b')]);
    expect(ok(match(p, add('Softmax', [s]))).nodes.map((n) => n.opType)).toEqual(['Softmax', 'MatMul']);
  });

  it('fails naming both the optional op and what it wraps', () => {
    const { g, add } = tiny();
    const r = bad(match(p, add('Softmax', [add('Relu', [g.addInput('a')])])));
    expect(r.reason).toBe('expected Cast or MatMul, found Relu');
    expect(r.path).toEqual(['Softmax.in0']);
  });
});

describe('predicates, constants, graph inputs, identity', () => {
  it('where: true accepts, a string is the reason', () => {
    const { g, add, scalar } = tiny();
    const y = add('Div', [g.addInput('x'), scalar('eight', 8)]);
    const isEight = where(constant('c'), (v) => v.name === 'eight' || `'${v.name}' is not eight`);
    ok(match(op('Div', [any(), isEight]), y));
    const z = add('Div', [g.addInput('x2'), scalar('seven', 7)]);
    expect(bad(match(op('Div', [any(), isEight]), z)).reason).toBe("'seven' is not eight");
    expect(bad(match(op('Div', [any(), where(any(), () => false, 'is-eight')]), z)).reason).toBe('is-eight failed');
  });

  it('constant accepts initializers and Constant nodes, not computed values', () => {
    const { g, add } = tiny();
    const c = add('Constant', [], [attr.float('value_float', 1)]);
    ok(match(constant('c'), c));
    expect(bad(match(constant(), add('Neg', [g.addInput('x')]))).reason).toBe('expected a constant, found Neg');
  });

  it('graphInput rejects initializers and node outputs; is() matches one value', () => {
    const { g, add, scalar } = tiny();
    const x = g.addInput('past');
    ok(match(graphInput('p'), x));
    expect(bad(match(graphInput(), scalar('w', 1))).reason).toBe("expected a graph input, found initializer 'w'");
    const y = add('Neg', [x]);
    ok(match(op('Neg', [is(x)]), y));
    expect(bad(match(is(x), y)).reason).toBe("expected value 'past', found 'Neg_0_o0'");
  });
});

describe('trace', () => {
  it('reports the deepest failure with its path (pinned text)', () => {
    const { g, add } = tiny();
    const k = g.addInput('k_in');
    const kt = add('Transpose', [k], [attr.ints('perm', [0, 1, 3, 2])]);
    const s = add('MatMul', [g.addInput('q'), kt]);
    const sm = add('Softmax', [add('Div', [s, g.addInput('d')])]);
    const p = op('Softmax', [op('Div', [op('MatMul', [any('q'), op('Transpose', [op(['MatMul', 'Gemm'], [any(), constant()])])]), any()])]);
    const trace: TraceEvent[] = [];
    const r = bad(match(p, sm, { trace }));
    expect(r.path).toEqual(['Softmax.in0', 'Div.in0', 'MatMul.in1', 'Transpose.in0']);
    expect(explain(r)).toBe("Softmax.in0 > Div.in0 > MatMul.in1 > Transpose.in0 (value 'k_in'): expected MatMul or Gemm, found graph input 'k_in'");
    expect(trace.length).toBeGreaterThan(0);
  });

  it('stops at the step limit', () => {
    const { g, add } = tiny();
    const y = add('Neg', [g.addInput('x')]);
    expect(bad(match(op('Neg', [any()]), y, { maxSteps: 1 })).reason).toBe('search limit of 1 steps reached');
  });
});

describe('walking down and owned nodes', () => {
  it('consumerOf walks through pass-through ops and reports ambiguity or absence', () => {
    const { g, add } = tiny();
    const sm = add('Softmax', [g.addInput('s')]);
    const mm = add('MatMul', [add('Cast', [add('Cast', [sm])]), g.addInput('v')]).producer!;
    const f = consumerOf(sm, 'MatMul', { through: ['Cast'] });
    expect(f.ok && f.node).toBe(mm);
    expect(f.ok && f.via.map((n) => n.opType)).toEqual(['Cast', 'Cast']);
    expect(consumerOf(sm, 'MatMul')).toEqual({ ok: false, reason: "no MatMul reads 'Softmax_0_o0'" });
    add('MatMul', [sm, g.addInput('v2')]);
    add('MatMul', [sm, g.addInput('v3')]);
    const amb = consumerOf(sm, 'MatMul');
    expect(amb.ok).toBe(false);
    expect(!amb.ok && amb.reason).toMatch(/feeds 2 MatMul nodes/);
  });

  it('exclusiveNodes adds producers used only by the set, and respects stops and exclusions', () => {
    const { g, add } = tiny();
    const h = g.addInput('h');
    const shape = add('Shape', [h]);
    const dim = add('Gather', [shape, g.addInput('i')]);
    const shared = add('Neg', [h]);
    const mm = add('MatMul', [h, g.addInput('w')]);
    const r1 = add('Reshape', [mm, dim]);
    const r2 = add('Reshape', [shared, dim]);
    add('Relu', [shared]); // `shared` has a user outside the set
    const set = exclusiveNodes([r1.producer!, r2.producer!], { exclude: new Set([mm.producer!]) });
    expect([...set].map((n) => n.opType).sort()).toEqual(['Gather', 'Reshape', 'Reshape', 'Shape']);
    const stopped = exclusiveNodes([r1.producer!, r2.producer!], { stopAt: new Set([dim]), exclude: new Set([mm.producer!]) });
    expect([...stopped].map((n) => n.opType)).toEqual(['Reshape', 'Reshape']);
  });
});
