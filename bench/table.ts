/**
 * The benchmarks' terminal tables: a number formatter and column alignment shared by `bench
 * bulk|rr|crr|all` (net.ts) and `bench scale` (scale.ts).
 */

/** '-' for a missing or non-finite figure; thousands separated from 1000 up; else `digits` decimals. */
export const fmt = (x: number | null, digits = 0): string =>
  x === null || !Number.isFinite(x) ? '-' : x >= 1000 ? Math.round(x).toLocaleString('en-US') : x.toFixed(digits);

/** Header, a rule and the rows, columns two spaces apart: the first `leftColumns` left-aligned, the rest right. */
export function textTable(head: readonly string[], rows: readonly string[][], leftColumns: number): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i < leftColumns ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}
