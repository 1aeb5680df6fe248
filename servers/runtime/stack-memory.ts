/**
 * The shared memory of one stack: the central clock page, the packet pool, every ring of the topology
 * and the hosts' control blocks. Created once on the main thread; every worker attaches to the same
 * SharedArrayBuffers, and so does every new incarnation of a server: restarting a server changes none
 * of it.
 */
import { ClockPage, Clock } from '../../shared-rings/clock.js';
import { PacketPool } from '../../shared-rings/pool.js';
import { Ring, type RingRegion } from '../../shared-rings/ring.js';
import { Doorbell } from '../../shared-rings/doorbell.js';
import { C, ControlBlock } from './control.js';
import { Counters } from './counters.js';
import { LINKS, hostsFor, linkName, type Endpoint, type Placement, type ServerName } from './topology.js';

export interface StackMemoryOptions {
  placement?: Placement;
  /** Ring data bytes per link (power of two). */
  ringCapacity?: number;
  poolBuffers?: number;
  poolBufferSize?: number;
  /** Use a manual (fake) clock page, for tests. */
  manualClock?: boolean;
}

/** Everything a thread needs to attach: plain data and SharedArrayBuffers (structured-clonable). */
export interface StackMemoryInit {
  clock: SharedArrayBuffer;
  pool: SharedArrayBuffer;
  rings: Record<string, RingRegion>;
  control: SharedArrayBuffer;
  counters: SharedArrayBuffer;
  /** Doorbell words for endpoints that are not hosts (the shim). */
  bells: SharedArrayBuffer;
  hosts: ServerName[][];
}

const SHIM_BELL = 0;

export function createStackMemory(opts: StackMemoryOptions = {}): StackMemoryInit {
  const hosts = hostsFor(opts.placement ?? 'dedicated');
  const clock = ClockPage.create({ manual: opts.manualClock ?? false }).sab;
  const pool = PacketPool.create({ buffers: opts.poolBuffers ?? 4096, bufferSize: opts.poolBufferSize ?? 2048 }).sab;
  const capacity = opts.ringCapacity ?? 1 << 18;
  const rings: Record<string, RingRegion> = {};
  for (const [from, to] of LINKS) rings[linkName(from, to)] = Ring.create({ capacity });
  return { clock, pool, rings, control: ControlBlock.allocate(hosts.length), counters: Counters.allocate(), bells: new SharedArrayBuffer(64), hosts };
}

/** A thread's view of the stack memory. */
export class StackMemory {
  readonly init: StackMemoryInit;
  readonly clock: Clock;
  readonly pool: PacketPool;
  readonly hosts: ServerName[][];

  constructor(init: StackMemoryInit) {
    this.init = init;
    this.clock = Clock.attach(init.clock);
    this.pool = PacketPool.attach(init.pool);
    this.hosts = init.hosts;
  }

  hostOf(server: ServerName): number {
    const h = this.hosts.findIndex((g) => g.includes(server));
    if (h < 0) throw new Error(`server ${server} is not placed`);
    return h;
  }

  counters(server: ServerName): Counters {
    return new Counters(this.init.counters, server);
  }

  /** Standby slots of a host (see control.ts). */
  slots(host: number): Int32Array {
    return ControlBlock.slots(this.init.control, this.hosts.length, host);
  }

  control(host: number): ControlBlock {
    return new ControlBlock(this.init.control, host);
  }

  /** The doorbell that wakes whoever consumes `endpoint`'s input rings. */
  doorbellOf(endpoint: Endpoint): Doorbell {
    if (endpoint === 'shim') return new Doorbell(new Int32Array(this.init.bells), SHIM_BELL);
    if (endpoint === 'sup') throw new Error('the supervisor consumes no rings');
    const cb = this.control(this.hostOf(endpoint));
    return new Doorbell(cb.i32, C.BELL);
  }

  ring(from: Endpoint, to: Endpoint): RingRegion {
    const r = this.init.rings[linkName(from, to)];
    if (!r) throw new Error(`no ring ${linkName(from, to)}`);
    return r;
  }

  /** Rings into `to`, in a fixed order (their index names them in control blocks). */
  inputsOf(to: Endpoint): Endpoint[] {
    return LINKS.filter(([, b]) => b === to).map(([a]) => a);
  }
  outputsOf(from: Endpoint): Endpoint[] {
    return LINKS.filter(([a]) => a === from).map(([, b]) => b);
  }
}
