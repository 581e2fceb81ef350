/**
 * @file The pattern language: a pattern is plain data describing how a value was computed, read from the value
 * up through its producers. `op('MatMul', [any('x'), constant('w')])` matches a value made by a MatMul whose
 * inputs match the sub-patterns; `any`, `cap`, `oneOf`, `optional`, `where`, `constant`, `graphInput` and `is`
 * complete it. Builders only build data; `match.ts` interprets it.
 *
 * Captures: `any('x')` / `cap('x', p)` bind values, `op(..., { as: 'n' })` binds the node, `oneOf(..., { tag })`
 * binds which branch matched. A name used twice must bind the same thing both times, which is how a pattern
 * says "the same x" (rope reads x in two places).
 */
import type { Node } from '../ir/node.js';
import type { Value } from '../ir/value.js';

/** What a successful (partial) match has bound so far. */
export interface Bindings {
  readonly values: Readonly<Record<string, Value>>;
  readonly ops: Readonly<Record<string, Node>>;
  readonly tags: Readonly<Record<string, string>>;
}

/** A predicate: true to accept, false or a reason (string) to reject. */
export type Check = (value: Value, bindings: Bindings) => boolean | string;

/** Attribute values an op pattern can require: int / float (number), ints (number[]), string. */
export type AttrValue = number | readonly number[] | string;

export interface OpPattern {
  readonly kind: 'op';
  /** Accepted op types (one of). */
  readonly ops: readonly string[];
  /** '' (the default ONNX domain, same as 'ai.onnx') unless set. */
  readonly domain: string;
  /** Sub-patterns for the first inputs; extra node inputs are ignored unless `exact`. Undefined: inputs not looked at. */
  readonly inputs: readonly Pattern[] | undefined;
  /** Two-input ops only: also try the inputs swapped (Add, Mul). */
  readonly commute: boolean;
  /** The node must have exactly `inputs.length` inputs (trailing absent inputs count as absent). */
  readonly exact: boolean;
  /** Bind the node under this name. */
  readonly as: string | undefined;
  /** Attributes the node must carry with these values. */
  readonly attrs: Readonly<Record<string, AttrValue>> | undefined;
  /** The matched value must be this output of the node. */
  readonly output: number | undefined;
}

export interface AnyPattern {
  readonly kind: 'any';
  readonly name: string | undefined;
}

export interface CapPattern {
  readonly kind: 'cap';
  readonly name: string;
  readonly inner: Pattern;
}

export interface OneOfPattern {
  readonly kind: 'oneOf';
  readonly options: readonly Pattern[];
  /** Bind the label of the branch that matched under this name. */
  readonly tag: string | undefined;
  readonly labels: readonly string[];
}

export interface OptionalPattern {
  readonly kind: 'optional';
  /** Tried first; when it cannot match, `inner.inputs[through]` is matched against the same value instead. */
  readonly inner: OpPattern;
  readonly through: number;
}

export interface WherePattern {
  readonly kind: 'where';
  readonly inner: Pattern;
  readonly check: Check;
  /** Named in the failure reason when the check returns false. */
  readonly label: string;
}

export interface ConstPattern {
  readonly kind: 'const';
  readonly name: string | undefined;
}

export interface InputPattern {
  readonly kind: 'input';
  readonly name: string | undefined;
}

export interface IsPattern {
  readonly kind: 'is';
  readonly value: Value;
}

export type Pattern = OpPattern | AnyPattern | CapPattern | OneOfPattern | OptionalPattern | WherePattern | ConstPattern | InputPattern | IsPattern;

export interface OpOptions {
  domain?: string;
  commute?: boolean;
  exact?: boolean;
  as?: string;
  attrs?: Record<string, AttrValue>;
  output?: number;
}

/** A value produced by a node of one of `ops`, whose inputs match `inputs` (positionally). */
export function op(ops: string | readonly string[], inputs?: readonly Pattern[], options: OpOptions = {}): OpPattern {
  if (options.commute && inputs?.length !== 2) throw new Error('commute needs exactly two input patterns');
  return {
    kind: 'op',
    ops: typeof ops === 'string' ? [ops] : [...ops],
    domain: options.domain ?? '',
    inputs,
    commute: options.commute ?? false,
    exact: options.exact ?? false,
    as: options.as,
    attrs: options.attrs,
    output: options.output,
  };
}

/** The same op pattern with its two inputs matched in either order. */
export function commute(p: OpPattern): OpPattern {
  if (p.inputs?.length !== 2) throw new Error('commute needs exactly two input patterns');
  return { ...p, commute: true };
}

/** Any present value; bound under `name` when given. */
export function any(name?: string): AnyPattern {
  return { kind: 'any', name };
}

/** Matches `inner` and binds the value under `name`. */
export function cap(name: string, inner: Pattern): CapPattern {
  return { kind: 'cap', name, inner };
}

/** The first of `options` that matches (later ones are tried on backtracking); `tag` binds the branch label. */
export function oneOf(options: readonly Pattern[], config: { tag?: string; labels?: readonly string[] } = {}): OneOfPattern {
  const labels = config.labels ?? options.map((_, i) => String(i));
  if (labels.length !== options.length) throw new Error('oneOf needs one label per option');
  return { kind: 'oneOf', options: [...options], tag: config.tag, labels: [...labels] };
}

/** `inner` or, skipping that node, its input `through` (default 0): e.g. `optional(op('Cast', [x]))`. */
export function optional(inner: OpPattern, config: { through?: number } = {}): OptionalPattern {
  const through = config.through ?? 0;
  if (!inner.inputs?.[through]) throw new Error(`optional: the op pattern has no input pattern ${through} to match through`);
  return { kind: 'optional', inner, through };
}

/** `inner`, then `check(value, bindings)`: false or a string (the reason) rejects. */
export function where(inner: Pattern, check: Check, label = 'check'): WherePattern {
  return { kind: 'where', inner, check, label };
}

/** A constant: an initializer or a `Constant` node's output (through `Identity`). */
export function constant(name?: string): ConstPattern {
  return { kind: 'const', name };
}

/** A graph input (or an outer-scope value): produced by no node and not an initializer. */
export function graphInput(name?: string): InputPattern {
  return { kind: 'input', name };
}

/** Exactly this value. */
export function is(value: Value): IsPattern {
  return { kind: 'is', value };
}
