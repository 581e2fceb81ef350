/**
 * @file Validating a recipe and turning zod's issues into one readable `AttnpatchError('USAGE')`: every problem as
 * `field.path: what was expected, got what`, the file and the first field in `where`. Formatting lives here, apart
 * from the schema (zod keeps issues as data; so do we until the boundary).
 */
import type { z } from 'zod';
import { AttnpatchError } from '../errors.js';
import { RecipeSchema, type Recipe } from './schema.js';

type Issue = z.core.$ZodIssue;

/** `match.modelTypes[0]`; the recipe itself is `(recipe)`. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out ? '.' : ''}${String(p)}`;
  return out || '(recipe)';
}

/** What a value is, briefly: `"512"`, `42`, `null`, `an object`, `a list`. */
function shown(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (v !== null && typeof v === 'object') return 'an object';
  const s = JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 37)}…` : s;
}

/** One issue as text: zod's own message where it is ours (custom errors), a clearer one for the common codes. */
function describe(issue: Issue): string {
  const got = 'input' in issue ? `, got ${shown(issue.input)}` : '';
  switch (issue.code) {
    case 'invalid_type':
      if ('input' in issue && issue.input === undefined) return `missing; expected ${issue.expected}`;
      // NOTE: a custom error (`{ error: … }` in the schema) replaces zod's "Invalid input: expected …" text.
      return issue.message.startsWith('Invalid input') ? `expected ${issue.expected}${got}` : `${issue.message}${got}`;
    case 'invalid_value':
      return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}${got}`;
    case 'unrecognized_keys':
      return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
    case 'too_small':
      return issue.origin === 'array' ? `expected at least ${String(issue.minimum)} entr${issue.minimum === 1 ? 'y' : 'ies'}` : `${issue.message}${got}`;
    default:
      return `${issue.message}${issue.code === 'custom' ? '' : got}`;
  }
}

/** Validates `data` as a recipe; `file` names where it came from in errors. */
export function parseRecipe(data: unknown, file: string): Recipe {
  const r = RecipeSchema.safeParse(data, { reportInput: true });
  if (r.success) return r.data;
  const issues = r.error.issues;
  const lines = issues.map((i) => `${fieldPath(i.path)}: ${describe(i)}`);
  const first = fieldPath(issues[0]?.path ?? []);
  throw new AttnpatchError('USAGE', `invalid recipe: ${lines.join('; ')}`, { file, field: first });
}
