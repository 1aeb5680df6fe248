/**
 * Two keepnet stacks joined by a shared-memory wire in this process: side 'a' and side 'b' of one
 * ShmWire, both started. What the demo, `keepnet bench` and the two-stack tests run on, and what an
 * application uses to talk to a second stack without a TAP device (no root needed).
 */
import { ShmWire, type ShmWireOptions } from '../servers/driver/shm-wire.js';
import { Stack, type StackOptions } from './stack.js';

/** One side's options: its address ('a.b.c.d/prefix') is required; the link is the wire's side. */
export type PairSideOptions = Omit<StackOptions, 'link'> & { address: string };

/**
 * Create a wire with `wire` options and a started stack on each side. If either fails to start, both
 * are closed (no worker thread is left behind to keep the process alive) and the first error is thrown.
 */
export async function createStackPair(wire: ShmWireOptions, a: PairSideOptions, b: PairSideOptions): Promise<[Stack, Stack]> {
  const init = ShmWire.create(wire);
  const A = new Stack({ ...a, link: { kind: 'shm', wire: init, side: 'a' } });
  let B: Stack;
  try {
    B = new Stack({ ...b, link: { kind: 'shm', wire: init, side: 'b' } });
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
