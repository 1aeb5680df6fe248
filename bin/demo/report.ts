/**
 * `keepnet faults --report FILE.svg|FILE.html`: two charts of a campaign.
 *   1. Throughput over time: bytes verified per bucket (250 ms), as an area, with a vertical marker at
 *      each fault, colored by its kind (crash, exit, hang, poison), dashed for faults into stack B.
 *   2. A histogram of the recovery times the supervisors reported.
 * .svg writes the two charts as one SVG; .html wraps it in a page with the summary figures.
 *
 * Scales, nice domains, ticks and tick labels come from d3-scale (the d3 project's, small, no DOM
 * needed); the markup itself is a few template strings, since no well-kept small library renders SVG
 * charts in Node without a DOM (chart.js, uPlot and chartist draw in a browser; vega does it but
 * brings some 30 packages).
 */
import { writeFile } from 'node:fs/promises';
import { scaleLinear } from 'd3-scale';
import type { CampaignResult, CampaignTimeline } from '../../kernel-shim/fault-campaign.js';

export const KIND_COLORS: Readonly<Record<string, string>> = {
  crash: '#d62728',
  exit: '#ff7f0e',
  hang: '#9467bd',
  poison: '#2ca02c',
};

const W = 960;
const H1 = 320;
const H2 = 260;
const M = { top: 48, right: 24, bottom: 44, left: 72 };

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const f1 = (x: number): string => (Math.round(x * 10) / 10).toString();

function throughputChart(t: CampaignTimeline, y0: number): string {
  const mbps = t.throughput.map((b) => b / (t.bucketMs / 1000) / 2 ** 20); // MiB/s per bucket
  const lastFault = t.faults.length ? t.faults[t.faults.length - 1].atMs : 0;
  const spanS = Math.max(t.throughput.length * t.bucketMs, lastFault, 1000) / 1000;
  const x = scaleLinear().domain([0, spanS]).range([M.left, W - M.right]).nice();
  const y = scaleLinear()
    .domain([0, Math.max(1, ...mbps)])
    .range([y0 + H1 - M.bottom, y0 + M.top])
    .nice();
  const out: string[] = [];
  out.push(`<g class="throughput">`);
  out.push(`<text x="${M.left}" y="${y0 + 20}" font-size="15" font-weight="bold">Throughput (bytes verified, MiB/s per ${t.bucketMs} ms) with the faults injected</text>`);
  // Grid and axes.
  for (const v of y.ticks(5)) {
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${f1(y(v))}" y2="${f1(y(v))}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${M.left - 6}" y="${f1(y(v) + 4)}" text-anchor="end" font-size="11">${esc(y.tickFormat(5)(v))}</text>`);
  }
  for (const v of x.ticks(10)) {
    out.push(`<line x1="${f1(x(v))}" x2="${f1(x(v))}" y1="${y0 + H1 - M.bottom}" y2="${y0 + H1 - M.bottom + 5}" stroke="#333"/>`);
    out.push(`<text x="${f1(x(v))}" y="${y0 + H1 - M.bottom + 18}" text-anchor="middle" font-size="11">${esc(x.tickFormat(10)(v))}</text>`);
  }
  out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${y0 + H1 - M.bottom}" y2="${y0 + H1 - M.bottom}" stroke="#333"/>`);
  out.push(`<line x1="${M.left}" x2="${M.left}" y1="${y0 + M.top}" y2="${y0 + H1 - M.bottom}" stroke="#333"/>`);
  out.push(`<text x="${(M.left + W - M.right) / 2}" y="${y0 + H1 - 8}" text-anchor="middle" font-size="12">time (s)</text>`);
  out.push(`<text transform="translate(16 ${y0 + (H1 - M.bottom + M.top) / 2}) rotate(-90)" text-anchor="middle" font-size="12">MiB/s</text>`);
  // The throughput, a step area.
  if (mbps.length) {
    const pts: string[] = [`${f1(x(0))},${f1(y(0))}`];
    mbps.forEach((v, i) => {
      const a = (i * t.bucketMs) / 1000;
      const b = ((i + 1) * t.bucketMs) / 1000;
      pts.push(`${f1(x(a))},${f1(y(v))}`, `${f1(x(b))},${f1(y(v))}`);
    });
    pts.push(`${f1(x((mbps.length * t.bucketMs) / 1000))},${f1(y(0))}`);
    out.push(`<polygon class="throughput-area" points="${pts.join(' ')}" fill="#4e79a7" fill-opacity="0.35" stroke="#4e79a7" stroke-width="1"/>`);
  }
  // Fault markers.
  for (const f of t.faults) {
    const xf = f1(x(f.atMs / 1000));
    const rec = f.recoveryMs.length ? `, recovered in ${f.recoveryMs.map((r) => r.toFixed(2)).join(' + ')} ms` : f.recovered ? '' : ', NOT recovered';
    out.push(
      `<line class="fault fault-${f.kind}" data-kind="${f.kind}" data-server="${f.server}" data-stack="${f.stack}" x1="${xf}" x2="${xf}" y1="${y0 + M.top}" y2="${y0 + H1 - M.bottom}" stroke="${KIND_COLORS[f.kind]}" stroke-width="1" stroke-opacity="0.7"${f.stack === 'b' ? ' stroke-dasharray="3 2"' : ''}><title>${esc(`${f.kind} of ${f.stack.toUpperCase()}.${f.server} at ${(f.atMs / 1000).toFixed(3)} s${rec}`)}</title></line>`,
    );
  }
  // Legend, under the title.
  let lx = M.left;
  for (const [kind, color] of Object.entries(KIND_COLORS)) {
    out.push(`<rect x="${lx}" y="${y0 + 28}" width="12" height="12" fill="${color}"/><text x="${lx + 16}" y="${y0 + 38}" font-size="12">${kind}</text>`);
    lx += 70;
  }
  out.push(`<text x="${lx + 10}" y="${y0 + 38}" font-size="12" fill="#555">solid: fault into stack A (server side); dashed: into stack B (client side)</text>`);
  out.push(`</g>`);
  return out.join('\n');
}

