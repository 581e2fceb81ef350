/** `attnpatch eval ppl` through the real CLI program, on the model the repo ships. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { REPO_ROOT, shared } from '../support/paths.js';

const MODEL = join(REPO_ROOT, 'models', 'tinystories-656k');
const tmp = mkdtempSync(join(tmpdir(), 'attnpatch-eval-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const part1 = readFileSync(shared('corpus-tinystories-val', 'tinystories_val.txt'), 'utf8');
const TEXT = join(tmp, 'text.txt');
writeFileSync(TEXT, part1.slice(0, 12_000));
const CALIB = join(tmp, 'calib.txt');
writeFileSync(CALIB, part1.slice(100_000, 110_000));

describe('attnpatch eval ppl', () => {
  it('--json prints exactly {ppl, tokens, context, windows}', async () => {
    const { out, code } = await runCli('eval', 'ppl', MODEL, '--text', TEXT, '--context', '256', '--windows', '4', '--json');
    expect(code).toBe(0);
    const r = JSON.parse(out);
    expect(Object.keys(r)).toEqual(['ppl', 'tokens', 'context', 'windows']);
    expect(r).toMatchObject({ tokens: 4 * 255, context: 256, windows: 4 });
    expect(r.ppl).toBeGreaterThan(10);
    expect(r.ppl).toBeLessThan(100);
  });

  it('prints one readable line; --patch applies patches in memory (aligned merge calibrated on a text file)', async () => {
    const plain = await runCli('eval', 'ppl', MODEL, '--text', TEXT, '--context', '256', '--windows', '4');
    expect(plain.out).toMatch(/^perplexity \d+\.\d{3} over 1,020 tokens \(4 windows of 256\)\n$/);
    const lossless = await runCli('eval', 'ppl', MODEL, '--text', TEXT, '--context', '256', '--windows', '4', '--patch', 'gqa', '--json');
    expect(JSON.parse(lossless.out).ppl).toBeCloseTo(JSON.parse((await runCli('eval', 'ppl', MODEL, '--text', TEXT, '--context', '256', '--windows', '4', '--json')).out).ppl, 3);
    const merged = await runCli('eval', 'ppl', MODEL, '--text', TEXT, '--context', '256', '--windows', '4', '--patch', `gqa:kvHeads=2,merge=aligned,calibration=${CALIB}`, '--json');
    expect(merged.code).toBe(0);
    expect(merged.err).toMatch(/aligns \(calibrated on \d+ tokens\) then mean-pools/);
    expect(JSON.parse(merged.out).ppl).toBeGreaterThan(JSON.parse(lossless.out).ppl);
  });

  it('a text too short for one window fails with one line and exit code 1', async () => {
    const { err, code } = await runCli('eval', 'ppl', MODEL, '--text', TEXT, '--context', '100000');
    expect(code).toBe(1);
    expect(err).toMatch(/^attnpatch: the text holds \d+ tokens, fewer than one window of 100000 \[field=context\]\n$/);
  });
});
