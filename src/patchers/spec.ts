/**
 * @file Patch specs: how users name patches (`'gqa'`, `'gqa:kvHeads=2,window=256'`, `{ gqa: { kvHeads: 2 } }`),
 * the registry of patches, and applying a list of them in order.
 */
import { AttnpatchError } from '../errors.js';
import type { Model } from '../graph/ir/model.js';
import { applyDca, type DcaOptions } from './dca/index.js';
import { applyGqa, type GqaOptions } from './gqa/index.js';
import { applyMla, type MlaOptions } from './mla/index.js';
import type { PatchReport } from './patch.js';

/** A patch by name, with options. */
export type PatchSpec = string | { readonly [name: string]: Readonly<Record<string, unknown>> };

export interface PatchStep {
  name: string;
  options: Record<string, unknown>;
}

/** What patches may know about the model beyond its graph (from config.json). */
export interface PatchContext {
  /** config.json's max_position_embeddings. */
  maxPositionEmbeddings?: number;
}

type PatchFn = (model: Model, options: Record<string, unknown>, context: PatchContext) => PatchReport;

/** Every patch attnpatch knows, by name. */
export const PATCHES: Readonly<Record<string, PatchFn>> = Object.freeze({
  gqa: (model, options) => applyGqa(model, options as GqaOptions),
  dca: (model, options, context) => applyDca(model, options as DcaOptions, context.maxPositionEmbeddings),
  mla: (model, options, context) => applyMla(model, options as MlaOptions, context.maxPositionEmbeddings),
});

/** Each patch's option names, typed against its options interface so a new option cannot be forgotten here. */
type Keys<T> = Record<keyof Required<T>, true>;
const GQA_KEYS: Keys<GqaOptions> = { kvHeads: true, merge: true, calibration: true, window: true, maxContext: true, rotary: true, strict: true, target: true };
const DCA_KEYS: Keys<DcaOptions> = { chunkSize: true, localWindow: true, temperature: true, trainedLength: true, interBias: true, strict: true };
const MLA_KEYS: Keys<MlaOptions> = {
  layout: true, method: true, rank: true, rankK: true, rankV: true, kvRatio: true, allocation: true, calibration: true, value: true,
  refit: true, ridge: true, maxContext: true, strict: true,
};
const OPTION_KEYS: Readonly<Record<string, readonly string[]>> = { gqa: Object.keys(GQA_KEYS), dca: Object.keys(DCA_KEYS), mla: Object.keys(MLA_KEYS) };

/** A misspelt option would otherwise patch with the defaults and say nothing (`gqa:windw=2`). */
function checkOptionNames(step: PatchStep): void {
  const known = OPTION_KEYS[step.name] ?? [];
  for (const key of Object.keys(step.options)) {
    if (known.includes(key)) continue;
    const near = known.find((k) => k.toLowerCase() === key.toLowerCase()) ?? known.find((k) => editDistance(k.toLowerCase(), key.toLowerCase()) <= 2);
    throw new AttnpatchError('USAGE', `unknown option ${JSON.stringify(key)} for patch ${step.name}${near ? ` (did you mean ${near}?)` : ''}; its options are: ${known.join(', ')}`, { field: `${step.name}.${key}` });
  }
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}

function scalar(s: string): unknown {
  if (/^-?\d+(\.\d+)?(e-?\d+)?$/i.test(s)) return Number(s);
  if (s === 'true' || s === 'false') return s === 'true';
  return s;
}

/** Parses one spec into a name and options, checking the name. */
export function parsePatchSpec(spec: PatchSpec): PatchStep {
  let step: PatchStep;
  if (typeof spec === 'string') {
    const [name = '', rest] = spec.split(/:(.*)/s, 2);
    const options: Record<string, unknown> = {};
    for (const pair of rest ? rest.split(',') : []) {
      const m = /^\s*([A-Za-z_][\w]*)\s*=\s*(.*?)\s*$/.exec(pair);
      if (!m) throw new AttnpatchError('USAGE', `cannot read option ${JSON.stringify(pair)} in patch spec ${JSON.stringify(spec)}; write name=value`, { field: 'patch' });
      options[m[1]!] = scalar(m[2]!);
    }
    step = { name: name.trim(), options };
  } else {
    const entries = Object.entries(spec);
    if (entries.length !== 1) throw new AttnpatchError('USAGE', `a patch object names exactly one patch, got ${entries.length}`, { field: 'patch' });
    step = { name: entries[0]![0], options: { ...entries[0]![1] } };
  }
  if (!PATCHES[step.name]) {
    throw new AttnpatchError('USAGE', `unknown patch ${JSON.stringify(step.name)}; should be one of: ${Object.keys(PATCHES).join(', ')}`, { field: 'patch' });
  }
  checkOptionNames(step);
  return step;
}

/** Applies patches in the order given; returns one report per patch. */
export function applyPatches(model: Model, specs: readonly PatchSpec[], context: PatchContext = {}): PatchReport[] {
  const steps = specs.map(parsePatchSpec);
  return steps.map((s) => PATCHES[s.name]!(model, s.options, context));
}

/** A stable text form of specs (for cache keys and reports). */
export function specKey(specs: readonly PatchSpec[]): string {
  return JSON.stringify(specs.map(parsePatchSpec).map((s) => [s.name, Object.fromEntries(Object.entries(s.options).sort(([a], [b]) => a.localeCompare(b)))]));
}
