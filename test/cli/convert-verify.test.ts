/** `attnpatch convert --patch` and `attnpatch verify` through the CLI program. */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/paths.js';
import { runCli } from '../support/cli.js';

const MODEL = join(REPO_ROOT, 'models', 'tinystories-656k');
const tmp = mkdtempSync(join(tmpdir(), 'attnpatch-cv-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('convert --patch → verify', () => {
  it('gqa: all blocks patched, verify passes with maxAbsDiff ≤ 1e-4 and greedy match', async () => {
    const out = join(tmp, 'gqa');
    const c = await runCli('convert', MODEL, '-o', out, '--patch', 'gqa', '--json');
    expect(c.code).toBe(0);
    const report = JSON.parse(c.out);
    expect(report.patches[0]).toMatchObject({ patch: 'gqa', left: [], lossy: false });
    expect(report.patches[0].patched).toHaveLength(2);
    expect(report.kvCacheBytesPerToken).toEqual({ before: 1024, after: 1024 });
    const v = await runCli('verify', MODEL, out, '--tokens', '32', '--json');
    expect(v.code).toBe(0);
    const r = JSON.parse(v.out);
    expect(r).toMatchObject({ greedyMatch: true, tokens: 32, lossy: false, tolerance: 1e-4 });
    expect(r.maxAbsDiff).toBeLessThanOrEqual(1e-4);
  });

  it('a lossy patch is marked so; verify reports without failing, and KV bytes shrink', async () => {
    const out = join(tmp, 'kv2');
    const c = await runCli('convert', MODEL, '-o', out, '--patch', 'gqa:kvHeads=2', '--json');
    const report = JSON.parse(c.out);
    expect(report.patches[0].lossy).toBe(true);
    expect(report.kvCacheBytesPerToken).toEqual({ before: 1024, after: 512 });
    const v = await runCli('verify', MODEL, out, '--tokens', '4', '--json');
    expect(v.code).toBe(0);
    expect(JSON.parse(v.out).lossy).toBe(true);
  });

  it('verify fails with exit 1 when a "lossless" model differs (tolerance forced tiny)', async () => {
    const out = join(tmp, 'gqa');
    const v = await runCli('verify', MODEL, out, '--tokens', '2', '--tolerance', '1e-12');
    expect(v.code).toBe(1);
    expect(v.err).toMatch(/^attnpatch: the patch is meant to be lossless but logits differ by/);
  });

  it('an unknown patch is a usage error naming the known ones', async () => {
    const c = await runCli('convert', MODEL, '-o', join(tmp, 'x'), '--patch', 'nope');
    expect(c.code).toBe(1);
    expect(c.err).toMatch(/unknown patch "nope"; should be one of: gqa/);
  });

  it('a strict patch that cannot lower every block fails naming the model file, and writes nothing', async () => {
    const out = join(tmp, 'strict');
    const c = await runCli('convert', MODEL, '-o', out, '--patch', 'gqa:kvHeads=3,strict=true');
    expect(c.code).toBe(1);
    expect(c.err).toMatch(/^attnpatch: gqa could not lower 2 block\(s\): layer 0 \(unfused\): 4 KV heads cannot be merged into 3.*\[file=.*tinystories-656k\/onnx\/model\.onnx\]\n$/s);
    expect(existsSync(out)).toBe(false);
  });
});
