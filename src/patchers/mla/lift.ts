/**
 * @file Lift rule for attnpatch's own `ai.attnpatch::LatentAttention` calls, so a model already patched with mla is
 * inspected correctly (its cache holds latents: `latent` gives the slot widths) and later patches can say what
 * they cannot do to it. The cache names and head size come from the call's metadata (lower.ts).
 */
import { attrFloat, attrInt } from '../../graph/ir/attribute.js';
import type { Value } from '../../graph/ir/value.js';
import type { LiftRule } from '../attention/block.js';
import { MLA_DCA_FUNCTION, MLA_DOMAIN, MLA_FUNCTION } from './function.js';
import { MLA_INFO_KEY, type MlaCallInfo } from './metadata.js';

function width(v: Value | undefined): number | undefined {
  const d = v?.type?.kind === 'tensor' ? v.type.shape?.[3] : undefined;
  return typeof d === 'number' ? d : undefined;
}

export const attnpatchMlaRule: LiftRule = {
  name: 'attnpatch-mla',
  anchors: (node) => node.domain === MLA_DOMAIN && (node.opType === MLA_FUNCTION || node.opType === MLA_DCA_FUNCTION),
  lift(node) {
    let info: MlaCallInfo;
    try {
      info = JSON.parse(node.metadata.get(MLA_INFO_KEY) ?? '') as MlaCallInfo;
    } catch {
      return { ok: false, reason: `LatentAttention call without its ${MLA_INFO_KEY} metadata` };
    }
    const graph = node.graph!;
    const [pk, pv] = info.past.map((n) => graph.input(n));
    const [ok, ov] = info.present.map((n) => graph.output(n));
    const numHeads = attrInt(node, 'num_heads', 0);
    const numKvHeads = attrInt(node, 'kv_num_heads', 0);
    const [key, value] = [width(pk), width(pv)];
    if (!pk || !pv || !ok || !ov || key === undefined || value === undefined || !numHeads || !numKvHeads) {
      return { ok: false, reason: 'LatentAttention call whose cache inputs/outputs or head counts are missing' };
    }
    const [cos, sin] = [node.input(3), node.input(4)];
    return {
      ok: true,
      block: {
        form: 'mla',
        numHeads,
        numKvHeads,
        headDim: info.headDim,
        scale: attrFloat(node, 'scale', 1 / Math.sqrt(info.headDim)),
        qkvPacking: 'separate',
        q: null,
        k: null,
        v: null,
        o: null,
        rope: cos && sin ? { interleaved: info.interleaved, rotaryDim: info.rotaryDim, source: { kind: 'computed', cos, sin }, nodes: [] } : null,
        kvLayout: 'bnsh',
        past: { key: pk, value: pv },
        present: { key: ok, value: ov },
        hidden: null,
        output: node.output(0),
        anchor: node,
        nodes: new Set([node]),
        notes: [`latent=${key}+${value}`, ...(node.opType === MLA_DCA_FUNCTION ? [`chunk_size=${attrInt(node, 'chunk_size', 0)}`, `local_window=${attrInt(node, 'local_window', 0)}`] : [])],
        latent: { key, value },
      },
    };
  },
};
