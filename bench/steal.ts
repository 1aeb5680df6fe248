/**
 * CPU steal: the share of the machine's CPU time the hypervisor gave to other guests, from the `cpu`
 * line of /proc/stat (Linux; its 8th figure, `steal`). The benchmarks report it per measured window:
 * on this project's virtual machines it swings from under 1% to 15% and more within minutes, and a
 * keepnet pair whose two threads hand work to each other stalls whenever either core is taken, so a
 * figure measured under heavy steal says more about the host than about the stack.
 */
import { readFileSync } from 'node:fs';

export interface CpuTimes {
  /** Ticks stolen, summed over the CPUs. */
  steal: number;
  /** All ticks (user, nice, system, idle, iowait, irq, softirq, steal), summed over the CPUs. */
  total: number;
}

/** The machine's CPU ticks so far, or null where /proc/stat cannot be read or parsed (not Linux). */
export function readCpuTimes(): CpuTimes | null {
  let text: string;
  try {
    text = readFileSync('/proc/stat', 'latin1');
  } catch {
    return null;
  }
  return parseCpuTimes(text);
}

/** The `cpu` line of a /proc/stat text (exported for tests). */
export function parseCpuTimes(stat: string): CpuTimes | null {
  const line = stat.split('\n').find((l) => l.startsWith('cpu '));
  if (line === undefined) return null;
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (f.length < 8 || !f.every((x) => Number.isFinite(x) && x >= 0)) return null;
  return { steal: f[7]!, total: f.reduce((a, b) => a + b, 0) };
}

/** Percentage of the CPU time between two readings that was stolen; null without both, or no time passed. */
export function stealPct(before: CpuTimes | null, after: CpuTimes | null): number | null {
  if (before === null || after === null) return null;
  const total = after.total - before.total;
  if (!(total > 0)) return null;
  return (100 * Math.max(0, after.steal - before.steal)) / total;
}

/** Above this steal share in any row, a benchmark's table says the run's figures are not representative. */
export const STEAL_WARN_PCT = 5;

/**
 * The warning a table prints under its rows when the hypervisor took more than STEAL_WARN_PCT of the CPU
 * during any of them (`pcts`: each row's steal, null where unknown); null when none did.
 */
export function stealWarning(pcts: readonly (number | null)[]): string | null {
  const stolen = pcts.filter((p) => p !== null && p > STEAL_WARN_PCT).length;
  if (stolen === 0) return null;
  return `warning: the hypervisor took over ${STEAL_WARN_PCT}% of the CPU during ${stolen} row(s); a keepnet stack's threads stall whenever either core is taken, so those figures say more about the host than about the stack.`;
}
