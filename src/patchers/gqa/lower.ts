/**
 * @file Lowers one lifted attention block to com.microsoft.GroupQueryAttention. The GQA node takes the
 * projections (or the source's rotated heads), the graph's past cache and the shared length inputs; its
 * outputs replace the block's merged-heads output and the present cache outputs (names kept), and the old
 * attention nodes become dead for DCE to remove.
 */
import { attr } from '../../graph/ir/attribute.js';
import { DataType } from '../../graph/ir/dtype.js';
import type { Node } from '../../graph/ir/node.js';
import type { Value } from '../../graph/ir/value.js';
import type { GraphBuilder } from '../../graph/build/builder.js';
import type { AttentionBlock } from '../attention/block.js';
import { buildRopeCaches, type RopeCaches } from './rope-cache.js';
import type { SequenceInputs } from './seqlens.js';
import type { GqaCapabilities } from './targets.js';

export type RotaryMode = 'auto' | 'fused' | 'keep';

export interface LowerOptions {
  /** Sliding window: each query attends to the last `window` keys (itself included); default the block's own. */
  window?: number;
  /** Length of rebuilt cos/sin caches: the longest context the patched model can run. */
  maxContext: number;
  /** 'fused': GQA's built-in rotary; 'keep': the source's own rope nodes; 'auto': fused where possible. */
  rotary: RotaryMode;
  /** What the target EP's kernel accepts. */
  capabilities?: GqaCapabilities;
  /** Runs after every check passed, before the GQA node is built (e.g. merging KV heads); a string refuses. */
  prepare?: (block: AttentionBlock) => string | undefined;
}

/** Per-model state shared by every block: the length inputs and the cos/sin caches. */
export interface LowerContext {
  b: GraphBuilder;
  sequence: () => SequenceInputs | string;
  caches: Map<string, RopeCaches | string>;
}

export type Lowered = { ok: true; to: string } | { ok: false; reason: string };

function elemType(v: Value | undefined): number {
  return v?.type?.kind === 'tensor' ? v.type.elemType : DataType.FLOAT;
}

/** [B, N, S, Dh] → [B, S, N·Dh] (the layout GQA takes). */
function mergeHeads(b: GraphBuilder, heads: Value): Value {
  const t = b.op('Transpose', [heads], { attributes: { perm: [0, 2, 1, 3] } });
  return b.op('Reshape', [t, b.ints('shape_bs_flat', [0, 0, -1])]);
}

/** True when one packed projection holds q | k | v in that order, contiguous (inside the op when `internal`). */
function packedInOrder(block: AttentionBlock, internal = false): boolean {
  const { q, k, v } = block;
  if (!q?.columns || !k?.columns || !v?.columns || q.output !== k.output || k.output !== v.output) return false;
  if (internal ? q.node !== k.node || k.node !== v.node : q.output === null) return false;
  return q.columns.start === 0 && q.columns.end === k.columns.start && k.columns.end === v.columns.start;
}

function ropeKey(block: AttentionBlock, maxContext: number, dtype: number): string {
  const r = block.rope!;
  const s = r.source;
  const id = s.kind === 'inv-freq' ? `${s.invFreq.name}*${s.attentionScaling}` : 'cos' in s ? s.cos.name : '';
  return `${s.kind}:${id}:${r.rotaryDim}:${maxContext}:${dtype}`;
}

/** GQA's past_key / past_value: the cache inputs, or the two halves of a stacked [2, B, H, P, Dh] cache. */
function pastInputs(b: GraphBuilder, block: AttentionBlock): [Value, Value] {
  const past = block.past!;
  if (block.kvLayout !== 'stacked') return [past.key, past.value];
  // NOTE: Split + Squeeze, not Gather: ORT's CPU GroupQueryAttention may reuse a past buffer in place for its
  // present output, and a fresh Gather output of a different length then fails ("Shape mismatch attempting to
  // re-use buffer"); a Squeeze output aliases the Split buffer and is never reused.
  const [k, v] = b.op('Split', [past.key], { outputs: 2, attributes: { axis: 0 } }) as [Value, Value];
  const squeeze = (x: Value) => ((b.model.opset('') ?? 13) >= 13 ? b.op('Squeeze', [x, b.ints('axis0', [0])]) : b.op('Squeeze', [x], { attributes: { axes: [0] } }));
  return [squeeze(k), squeeze(v)];
}

