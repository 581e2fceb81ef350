/**
 * @file Hand-written SVG for the docs plots (no plotting dependency): escaping, tick steps and a line plot over a log₂
 * x axis, shared by scripts/dca-plot.ts, scripts/mla-plot.ts and scripts/gqa-plot.ts.
 */

export const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** One decimal, trailing zeros dropped. */
export const n1 = (x: number) => (Math.round(x * 10) / 10).toString();

/** A "nice" tick step for a range. */
export function tickStep(range: number, target: number): number {
  const raw = range / target;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((k) => k * p).find((s) => s >= raw) ?? 10 * p;
}

export const FONT = 'system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif';

/** The opening `<svg>` tag and a white background. */
export function svgOpen(width: number, height: number, fontSize = 12, background = '#ffffff'): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${FONT}" font-size="${fontSize}">`,
    `<rect width="${width}" height="${height}" fill="${background}"/>`,
  ];
}

export interface PlotPoint {
  x: number;
  y: number;
  /** Tooltip of the point's circle. */
  title?: string;
  /** [low, high] drawn as a vertical bar through the point (e.g. the range over repeated runs). */
  range?: [number, number];
}

export interface PlotSeries {
  label: string;
  color: string;
  points: PlotPoint[];
  /** stroke-dasharray of the line. */
  dash?: string;
  /** Second legend line, from the series' last point. */
  legendNote?: (last: PlotPoint) => string;
}

export interface LinePlotOptions {
  width?: number;
  height?: number;
  margin?: { left: number; right: number; top: number; bottom: number };
  title: string;
  subtitles: string[];
  /** x ticks; the axis is log₂ from the first to the last. */
  xTicks: number[];
  xLabel: string;
  yLabel: string;
  /** [low, high] the y axis must show (widened to nice ticks); points above it are drawn as arrows with their value. */
  yFit: [number, number];
  series: PlotSeries[];
  /** A dashed vertical line (e.g. the trained length). */
  marker?: { x: number; label: string };
  /** Lines of grey text under the legend. */
  footnote?: string[];
}

/**
 * A line plot: log₂ x axis, linear y axis fitted to `yFit` with nice ticks, series clipped to the panel (values above
 * it printed at the top edge), a legend on the right with each series' last value.
 */
export function linePlot(o: LinePlotOptions): string {
  const W = o.width ?? 900;
  const H = o.height ?? 490;
  const m = o.margin ?? { left: 64, right: 300, top: 64, bottom: 58 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const xMin = Math.log2(o.xTicks[0]!);
  const xMax = Math.log2(o.xTicks.at(-1)!);
  const x = (c: number) => m.left + ((Math.log2(c) - xMin) / (xMax - xMin)) * pw;
  const [lo, hi] = o.yFit;
  const step = tickStep(hi - lo, 6);
  const yLo = Math.max(lo >= 0 ? 0 : -Infinity, Math.floor((lo - step / 2) / step) * step);
  const yHi = Math.ceil((hi + step / 2) / step) * step;
  const y = (v: number) => m.top + (1 - (v - yLo) / (yHi - yLo)) * ph;
  const L = svgOpen(W, H);
  L.push(`<text x="${m.left}" y="20" font-size="14" font-weight="600">${esc(o.title)}</text>`);
  o.subtitles.forEach((s, i) => L.push(`<text x="${m.left}" y="${36 + 15 * i}" fill="#555">${esc(s)}</text>`));
  // Grid and ticks.
  L.push(`<clipPath id="panel"><rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}"/></clipPath>`);
  for (let v = yLo; v <= yHi + 1e-9; v += step) {
    L.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e7eb"/>`);
    L.push(`<text x="${m.left - 8}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" fill="#333">${n1(v)}</text>`);
  }
  for (const c of o.xTicks) {
    L.push(`<line x1="${x(c).toFixed(1)}" x2="${x(c).toFixed(1)}" y1="${m.top}" y2="${m.top + ph}" stroke="#f0f0f0"/>`);
    L.push(`<text x="${x(c).toFixed(1)}" y="${m.top + ph + 18}" text-anchor="middle" fill="#333">${c}</text>`);
  }
  L.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  L.push(`<text x="${m.left + pw / 2}" y="${H - 16}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  L.push(`<text transform="translate(18 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  if (o.marker) {
    const mx = x(o.marker.x);
    L.push(`<line x1="${mx.toFixed(1)}" x2="${mx.toFixed(1)}" y1="${m.top}" y2="${m.top + ph}" stroke="#111" stroke-width="1.5" stroke-dasharray="5 4"/>`);
    L.push(`<text x="${(mx + 6).toFixed(1)}" y="${m.top + ph - 8}" fill="#111">${esc(o.marker.label)}</text>`);
  }
  const dash = (s: PlotSeries) => (s.dash ? ` stroke-dasharray="${s.dash}"` : '');
  for (const s of o.series) {
    const pts = s.points.map((p) => [x(p.x), y(p.y)] as const);
    L.push(`<polyline clip-path="url(#panel)" fill="none" stroke="${s.color}" stroke-width="2.2"${dash(s)} points="${pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(' ')}"/>`);
    for (const p of s.points) {
      if (p.range) {
        const [a, b] = [y(Math.min(p.range[1], yHi)), y(p.range[0])];
        const px = x(p.x);
        L.push(`<path d="M ${(px - 4).toFixed(1)} ${a.toFixed(1)} H ${(px + 4).toFixed(1)} M ${px.toFixed(1)} ${a.toFixed(1)} V ${b.toFixed(1)} M ${(px - 4).toFixed(1)} ${b.toFixed(1)} H ${(px + 4).toFixed(1)}" stroke="${s.color}" stroke-width="1.4" fill="none"/>`);
      }
      const cy = y(p.y);
      if (cy >= m.top) {
        L.push(`<circle cx="${x(p.x).toFixed(1)}" cy="${cy.toFixed(1)}" r="3.6" fill="${s.color}"><title>${esc(p.title ?? `${s.label} @${p.x}: ${p.y}`)}</title></circle>`);
      } else {
        // Off the panel: an arrow at the top edge and the value.
        const cx = x(p.x);
        L.push(`<path d="M ${(cx - 5).toFixed(1)} ${m.top + 9} L ${cx.toFixed(1)} ${m.top + 1} L ${(cx + 5).toFixed(1)} ${m.top + 9} Z" fill="${s.color}"/>`);
        L.push(`<text x="${cx.toFixed(1)}" y="${m.top + 22}" text-anchor="middle" fill="${s.color}" font-weight="600">${p.y.toFixed(1)}</text>`);
      }
    }
  }
  // Legend: each series with its last value.
  const lx = m.left + pw + 16;
  let ly = m.top + 8;
  for (const s of o.series) {
    const last = s.points.at(-1);
    L.push(`<line x1="${lx}" x2="${lx + 22}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2.2"${dash(s)}/><circle cx="${lx + 11}" cy="${ly}" r="3.6" fill="${s.color}"/>`);
    L.push(`<text x="${lx + 30}" y="${ly + 4}">${esc(s.label)}</text>`);
    if (last && s.legendNote) L.push(`<text x="${lx + 30}" y="${ly + 19}" fill="#555">${esc(s.legendNote(last))}</text>`);
    ly += 40;
  }
  (o.footnote ?? []).forEach((t, i) => L.push(`<text x="${lx}" y="${ly + 4 + 15 * i}" fill="#555">${esc(t)}</text>`));
  L.push('</svg>');
  return `${L.join('\n')}\n`;
}
