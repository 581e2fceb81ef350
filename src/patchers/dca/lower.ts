/**
 * @file Lowers one lifted block to a DualChunkAttention call. The call takes the block's unrotated q/k/v (what the
 * source's rope consumed: projection outputs, GroupQueryAttention inputs under built-in rotary, or
 * RotaryEmbedding inputs), the graph's past cache and attention_mask, and cos/sin tables for positions 0..CS;
 * its outputs replace the block's merged-heads output and the present cache outputs (names kept).
 */
import { attr } from '../../graph/ir/attribute.js';
import { DataType } from '../../graph/ir/dtype.js';
import type { Value } from '../../graph/ir/value.js';
import type { GraphBuilder } from '../../graph/build/builder.js';
import { floatToHalf, toFloat32 } from '../../graph/tensor/decode.js';
import { viewBytes } from '../../graph/tensor/tensor.js';
import type { AttentionBlock } from '../attention/block.js';
import { ropeFrequencies } from '../gqa/rope-cache.js';
import { DCA_DOMAIN, DCA_MIN_OPSET, dcaFunctionName, type RopeLayout } from './function.js';
import type { DcaParams } from './params.js';

export type Lowered = { ok: true; to: string } | { ok: false; reason: string };

/** Per-model state: the tables built so far (shared by blocks with the same rope). */
export interface DcaContext {
  b: GraphBuilder;
  tables: Map<string, { cos: Value; sin: Value } | string>;
  /** Rope layouts whose function the model needs. */
  layouts: Set<RopeLayout>;
}

function elemType(v: Value | undefined): number {
  return v?.type?.kind === 'tensor' ? v.type.elemType : DataType.FLOAT;
}

/** [B, N, S, Dh] → [B, S, N·Dh]. */
function mergeHeads(b: GraphBuilder, heads: Value): Value {
  const t = b.op('Transpose', [heads], { attributes: { perm: [0, 2, 1, 3] } });
  return b.op('Reshape', [t, b.ints('shape_bs_flat', [0, 0, -1])]);
}

/** The q/k/v the attention consumed before any rope was applied, or why they cannot be found. */
function unrotated(b: GraphBuilder, block: AttentionBlock): [Value, Value, Value] | string {
  if (block.form === 'unfused' || block.form === 'sdpa') {
    if (block.notes.includes('qk-norm')) {
      // The norm sits between the projection and rope: start from the normalized heads (before rope).
      const n = block.normedHeads;
      const v = block.heads?.v;
      if (!n || !v) return 'its q/k norm sits between the projection and rope, and the lifter gave no normalized heads';
      return [mergeHeads(b, n.q), mergeHeads(b, n.k), mergeHeads(b, v)];
    }
    const [q, k, v] = [block.q?.output, block.k?.output, block.v?.output];
    if (!q || !k || !v) return 'its q/k/v projections were not lifted as graph values';
    if (!block.q?.columns) return [q, k, v];
    // One packed projection (Phi-3's qkv_proj, sliced by the source): cut q | k | v again.
    const cols = [block.q.columns, block.k!.columns, block.v!.columns];
    if (q !== k || k !== v || cols.some((c) => !c) || cols[0]!.start !== 0 || cols[0]!.end !== cols[1]!.start || cols[1]!.end !== cols[2]!.start) return 'its packed q/k/v columns are not q | k | v in order';
    const parts = b.op('Split', [q, b.ints('split', cols.map((c) => c!.end - c!.start))], { outputs: 3, attributes: { axis: -1 } });
    return [parts[0]!, parts[1]!, parts[2]!];
  }
  if (block.form !== 'gqa' && block.form !== 'mha') return `${block.form} blocks are not lowered to DCA yet`;
  const a = block.anchor;
  const beforeRope = (x: Value | null) => {
    const p = x?.producer;
    return p && p.opType === 'RotaryEmbedding' ? p.input(0) : x;
  };
  const [q, k, v] = [beforeRope(a.input(0)), beforeRope(a.input(1)), a.input(2)];
  if (q && k && v) return [q, k, v];
  if (q && !k && !v && block.q?.columns && block.k?.columns && block.v?.columns) {
    // Packed QKV: split the columns.
    const widths = [block.q.columns, block.k.columns, block.v.columns].map((c) => c.end - c.start);
    const parts = b.op('Split', [q, b.ints('split', widths)], { outputs: 3, attributes: { axis: -1 } });
    return [parts[0]!, parts[1]!, parts[2]!];
  }
  return 'its q/k/v inputs could not be traced';
}

