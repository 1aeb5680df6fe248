/**
 * What a server is. A server is a module with a life cycle, run by a host loop (host.ts) on a worker
 * thread, alone (dedicated placement) or with others (shared placement):
 *   start(ctx)                 once per incarnation, before any message; attach to shared state here
 *   handle(ctx, from, type, bytes, off, len)
 *                              one input record, read in place; return false to be offered the same
 *                              record again later (an output ring is full: backpressure)
 *   poll(ctx, nowUs)           timers: called every loop iteration; returns the next deadline (us on
 *                              the central clock) or Infinity
 *   pending(ctx)               optional: news outside the input rings (re-checked before a park)
 *   stop(ctx)                  optional: a clean stop (flush captures, close links)
 * The host owns the rings, the clock, heartbeats, crash reporting and parking; a server owns only its
 * protocol logic. State that must survive a restart lives in shared memory, never in module globals.
 */
import type { Clock } from '../../shared-rings/clock.js';
import type { Pools } from '../../shared-rings/pools.js';
import type { RingProducer } from '../../shared-rings/ring.js';
import type { Counters } from './counters.js';
import type { StackConfig } from './stack-memory.js';
import type { Endpoint, ServerName } from './topology.js';

export interface ServerContext {
  readonly name: ServerName;
  readonly id: number;
  readonly generation: number;
  /** Pool owner word of this incarnation: makeOwner(id, generation). */
  readonly owner: number;
  /** This server's transit owner, makeOwner(id, 0): its buffers while no incarnation holds them. */
  readonly transitOwner: number;
  readonly clock: Clock;
  readonly pools: Pools;
  readonly out: ReadonlyMap<Endpoint, RingProducer>;
  readonly counters: Counters;
  /** The stack's configuration (interface, link). */
  readonly config: StackConfig;
  /** This server's shared state: tables that must survive its restarts live here. */
  readonly state: SharedArrayBuffer;
  /**
   * Take ownership of a buffer referenced by the record being handled: true if it is now this
   * incarnation's (owner word `owner`). A sender keeps its buffers under its own incarnation until the
   * receiver claims them; if the sender died meanwhile, the supervisor moved them to the sender's
   * transit owner, which a claim accepts too. A record replayed after a crash whose effects already
   * happened finds its buffer gone on (the claim fails): drop it instead of duplicating it.
   */
  claim(buf: number, epoch: number): boolean;
  /**
   * A heartbeat from inside a long piece of work (a timer sweep over thousands of connections): the
   * host beats between records and loop iterations, and a server that works longer than the hang
   * detector's threshold without one is declared hung. Cheap (one atomic add).
   */
  beat(): void;
}

export interface ServerModule {
  readonly name: ServerName;
  start(ctx: ServerContext): void;
  handle(ctx: ServerContext, from: Endpoint, type: number, bytes: Uint8Array, off: number, len: number): boolean;
  poll(ctx: ServerContext, nowUs: number): number;
  /**
   * Optional: whether news waits outside this server's input rings (the driver: frames on its link).
   * The host asks it after announcing a park (doorbell prepare), so news that arrived after poll()
   * looked, whose producer saw nobody parked and so did not ring, is not slept on.
   */
  pending?(ctx: ServerContext): boolean;
  /** A clean stop (the stack is closing): release what start() acquired. Not called after a crash. */
  stop?(ctx: ServerContext): void;
}
