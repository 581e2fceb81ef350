/**
 * @file The inspection report: model facts, every lifted attention block, what could not be lifted, and the
 * KV-cache bytes each token costs. `attnpatch inspect --json` prints exactly this shape.
 */
import { dtypeByteLength } from '../graph/ir/dtype.js';
import type { Model } from '../graph/ir/model.js';
import type { Value } from '../graph/ir/value.js';
import type { AttentionBlock, AttentionForm, LiftFailure } from './attention/block.js';
import { liftAttention } from './attention/lift.js';

export interface BlockReport {
  layer: number;
  form: AttentionForm;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  scale: number;
  rope: { interleaved: boolean; rotaryDim: number } | null;
  past: { key: string; value: string } | null;
  present: { key: string; value: string } | null;
  /** Extra facts: layout and packing of the cache and projections, notes from the lifter. */
  kvLayout: AttentionBlock['kvLayout'];
  qkvPacking: AttentionBlock['qkvPacking'];
  kvBytesPerToken: number;
  notes: string[];
}

export interface InspectReport {
  model: { irVersion: number; opsets: Record<string, number>; nodes: number; initializers: number; weightBytes: number; producer: string };
  attention: BlockReport[];
  unsupported: LiftFailure[];
  kvCacheBytesPerToken: number;
}

/** Bytes of one cache element: from the past input's declared type, else the model's float width. */
function cacheElementBytes(past: Value | undefined, fallback: number): number {
  const t = past?.type;
  return (t?.kind === 'tensor' ? dtypeByteLength(t.elemType, 1) : undefined) ?? fallback;
}

/** Element width most weights use (fp16 models: 2), for blocks whose cache type is not declared. */
function dominantFloatBytes(model: Model): number {
  let best = 4;
  let most = -1;
  const bytes = new Map<number, number>();
  for (const v of model.graph.initializers.values()) {
    const t = v.initializer!;
    if (t.dtype === 1 || t.dtype === 10 || t.dtype === 16) bytes.set(t.dtype, (bytes.get(t.dtype) ?? 0) + (t.byteLength ?? 0));
  }
  for (const [dtype, n] of bytes) if (n > most) [best, most] = [dtype === 1 ? 4 : 2, n];
  return best;
}

/** KV bytes per token of one block: K and V, each Hkv × Dh elements. */
export function blockKvBytes(b: AttentionBlock, elementBytes: number): number {
  // MLA blocks cache latents: the widths of their key and value slots.
  if (b.latent) return (b.latent.key + b.latent.value) * elementBytes;
  return 2 * b.numKvHeads * b.headDim * elementBytes;
}

/** Builds the inspection report of a model. */
export function inspectModel(model: Model): InspectReport {
  const { blocks, unsupported } = liftAttention(model);
  const fallback = dominantFloatBytes(model);
  const attention = blocks.map((b): BlockReport => {
    const kvBytesPerToken = blockKvBytes(b, cacheElementBytes(b.past?.key, fallback));
    return {
      layer: b.layer,
      form: b.form,
      numHeads: b.numHeads,
      numKvHeads: b.numKvHeads,
      headDim: b.headDim,
      scale: b.scale,
      rope: b.rope ? { interleaved: b.rope.interleaved, rotaryDim: b.rope.rotaryDim } : null,
      past: b.past ? { key: b.past.key.name, value: b.past.value.name } : null,
      present: b.present ? { key: b.present.key.name, value: b.present.value.name } : null,
      kvLayout: b.kvLayout,
      qkvPacking: b.qkvPacking,
      kvBytesPerToken,
      notes: b.notes,
    };
  });
  let weightBytes = 0;
  for (const v of model.graph.initializers.values()) weightBytes += v.initializer!.byteLength ?? 0;
  return {
    model: {
      irVersion: model.irVersion,
      opsets: Object.fromEntries(model.opsetImports),
      nodes: model.graph.nodes.length,
      initializers: model.graph.initializers.size,
      weightBytes,
      producer: [model.producerName, model.producerVersion].filter(Boolean).join(' '),
    },
    attention,
    unsupported,
    kvCacheBytesPerToken: attention.reduce((s, b) => s + b.kvBytesPerToken, 0),
  };
}
