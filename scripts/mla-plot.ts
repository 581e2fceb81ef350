/**
 * @file The mla plot (`npx tsx scripts/mla-plot.ts`): perplexity vs KV-cache bytes per token on TinyStories-656K
 * (left; every point labelled with its per-layer ranks for the best series) and decode-step time vs context on
 * bench-llama-random (right), from real runs: bench/out/mla-quality.json (`bench/mla-quality.ts`) and
 * bench/out/mla.json (`bench/mla.ts`). Writes docs/data/mla.json (the numbers plotted) and docs/img/mla.svg (a
 * hand-written SVG through scripts/svg.ts; no plotting dependency).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { esc, svgOpen } from './svg.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
interface QCell { label: string; kvBytesPerToken: number; kvRatio: number; ppl: number; ranks: string }
interface Quality { baseline: { ppl: number; kvBytesPerToken: number }; sweep: QCell[] }
interface Speed { scaling: { context: number; stepMs: Record<string, number> }[]; variants: { name: string; kvBytesPerToken: number }[] }

const quality = JSON.parse(readFileSync(join(ROOT, 'bench', 'out', 'mla-quality.json'), 'utf8')) as Quality;
const speedFile = join(ROOT, 'bench', 'out', 'mla.json');
const speed = existsSync(speedFile) ? (JSON.parse(readFileSync(speedFile, 'utf8')) as Speed) : undefined;

const COLORS = ['#9ca3af', '#6b7280', '#f59e0b', '#d97706', '#60a5fa', '#2563eb', '#34d399', '#059669'];
const series = [...new Set(quality.sweep.map((c) => c.label))].map((label, i) => ({
  label,
  color: COLORS[i % COLORS.length]!,
  points: [...quality.sweep.filter((c) => c.label === label), { label, kvBytesPerToken: quality.baseline.kvBytesPerToken, kvRatio: 1, ppl: quality.baseline.ppl, ranks: 'full' }].sort((a, b) => a.kvBytesPerToken - b.kvBytesPerToken),
}));
const best = series.at(-1)!; // the sweep's last series is the best recipe (joint asvd energy + refit)

const W = 1180;
const H = 560;
const L: string[] = svgOpen(W, H, 12, '#fff');

// Left panel: perplexity (log scale) vs KV bytes per token.
{
  const m = { left: 70, top: 70, w: 560, h: 390 };
  const base = quality.baseline.ppl;
  // NOTE: the axis stops at CAP so the region the targets live in stays readable; points above it sit on the top
  // edge with their value printed.
  const CAP = 160;
  const [yMin, yMax] = [Math.log(base * 0.95), Math.log(CAP)];
  const x = (b: number) => m.left + (b / quality.baseline.kvBytesPerToken) * m.w;
  const y = (p: number) => m.top + m.h - ((Math.log(Math.min(p, CAP)) - yMin) / (yMax - yMin)) * m.h;
  const halo = 'stroke="#fff" stroke-width="3" paint-order="stroke"';
  L.push(`<text x="${m.left}" y="24" font-size="14" font-weight="600">mla on TinyStories-656K: perplexity vs KV cache</text>`);
  L.push(`<text x="${m.left}" y="42" fill="#555">held-out text, 512-token windows; calibration on another text; original ${base.toFixed(2)} at ${quality.baseline.kvBytesPerToken} B/token</text>`);
  for (const p of [40, 45, 50, 60, 70, 80, 100, 120, 160]) {
    if (Math.log(p) < yMin || Math.log(p) > yMax) continue;
    L.push(`<line x1="${m.left}" x2="${m.left + m.w}" y1="${y(p).toFixed(1)}" y2="${y(p).toFixed(1)}" stroke="#eee"/><text x="${m.left - 8}" y="${(y(p) + 4).toFixed(1)}" text-anchor="end">${p}</text>`);
  }
  for (const r of [0, 0.125, 0.25, 0.375, 0.5, 0.75, 1]) {
    const b = r * quality.baseline.kvBytesPerToken;
    L.push(`<line x1="${x(b).toFixed(1)}" x2="${x(b).toFixed(1)}" y1="${m.top}" y2="${m.top + m.h}" stroke="#f3f3f3"/><text x="${x(b).toFixed(1)}" y="${m.top + m.h + 16}" text-anchor="middle">${b}</text><text x="${x(b).toFixed(1)}" y="${m.top + m.h + 30}" text-anchor="middle" fill="#777">${r}×</text>`);
  }
  // Targets: ≤ 0.5× at ≤ +3%, ≤ 0.25× at ≤ +30%.
  for (const [r, pct] of [[0.5, 0.03], [0.25, 0.3]] as const) {
    L.push(`<rect x="${m.left}" y="${y(base * (1 + pct)).toFixed(1)}" width="${(x(r * quality.baseline.kvBytesPerToken) - m.left).toFixed(1)}" height="${(y(base * 0.95) - y(base * (1 + pct))).toFixed(1)}" fill="#10b981" fill-opacity="0.07" stroke="#10b981" stroke-dasharray="4 3"/>`);
    L.push(`<text x="${(m.left + 4).toFixed(1)}" y="${(y(base * (1 + pct)) - 4).toFixed(1)}" fill="#047857" font-size="11" ${halo}>target: ≤ ${r}× KV at ≤ +${pct * 100}%</text>`);
  }
  for (const s of series) {
    const d = s.points.map((p, i) => `${i ? 'L' : 'M'} ${x(p.kvBytesPerToken).toFixed(1)} ${y(p.ppl).toFixed(1)}`).join(' ');
    L.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="${s === best ? 2.6 : 1.6}"/>`);
    for (const p of s.points) {
      L.push(`<circle cx="${x(p.kvBytesPerToken).toFixed(1)}" cy="${y(p.ppl).toFixed(1)}" r="${s === best ? 3.6 : 2.6}" fill="${s.color}"/>`);
      if (p.ppl > CAP) L.push(`<text x="${x(p.kvBytesPerToken).toFixed(1)}" y="${m.top - 4}" text-anchor="middle" fill="${s.color}" font-size="10">${p.ppl.toFixed(0)}</text>`);
    }
  }
  for (const p of best.points.filter((q) => q.ranks !== 'full')) {
    const label = `${p.ppl.toFixed(1)}: ranks ${p.ranks.replace(/(\d+):/g, 'L$1 ')}`;
    L.push(`<text x="${(x(p.kvBytesPerToken) + 6).toFixed(1)}" y="${(y(p.ppl) - 8).toFixed(1)}" fill="${best.color}" font-size="10.5" transform="rotate(-35 ${(x(p.kvBytesPerToken) + 6).toFixed(1)} ${(y(p.ppl) - 8).toFixed(1)})" ${halo}>${esc(label)}</text>`);
  }
  L.push(`<text x="${m.left + m.w / 2}" y="${m.top + m.h + 48}" text-anchor="middle">KV cache bytes per token (fp32) and ratio to the original</text>`);
  L.push(`<text transform="translate(20 ${m.top + m.h / 2}) rotate(-90)" text-anchor="middle">perplexity (log scale, lower is better)</text>`);
  series.forEach((s, i) => {
    const ly = m.top + 10 + i * 17;
    L.push(`<line x1="${m.left + m.w - 200}" x2="${m.left + m.w - 180}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2.4"/><text x="${m.left + m.w - 174}" y="${ly + 4}">${esc(s.label)}</text>`);
  });
}

// Right panel: decode-step time vs context (bench-llama-random).
if (speed) {
  const m = { left: 730, top: 70, w: 400, h: 390 };
  const ctx = speed.scaling.map((s) => s.context);
  const maxMs = Math.max(...speed.scaling.flatMap((s) => Object.values(s.stepMs))) * 1.1;
  const x = (c: number) => m.left + ((Math.log2(c) - Math.log2(ctx[0]!)) / (Math.log2(ctx.at(-1)!) - Math.log2(ctx[0]!))) * m.w;
  const y = (ms: number) => m.top + m.h - (ms / maxMs) * m.h;
  L.push(`<text x="${m.left}" y="24" font-size="14" font-weight="600">decode step vs context (bench-llama-random)</text>`);
  L.push(`<text x="${m.left}" y="42" fill="#555">onnxruntime-node CPU, 1 thread; keys rebuilt from latents every step</text>`);
  const step = maxMs > 100 ? 20 : 10;
  for (let v = 0; v <= maxMs; v += step) L.push(`<line x1="${m.left}" x2="${m.left + m.w}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#eee"/><text x="${m.left - 8}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${v}</text>`);
  for (const c of ctx) L.push(`<text x="${x(c).toFixed(1)}" y="${m.top + m.h + 16}" text-anchor="middle">${c}</text>`);
  speed.variants.forEach((v, i) => {
    const color = ['#111827', '#ef4444', '#2563eb', '#059669'][i % 4]!;
    const d = speed.scaling.map((s, k) => `${k ? 'L' : 'M'} ${x(s.context).toFixed(1)} ${y(s.stepMs[v.name]!).toFixed(1)}`).join(' ');
    L.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"/>`);
    const ly = m.top + 10 + i * 17;
    L.push(`<line x1="${m.left + 10}" x2="${m.left + 30}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2.4"/><text x="${m.left + 36}" y="${ly + 4}">${esc(`${v.name} (${v.kvBytesPerToken} B/token)`)}</text>`);
  });
  L.push(`<text x="${m.left + m.w / 2}" y="${m.top + m.h + 34}" text-anchor="middle">context (cached tokens, log₂ scale)</text>`);
  L.push(`<text transform="translate(${m.left - 40} ${m.top + m.h / 2}) rotate(-90)" text-anchor="middle">ms per decode step</text>`);
}
L.push('</svg>');

mkdirSync(join(ROOT, 'docs', 'img'), { recursive: true });
mkdirSync(join(ROOT, 'docs', 'data'), { recursive: true });
writeFileSync(join(ROOT, 'docs', 'img', 'mla.svg'), `${L.join('\n')}\n`);
writeFileSync(join(ROOT, 'docs', 'data', 'mla.json'), `${JSON.stringify({ quality: { baseline: quality.baseline, sweep: quality.sweep.map(({ label, kvBytesPerToken, kvRatio, ppl, ranks }) => ({ label, kvBytesPerToken, kvRatio, ppl, ranks })) }, speed: speed ? { scaling: speed.scaling, variants: speed.variants } : null }, null, 2)}\n`);
console.log('wrote docs/img/mla.svg and docs/data/mla.json');
