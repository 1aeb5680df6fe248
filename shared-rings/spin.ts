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

/**
 * Busy polling before a park, bounded in time (Linux's net.core.busy_poll and OpenOnload's
 * EF_POLL_USEC are the same idea): a thread that just ran out of work keeps checking for news for a
 * while instead of parking, so the next record reaches it without a futex wake-up. On this project's
 * VMs a wake-up is the dominant cost of a request/response: the waker pays for Atomics.notify (a
 * futex syscall that interrupts the halted vCPU) and the woken thread for getting scheduled again.
 *
 * It differs from AdaptiveSpinner in two ways that make it safe with more threads than cores:
 *  - between checks it calls `relax`, which the host loop binds to sched_yield(2): a thread with work
 *    queued on this core gets it at once, the poller only uses time nobody else wants;
 *  - its budget is time, not iterations, and it adapts: a poll that found news restores the full
 *    budget, one that found none halves it, so a thread whose traffic comes rarely stops polling after
 *    a few misses (then every 64th park it probes with the full budget, to learn when traffic is back:
 *    a probe shorter than the hand-off it waits for would never hit, and the hand-off to an
 *    application's main thread takes tens of µs).
 * Time comes from `nowUs`: real time for the host loop (it is a CPU budget, not protocol time), a fake
 * one in tests.
 */
export class BusyPoller {
  readonly maxUs: number;
  private budgetUs: number;
  private idle = 0;
  /** Whether the poll under way is a probe (made at budget 0). */
  private probing = false;
  /** Polls that found news (each one a park, and a wake-up for the producer, saved). */
  hits = 0;
  /** Polls that ran out of budget (the thread then parks as it would have without polling). */
  misses = 0;
  private readonly nowUs: () => number;
  private readonly relax: () => void;

  constructor(maxUs: number, nowUs: () => number, relax: () => void) {
    if (!Number.isFinite(maxUs) || maxUs < 0) {
      throw Object.assign(new RangeError(`busy poll budget must be a non-negative number of microseconds, got ${maxUs}`), {
        code: 'ERR_OUT_OF_RANGE',
      });
    }
    this.maxUs = maxUs;
    this.budgetUs = maxUs;
    this.nowUs = nowUs;
    this.relax = relax;
  }

  /** The budget the next poll will use (microseconds). */
  get currentUs(): number {
    return this.budgetUs;
  }

  /**
   * Check `news` until it returns true or the budget runs out (or `limitUs`, the time to the caller's
   * next timer, if that is sooner: a poll never makes a timer late); true if it found news.
   */
  poll(news: () => boolean, limitUs = Infinity): boolean {
    const until = this.begin(limitUs);
    if (until < 0) return false;
    do {
      if (news()) {
        this.hit();
        return true;
      }
      this.relax();
    } while (this.nowUs() < until);
    this.miss();
    return false;
  }

  /**
   * The same poll without blocking the caller's event loop for long, for a consumer on an application's
   * main thread: the checks run in turns of the event loop (setImmediate), so the application's timers
   * and I/O run between them, and `relax` after each check gives the core to a thread with work. A turn
   * makes one check, or keeps checking for up to `sliceUs` (holding the event loop that long at most):
   * each turn costs the event loop's own round (an epoll_wait, an Immediate to allocate and collect),
   * and a record that comes while the loop is elsewhere waits for it. Resolves true if `news` returned
   * true within the budget.
   */
  pollAsync(news: () => boolean, sliceUs = 0): Promise<boolean> {
    const until = this.begin(Infinity);
    if (until < 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const turn = (): void => {
        const sliceEnd = sliceUs > 0 ? this.nowUs() + sliceUs : 0;
        for (;;) {
          if (news()) {
            this.hit();
            resolve(true);
            return;
          }
          const now = this.nowUs();
          if (now >= until) {
            this.miss();
            resolve(false);
            return;
          }
          this.relax();
          if (now >= sliceEnd) break;
        }
        setImmediate(turn);
      };
      setImmediate(turn);
    });
  }

  /** Start a poll: the time (nowUs) it ends at, or -1 if this park is not to poll at all. */
  private begin(limitUs: number): number {
    let budget = this.budgetUs;
    this.probing = budget === 0;
    if (this.probing) {
      if (this.maxUs === 0 || (++this.idle & 63) !== 0) return -1;
      budget = this.maxUs;
    }
    if (!(limitUs > 0)) return -1;
    if (limitUs < budget) budget = limitUs;
    return this.nowUs() + budget;
  }

  /** The poll found news: the full budget again. */
  private hit(): void {
    this.hits++;
    this.budgetUs = this.maxUs;
  }

  /** The poll ran out: half the budget next time, none once it is tiny or a probe missed. */
  private miss(): void {
    this.misses++;
    this.budgetUs = this.probing || this.budgetUs < 2 * MIN_BUDGET_US ? 0 : this.budgetUs / 2;
  }
}

/** A budget halved below this stops polling (until a probe hits). */
const MIN_BUDGET_US = 2;
