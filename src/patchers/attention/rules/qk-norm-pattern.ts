/**
 * @file Per-head q/k RMSNorm as unfused exports write it (Qwen3, Gemma 3 `q_norm` / `k_norm` over the head size),
 * either decomposed — `Mul(w, [Cast](x · Reciprocal(Sqrt(Add(ReduceMean(x² | Pow(x, 2)), eps)))))`, also with
 * `Div(x, Sqrt(…))` or `Div(1, Sqrt(…))` — or as one `SimplifiedLayerNormalization` / `RMSNormalization` node. HF
 * Qwen3 normalizes between the head Reshape and Transpose, Gemma 3 after the Transpose; the norm is over the last
 * axis (Dh) either way, so both placements compute the same per-head values.
 */
import { any, cap, constant, oneOf, op, optional, where, type Pattern } from '../../../graph/pattern/index.js';
import { constFloat } from '../const.js';

const TWO = where(constant(), (v) => constFloat(v) === 2 || `'${v.name}' is not the exponent 2`, 'exponent 2');

/** RMSNorm over the last axis of `x`; binds `${p}.prenorm` (x), `${p}.normWeight` and `${p}.normed` (the result). */
export function rmsNorm(p: string, x: Pattern): Pattern {
  const input = cap(`${p}.prenorm`, x);
  const same = any(`${p}.prenorm`);
  const square = oneOf([op('Mul', [same, same]), op('Pow', [same, TWO])]);
  const mean = op('ReduceMean', [optional(op('Cast', [square]))]);
  const root = op('Sqrt', [op('Add', [mean, constant(`${p}.eps`)], { commute: true })]);
  const inverse = oneOf([op('Reciprocal', [root]), op('Div', [constant(), root])]);
  const normalized = oneOf([op('Mul', [input, inverse], { commute: true }), op('Div', [input, root])]);
  const weight = constant(`${p}.normWeight`);
  const decomposed = op('Mul', [optional(op('Cast', [normalized])), weight], { commute: true });
  const fused = op(['SimplifiedLayerNormalization', 'RMSNormalization'], [input, weight]);
  return cap(`${p}.normed`, oneOf([fused, decomposed]));
}

/**
 * `Transpose([0,2,1,3]) ← Reshape(source)` with an optional per-head RMSNorm before or after the Transpose; binds
 * `${p}.reshape`, `${p}.shape`, `${p}.heads` (the transposed heads, normalized when there is a norm) and tags
 * `${p}.qkNorm` = 'before' | 'after' | 'none'.
 */
export function splitHeadsMaybeNormed(p: string, source: Pattern): Pattern {
  const reshape = op('Reshape', [source, any(`${p}.shape`)], { as: `${p}.reshape` });
  const perm = { perm: [0, 2, 1, 3] };
  const before = op('Transpose', [rmsNorm(p, reshape)], { attrs: perm });
  const after = rmsNorm(p, op('Transpose', [reshape], { attrs: perm }));
  const plain = op('Transpose', [reshape], { attrs: perm });
  return cap(`${p}.heads`, oneOf([before, after, plain], { tag: `${p}.qkNorm`, labels: ['before', 'after', 'none'] }));
}
