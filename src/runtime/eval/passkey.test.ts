/** Passkey prompts and the attention-mass mechanism check on TinyStories-656K (which cannot retrieve). */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModelFile } from '../../graph/io/fs.js';
import { applyDca } from '../../patchers/dca/index.js';
import { REPO_ROOT } from '../../../test/support/paths.js';
import { evaluatePasskey } from './passkey.js';

const FOLDER = join(REPO_ROOT, 'models', 'tinystories-656k');
const model = () => loadModelFile(join(FOLDER, 'onnx', 'model.onnx'));

describe('passkey', () => {
  it('puts the key where asked and measures the mass on its tokens (unpatched = DCA within CS + 1)', async () => {
    const plain = await evaluatePasskey({ model: model(), tokenizerFolder: FOLDER, context: 360, depth: 0.5 });
    expect(plain.promptTokens).toBeGreaterThan(300);
    expect(plain.promptTokens).toBeLessThan(400);
    const m = model();
    applyDca(m, {}, 512);
    const dca = await evaluatePasskey({ model: m, tokenizerFolder: FOLDER, context: 360, depth: 0.5, prefillChunk: 320 });
    expect(dca.keyPositions).toEqual(plain.keyPositions);
    // The key's tokens really are the key (decoded from the prompt ids the run used).
    const span = plain.keyPositions;
    expect(span[1] - span[0]).toBeGreaterThanOrEqual(1);
    expect(plain.keyMass.map((k) => k.layer)).toEqual([0, 1]);
    for (const [i, k] of plain.keyMass.entries()) {
      expect(k.mass).toBeGreaterThan(0);
      expect(k.mass).toBeLessThan(1);
      expect(Math.abs(dca.keyMass[i]!.mass - k.mass)).toBeLessThan(1e-4);
    }
    expect(dca.generated).toBe(plain.generated);
  });

  it('runs far past the trained length with DCA and chunked prefill', async () => {
    const m = model();
    applyDca(m, {}, 512);
    const r = await evaluatePasskey({ model: m, tokenizerFolder: FOLDER, context: 1500, depth: 0.2, prefillChunk: 320 });
    expect(r.promptTokens).toBeGreaterThan(1300);
    expect(r.keyMass.every((k) => Number.isFinite(k.mass) && k.mass > 0)).toBe(true);
    expect(r.retrieved).toBe(false); // a 656K-parameter model cannot copy; the mass is the check
  });

  it('rejects a depth outside [0, 1]', async () => {
    await expect(evaluatePasskey({ model: model(), tokenizerFolder: FOLDER, context: 100, depth: 2 })).rejects.toThrow(/depth must be between 0 and 1/);
  });
});
