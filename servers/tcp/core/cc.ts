/**
 * The congestion-control registry: algorithm by name or by numeric id (the id is what a Tcb stores in
 * shared memory), fresh CcVars, and the initial window.
 *
 *   id 0  'newreno'  cc-newreno.ts (RFC 5681 + RFC 3465 + RFC 6582 window rules)
 *   id 1  'cubic'    cc-cubic.ts   (RFC 9438)
 *
 * The ids are persistent (stored in Tcbs): never renumber them.
 */
import { CC_SCRATCH, type CcName, type CcVars, type CongestionControl } from './contracts.js';
import { cubic } from './cc-cubic.js';
import { initialWindow, newReno, SSTHRESH_INIT } from './cc-newreno.js';

export { initialWindow, SSTHRESH_INIT };

export const CC_ID_NEWRENO = 0;
export const CC_ID_CUBIC = 1;

/** The algorithm called `name`. */
export function ccByName(name: CcName): CongestionControl {
  switch (name) {
    case 'newreno':
      return newReno;
    case 'cubic':
      return cubic;
  }
}

/** The algorithm with persistent id `id` (0 newreno, 1 cubic); throws RangeError for any other id. */
export function ccById(id: number): CongestionControl {
  switch (id) {
    case CC_ID_NEWRENO:
      return newReno;
    case CC_ID_CUBIC:
      return cubic;
    default:
      throw new RangeError(`unknown congestion control id ${id}`);
  }
}

/** The persistent id of the algorithm called `name`. */
export function ccId(name: CcName): number {
  switch (name) {
    case 'newreno':
      return CC_ID_NEWRENO;
    case 'cubic':
      return CC_ID_CUBIC;
  }
}

/**
 * Fresh congestion-control state: cwnd 0 (the algorithm's init sets the initial window once the
 * connection is established), ssthresh 2^31 - 1 (RFC 5681 §3.1: "arbitrarily high", so the connection
 * starts in slow start; the largest int32 keeps it exact in any integer store), scratch all 0.
 */
export function newCcVars(): CcVars {
  return { cwnd: 0, ssthresh: SSTHRESH_INIT, v: new Array<number>(CC_SCRATCH).fill(0) };
}
