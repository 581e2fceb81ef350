/**
 * @file The pattern matcher's public face: build patterns as data (`op`, `any`, `cap`, `oneOf`, `optional`,
 * `where`, `constant`, `graphInput`, `is`, `commute`), `match` them against a value (walking producers upward),
 * read why a match failed (`explain`), and walk down or collect owned nodes (`consumerOf`, `exclusiveNodes`).
 */
export {
  any,
  cap,
  commute,
  constant,
  graphInput,
  is,
  oneOf,
  op,
  optional,
  where,
  type AttrValue,
  type Bindings,
  type Check,
  type OpOptions,
  type OpPattern,
  type Pattern,
} from './pattern.js';
export { isConstant, match, matchNode, type MatchFailure, type MatchOptions, type MatchResult, type MatchSuccess } from './match.js';
export { describeValue, explain, FailureLog, type TraceEvent } from './trace.js';
export { consumerOf, exclusiveNodes, type ClosureOptions, type ConsumerOptions, type Found } from './walk.js';
