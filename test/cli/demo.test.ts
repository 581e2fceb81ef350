/** `attnpatch demo` runs offline on the shipped model and shows DCA beating the unpatched model past 512 tokens. */
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';

describe('attnpatch demo', () => {
  it('prints the inspection, the side-by-side table, and continuations', async () => {
    const { out, code } = await runCli('demo', '--tokens', '1200', '--steps', '8');
    expect(code).toBe(0);
    expect(out).toMatch(/attention: 2 blocks/);
    expect(out).toMatch(/dca: 2 of 2 blocks → DualChunkAttention\(chunk 384, window 64\)/);
    const row = /prompt perplexity\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)/.exec(out);
    expect(row).not.toBeNull();
    const [plain, dca, biased] = row!.slice(1).map(Number) as [number, number, number];
    expect(dca).toBeLessThan(plain / 1.5); // the unpatched model falls apart past its trained length
    expect(biased).toBeLessThan(plain);
    expect(out).toMatch(/KV cache\s+1\.2 MiB/);
  });
});
