/**
 * @file DCA parameters: chunk size CS and local window LW (chunk length L = CS − LW), defaults from the trained
 * length c (CS = ⌊3c/4⌋, LW = ⌊c/8⌋, as ChunkLlama), and the attention temperature. Nonsense is rejected with a
 * message that says what would work.
 */
import { AttnpatchError } from '../../errors.js';

export type Temperature = 'none' | 'chunkllama' | 'qwen';

/** Logits are scaled by f(T)², f = max(1, coef·ln(T / c) + 1) (shared/reference/algorithms.md §1.6). */
export const TEMPERATURE_COEF: Readonly<Record<Temperature, number>> = Object.freeze({ none: 0, chunkllama: 0.05, qwen: 0.1 });

export interface DcaOptions {
  chunkSize?: number;
  localWindow?: number;
  /** Attention temperature: a named schedule, or the coefficient a of f = max(1, a·ln(T/c) + 1) directly. */
  temperature?: Temperature | number;
  /** The context the model was trained on (default: config.json's max_position_embeddings). */
  trainedLength?: number;
  /**
   * Inter-chunk bias γ ≥ 0 (attnpatch's extension, default 0 = the paper): every inter-chunk key's logit gets
   * −γ·ln(number of inter chunks), so the many keys sharing the capped inter positions share one chunk's budget.
   */
  interBias?: number;
  /** Throw instead of leaving blocks unpatched. */
  strict?: boolean;
}

export interface DcaParams {
  chunkSize: number;
  localWindow: number;
  chunkLength: number;
  trainedLength: number;
  temperature: Temperature | number;
  temperatureCoef: number;
  interBias: number;
}

const usage = (message: string, field: string) => new AttnpatchError('USAGE', message, { field: `dca.${field}` });

/** Resolves and checks the parameters; `configLength` is config.json's max_position_embeddings when known. */
export function dcaParams(o: DcaOptions, configLength?: number): DcaParams {
  const c = o.trainedLength ?? configLength;
  if (c === undefined) throw usage('dca needs the trained context length: pass trainedLength (dca:trainedLength=N), or patch through the pipeline or CLI from a folder whose config.json has max_position_embeddings (patchModel: pass { maxPositionEmbeddings } as its context)', 'trainedLength');
  const whole = (v: unknown, name: string) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw usage(`dca option ${name} must be a whole number, got ${String(v)}`, name);
    return v;
  };
  whole(c, 'trainedLength');
  const chunkSize = whole(o.chunkSize ?? Math.floor((3 * c) / 4), 'chunkSize');
  const localWindow = whole(o.localWindow ?? Math.floor(c / 8), 'localWindow');
  const temperature = o.temperature ?? 'none';
  const numeric = typeof temperature === 'number';
  if (numeric ? !(temperature >= 0) : !(temperature in TEMPERATURE_COEF)) {
    throw usage(`dca option temperature must be one of ${Object.keys(TEMPERATURE_COEF).join(', ')} or a coefficient ≥ 0; got ${String(temperature)}`, 'temperature');
  }
  if (chunkSize >= c) throw usage(`chunkSize ${chunkSize} must be below the trained length ${c} (positions reach chunkSize; default ⌊3c/4⌋ = ${Math.floor((3 * c) / 4)})`, 'chunkSize');
  if (localWindow >= chunkSize) throw usage(`localWindow ${localWindow} must be below chunkSize ${chunkSize}`, 'localWindow');
  const chunkLength = chunkSize - localWindow;
  if (chunkLength < 1) throw usage(`chunkSize − localWindow must be at least 1`, 'chunkSize');
  const interBias = o.interBias ?? 0;
  if (typeof interBias !== 'number' || !(interBias >= 0)) throw usage(`dca option interBias must be a number ≥ 0, got ${String(interBias)}`, 'interBias');
  return { chunkSize, localWindow, chunkLength, trainedLength: c, temperature, temperatureCoef: numeric ? temperature : TEMPERATURE_COEF[temperature], interBias };
}
