/**
 * The busy poller of a stack's threads: the host loop's on each server thread, the shim's pump on the
 * application's thread. Both yield their core between checks with sched_yield(2), from the native addon.
 * Without the addon polling is off: plain spinning with more threads than cores starves the threads
 * that have work (machine-limits.md: 80x slower).
 */
import { BusyPoller } from '../../shared-rings/spin.js';
import { loadTapAddon } from '../driver/tap-device.js';

/** A poller with budget `maxUs` (the stack's busyPollUs) on real time: a CPU budget, not protocol time. */
export function busyPollerFor(maxUs: number): BusyPoller {
  let relax: (() => void) | null = null;
  if (maxUs > 0) {
    try {
      const addon = loadTapAddon();
      relax = () => addon.schedYield();
    } catch {
      relax = null;
    }
  }
  return new BusyPoller(relax ? maxUs : 0, () => performance.now() * 1000, relax ?? (() => {}));
}
