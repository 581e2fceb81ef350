/**
 * @file The normalized attention block every export form lifts into. Patches read only these structural
 * properties (never the model family): head counts, head size, scale, projections, rope flavour and its
 * cos/sin source, the KV cache names and layout, and the nodes the block owns.
 *
 * Glossary: B batch, S new tokens, P past tokens, T = P + S, H query heads, Hkv KV heads, Dh head size.
 */
import type { Node } from '../../graph/ir/node.js';
import type { Value } from '../../graph/ir/value.js';

/** How the attention was expressed in the source graph. */
export type AttentionForm =
  | 'unfused' // MatMul/Softmax eager attention (Optimum / torch.onnx), incl. raw GPT-2 and Qwen2 biases
  | 'sdpa' // torch SDPA decomposition: q·√s and kᵀ·√s multipliers, optional Where(IsNaN)
  | 'mha' // com.microsoft MultiHeadAttention (+ RotaryEmbedding nodes)
  | 'gqa' // com.microsoft GroupQueryAttention
  | 'ort-attention' // com.microsoft Attention (legacy ORT-fused GPT-2, stacked past)
  | 'onnx-attention' // ONNX opset-23/24 standard Attention (+ RotaryEmbedding)
  | 'dca' // attnpatch's own ai.attnpatch DualChunkAttention (a model already patched with dca)
  | 'mla'; // attnpatch's own ai.attnpatch LatentAttention (a model already patched with mla)

/** 4-bit (or n-bit) blockwise quantized weight of a com.microsoft MatMulNBits node. */
export interface NBitsQuant {
  bits: number;
  blockSize: number;
  /** Input features (K) and output features (N). */
  k: number;
  n: number;
  scales: Value;
  zeroPoints: Value | null;
}

/** One linear projection: y = x·W (+ b). For packed QKV, `columns` says which output columns are this one. */
export interface Projection {
  /** The MatMul / Gemm / MatMulNBits node. */
  node: Node;
  /**
   * The projection's result as attention consumes it, [B, S, out]: after the bias Add when there is one.
   * For packed QKV this is the packed tensor (all three share it; `columns` picks each part). Null when the
   * attention op projects internally (com.microsoft Attention): no graph value holds the result.
   */
  output: Value | null;
  /** Weight initializer: [d_model, out] for MatMul, packed [N, blocks, blob] for MatMulNBits. */
  weight: Value | null;
  bias: Value | null;
  /** Column range [start, end) of the node's output that belongs to this projection (packed QKV). */
  columns?: { start: number; end: number };
  /** Set for MatMulNBits weights. */
  quant?: NBitsQuant;
  /** Gemm with transB=1 stores W as [out, in]. */
  transposed?: boolean;
}

/** Where cos/sin come from. */
export type RopeSource =
  | { kind: 'cache'; cos: Value; sin: Value } // constant [maxPos, rotaryDim/2] tables (ORT caches)
  | { kind: 'inv-freq'; invFreq: Value; positionIds: Value | null; attentionScaling: number } // computed at run time
  | { kind: 'table'; cos: Value; sin: Value; positionIds: Value | null } // constant tables gathered by position
  | { kind: 'computed'; cos: Value; sin: Value }; // cos/sin values computed by a shared subgraph of unknown origin

export interface RopeInfo {
  /** Interleaved pairs (2i, 2i+1) vs half-split (i, i + rotaryDim/2). */
  interleaved: boolean;
  /** Number of leading dims of each head that rotate (partial rotary when < Dh). */
  rotaryDim: number;
  source: RopeSource;
  /** Rope base when it can be recovered from inv_freq or the tables. */
  theta?: number;
  /** Nodes applying rope to q and k in this block (removable when the patch re-applies rope). */
  nodes: Node[];
}

/** KV cache layout. */
export type KvLayout =
  | 'bnsh' // past_key_values.N.key/value [B, Hkv, P, Dh]
  | 'stacked' // legacy GPT-2 past_N [2, B, H, P, Dh]
  | 'static'; // fixed-capacity cache updated in place (opset-24 TensorScatter)

export interface KvNames {
  key: Value;
  value: Value;
}

export interface AttentionBlock {
  layer: number;
  form: AttentionForm;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Softmax scale applied to q·kᵀ (1/√Dh unless the model says otherwise). */
  scale: number;
  qkvPacking: 'separate' | 'packed';
  q: Projection | null;
  k: Projection | null;
  v: Projection | null;
  /** Output projection after the heads are merged. */
  o: Projection | null;
  rope: RopeInfo | null;
  kvLayout: KvLayout;
  /** Graph inputs holding the cache (stacked layout: key and value are the same value). */
  past: KvNames | null;
  /** Graph outputs holding the updated cache. */
  present: KvNames | null;
  /** Hidden states entering the q/k/v projections. */
  hidden: Value | null;
  /**
   * Unfused forms: the per-head tensors right before attention, [B, H, S, Dh] for q and [B, Hkv, S, Dh] for k
   * and v — q and k after rope, k and v before they are concatenated with the past. Lets a patch keep the
   * source's own rope when it cannot rebuild it.
   */
  heads?: { q: Value; k: Value; v: Value };
  /**
   * Unfused forms with a per-head q/k norm ('qk-norm'): q and k heads after the norm and before rope, [B, H, S, Dh]
   * and [B, Hkv, S, Dh]. The unrotated source a patch that applies rope itself must start from (the projections
   * alone would skip the norm).
   */
  normedHeads?: { q: Value; k: Value };
  /** Attention result with heads merged, [B, S, H·Dh] (what `o` consumes). */
  output: Value;
  /** The fused op, or the Softmax of an unfused block. */
  anchor: Node;
  /** Nodes that exist only for this block (safe to remove when it is lowered). */
  nodes: Set<Node>;
  /** Sliding window: each query attends to its last `window` keys, itself included (also noted 'sliding-window=W'). */
  window?: number;
  /** Attention logit softcap c: scores → c·tanh(scores / c) before the mask (also noted 'softcap=c'). */
  softcap?: number;
  /** Facts a lifter noticed that patches may need (e.g. 'qk-norm', 'softcap=50', 'sliding-window=4096'). */
  notes: string[];
  /** MLA blocks: the cache holds latents, this many elements per token in the key and in the value slot. */
  latent?: { key: number; value: number };
}

/** A block that could not be lifted, and why. Never silently skipped. */
export interface LiftFailure {
  node: string;
  reason: string;
}

/** What a lift rule returns for one anchor. */
export type LiftResult = { ok: true; block: Omit<AttentionBlock, 'layer'> & { layer?: number } } | { ok: false; reason: string };

/** One export form's lifter: which nodes anchor it and how to lift from an anchor. */
export interface LiftRule {
  readonly name: string;
  /** Cheap check: could this node anchor a block of this form? */
  anchors(node: Node): boolean;
  lift(node: Node, ctx: LiftContext): LiftResult;
}

/** Shared read-only facts for lift rules. */
export interface LiftContext {
  readonly model: import('../../graph/ir/model.js').Model;
}
