/**
 * @file Lift rule for attnpatch's own `ai.attnpatch::DualChunkAttention` calls, so a model already patched with
 * dca is inspected correctly and later patches can say what they cannot do to it.
 */
import { attrFloat, attrInt } from '../../../graph/ir/attribute.js';
import type { LiftRule } from '../block.js';
import { outputProjection } from './fused-common.js';

export const attnpatchDcaRule: LiftRule = {
  name: 'attnpatch-dca',
  anchors: (node) => node.domain === 'ai.attnpatch' && node.opType.startsWith('DualChunkAttention'),
  lift(node) {
    const numHeads = attrInt(node, 'num_heads', 0);
    const numKvHeads = attrInt(node, 'kv_num_heads', 0);
    const past = node.input(3)?.type;
    const headDim = past?.kind === 'tensor' && typeof past.shape?.[3] === 'number' ? past.shape[3] : 0;
    if (!numHeads || !numKvHeads || !headDim) return { ok: false, reason: 'DualChunkAttention call without head counts or a typed past cache' };
    const cos = node.input(6);
    const [pk, pv, ok, ov] = [node.input(3), node.input(4), node.outputs[1], node.outputs[2]];
    const graph = node.graph!;
    return {
      ok: true,
      block: {
        form: 'dca',
        numHeads,
        numKvHeads,
        headDim,
        scale: attrFloat(node, 'scale', 1 / Math.sqrt(headDim)),
        qkvPacking: 'separate',
        q: null,
        k: null,
        v: null,
        o: outputProjection(node.output(0)),
        rope: cos && node.input(7) ? { interleaved: node.opType.endsWith('Interleaved'), rotaryDim: 2 * (cos.initializer?.dims[1] ?? headDim / 2), source: { kind: 'cache', cos, sin: node.input(7)! }, nodes: [] } : null,
        kvLayout: 'bnsh',
        past: pk && pv && graph.inputs.includes(pk) && graph.inputs.includes(pv) ? { key: pk, value: pv } : null,
        present: ok && ov && graph.outputs.includes(ok) && graph.outputs.includes(ov) ? { key: ok, value: ov } : null,
        hidden: null,
        output: node.output(0),
        anchor: node,
        nodes: new Set([node]),
        notes: [`chunk_size=${attrInt(node, 'chunk_size', 0)}`, `local_window=${attrInt(node, 'local_window', 0)}`],
      },
    };
  },
};
