/**
 * @file onnxruntime-genai's genai_config.json beside (or instead of) config.json. Its `model` object (type,
 * context_length, decoder sizes) is kept under the key `model` of the config attnpatch reads, so `identify` sees
 * `model.type` and a GenAI-only folder still matches a recipe; `context_length` stands in for
 * `max_position_embeddings` when config.json does not give it (the GenAI builder writes the one from the other).
 */
import { configValue, type ModelConfig } from './match.js';

/** config.json (may be missing) with genai_config.json's `model` merged in; config.json's own fields win. */
export function mergeGenaiConfig(config: ModelConfig | undefined, genai: unknown): ModelConfig | undefined {
  const model = genai !== null && typeof genai === 'object' ? (genai as Record<string, unknown>).model : undefined;
  if (model === null || typeof model !== 'object') return config;
  if (config && 'model' in config) return config;
  return { ...(config ?? {}), model };
}

/** A merged genai_config's model.context_length. */
export function genaiContextLength(config: ModelConfig | undefined): number | undefined {
  const n = configValue(config, 'model.context_length');
  return typeof n === 'number' && n > 0 ? n : undefined;
}

/** The trained context of a config: max_position_embeddings, else a merged genai_config's model.context_length. */
export function contextLengthOf(config: ModelConfig | undefined): number | undefined {
  const n = configValue(config, 'max_position_embeddings');
  return typeof n === 'number' && n > 0 ? n : genaiContextLength(config);
}