/** cos/sin tables for positions 0..CS, from the rope's frequencies or its constant cache. */
function tables(ctx: DcaContext, block: AttentionBlock, rows: number, dtype: number): { cos: Value; sin: Value } | string {
  const rope = block.rope!;
  const src = rope.source;
  const id = src.kind === 'inv-freq' ? `${src.invFreq.name}*${src.attentionScaling}` : src.cos.name;
  const key = `${id}:${rope.rotaryDim}:${rows}:${dtype}`;
  const known = ctx.tables.get(key);
  if (known) return known;
  let cos: Float32Array;
  let sin: Float32Array;
  const half = rope.rotaryDim / 2;
  if (src.kind === 'cache') {
    const [c, s] = [src.cos.initializer, src.sin.initializer];
    if (!c || !s) return `its cos/sin caches are not constant`;
    if ((c.dims[0] ?? 0) < rows) return `its cos/sin caches have ${c.dims[0]} rows, DCA needs ${rows} (chunk size + 1)`;
    cos = toFloat32(c).slice(0, rows * half);
    sin = toFloat32(s).slice(0, rows * half);
  } else {
    const f = ropeFrequencies(rope);
    if (typeof f === 'string') return f;
    cos = new Float32Array(rows * half);
    sin = new Float32Array(rows * half);
    for (let p = 0; p < rows; p++) {
      for (let i = 0; i < half; i++) {
        const angle = Math.fround(p * f.freqs[i]!);
        cos[p * half + i] = Math.cos(angle) * f.scaling;
        sin[p * half + i] = Math.sin(angle) * f.scaling;
      }
    }
  }
  const b = ctx.b;
  const make = (name: string, data: Float32Array) =>
    dtype === DataType.FLOAT16 ? b.initializer(name, DataType.FLOAT16, [rows, half], viewBytes(Uint16Array.from(data, floatToHalf))) : b.floats(name, [rows, half], data);
  const t = { cos: make('dca_cos', cos), sin: make('dca_sin', sin) };
  ctx.tables.set(key, t);
  return t;
}

/** Lowers `block` to DualChunkAttention, or says why it stays as it was. */
export function lowerToDca(block: AttentionBlock, ctx: DcaContext, params: DcaParams): Lowered {
  const { b } = ctx;
  if (block.kvLayout !== 'bnsh') return { ok: false, reason: `its ${block.kvLayout} KV cache layout is not supported by DCA` };
  if (!block.past || !block.present) return { ok: false, reason: 'it has no past/present cache in the graph' };
  if (!block.rope) return { ok: false, reason: 'it has no rotary position embedding for DCA to remap' };
  if ((b.model.opset('') ?? 0) < DCA_MIN_OPSET) return { ok: false, reason: `the model's opset ${b.model.opset('')} is below ${DCA_MIN_OPSET}, which the DCA function needs` };
  // Quirks the DCA function does not reproduce: lowering would silently drop them.
  const quirk = block.notes.find((n) => /^(sliding-window=|softcap=|smooth-softmax|head-sink)/.test(n));
  if (quirk) return { ok: false, reason: `it has ${quirk}, which Dual Chunk Attention would drop` };
  const mask = b.graph.input('attention_mask');
  if (!mask) return { ok: false, reason: 'the graph has no attention_mask input' };
  const qkv = unrotated(b, block);
  if (typeof qkv === 'string') return { ok: false, reason: qkv };
  const dtype = elemType(block.past.key);
  const t = tables(ctx, block, params.chunkSize + 1, dtype);
  if (typeof t === 'string') return { ok: false, reason: t };

  const layout: RopeLayout = block.rope.interleaved ? 'interleaved' : 'half';
  ctx.layouts.add(layout);
  const saved = b.before;
  b.before = block.o?.node ?? block.output.consumers()[0];
  try {
    let mask64 = mask;
    if (elemType(mask) !== DataType.INT64) mask64 = b.op('Cast', [mask], { attributes: { to: DataType.INT64 } });
    const [out, presentKey, presentValue] = b.op('DualChunkAttention' + (layout === 'half' ? '' : 'Interleaved'), [...qkv, block.past.key, block.past.value, mask64, t.cos, t.sin], {
      domain: DCA_DOMAIN,
      // NOTE: ORT wants every function output named on the call. The probabilities are the softmax the op computes
      // anyway; naming them costs nothing and lets a debug run expose them as a graph output.
      outputs: [b.names.fresh('dca/output'), b.names.fresh('dca/present_key'), b.names.fresh('dca/present_value'), b.names.fresh('dca/probs')],
      attributes: [
        attr.int('num_heads', block.numHeads),
        attr.int('kv_num_heads', block.numKvHeads),
        attr.int('chunk_size', params.chunkSize),
        attr.int('local_window', params.localWindow),
        attr.float('scale', block.scale),
        attr.float('temperature_coef', params.temperatureCoef),
        attr.int('trained_length', params.trainedLength),
        attr.int('float_type', dtype),
        attr.float('inter_bias', params.interBias),
      ],
    }) as [Value, Value, Value];
    b.graph.replaceAllUsesWith(block.output, out);
    b.graph.replaceAllUsesWith(block.present.key, presentKey);
    b.graph.replaceAllUsesWith(block.present.value, presentValue);
    return { ok: true, to: `${dcaFunctionName(layout)}(chunk ${params.chunkSize}, window ${params.localWindow})` };
  } finally {
    b.before = saved;
  }
}
