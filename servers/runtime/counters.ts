/**
 * Per-server counters in shared memory: a server bumps them with no allocation, the supervisor and
 * `stack.stats()` read them from the main thread, and they survive the server's restarts (they are
 * counts about the server's inputs, not about one incarnation). Names are fixed here so every slot has
 * one meaning; a server's protocol drops ("drop:REASON") get slots from DROP_REASONS.
 */

import { SERVER_NAMES, tcpInstanceOf, type ServerName } from './topology.js';

export const COUNTERS = [
  'handled', // input records handled and committed
  'staleDropped', // messages addressed to a dead incarnation
  'poisonDropped', // records skipped after crashing the server repeatedly
  'replayDropped', // a record replayed after a crash whose effects had already happened
  'unknownDropped', // message types this server does not handle
  'probesForwarded',
  'backpressure', // times an output ring was full and input handling paused
  'parks',
  'busyPollHits', // idle moments that ended in news found by the busy poll, not in a park
  'wakeups',
] as const;
export type CounterName = (typeof COUNTERS)[number];

const SLOTS = 64;

export class Counters {
  readonly i32: Int32Array;
  private readonly base: number;

  /** `server`: its name, or its position in the stack's server list (StackMemory.servers). */
  constructor(sab: SharedArrayBuffer, server: ServerName | number) {
    const index = typeof server === 'number' ? server : serverIndex(server);
    if (index < 0 || (index + 1) * SLOTS * 4 > sab.byteLength) throw new RangeError(`no counters for server #${index}`);
    this.i32 = new Int32Array(sab);
    this.base = index * SLOTS;
  }

  static allocate(servers: number = SERVER_NAMES.length): SharedArrayBuffer {
    return new SharedArrayBuffer(servers * SLOTS * 4);
  }

  static slot(name: CounterName): number {
    return COUNTERS.indexOf(name);
  }

  add(slot: number, n = 1): void {
    Atomics.add(this.i32, this.base + slot, n);
  }

  get(name: CounterName): number {
    return Atomics.load(this.i32, this.base + COUNTERS.indexOf(name));
  }

  snapshot(): Record<CounterName, number> {
    const out = {} as Record<CounterName, number>;
    COUNTERS.forEach((n, i) => (out[n] = Atomics.load(this.i32, this.base + i)));
    return out;
  }
}

/** A server's position in serverNames(): the base four, then tcp instance k at 3 + k. */
function serverIndex(server: ServerName): number {
  const i = (SERVER_NAMES as readonly string[]).indexOf(server);
  if (i >= 0) return i;
  const k = tcpInstanceOf(server);
  return k >= 1 ? SERVER_NAMES.length - 1 + k : -1;
}

/** Slot numbers, resolved once (hot paths use these constants). */
export const K = Object.freeze(Object.fromEntries(COUNTERS.map((n, i) => [n, i])) as Record<CounterName, number>);
