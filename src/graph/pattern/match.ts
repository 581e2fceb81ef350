/**
 * @file The matcher: interprets a pattern against a value, walking producers upward. It is a depth-first search
 * with full backtracking (generators): `oneOf` tries its options in order, `optional` tries the node first and
 * then skips it, `commute` tries both input orders, and a later failure (say a repeated capture that disagrees)
 * resumes the earlier choices. The first complete match wins, so option order states preference.
 *
 * Pure: the graph is only read, and all state lives in the immutable `State` threaded through the search and
 * in the per-call failure log.
 */
import { attrFloat, attrInts, attrString } from '../ir/attribute.js';
import type { Node } from '../ir/node.js';
import type { Value } from '../ir/value.js';
import type { AttrValue, Bindings, OpPattern, Pattern } from './pattern.js';
import { describeValue, expectedReason, FailureLog, type TraceEvent } from './trace.js';

export interface MatchSuccess {
  readonly ok: true;
  readonly bindings: Bindings;
  /** Every node the match consumed (op patterns), in the order they were matched, without duplicates. */
  readonly nodes: readonly Node[];
}

export interface MatchFailure {
  readonly ok: false;
  /** Why the deepest attempt failed. */
  readonly reason: string;
  /** The value it failed at. */
  readonly at: Value | null;
  /** Where in the pattern, from the root: ["Softmax.in0", "Add.in0"]. */
  readonly path: readonly string[];
}

export type MatchResult = MatchSuccess | MatchFailure;

export interface MatchOptions {
  /** Receives every failed step (for debugging a pattern), not only the deepest. */
  trace?: TraceEvent[];
  /** Gives up after this many steps (default 100 000): guards against patterns that explode combinatorially. */
  maxSteps?: number;
}

interface State extends Bindings {
  readonly nodes: readonly Node[];
}

interface Ctx {
  readonly log: FailureLog;
  steps: number;
  readonly maxSteps: number;
}

const EMPTY: State = { values: {}, ops: {}, tags: {}, nodes: [] };
const STEP_LIMIT = 100_000;

/** Matches `pattern` against `value` (the output of the root node). */
export function match(pattern: Pattern, value: Value | null, options: MatchOptions = {}): MatchResult {
  const ctx: Ctx = { log: new FailureLog(options.trace), steps: 0, maxSteps: options.maxSteps ?? STEP_LIMIT };
  for (const s of walk(pattern, value, EMPTY, ctx, [])) {
    return { ok: true, bindings: { values: s.values, ops: s.ops, tags: s.tags }, nodes: s.nodes };
  }
  const d = ctx.log.deepest;
  return { ok: false, reason: d?.reason ?? 'no match', at: d?.at ?? value, path: d?.path ?? [] };
}

/** Matches against output `index` of a node. */
export function matchNode(pattern: Pattern, node: Node, index = 0): MatchResult {
  return match(pattern, node.outputs[index] ?? null);
}

function fail(ctx: Ctx, s: State, at: Value | null, path: readonly string[], reason: string, expected?: readonly string[]): void {
  const event: TraceEvent = { reason, at, path, progress: s.nodes.length };
  ctx.log.record(expected ? { ...event, expected, found: describeValue(at) } : event);
}

function* walk(p: Pattern, v: Value | null, s: State, ctx: Ctx, path: readonly string[]): Generator<State> {
  if (++ctx.steps > ctx.maxSteps) {
    if (ctx.steps === ctx.maxSteps + 1) fail(ctx, s, v, path, `search limit of ${ctx.maxSteps} steps reached`);
    return;
  }
  switch (p.kind) {
    case 'op':
      yield* walkOp(p, v, s, ctx, path);
      return;
    case 'any': {
      if (!v) return fail(ctx, s, v, path, 'input is absent');
      const b = bind(s, 'values', p.name, v);
      if (typeof b === 'string') return fail(ctx, s, v, path, b);
      yield b;
      return;
    }
    case 'cap':
      for (const s1 of walk(p.inner, v, s, ctx, path)) {
        const b = bind(s1, 'values', p.name, v as Value);
        if (typeof b === 'string') fail(ctx, s1, v, path, b);
        else yield b;
      }
      return;
    case 'oneOf':
      for (let i = 0; i < p.options.length; i++) {
        for (const s1 of walk(p.options[i]!, v, s, ctx, path)) {
          const b = bind(s1, 'tags', p.tag, p.labels[i]!);
          if (typeof b === 'string') fail(ctx, s1, v, path, b);
          else yield b;
        }
      }
      return;
    case 'optional':
      yield* walk(p.inner, v, s, ctx, path);
      yield* walk(p.inner.inputs![p.through]!, v, s, ctx, path);
      return;
    case 'where':
      for (const s1 of walk(p.inner, v, s, ctx, path)) {
        const r = p.check(v as Value, s1);
        if (r === true) yield s1;
        else fail(ctx, s1, v, path, typeof r === 'string' ? r : `${p.label} failed`);
      }
      return;
    case 'const': {
      if (!isConstant(v)) return fail(ctx, s, v, path, `expected a constant, found ${describeValue(v)}`);
      const b = bind(s, 'values', p.name, v as Value);
      if (typeof b === 'string') return fail(ctx, s, v, path, b);
      yield b;
      return;
    }
    case 'input': {
      if (!v || v.producer || v.initializer) return fail(ctx, s, v, path, `expected a graph input, found ${describeValue(v)}`);
      const b = bind(s, 'values', p.name, v);
      if (typeof b === 'string') return fail(ctx, s, v, path, b);
      yield b;
      return;
    }
    case 'is':
      if (v === p.value) yield s;
      else fail(ctx, s, v, path, `expected value '${p.value.name}', found ${v ? `'${v.name}'` : 'an absent input'}`);
      return;
  }
}

