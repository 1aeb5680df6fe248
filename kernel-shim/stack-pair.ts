/**
 * Two keepnet stacks joined by a shared-memory wire in this process: side 'a' and side 'b' of one
 * ShmWire, both started. What the demo, `keepnet bench` and the two-stack tests run on, and what an
 * application uses to talk to a second stack without a TAP device (no root needed).
 */
import { ShmWire, type ShmWireOptions } from '../servers/driver/shm-wire.js';
import { Stack, type StackOptions } from './stack.js';

/** One side's options: its address ('a.b.c.d/prefix') is required; the link is the wire's side. */
export type PairSideOptions = Omit<StackOptions, 'link' | 'cohostOf' | 'hostBell'> & { address: string };

export interface PairOptions {
  /**
   * Run both stacks' servers on one worker thread (each stack's four servers with placement 'shared',
   * both stacks on the same thread, one supervisor for both), instead of a thread per stack. The
   * exchange between the stacks then needs no hand-off between threads: a frame one driver puts on the
   * wire is taken off by the other in the same turn of the loop, as the kernel's loopback does in one
   * softirq. Each side's placement must be 'shared' or unset. The thread's fate is shared: a crash of
   * any server restarts both stacks' servers together (their connections survive, as always).
   */
  cohost?: boolean;
}

/**
 * Create a wire with `wire` options and a started stack on each side. If either fails to start, both
 * are closed (no worker thread is left behind to keep the process alive) and the first error is thrown.
 */
export async function createStackPair(wire: ShmWireOptions, a: PairSideOptions, b: PairSideOptions, opts: PairOptions = {}): Promise<[Stack, Stack]> {
  if (opts === null || typeof opts !== 'object' || (opts.cohost !== undefined && typeof opts.cohost !== 'boolean')) {
    throw Object.assign(new TypeError('The "opts.cohost" option must be of type boolean'), { code: 'ERR_INVALID_ARG_TYPE' });
  }
  const cohost = opts.cohost === true;
  if (cohost && [a, b].some((s) => s.placement !== undefined && s.placement !== 'shared')) {
    throw Object.assign(new TypeError("co-hosted stacks need placement 'shared' (or unset)"), { code: 'ERR_INVALID_ARG_VALUE' });
  }
  const init = ShmWire.create(wire);
  // Co-hosted: both stacks' rings into the thread ring the one doorbell it parks on.
  const joint: Partial<StackOptions> = cohost ? { placement: 'shared', hostBell: new SharedArrayBuffer(8) } : {};
  const A = new Stack({ ...a, ...joint, link: { kind: 'shm', wire: init, side: 'a' } });
  let B: Stack;
  try {
    B = new Stack({ ...b, ...joint, ...(cohost ? { cohostOf: A } : {}), link: { kind: 'shm', wire: init, side: 'b' } });
  } catch (err) {
    await A.close();
    throw err;
  }
  const started = await Promise.allSettled([A.start(), B.start()]);
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.allSettled([A.close(), B.close()]);
    throw failed.reason;
  }
  return [A, B];
}
