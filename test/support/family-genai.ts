/**
 * The onnxruntime-genai form of the test families (fused GroupQueryAttention, built-in rotary): what the genai builder
 * writes — SimplifiedLayerNormalization, separate q/k/v MatMuls [+ bias] or Phi-3's packed qkv_proj fed to GQA as
 * packed QKV, [q/k SimplifiedLayerNormalization per head], com.microsoft GroupQueryAttention with do_rotary=1 and
 * constant cos/sin caches of rotaryDim/2 columns (one pair per rope base), `scale` when it is not 1/√Dh, `softcap`,
 * and `local_window_size` = W on sliding layers (ORT 1.30: the query at p sees keys [p − W + 1, p], W keys, the same
 * as transformers' window W); seqlens_k / total_sequence_length from attention_mask.
 */
import { attr } from '../../src/graph/ir/attribute.js';
import { DataType } from '../../src/graph/ir/dtype.js';
import type { Model } from '../../src/graph/ir/model.js';
import type { Value } from '../../src/graph/ir/value.js';
import { viewBytes } from '../../src/graph/tensor/tensor.js';
import { finish, mlp, packedProject, pastInputs, project, start } from './family-parts.js';
import { invFreq, type FamilySpec, type FamilyWeights } from './families.js';

export function buildGenai(s: FamilySpec, w: FamilyWeights, maxPositions = 256): Model {
  const { graph, model, b, ids, mask } = start({ '': 17, 'com.microsoft': 1 });
  const { hidden: D, heads: H, kvHeads: Hkv, headDim: Dh, rotaryDim: rd } = s;
  const norm = (x: Value, weight: Float32Array) =>
    b.op('SimplifiedLayerNormalization', [x, b.floats('norm.weight', [weight.length], weight)], { attributes: { axis: -1, epsilon: s.eps } });
  const seqlensK = b.op('Cast', [b.op('Sub', [b.op('ReduceSum', [mask, b.ints('axes', [1])], { attributes: { keepdims: 0 } }), b.ints('one', [1], true)])], { attributes: { to: DataType.INT32 } });
  const total = b.op('Cast', [b.op('Gather', [b.op('Shape', [mask]), b.ints('one', [1], true)], { attributes: { axis: 0 } })], { attributes: { to: DataType.INT32 } });
  const caches = new Map<number, [Value, Value]>();
  for (const theta of new Set(s.thetas)) {
    const inv = invFreq(s, theta);
    const table = (fn: (x: number) => number) => Float32Array.from({ length: maxPositions * (rd / 2) }, (_, i) => fn(Math.fround(Math.floor(i / (rd / 2)) * inv[i % (rd / 2)]!)));
    caches.set(theta, [
      b.initializer('cos_cache', DataType.FLOAT, [maxPositions, rd / 2], viewBytes(table(Math.cos))),
      b.initializer('sin_cache', DataType.FLOAT, [maxPositions, rd / 2], viewBytes(table(Math.sin))),
    ]);
  }
  /** Qwen3 / Gemma 3: RMSNorm over each head of [B, S, N·Dh]. */
  const headNorm = (x: Value, weight: Float32Array | undefined, n: number) =>
    weight ? b.op('Reshape', [norm(b.op('Reshape', [x, b.ints('heads_shape', [0, 0, n, Dh])]), weight), b.ints('flat_shape', [0, 0, n * Dh])]) : x;

  let h = b.op('Gather', [b.floats('embed_tokens', [s.vocab, D], w.embed), ids], { attributes: { axis: 0 } });
  const presents: Value[] = [];
  w.layers.forEach((l, n) => {
    const [pastK, pastV] = pastInputs(graph, s, n);
    const x = norm(h, l.inputNorm);
    const qkv: (Value | null)[] = s.packed
      ? [packedProject(b, x, l, s, `l${n}.qkv_proj`), null, null]
      : [
          headNorm(project(b, x, l.q, D, H * Dh, l.qBias, `l${n}.q_proj`), l.qNorm, H),
          headNorm(project(b, x, l.k, D, Hkv * Dh, l.kBias, `l${n}.k_proj`), l.kNorm, Hkv),
          project(b, x, l.v, D, Hkv * Dh, l.vBias, `l${n}.v_proj`),
        ];
    const attributes = [attr.int('num_heads', H), attr.int('kv_num_heads', Hkv), attr.int('do_rotary', 1)];
    if (Math.abs(s.scale - 1 / Math.sqrt(Dh)) > 1e-12) attributes.push(attr.float('scale', s.scale));
    if (s.softcap) attributes.push(attr.float('softcap', s.softcap));
    const window = s.windows[n];
    if (window !== undefined) attributes.push(attr.int('local_window_size', window));
    const [out, presentK, presentV] = b.op('GroupQueryAttention', [...qkv, pastK, pastV, seqlensK, total, ...caches.get(s.thetas[n]!)!], {
      domain: 'com.microsoft',
      outputs: [b.names.fresh(`l${n}.attn_out`), `present.${n}.key`, `present.${n}.value`],
      attributes,
    }) as [Value, Value, Value];
    presents.push(presentK, presentV);
    h = mlp(b, b.op('Add', [h, b.op('MatMul', [out, b.floats(`l${n}.o_proj.weight`, [H * Dh, D], l.o)])]), l, s, norm);
  });
  finish(b, graph, h, w, s, norm, presents);
  return model;
}
