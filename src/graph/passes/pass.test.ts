import { describe, expect, it } from 'vitest';
import { AttnpatchError, isAttnpatchError } from '../../errors.js';
import { Graph } from '../ir/graph.js';
import { Model } from '../ir/model.js';
import { sequential, type Pass } from './pass.js';

const model = () => new Model(new Graph('g'));
const fixed = (name: string, result: ReturnType<Pass['run']>): Pass => ({ name, run: () => result });

describe('sequential', () => {
  it('runs passes in order, sums counts and prefixes warnings with the pass name', () => {
    const seen: string[] = [];
    const track = (name: string, result: ReturnType<Pass['run']>): Pass => ({ name, run: () => (seen.push(name), result) });
    const p = sequential(track('a', { modified: false, count: 0 }), track('b', { modified: true, count: 3, warnings: ['odd'] }), track('c', { modified: false }));
    expect(p.name).toBe('sequential(a, b, c)');
    expect(p.run(model())).toEqual({ modified: true, count: 3, warnings: ['b: odd'] });
    expect(seen).toEqual(['a', 'b', 'c']);
  });

  it('reports no count when no pass counts', () => {
    expect(sequential(fixed('a', { modified: false })).run(model())).toEqual({ modified: false });
  });

  it('wraps a typed error with the pass name and the passes before it, keeping code and location', () => {
    const failing: Pass = {
      name: 'boom',
      run: () => {
        throw new AttnpatchError('CYCLE', 'the graph has a cycle', { graph: 'main', node: 'n1' });
      },
    };
    let err: unknown;
    try {
      sequential(fixed('first', { modified: false }), failing, fixed('never', { modified: true })).run(model());
    } catch (e) {
      err = e;
    }
    expect(isAttnpatchError(err) && err.code).toBe('CYCLE');
    expect((err as Error).message).toBe('pass boom (after first) failed: the graph has a cycle [graph=main node=n1]');
    expect((err as Error).cause).toBeInstanceOf(AttnpatchError);
  });

  it('wraps an untyped error with the pass name and keeps it as the cause', () => {
    const bug = new TypeError('x is undefined');
    const p = sequential({ name: 'buggy', run: () => { throw bug; } });
    expect(() => p.run(model())).toThrow('pass buggy failed: x is undefined');
    try {
      p.run(model());
    } catch (e) {
      expect((e as Error).cause).toBe(bug);
    }
  });
});