/** Lowers `block`, or says why it stays as it was. */
export function lowerToGqa(block: AttentionBlock, ctx: LowerContext, options: LowerOptions): Lowered {
  const { b } = ctx;
  if (block.kvLayout === 'static') return { ok: false, reason: 'its fixed-capacity (static) KV cache has no GroupQueryAttention equivalent yet' };
  // GroupQueryAttention needs head size % 8 == 0 on every EP (CPU checks it at run time).
  if (block.headDim % 8 !== 0) return { ok: false, reason: `head size ${block.headDim} is not a multiple of 8, which GroupQueryAttention requires` };
  if (!block.past || !block.present) return { ok: false, reason: 'it has no past/present cache in the graph' };
  if (block.numHeads % block.numKvHeads !== 0) return { ok: false, reason: `${block.numHeads} heads are not a multiple of ${block.numKvHeads} KV heads` };
  const dtype = elemType(block.past.key);

  // Rotary: GQA's built-in rope needs Dh % 16 == 0 and frequencies we can rebuild; otherwise keep the source's.
  let caches: RopeCaches | undefined;
  let keepReason = '';
  const caps = options.capabilities;
  // The block's own window and softcap are kept (Mistral, Gemma); an explicit window option replaces the window.
  const window = options.window ?? block.window;
  if (window !== undefined && caps && !caps.localWindow) return { ok: false, reason: 'the target EP has no GroupQueryAttention local window' };
  if (block.softcap !== undefined && caps && !caps.softcap) return { ok: false, reason: 'the target EP has no GroupQueryAttention softcap' };
  if (block.rope && options.rotary !== 'keep') {
    if (block.rope.interleaved && caps && !caps.interleavedRotary) keepReason = 'the target EP has no interleaved built-in rotary';
    else if (block.headDim % 16 !== 0) keepReason = `head size ${block.headDim} is not a multiple of 16 (GroupQueryAttention's built-in rotary needs that)`;
    else {
      const key = ropeKey(block, options.maxContext, dtype);
      if (!ctx.caches.has(key)) ctx.caches.set(key, buildRopeCaches(b, block.rope, options.maxContext, dtype));
      const c = ctx.caches.get(key)!;
      if (typeof c === 'string') keepReason = c;
      else caches = c;
    }
    if (!caches && options.rotary === 'fused') return { ok: false, reason: `fused rotary impossible: ${keepReason}` };
  }
  // q/k norm (Qwen3) sits between the projection and rope: built-in rotary must start from the normalized heads
  // (unfused lifts give them), otherwise only the source's own rotated heads include the norm.
  const qkNorm = block.notes.includes('qk-norm');
  const normed = qkNorm && caches ? block.normedHeads : undefined;
  if (qkNorm && !normed) {
    caches = undefined;
    keepReason ||= 'its q/k norm sits before the rope and the normalized heads were not lifted';
  }
  const keepRope = (block.rope !== null && !caches) || (qkNorm && !normed);
  if (keepRope && !block.heads) return { ok: false, reason: `cannot rebuild its rope (${keepReason || 'rotary: keep'}) and the lifter gave no rotated heads to reuse` };
  const internal = !keepRope && block.q !== null && block.q.output === null && packedInOrder(block, true);
  if (!keepRope && !internal && (!block.q?.output || !block.k?.output || !block.v?.output)) return { ok: false, reason: 'its q/k/v projections were not lifted as graph values' };
  if (internal && (!block.hidden || !block.q!.weight)) return { ok: false, reason: 'its attention op projects internally and its input or weight is unknown' };

  const seq = ctx.sequence();
  if (typeof seq === 'string') return { ok: false, reason: seq };

  if (keepRope && options.prepare) return { ok: false, reason: 'merging KV heads needs a rebuilt rope (the source rope is kept here)' };
  const refused = options.prepare?.(block);
  if (refused) return { ok: false, reason: refused };

  const anchor: Node | undefined = block.o?.node ?? block.output.consumers()[0];
  const saved = b.before;
  b.before = anchor;
  try {
    let query: Value;
    let key: Value | null;
    let value: Value | null;
    if (internal) {
      // The op projected q|k|v itself (com.microsoft Attention): rebuild that MatMul (+ bias) outside GQA.
      const p = block.q!;
      const mm = b.op('MatMul', [block.hidden!, p.weight!]);
      query = p.bias ? b.op('Add', [mm, p.bias]) : mm;
      key = null;
      value = null;
    } else if (normed) {
      query = mergeHeads(b, normed.q);
      key = mergeHeads(b, normed.k);
      value = block.v?.output && !block.v.columns ? block.v.output : mergeHeads(b, block.heads!.v);
    } else if (keepRope) {
      query = mergeHeads(b, block.heads!.q);
      key = mergeHeads(b, block.heads!.k);
      value = mergeHeads(b, block.heads!.v);
    } else if (packedInOrder(block)) {
      query = block.q!.output!;
      key = null;
      value = null;
    } else {
      query = block.q!.output!;
      key = block.k!.output!;
      value = block.v!.output!;
    }
    const attributes = [
      attr.int('num_heads', block.numHeads),
      attr.int('kv_num_heads', block.numKvHeads),
      attr.float('scale', block.scale),
      attr.int('do_rotary', caches ? 1 : 0),
      attr.int('rotary_interleaved', caches && block.rope!.interleaved ? 1 : 0),
    ];
    // NOTE: local_window_size = W lets a query see W keys, itself included (verified on ORT 1.30 CPU), as the block's window.
    if (window !== undefined) attributes.push(attr.int('local_window_size', window));
    if (block.softcap !== undefined) attributes.push(attr.float('softcap', block.softcap));
    const [out, presentKey, presentValue] = b.op(
      'GroupQueryAttention',
      [query, key, value, ...pastInputs(b, block), seq.seqlensK, seq.totalSequenceLength, caches?.cos ?? null, caches?.sin ?? null],
      { domain: 'com.microsoft', outputs: 3, attributes },
    ) as [Value, Value, Value];
    b.graph.replaceAllUsesWith(block.output, out);
    if (block.kvLayout === 'stacked') {
      // Legacy GPT-2 cache: present_N = stack([K, V]) on a new leading axis.
      // NOTE: Unsqueeze takes axes as an input from opset 13, as an attribute before.
      const unsqueeze0 = (x: Value) =>
        (b.model.opset('') ?? 13) >= 13 ? b.op('Unsqueeze', [x, b.ints('axis0', [0])]) : b.op('Unsqueeze', [x], { attributes: { axes: [0] } });
      const stacked = b.op('Concat', [unsqueeze0(presentKey), unsqueeze0(presentValue)], { attributes: { axis: 0 } });
      b.graph.replaceAllUsesWith(block.present.key, stacked);
    } else {
      b.graph.replaceAllUsesWith(block.present.key, presentKey);
      b.graph.replaceAllUsesWith(block.present.value, presentValue);
    }
    const rope = caches ? `do_rotary=1${block.rope!.interleaved ? ', interleaved' : ''}` : keepRope ? `source rope kept: ${keepReason || 'rotary: keep'}` : 'no rope';
    const extras = `${window !== undefined ? `, window=${window}` : ''}${block.softcap !== undefined ? `, softcap=${+block.softcap.toPrecision(7)}` : ''}`;
    return { ok: true, to: `GroupQueryAttention(${rope}${extras})` };
  } finally {
    b.before = saved;
  }
}
