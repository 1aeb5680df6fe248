/**
 * What the application-side APIs (dgram, net) get from the stack: the shim's ends of the rings to the
 * transport servers, the buffer pools and clock, and a way to receive messages by type. The shim runs on
 * the application's main thread; its receive loop never blocks the event loop (it parks with
 * Atomics.waitAsync).
 */
import type { Clock } from '../shared-rings/clock.js';
import type { Pools } from '../shared-rings/pools.js';
import type { RingConsumer, RingProducer } from '../shared-rings/ring.js';
import type { StackConfig } from '../servers/runtime/stack-memory.js';
import type { Endpoint } from '../servers/runtime/topology.js';

export interface ShimHost {
  readonly pools: Pools;
  readonly clock: Clock;
  readonly config: StackConfig;
  /** Pool owner word of the shim: buffers it allocates, and buffers it has claimed. */
  readonly owner: number;
  /** The shim's producer on the ring to `to`. Flush after writing; wait for space with waitForSpaceAsync. */
  out(to: 'udp' | Endpoint): RingProducer;
  /** Handle every record of message type `type` arriving at the shim (the record is committed after). */
  handle(type: number, fn: (from: Endpoint, ring: RingConsumer) => void): void;
  /**
   * Claim a buffer that arrived by descriptor in a record from `from`, written by incarnation `srcGen`
   * (the record header's srcGen): true if the shim now owns it. The shim writes SHIM_GEN (1) as srcGen
   * in its own records and owns its buffers as `owner`.
   */
  claim(buf: number, epoch: number, from: Endpoint, srcGen: number): boolean;
}
