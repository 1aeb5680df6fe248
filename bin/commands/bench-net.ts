/**
 * `keepnet bench bulk|rr|crr|all [--duration S] [--rounds N] [--warmup S] [--placement dedicated|shared|cohosted[,...]] [--mtu N] [--busy-poll US]
 * [--json] [--svg FILE]`: keepnet stack to stack over the shared-memory wire against Node's net over loopback,
 * in one run (bench/net.ts). On a terminal: progress on stderr and a table; --json: one object;
 * --svg FILE: bar charts of the comparison (d3-scale for the scales, like bin/demo/report.ts).
 */
import { writeFile } from 'node:fs/promises';
import { scaleBand, scaleLinear } from 'd3-scale';
import { benchProgress, busyPollOption, durationOption, mtuOption, parseOrFail, roundsOption, tcpInstancesOption, warmupOption, type Fail } from './options.js';
import { benchNet, formatNetBench, NET_TESTS, PLACEMENTS, type NetBenchResult, type NetBenchRow, type NetTest, type BenchPlacement } from '../../bench/net.js';

export async function benchNetCommand(what: string, args: string[], fail: Fail): Promise<void> {
  const { values } = parseOrFail(
    args,
    {
      json: { type: 'boolean' },
      svg: { type: 'string' },
      duration: { type: 'string' },
      rounds: { type: 'string' },
      warmup: { type: 'string' },
      placement: { type: 'string' },
      mtu: { type: 'string' },
      'tcp-instances': { type: 'string' },
      'busy-poll': { type: 'string' },
    },
    fail,
  );
  const tests: NetTest[] = what === 'all' || what === 'net' ? [...NET_TESTS] : [what as NetTest];
  if (!tests.every((t) => (NET_TESTS as readonly string[]).includes(t))) fail(`unknown benchmark '${what}'`);
  const duration = durationOption(values.duration, fail);
  const rounds = roundsOption(values.rounds, fail);
  const warmup = warmupOption(values.warmup, fail);
  let placements: BenchPlacement[] = [...PLACEMENTS];
  if (values.placement !== undefined) {
    placements = values.placement.split(',') as BenchPlacement[];
    if (!placements.every((p) => (PLACEMENTS as readonly string[]).includes(p))) fail(`--placement must be ${PLACEMENTS.join(', ')} or a comma-separated list of them, got '${values.placement}'`);
  }
  const mtu = mtuOption(values.mtu, fail, 65535);
  const tcpInstances = tcpInstancesOption(values['tcp-instances'], fail);
  const busyPollUs = busyPollOption(values['busy-poll'], fail);
  const progress = benchProgress(values.json);
  const r = await benchNet({ duration, rounds, warmup, tests, placements, mtu, tcpInstances, busyPollUs, onProgress: progress.onProgress });
  progress.done();
  if (values.svg) await writeFile(values.svg, netBenchSvg(r));
  process.stdout.write(values.json ? JSON.stringify(r) + '\n' : formatNetBench(r) + (values.svg ? `\nchart: ${values.svg}` : '') + '\n');
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const f1 = (x: number): string => (Math.round(x * 10) / 10).toString();

const COLORS: Record<string, string> = { kernel: '#7f7f7f', dedicated: '#1f77b4', shared: '#2ca02c', cohosted: '#ff7f0e' };
const PANEL_W = 340;
const PANEL_H = 280;
const M = { top: 56, right: 16, bottom: 40, left: 64 };

function label(r: NetBenchRow): string {
  return r.system === 'kernel' ? 'kernel' : r.placement;
}

function headline(test: NetTest): string {
  return test === 'bulk' ? 'bulk: MB/s' : test === 'rr' ? 'rr: transactions/s' : 'crr: connections/s';
}

function cpuTitle(test: NetTest): string {
  return test === 'bulk' ? 'bulk: MB per CPU s' : test === 'rr' ? 'rr: transactions per CPU s' : 'crr: connections per CPU s';
}

/** One bar panel at (x0, y0). */
function panel(rows: NetBenchRow[], value: (r: NetBenchRow) => number, title: string, x0: number, y0: number): string {
  const x = scaleBand<string>()
    .domain(rows.map(label))
    .range([x0 + M.left, x0 + PANEL_W - M.right])
    .padding(0.25);
  const y = scaleLinear()
    .domain([0, Math.max(1e-9, ...rows.map(value))])
    .range([y0 + PANEL_H - M.bottom, y0 + M.top])
    .nice();
  const out: string[] = [];
  out.push(`<text x="${x0 + M.left}" y="${y0 + 24}" font-size="14" font-weight="bold">${esc(title)}</text>`);
  for (const v of y.ticks(5)) {
    out.push(`<line x1="${x0 + M.left}" x2="${x0 + PANEL_W - M.right}" y1="${f1(y(v))}" y2="${f1(y(v))}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${x0 + M.left - 6}" y="${f1(y(v) + 4)}" text-anchor="end" font-size="11">${esc(y.tickFormat(5, '~s')(v))}</text>`);
  }
  out.push(`<line x1="${x0 + M.left}" x2="${x0 + PANEL_W - M.right}" y1="${y0 + PANEL_H - M.bottom}" y2="${y0 + PANEL_H - M.bottom}" stroke="#333"/>`);
  for (const r of rows) {
    const v = value(r);
    const bx = x(label(r)) ?? 0;
    out.push(
      `<rect x="${f1(bx)}" y="${f1(y(v))}" width="${f1(x.bandwidth())}" height="${f1(y(0) - y(v))}" fill="${COLORS[label(r)] ?? '#999'}"><title>${esc(`${label(r)}: ${v.toPrecision(4)}`)}</title></rect>`,
    );
    out.push(`<text x="${f1(bx + x.bandwidth() / 2)}" y="${f1(y(v) - 4)}" text-anchor="middle" font-size="11">${esc(v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toPrecision(3))}</text>`);
    out.push(`<text x="${f1(bx + x.bandwidth() / 2)}" y="${y0 + PANEL_H - M.bottom + 16}" text-anchor="middle" font-size="11">${esc(label(r))}</text>`);
  }
  return out.join('\n');
}

/** Per test, two panels: the speed (MB/s, tx/s or conn/s) and the work per CPU second. */
export function netBenchSvg(r: NetBenchResult): string {
  const tests = NET_TESTS.filter((t) => r.results.some((x) => x.test === t));
  const width = PANEL_W * tests.length;
  const height = PANEL_H * 2 + 60;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`);
  out.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  out.push(
    `<text x="12" y="22" font-size="15" font-weight="bold">${esc(`keepnet (shm wire, mtu ${r.wire.mtu}) vs kernel TCP (node:net over loopback), a process each, ${r.durationS} s each in ${r.rounds} rounds (median)`)}</text>`,
  );
  const ratios = Object.entries(r.ratios)
    .map(([k, v]) => `${k} ${v!.toFixed(2)}x`)
    .join(', ');
  out.push(`<text x="12" y="42" font-size="12">${esc(`keepnet best placement / kernel: ${ratios}`)}</text>`);
  tests.forEach((test, i) => {
    const rows = r.results.filter((x) => x.test === test);
    const speed = (x: NetBenchRow): number => (test === 'bulk' ? x.mbps : test === 'rr' ? x.tps : x.cps) ?? 0;
    out.push(panel(rows, speed, headline(test), i * PANEL_W, 50));
    out.push(panel(rows, (x) => x.perCpuSecond, cpuTitle(test), i * PANEL_W, 50 + PANEL_H));
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
