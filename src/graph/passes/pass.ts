/**
 * @file The pass contract: a named, in-place transformation of a Model that says whether it changed anything.
 * `sequential` composes passes into one; an error escaping a pass is re-thrown with the pass name and the passes
 * that ran before it, so a failure deep in a pipeline says where it happened (after ir-py's `_pass_infra.py`).
 */
import { AttnpatchError, isAttnpatchError } from '../../errors.js';
import type { Model } from '../ir/model.js';

/** What a pass did. `count` is pass-specific (nodes moved, nodes removed, …); warnings are for humans. */
export interface PassResult {
  modified: boolean;
  count?: number;
  warnings?: string[];
}

/** An in-place transformation of a model. */
export interface Pass {
  readonly name: string;
  run(model: Model): PassResult;
}

/** Runs one pass, re-throwing any error with the pass name (and the passes before it) in the message. */
export function runPass(pass: Pass, model: Model, before: readonly string[] = []): PassResult {
  try {
    return pass.run(model);
  } catch (e) {
    const prefix = `pass ${pass.name}${before.length ? ` (after ${before.join(', ')})` : ''} failed: `;
    // NOTE: typed errors keep their code and location; only the message gains the pass name.
    if (isAttnpatchError(e)) throw new AttnpatchError(e.code, prefix + e.rawMessage, e.where, { cause: e });
    throw new Error(prefix + (e instanceof Error ? e.message : String(e)), { cause: e });
  }
}

/** One pass that runs `passes` in order; modified if any was, counts summed, warnings prefixed with the pass name. */
export function sequential(...passes: Pass[]): Pass {
  return {
    name: `sequential(${passes.map((p) => p.name).join(', ')})`,
    run(model) {
      let modified = false;
      let count = 0;
      let counted = false;
      const warnings: string[] = [];
      const done: string[] = [];
      for (const pass of passes) {
        const r = runPass(pass, model, done);
        done.push(pass.name);
        modified ||= r.modified;
        if (r.count !== undefined) {
          count += r.count;
          counted = true;
        }
        for (const w of r.warnings ?? []) warnings.push(`${pass.name}: ${w}`);
      }
      return { modified, ...(counted ? { count } : {}), ...(warnings.length ? { warnings } : {}) };
    },
  };
}
