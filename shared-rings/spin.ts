/**
 * Adaptive spin-then-park policy.
 *
 * Spinning (re-checking a ring in a loop before parking in Atomics.wait) saves the ~10 us cost of a
 * park/notify round trip, but only while the thread we wait for is running on another core. On this
 * project's 2-core machines a stack has 4+ server threads; once runnable threads outnumber cores, a
 * spinner burns the time slice its producer needs (measured: 80x slower). So:
 *  - the budget adapts: a spin that found work doubles it (up to `max`), a spin that found nothing halves
 *    it, so a thread whose peer is descheduled quickly stops spinning at all;
 *  - `max` is 0 when the placement has more busy threads than cores (see `spinBudgetFor`).
 */
export class AdaptiveSpinner {
  private budget: number;
  readonly max: number;
  hits = 0;
  misses = 0;
  private idle = 0;

  constructor(max: number) {
    if (!Number.isInteger(max) || max < 0) {
      throw Object.assign(new RangeError(`spin max must be a non-negative integer, got ${max}`), {
        code: 'ERR_OUT_OF_RANGE',
      });
    }
    this.max = max;
    this.budget = max >>> 2;
  }

  /** How many checks to make before parking. */
  get current(): number {
    return this.budget;
  }

  /** Spin on `check` for the current budget; true if it succeeded (and the budget grows). */
  spin(check: () => boolean): boolean {
    // A budget that fell to 0 would never learn that spinning pays again: every 64th wait probes with
    // a small one.
    let n = this.budget;
    if (n === 0 && this.max > 0 && (++this.idle & 63) === 0) n = 16;
    for (let i = 0; i < n; i++) {
      if (check()) {
        this.hits++;
        this.budget = Math.min(this.max, n * 2 + 8);
        return true;
      }
    }
    if (n > 0) this.misses++;
    this.budget >>>= 1;
    return false;
  }
}

/**
 * Spin budget for a thread given how many threads may be runnable at once and how many cores there are.
 * With more runnable threads than cores, spinning only steals the producer's time slice: budget 0.
 */
export function spinBudgetFor(runnableThreads: number, cores: number): number {
  return runnableThreads <= cores ? 4096 : 0;
}
