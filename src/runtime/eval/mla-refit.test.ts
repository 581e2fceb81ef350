/** The mla refit: it lowers the calibration loss of a lossy patch and leaves exact blocks alone. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { saveModelToBytes } from '../../graph/io/bytes.js';
import { loadModelFile } from '../../graph/io/fs.js';
import { applyMla } from '../../patchers/mla/index.js';
import { REPO_ROOT, shared } from '../../../test/support/paths.js';
import { collectHiddenCalibration } from './calibrate.js';
import { refitMlaOutputs } from './mla-refit.js';
import { evaluatePerplexityIds } from './perplexity.js';
import { tokenizeText } from './tokenize.js';

const FOLDER = join(REPO_ROOT, 'models', 'tinystories-656k');

describe('refitMlaOutputs', () => {
  it('refits lossy layers in order (lower loss on the calibration text), skips exact ones', async () => {
    const text = readFileSync(shared('corpus-tinystories-val', 'tinystories_val.txt'), 'utf8').slice(0, 12_000);
    const { ids } = await tokenizeText(FOLDER, text);
    const calibration = await collectHiddenCalibration({ model: loadModelFile(FOLDER), ids, tokens: 2048 });
    expect(calibration.ids).toHaveLength(calibration.tokens);
    const ppl = async (m: ReturnType<typeof loadModelFile>) => (await evaluatePerplexityIds({ model: saveModelToBytes(m), ids: ids.slice(0, 2048), context: 512 })).ppl;

    const lossy = loadModelFile(FOLDER);
    applyMla(lossy, { rank: 24, calibration });
    const before = await ppl(lossy);
    const report = await refitMlaOutputs({ original: loadModelFile(FOLDER), patched: lossy, ids: calibration.ids!, tokens: 2048 });
    expect(report.layers).toEqual([0, 1]);
    expect(report.change.every((c) => c > 0.01)).toBe(true);
    expect(await ppl(lossy)).toBeLessThan(before);

    const exact = loadModelFile(FOLDER);
    applyMla(exact, { rank: 'full', calibration });
    expect((await refitMlaOutputs({ original: loadModelFile(FOLDER), patched: exact, ids: calibration.ids!, tokens: 512 })).layers).toEqual([]);
  });
});
