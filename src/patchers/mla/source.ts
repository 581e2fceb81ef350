/**
 * @file What an MLA rewrite needs from a lifted block, or why the block cannot give it: the unrotated query, the
 * hidden states the k/v projections read and their dense weights, the rope to rebuild, the KV cache values, and the
 * output projection when W_UV can be folded into it (a MatMul or MatMulNBits reading the merged heads directly).
 */
import { attrFloat, attrInt } from '../../graph/ir/attribute.js';
import { DataType } from '../../graph/ir/dtype.js';
import type { Node } from '../../graph/ir/node.js';
import type { Value } from '../../graph/ir/value.js';
import type { AttentionBlock, KvNames, RopeInfo } from '../attention/block.js';
import { projectionAt } from '../attention/rules/fused-common.js';
import type { ValueMode } from './options.js';
import { readProjection, type DenseProjection } from './weights.js';

export interface MlaSource {
  block: AttentionBlock;
  /** The query before rope, [B, S, H·Dh]. */
  query: Value;
  /** The input of the k and v projections, [B, S, d_model]. */
  hidden: Value;
  k: DenseProjection;
  v: DenseProjection;
  /** The output projection W_O [H·Dh, d_model] to fold W_UV into, or null: values are rebuilt every step. */
  o: { node: Node; w: Float32Array } | null;
  rope: RopeInfo;
  past: KvNames;
  present: KvNames;
  /** Element type of the attention (and of the cache): float32 or float16. */
  dtype: number;
  /** True when any projection was MatMulNBits (dequantized to float). */
  quantized: boolean;
  /** Set when the block is a Dual Chunk Attention call (dca applied first): its parameters, kept as they were. */
  dca?: DcaCall;
}

/** The parameters of a DualChunkAttention call (dca/function.ts attributes). */
export interface DcaCall {
  chunkSize: number;
  localWindow: number;
  temperatureCoef: number;
  trainedLength: number;
  interBias: number;
}

/** Notes of features the MLA attention function does not implement. */
const UNSUPPORTED_NOTES = ['sliding-window', 'softcap', 'smooth-softmax', 'bidirectional', 'head-sink', 'quantized-kv-cache', 'qk-norm', 'qkv-bias-on-op'];

/** The first feature of the block the MLA attention would drop. */
function unsupportedFeature(notes: readonly string[]): string | undefined {
  const odd = notes.find((n) => UNSUPPORTED_NOTES.some((u) => n.startsWith(u)));
  if (odd) return odd;
  // NOTE: a MultiHeadAttention attention_bias built from attention_mask ('causal-from-mask', what the onnxruntime-genai
  // builder emits) is the causal + padding mask the function builds itself; any other bias (ALiBi, …) would be lost.
  if (notes.includes('attention-bias') && !notes.includes('causal-from-mask')) return 'attention-bias';
  return undefined;
}

function elemType(v: Value | null | undefined): number {
  return v?.type?.kind === 'tensor' ? v.type.elemType : DataType.FLOAT;
}

/** The query as the attention consumed it before rope. */
function unrotatedQuery(block: AttentionBlock): Value | string {
  if (block.form === 'dca') return block.anchor.input(0) ?? 'its query input is absent';
  if (block.form === 'unfused' || block.form === 'sdpa') {
    if (!block.q?.output || block.q.columns) return 'its q projection was not lifted as a separate graph value';
    return block.q.output;
  }
  if (block.form === 'gqa' || block.form === 'mha') {
    if (block.qkvPacking === 'packed') return 'packed QKV projections are not factored yet';
    const q = block.anchor.input(0);
    const p = q?.producer;
    const before = p && p.opType === 'RotaryEmbedding' ? p.input(0) : q;
    return before ?? 'its query input could not be traced';
  }
  return `${block.form} blocks are not lowered to MLA`;
}

/** Gathers everything the rewrite needs, or says why the block stays as it was. */
export function mlaSource(block: AttentionBlock, valueMode: ValueMode): MlaSource | string {
  if (block.form === 'mla') return 'it is already multi-head latent attention';
  if (block.form === 'dca' && block.anchor.opType !== 'DualChunkAttention' && block.anchor.opType !== 'DualChunkAttentionInterleaved') return `${block.anchor.opType} calls are not lowered to MLA`;
  if (block.kvLayout !== 'bnsh') return `its ${block.kvLayout} KV cache layout is not supported by MLA`;
  if (!block.past || !block.present) return 'it has no past/present cache in the graph';
  if (!block.rope) return 'it has no rotary position embedding (rope-free keys could be absorbed instead; not implemented)';
  if (!['inv-freq', 'cache', 'table'].includes(block.rope.source.kind)) return `its rope source '${block.rope.source.kind}' cannot be evaluated at arbitrary positions`;
  const odd = unsupportedFeature(block.notes);
  if (odd) return `it uses ${odd}, which the MLA attention does not implement`;
  const query = unrotatedQuery(block);
  if (typeof query === 'string') return query;
  // A DCA call takes the unrotated k/v projection outputs: trace them back to their projections.
  const isDca = block.form === 'dca';
  const kp = isDca ? projectionAt(block.anchor.input(1)!) : block.k;
  const vp = isDca ? projectionAt(block.anchor.input(2)!) : block.v;
  const hidden = isDca ? (kp?.node.input(0) ?? null) : block.hidden;
  if (!hidden || !kp || !vp) return 'its k/v projections or their input were not lifted';
  if (kp.node.input(0) !== hidden || vp.node.input(0) !== hidden) return 'its k and v projections do not both read the block input directly';
  const k = readProjection(kp, 'k');
  if (typeof k === 'string') return k;
  const v = readProjection(vp, 'v');
  if (typeof v === 'string') return v;
  const n = block.numKvHeads * block.headDim;
  if (k.cols !== n || v.cols !== n || k.rows !== v.rows) return `its k/v projections are [${k.rows}, ${k.cols}] and [${v.rows}, ${v.cols}], expected [d_model, ${n}] each`;

  let o: MlaSource['o'] = null;
  const op = block.o;
  if (valueMode === 'fold' && op && !op.columns && op.node.input(0) === block.output && (op.node.opType === 'MatMul' || op.node.opType === 'MatMulNBits')) {
    // NOTE: a Gemm output projection reads a flattened [B·S, H·Dh] copy; rebuilding values keeps that path simple.
    const dense = readProjection({ ...op, bias: null }, 'o');
    if (typeof dense !== 'string' && dense.rows === block.numHeads * block.headDim) o = { node: op.node, w: dense.w };
  }
  const quantized = k.quantized || v.quantized || (o !== null && op?.quant !== undefined);
  const source: MlaSource = { block, query, hidden, k, v, o, rope: block.rope, past: block.past, present: block.present, dtype: elemType(block.past.key), quantized };
  if (isDca) {
    const a = block.anchor;
    source.dca = {
      chunkSize: attrInt(a, 'chunk_size', 0),
      localWindow: attrInt(a, 'local_window', 0),
      temperatureCoef: attrFloat(a, 'temperature_coef', 0),
      trainedLength: attrInt(a, 'trained_length', 1),
      interBias: attrFloat(a, 'inter_bias', 0),
    };
  }
  return source;
}
