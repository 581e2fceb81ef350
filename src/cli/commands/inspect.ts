/** @file `attnpatch inspect <model>`: the attention blocks attnpatch finds in a model and its KV-cache cost. */
import type { Command } from 'commander';
import { inspectModel, type InspectReport } from '../../patchers/inspect.js';
import { loadLocated } from '../../runtime/model-folder.js';
import { bytes, table } from '../format.js';
import { runCommand } from '../run.js';

export type InspectOptions = { readonly json?: boolean };

/** Text form of the report. */
export function formatInspect(file: string, r: InspectReport): string {
  const m = r.model;
  const opsets = Object.entries(m.opsets).map(([d, v]) => `${d || 'ai.onnx'} ${v}`).join(', ');
  const lines = [
    `${file}`,
    `  IR ${m.irVersion}; opsets ${opsets}; ${m.nodes} nodes, ${m.initializers} initializers, ${bytes(m.weightBytes)} of weights${m.producer ? `; made by ${m.producer}` : ''}`,
    '',
    `attention: ${r.attention.length} block${r.attention.length === 1 ? '' : 's'}`,
  ];
  if (r.attention.length) {
    const rows = [['layer', 'form', 'heads', 'kv heads', 'head dim', 'scale', 'rope', 'cache (past → present)']];
    for (const b of r.attention) {
      const rope = b.rope ? `${b.rope.interleaved ? 'interleaved' : 'half-split'} ${b.rope.rotaryDim}` : '-';
      const cache = b.past ? `${b.past.key}${b.past.value !== b.past.key ? ` / .${b.past.value.split('.').pop()}` : ''} → ${b.present?.key ?? '?'}` : '-';
      rows.push([String(b.layer), b.form, String(b.numHeads), String(b.numKvHeads), String(b.headDim), String(+b.scale.toPrecision(6)), rope, cache]);
    }
    lines.push(table(rows).replace(/^/gm, '  '));
  }
  lines.push('', `KV cache: ${bytes(r.kvCacheBytesPerToken)} per token (${bytes(r.kvCacheBytesPerToken * 4096)} at 4096 tokens)`);
  if (r.unsupported.length) {
    lines.push('', `not lifted (${r.unsupported.length}):`);
    for (const u of r.unsupported) lines.push(`  ${u.node}: ${u.reason}`);
  }
  return lines.join('\n');
}

export async function inspect(path: string, options: InspectOptions): Promise<void> {
  // Structure only: a graph whose weights are absent can still be inspected.
  const { model, location } = loadLocated(path, { allowMissingExternalData: true });
  const report = inspectModel(model);
  process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatInspect(location.file, report)}\n`);
}

export function register(program: Command): void {
  program
    .command('inspect')
    .description('list the attention blocks of a model and its KV-cache bytes per token')
    .argument('<model>', 'a .onnx file or a transformers.js model folder')
    .option('--json', 'print a JSON report instead of text')
    .action(runCommand((model: string, options: InspectOptions) => inspect(model, options)));
}