function histogramChart(t: CampaignTimeline, y0: number): string {
  const xs = t.recoveries;
  const out: string[] = [`<g class="recovery-histogram">`];
  out.push(`<text x="${M.left}" y="${y0 + 20}" font-size="15" font-weight="bold">Recovery times (${xs.length} restarts; from the supervisor's verdict to the new incarnation serving)</text>`);
  const x = scaleLinear()
    .domain([0, Math.max(0.1, ...xs)])
    .range([M.left, W - M.right])
    .nice(30);
  const thresholds = x.ticks(30);
  const step = thresholds.length > 1 ? thresholds[1] - thresholds[0] : 1;
  const [lo, hi] = x.domain() as [number, number];
  const nBins = Math.max(1, Math.round((hi - lo) / step));
  const counts = new Array<number>(nBins).fill(0);
  for (const v of xs) counts[Math.min(nBins - 1, Math.max(0, Math.floor((v - lo) / step)))]++;
  const y = scaleLinear()
    .domain([0, Math.max(1, ...counts)])
    .range([y0 + H2 - M.bottom, y0 + M.top])
    .nice();
  for (const v of y.ticks(5).filter((v) => Number.isInteger(v))) {
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${f1(y(v))}" y2="${f1(y(v))}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${M.left - 6}" y="${f1(y(v) + 4)}" text-anchor="end" font-size="11">${esc(y.tickFormat(5)(v))}</text>`);
  }
  counts.forEach((c, i) => {
    if (c === 0) return;
    const a = x(lo + i * step);
    const b = x(lo + (i + 1) * step);
    out.push(
      `<rect class="bin" x="${f1(a + 0.5)}" y="${f1(y(c))}" width="${f1(Math.max(0.5, b - a - 1))}" height="${f1(y(0) - y(c))}" fill="#59a14f"><title>${esc(`${f1(lo + i * step)}-${f1(lo + (i + 1) * step)} ms: ${c}`)}</title></rect>`,
    );
  });
  for (const v of x.ticks(10)) {
    out.push(`<line x1="${f1(x(v))}" x2="${f1(x(v))}" y1="${y0 + H2 - M.bottom}" y2="${y0 + H2 - M.bottom + 5}" stroke="#333"/>`);
    out.push(`<text x="${f1(x(v))}" y="${y0 + H2 - M.bottom + 18}" text-anchor="middle" font-size="11">${esc(x.tickFormat(10)(v))}</text>`);
  }
  out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${y0 + H2 - M.bottom}" y2="${y0 + H2 - M.bottom}" stroke="#333"/>`);
  out.push(`<line x1="${M.left}" x2="${M.left}" y1="${y0 + M.top}" y2="${y0 + H2 - M.bottom}" stroke="#333"/>`);
  out.push(`<text x="${(M.left + W - M.right) / 2}" y="${y0 + H2 - 8}" text-anchor="middle" font-size="12">recovery time (ms)</text>`);
  out.push(`<text transform="translate(16 ${y0 + (H2 - M.bottom + M.top) / 2}) rotate(-90)" text-anchor="middle" font-size="12">restarts</text>`);
  out.push(`</g>`);
  return out.join('\n');
}

