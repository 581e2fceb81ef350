/**
 * @file Tokenizing evaluation and calibration text with a model folder's own tokenizer (transformers.js,
 * local files only: nothing is fetched and transformers.js's global `env` is left alone).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { PreTrainedTokenizer } from '@huggingface/transformers';
import { AttnpatchError, withContext } from '../../errors.js';

const loaded = new Map<string, Promise<PreTrainedTokenizer>>();

/** The tokenizer of a transformers.js model folder (tokenizer.json + tokenizer_config.json), loaded once. */
export function loadTokenizer(folder: string): Promise<PreTrainedTokenizer> {
  // NOTE: an absolute path is not a valid Hub id, so transformers.js reads it as a local path as is (a relative
  // "models/x" would be taken for a Hub id and looked up under env.localModelPath).
  const abs = resolve(folder);
  let p = loaded.get(abs);
  if (!p) {
    if (!existsSync(join(abs, 'tokenizer.json'))) {
      throw new AttnpatchError('USAGE', 'no tokenizer.json in this folder; give the transformers.js model folder', { file: abs });
    }
    // NOTE: imported on first use: transformers.js takes ~0.3 s to load, which every CLI command would pay otherwise.
    p = import('@huggingface/transformers')
      .then(({ AutoTokenizer }) => AutoTokenizer.from_pretrained(abs, { local_files_only: true }))
      .catch((e: unknown) => {
        loaded.delete(abs);
        throw withContext(e, { file: abs });
      });
    loaded.set(abs, p);
  }
  return p;
}

export interface Tokenized {
  /** Token ids of the text, no special tokens. */
  ids: number[];
  /** The tokenizer's beginning-of-sequence id, when it has one. */
  bos: number | undefined;
}

/** Tokenizes the whole text at once with no special tokens (no BOS). */
export async function tokenizeText(folder: string, text: string): Promise<Tokenized> {
  const tok = await loadTokenizer(folder);
  const ids = tok.encode(text, { add_special_tokens: false });
  const bos = tok.bos_token_id;
  return { ids, bos: typeof bos === 'number' ? bos : undefined };
}
