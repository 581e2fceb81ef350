/** `attnpatch inspect` and `convert` through the real CLI program, on the model the repo ships. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { REPO_ROOT } from '../support/paths.js';

const MODEL = join(REPO_ROOT, 'models', 'tinystories-656k');
const tmp = mkdtempSync(join(tmpdir(), 'attnpatch-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const run = runCli;

describe('attnpatch inspect', () => {
  it('--json prints the documented shape with the lifted numbers', async () => {
    const { out, code } = await run('inspect', MODEL, '--json');
    expect(code).toBe(0);
    const r = JSON.parse(out);
    expect(r.model).toMatchObject({ irVersion: 7, opsets: { '': 14 }, initializers: 21 });
    expect(r.attention).toHaveLength(2);
    expect(r.attention[1]).toMatchObject({
      layer: 1, form: 'unfused', numHeads: 8, numKvHeads: 4, headDim: 16, scale: 0.25,
      rope: { interleaved: false, rotaryDim: 16 },
      past: { key: 'past_key_values.1.key', value: 'past_key_values.1.value' },
      present: { key: 'present.1.key', value: 'present.1.value' },
    });
    expect(r.unsupported).toEqual([]);
    // 2 layers × (K + V) × 4 KV heads × 16 dims × 4 bytes
    expect(r.kvCacheBytesPerToken).toBe(2 * 2 * 4 * 16 * 4);
  });

  it('prints a table for people', async () => {
    const { out } = await run('inspect', MODEL);
    expect(out).toMatch(/attention: 2 blocks/);
    expect(out).toMatch(/KV cache: 1\.0 KiB per token/);
  });

  it('fails with one line and exit code 1 on a bad path', async () => {
    const { err, code } = await run('inspect', join(tmp, 'nope.onnx'));
    expect(code).toBe(1);
    expect(err).toMatch(/^attnpatch: no such file or folder \[file=.*nope\.onnx\]\n$/);
  });
});

describe('attnpatch convert (no patches)', () => {
  it('writes a complete folder whose model is byte-identical to the input', async () => {
    const out = join(tmp, 'copy');
    const { code } = await run('convert', MODEL, '-o', out, '--json');
    expect(code).toBe(0);
    expect(Buffer.compare(readFileSync(join(out, 'onnx', 'model.onnx')), readFileSync(join(MODEL, 'onnx', 'model.onnx')))).toBe(0);
    expect(readFileSync(join(out, 'tokenizer.json'), 'utf8')).toBe(readFileSync(join(MODEL, 'tokenizer.json'), 'utf8'));
  });

  it('refuses to write over its input', async () => {
    const { err, code } = await run('convert', MODEL, '-o', MODEL);
    expect(code).toBe(1);
    expect(err).toMatch(/the output is the input/);
  });
});
