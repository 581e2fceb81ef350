/**
 * @file Why a match failed. Every rejected step records a failure; the match reports the deepest one (the one
 * reached after consuming the most nodes, then the one furthest down the pattern), which is where the graph
 * stopped looking like the pattern. Equally deep "expected X, found Y" failures at the same value merge into
 * one ("expected Add or MatMul, found graph input 'k'"), so an `optional` or `oneOf` names every accepted op.
 */
import type { Value } from '../ir/value.js';

/** One rejected step of a match. */
export interface TraceEvent {
  /** Human text: "expected MatMul, found Transpose", "Transpose perm=[0,2,1,3], expected [0,1,3,2]". */
  readonly reason: string;
  /** The value being matched when the step failed (null: an absent optional input). */
  readonly at: Value | null;
  /** Steps from the root, e.g. ["Softmax.in0", "Add.in0"]. */
  readonly path: readonly string[];
  /** Nodes consumed when it failed; with the path length, orders failures by depth. */
  readonly progress: number;
  /** For "expected X, found Y" failures: the accepted ops and what was found instead. */
  readonly expected?: readonly string[];
  readonly found?: string;
}

/** Collects failures of one match call; keeps the deepest, and every event when `events` is given. */
export class FailureLog {
  deepest: TraceEvent | undefined;

  constructor(readonly events?: TraceEvent[]) {}

  record(e: TraceEvent): void {
    this.events?.push(e);
    const d = this.deepest;
    if (!d || deeper(e, d)) {
      this.deepest = e;
      return;
    }
    if (e.expected && d.expected && e.found === d.found && e.at === d.at && !deeper(d, e) && samePath(e.path, d.path)) {
      const expected = [...new Set([...d.expected, ...e.expected])];
      this.deepest = { ...d, expected, reason: expectedReason(expected, d.found ?? '') };
    }
  }
}

function deeper(a: TraceEvent, b: TraceEvent): boolean {
  return a.progress !== b.progress ? a.progress > b.progress : a.path.length > b.path.length;
}

function samePath(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((s, i) => s === b[i]);
}

/** "expected A or B, found C". */
export function expectedReason(expected: readonly string[], found: string): string {
  return `expected ${expected.join(' or ')}, found ${found}`;
}

/** How a value is described in reasons: `Transpose`, `graph input 'x'`, `initializer 'w'`. */
export function describeValue(v: Value | null): string {
  if (!v) return 'an absent input';
  if (v.producer) return v.producer.opType;
  if (v.initializer) return `initializer '${v.name}'`;
  return `graph input '${v.name}'`;
}

/** One line for a failure: `Softmax.in0 > Add.in0 (value 'x', from Transpose 't'): expected MatMul, found Transpose`. */
export function explain(f: { reason: string; at: Value | null; path: readonly string[] }): string {
  const where = f.path.length ? f.path.join(' > ') : 'root';
  const producer = f.at?.producer;
  const what = f.at ? ` (value '${f.at.name}'${producer?.name ? `, from ${producer.opType} '${producer.name}'` : ''})` : '';
  return `${where}${what}: ${f.reason}`;
}