/** The two charts as one standalone SVG document. */
export function renderSvg(t: CampaignTimeline, r?: CampaignResult): string {
  const caption = r
    ? `${r.injected} faults, ${r.recovered} recovered; connections lost ${r.connectionsLost}; requests ${r.requests.ok} ok, ${r.requests.failed} failed; ` +
      `${(r.bytesVerified / 2 ** 20).toFixed(1)} MiB verified; recovery p50 ${r.recoveryMs.p50} ms, p99 ${r.recoveryMs.p99} ms, max ${r.recoveryMs.max} ms`
    : '';
  const h = H1 + H2 + 30;
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="sans-serif">`,
    `<title>keepnet fault campaign</title>`,
    `<rect width="${W}" height="${h}" fill="white"/>`,
    throughputChart(t, 0),
    histogramChart(t, H1),
    `<text x="${M.left}" y="${h - 10}" font-size="11" fill="#555">${esc(caption)}</text>`,
    `</svg>`,
    '',
  ].join('\n');
}

/** The charts in an HTML page with the summary. */
export function renderHtml(t: CampaignTimeline, r?: CampaignResult): string {
  const svg = renderSvg(t, r).replace(/^<\?xml[^>]*>\n/, '');
  const rows = r
    ? ([
        ['faults injected', r.injected],
        ['recovered', r.recovered],
        ['connections lost', r.connectionsLost],
        ['requests ok / failed', `${r.requests.ok} / ${r.requests.failed}`],
        ['bytes verified', r.bytesVerified],
        ['UDP sent / echoed / lost', `${r.udp.sent} / ${r.udp.echoed} / ${r.udp.lost}`],
        ['detection (ms) p50 / p99 / max', `${r.detectionMs.p50} / ${r.detectionMs.p99} / ${r.detectionMs.max}`],
        ['recovery (ms) p50 / p99 / max', `${r.recoveryMs.p50} / ${r.recoveryMs.p99} / ${r.recoveryMs.max}`],
        ['poison messages dropped', r.poisonDropped],
        ['false suspicions', r.falseSuspicions],
      ] as [string, string | number][])
    : [];
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>keepnet fault campaign</title>
<style>body{font-family:sans-serif;margin:24px}table{border-collapse:collapse;margin:12px 0}td{padding:2px 12px;border-bottom:1px solid #eee}</style>
</head><body>
<h1>keepnet fault campaign</h1>
<table>${rows.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(String(v))}</td></tr>`).join('')}</table>
${svg}
</body></html>
`;
}

export async function writeReport(file: string, t: CampaignTimeline, r?: CampaignResult): Promise<void> {
  await writeFile(file, /\.html?$/i.test(file) ? renderHtml(t, r) : renderSvg(t, r));
}
