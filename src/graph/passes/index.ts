/**
 * @file The graph passes: the pass contract and composition, and the passes every pipeline ends with
 * (toposort → dce → validate).
 */
export { runPass, sequential, type Pass, type PassResult } from './pass.js';
export { sortGraph, topologicalOrder, toposort } from './toposort.js';
export { dce, eliminateDeadCode, type DceCounts } from './dce.js';
export { assertValid, validate, validatePass, type IssueKind, type ValidationIssue } from './validate.js';
