import { describe, expect, it } from 'vitest';
import { parsePatchSpec, specKey } from './spec.js';

describe('parsePatchSpec', () => {
  it('reads names, options and scalars from the string form', () => {
    expect(parsePatchSpec('gqa:window=256,rotary=keep')).toEqual({ name: 'gqa', options: { window: 256, rotary: 'keep' } });
    expect(parsePatchSpec({ dca: { interBias: 1 } })).toEqual({ name: 'dca', options: { interBias: 1 } });
  });

  it('refuses a misspelt option instead of patching with the defaults, and suggests the name', () => {
    expect(() => parsePatchSpec('gqa:windw=2')).toThrow(/unknown option "windw" for patch gqa \(did you mean window\?\); its options are: kvHeads, /);
    expect(() => parsePatchSpec('dca:chunksize=100')).toThrow(/unknown option "chunksize" for patch dca \(did you mean chunkSize\?\)/);
    expect(() => parsePatchSpec({ mla: { rnk: 8 } })).toThrow(/unknown option "rnk" for patch mla \(did you mean rank\?\)/);
    expect(() => parsePatchSpec('gqa:colour=1')).toThrow(/unknown option "colour" for patch gqa; its options/);
  });

  it('refuses unknown patches and unreadable options', () => {
    expect(() => parsePatchSpec('gqq')).toThrow(/unknown patch "gqq"; should be one of: gqa, dca, mla/);
    expect(() => parsePatchSpec('gqa:window')).toThrow(/cannot read option "window"/);
  });

  it('gives one key for the same options in any order', () => {
    expect(specKey(['gqa:window=8,kvHeads=2'])).toBe(specKey([{ gqa: { kvHeads: 2, window: 8 } }]));
  });
});