function* walkOp(p: OpPattern, v: Value | null, s: State, ctx: Ctx, path: readonly string[]): Generator<State> {
  const n = v?.producer;
  if (!v || !n || !p.ops.includes(n.opType) || !sameDomain(n.domain, p.domain)) {
    return fail(ctx, s, v, path, expectedReason(p.ops, describeValue(v)), p.ops);
  }
  if (p.output !== undefined && v.outputIndex !== p.output) {
    return fail(ctx, s, v, path, `expected output ${p.output} of ${n.opType}, found output ${v.outputIndex}`);
  }
  for (const [name, want] of Object.entries(p.attrs ?? {})) {
    const why = attrMismatch(n, name, want);
    if (why) return fail(ctx, s, v, path, why);
  }
  const named = bind(s, 'ops', p.as, n);
  if (typeof named === 'string') return fail(ctx, s, v, path, named);
  const s0: State = named.nodes.includes(n) ? named : { ...named, nodes: [...named.nodes, n] };
  if (!p.inputs) {
    yield s0;
    return;
  }
  const arity = lastPresent(n) + 1;
  if (p.exact && arity !== p.inputs.length) {
    return fail(ctx, s0, v, path, `${n.opType} has ${arity} inputs, expected ${p.inputs.length}`);
  }
  const orders = p.commute ? [[0, 1], [1, 0]] : [p.inputs.map((_, i) => i)];
  for (const order of orders) {
    yield* walkInputs(p, n, order, 0, s0, ctx, path);
  }
}

function* walkInputs(p: OpPattern, n: Node, order: readonly number[], i: number, s: State, ctx: Ctx, path: readonly string[]): Generator<State> {
  if (i === order.length) {
    yield s;
    return;
  }
  const slot = order[i]!;
  const step = [...path, `${n.opType}.in${slot}`];
  for (const s1 of walk(p.inputs![i]!, n.input(slot), s, ctx, step)) yield* walkInputs(p, n, order, i + 1, s1, ctx, path);
}

type Slot = 'values' | 'ops' | 'tags';

/** Binds `name` (if any) to `x`; a name already bound to something else is a failure reason. */
function bind<K extends Slot>(s: State, slot: K, name: string | undefined, x: State[K][string]): State | string {
  if (name === undefined) return s;
  const old = s[slot][name];
  if (old === undefined) return { ...s, [slot]: { ...s[slot], [name]: x } };
  if (old === x) return s;
  return `'${name}' is already bound to ${label(old)}, not ${label(x)}`;
}

function label(x: Value | Node | string): string {
  return typeof x === 'string' ? `'${x}'` : 'opType' in x ? `${x.opType} '${x.name}'` : `'${x.name}'`;
}

function sameDomain(a: string, b: string): boolean {
  const norm = (d: string) => (d === 'ai.onnx' ? '' : d);
  return norm(a) === norm(b);
}

function lastPresent(n: Node): number {
  for (let i = n.inputs.length - 1; i >= 0; i--) if (n.inputs[i]) return i;
  return -1;
}

function attrMismatch(n: Node, name: string, want: AttrValue): string | undefined {
  const a = n.attr(name);
  if (!a) return `${n.opType} has no attribute ${name}, expected ${show(want)}`;
  let got: AttrValue | undefined;
  if (typeof want === 'number') got = attrFloat(n, name);
  else if (typeof want === 'string') got = attrString(n, name);
  else got = attrInts(n, name);
  const same = Array.isArray(want) && Array.isArray(got) ? want.length === got.length && want.every((x, i) => x === got[i]) : got === want;
  return same ? undefined : `${n.opType} ${name}=${got === undefined ? a.type : show(got)}, expected ${show(want)}`;
}

function show(x: AttrValue): string {
  return Array.isArray(x) ? `[${x.join(',')}]` : String(x);
}

/** True for an initializer or a `Constant` node's output, through `Identity`. */
export function isConstant(v: Value | null | undefined): boolean {
  for (let hop = 0; v && hop < 8; hop++) {
    if (v.initializer) return true;
    const p = v.producer;
    if (!p || !sameDomain(p.domain, '')) return false;
    if (p.opType === 'Constant') return true;
    if (p.opType !== 'Identity') return false;
    v = p.input(0);
  }
  return false;
}
