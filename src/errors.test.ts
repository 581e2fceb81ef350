import { describe, expect, it } from 'vitest';
import { AttnpatchError, isAttnpatchError, withContext } from './errors.js';

describe('AttnpatchError', () => {
  it('appends the defined where-fields in a fixed order', () => {
    const e = new AttnpatchError('SHAPE', 'dims [2, 3] need 24 bytes, raw_data has 20', {
      tensor: 'model.embed_tokens.weight',
      file: 'a.onnx',
    });
    expect(e.message).toBe('dims [2, 3] need 24 bytes, raw_data has 20 [file=a.onnx tensor=model.embed_tokens.weight]');
    expect(e.rawMessage).toBe('dims [2, 3] need 24 bytes, raw_data has 20');
    expect(e.code).toBe('SHAPE');
    expect(e.name).toBe('AttnpatchError');
  });

  it('has no brackets without location and quotes awkward values', () => {
    expect(new AttnpatchError('USAGE', 'not implemented yet', {}).message).toBe('not implemented yet');
    expect(new AttnpatchError('PATCH', 'no attention block found', { node: 'my node' }).message).toBe(
      'no attention block found [node="my node"]',
    );
  });
});

describe('isAttnpatchError', () => {
  it('recognises errors by name, also from another package copy', () => {
    expect(isAttnpatchError(new AttnpatchError('IO', 'x'))).toBe(true);
    expect(isAttnpatchError(Object.assign(new Error('x'), { name: 'AttnpatchError', code: 'IO' }))).toBe(true);
    expect(isAttnpatchError(new Error('x'))).toBe(false);
    expect(isAttnpatchError(null)).toBe(false);
  });
});

describe('withContext', () => {
  it('fills missing where-fields and keeps the inner ones', () => {
    const inner = new AttnpatchError('EXTERNAL_DATA', 'offset 4096 + length 64 is past the end (4100 bytes)', {
      file: 'model.onnx_data',
      tensor: 'w',
    });
    const e = withContext(inner, { file: 'model.onnx', node: '/attn/MatMul' });
    expect(e.message).toBe(
      'offset 4096 + length 64 is past the end (4100 bytes) [file=model.onnx_data node=/attn/MatMul tensor=w]',
    );
    expect(e.code).toBe('EXTERNAL_DATA');
  });

  it('wraps Node system errors as IO and rethrows anything else', () => {
    const enoent = Object.assign(new Error("ENOENT: no such file or directory, open 'x.onnx'"), { code: 'ENOENT' });
    const e = withContext(enoent, { file: 'x.onnx' });
    expect(e.code).toBe('IO');
    expect(e.message).toBe("ENOENT: no such file or directory, open 'x.onnx' [file=x.onnx]");
    expect(e.cause).toBe(enoent);

    const bug = new TypeError('oops');
    expect(() => withContext(bug, { file: 'x.onnx' })).toThrow(bug);
  });
});
