/**
 * The shared memory of one stack: the central clock page, the packet pool, every ring of the topology
 * and the hosts' control blocks. Created once on the main thread; every worker attaches to the same
 * SharedArrayBuffers, and so does every new incarnation of a server: restarting a server changes none
 * of it.
 */
import { availableParallelism } from 'node:os';
import { ClockPage, Clock } from '../../shared-rings/clock.js';
import { Pools, type PoolsInit } from '../../shared-rings/pools.js';
import { Ring, type RingRegion } from '../../shared-rings/ring.js';
import { Doorbell } from '../../shared-rings/doorbell.js';
import { ShmWire } from '../driver/shm-wire.js';
import { DEFAULT_MAX_CONNECTIONS, TcpLayout, wireBufferBytes, type TcpLayoutOptions } from '../tcp/layout.js';
import { C, ControlBlock } from './control.js';
import { HEADROOM } from './messages.js';
import { Counters } from './counters.js';
import { hostsFor, linkName, linksFor, serverNames, validateTcpInstances, type Endpoint, type Placement, type ServerName } from './topology.js';
import { newShardKey, type TcpShards } from './flow-shard.js';

/** The network interface of a stack (one per stack for now). Addresses are uint32 values. */
export interface InterfaceConfig {
  address: number;
  prefix: number;
  /** Default gateway, 0 for none. */
  gateway: number;
  /** 48-bit MAC address as a number. */
  mac: number;
  mtu: number;
  checksumOffload: boolean;
  /**
   * TSO: the largest TCP segment (header + payload) the link accepts and cuts into MTU-sized segments
   * itself (a TAP with IFF_VNET_HDR). 0 or absent: none; every segment fits the MTU.
   */
  gsoMaxBytes?: number;
}

/** Where the driver's frames go. Plain data: structured-clonable to every worker. */
export type LinkConfig =
  | { kind: 'none' }
  | { kind: 'shm'; wire: import('../driver/shm-wire.js').ShmWireInit; side: 'a' | 'b' }
  /** vnetHdrSize: the fd was opened with IFF_VNET_HDR and this header size (0: plain frames); gso: the
   * kernel was allowed TSO towards us (TUN_F_TSO4), so frames up to 64 KiB arrive. */
  | { kind: 'tap'; fd: number; name: string; vnetHdrSize?: number; gso?: boolean };

export interface StackConfig {
  iface: InterfaceConfig | null;
  link: LinkConfig;
  /** Seeded fault injection on the link (driver). */
  faults?: import('../driver/fault-link.js').FaultLinkOptions;
  /** Capture every frame of the link to this pcap file. */
  pcap?: string;
  /** Flow-sharded TCP (flow-shard.ts): present only with two or more tcp instances. */
  tcpShards?: TcpShards;
}

/**
 * Bytes of shared state each server keeps across its restarts (its tables live here, not in its heap).
 * tcp's is sized by its connection table and buffers (tcp/layout.ts).
 */
export const STATE_BYTES: Readonly<Record<'driver' | 'ip' | 'udp', number>> = { driver: 4096, ip: 8192, udp: 1 << 18 };

export interface StackMemoryOptions {
  config?: StackConfig;
  placement?: Placement;
  /** Ring data bytes per link (power of two). */
  ringCapacity?: number;
  /** MTU-sized buffers: how many, and their size. */
  poolBuffers?: number;
  poolBufferSize?: number;
  /** Large buffers (64 KiB datagrams, reassembly, jumbo frames): how many, and their size. */
  bigBuffers?: number;
  bigBufferSize?: number;
  /** Use a manual (fake) clock page, for tests. */
  manualClock?: boolean;
  /** The tcp server's connection table: connections and per-connection buffer bytes (per tcp instance). */
  tcp?: TcpLayoutOptions;
  /** TCP server instances sharded by flow hash (default 1: one tcp server, as always). */
  tcpInstances?: number;
  /**
   * How long (microseconds) a server thread, or the shim's pump on the application's thread, that ran
   * out of work keeps checking its rings before it parks (shared-rings/spin.ts BusyPoller; adaptive, and
   * yielding its core between checks). 0 turns it off: every idle moment is a park, and every message
   * into a parked thread a wake-up. Default:
   * defaultBusyPollUs() (on when the stack's threads fit on half the cores).
   */
  busyPollUs?: number;
  /**
   * The doorbell (two Int32 words at index 0) of this stack's one host when that host shares its thread
   * with another stack's (a co-hosted pair, kernel-shim/stack-pair.ts): both stacks' rings into the
   * thread must ring the one word it parks on. Needs a placement with one host, and both ends of the
   * stack's shared-memory wire on that thread: the wire rings the receiver's wire doorbell, which the
   * thread does not park on (it needs no wake-up for frames it put on the wire itself).
   * @internal
   */
  hostBell?: SharedArrayBuffer;
}

/** Everything a thread needs to attach: plain data and SharedArrayBuffers (structured-clonable). */
export interface StackMemoryInit {
  clock: SharedArrayBuffer;
  pools: PoolsInit;
  rings: Record<string, RingRegion>;
  control: SharedArrayBuffer;
  counters: SharedArrayBuffer;
  /** Doorbell words for endpoints that are not hosts (the shim). */
  bells: SharedArrayBuffer;
  hosts: ServerName[][];
  /** Every server of the stack: the four base servers, then tcp instances 1..N-1. */
  servers: ServerName[];
  config: StackConfig;
  state: Record<ServerName, SharedArrayBuffer>;
  busyPollUs: number;
  /** See StackMemoryOptions.hostBell. */
  hostBell?: SharedArrayBuffer;
}

/**
 * The busy poll's budget when the stack's threads fit on half the cores (the other half left to the
 * application and a peer stack): `keepnet bench rr` on the 2-vCPU VM, shared placement (one thread a
 * stack, two stacks and the application's thread): 8.7-10.5k transactions/s with 0, 13-14.6k with 200
 * (both stacks' hand-offs without futex wake-ups). With more threads than that (dedicated placement
 * there: eight server threads) pollers yielding to each other delay the thread with work: 3.2-4.7k
 * with 0, 2.2-4.0k with 200; so the default there is 0. An idle stack costs nothing either way: a poll
 * that finds nothing halves the next one's budget.
 */
export const BUSY_POLL_US = 200;
/**
 * The largest budget accepted, 1 ms: a polling thread does not beat its heartbeat, and the hang
 * detector samples it every 5-10 ms; past that a poll is a park that never sleeps anyway.
 */
export const MAX_BUSY_POLL_US = 1000;

/** The default budget for a stack of `hostThreads` server threads on a machine of `cores` cores. */
export function defaultBusyPollUs(hostThreads: number, cores: number = availableParallelism()): number {
  return hostThreads <= Math.max(1, Math.floor(cores / 2)) ? BUSY_POLL_US : 0;
}

/** The busyPollUs option, checked; undefined gives `dflt`. */
export function validateBusyPollUs(us: unknown, dflt: number): number {
  if (us === undefined) return dflt;
  if (typeof us !== 'number') {
    throw Object.assign(new TypeError(`The "busyPollUs" option must be of type number. Received ${typeof us}`), {
      code: 'ERR_INVALID_ARG_TYPE',
    });
  }
  if (!Number.isFinite(us) || us < 0 || us > MAX_BUSY_POLL_US) {
    throw Object.assign(
      new RangeError(`The value of "busyPollUs" is out of range. It must be >= 0 and <= ${MAX_BUSY_POLL_US}. Received ${us}`),
      { code: 'ERR_OUT_OF_RANGE' },
    );
  }
  return us;
}

const SHIM_BELL = 0;

export function createStackMemory(opts: StackMemoryOptions = {}): StackMemoryInit {
  const tcpInstances = validateTcpInstances(opts.tcpInstances);
  const servers = serverNames(tcpInstances);
  const hosts = hostsFor(opts.placement ?? 'dedicated', servers);
  const busyPollUs = validateBusyPollUs(opts.busyPollUs, defaultBusyPollUs(hosts.length));
  if (opts.hostBell !== undefined && (hosts.length !== 1 || !(opts.hostBell instanceof SharedArrayBuffer) || opts.hostBell.byteLength < 8)) {
    throw Object.assign(new TypeError('hostBell needs a SharedArrayBuffer of 8 bytes or more and a placement with one host'), {
      code: 'ERR_INVALID_ARG_VALUE',
    });
  }
  const clock = ClockPage.create({ manual: opts.manualClock ?? false }).sab;
  // A TAP with TSO/GRO, or the shared-memory wire with an MTU past the small buffers, moves frames of up
  // to 64 KiB both ways: every receive slot and every segment in flight is a big buffer, so there must
  // be many more of them than the 64 of a 1500-byte link: a 4 MiB window alone (wireBufferBytes) is 64
  // of them in flight, and with 64 in all the sender found the pool empty and took its unsent segments
  // for lost (`bench bulk`, shm wire, MTU 65535). Reserved, not touched: pages are committed when used.
  const gsoTap = opts.config?.link.kind === 'tap' && (opts.config.link.vnetHdrSize ?? 0) > 0;
  const smallSize = opts.poolBufferSize ?? 2048;
  const bigFrames = gsoTap || (opts.config?.link.kind === 'shm' && (opts.config.iface?.mtu ?? 0) + HEADROOM > smallSize);
  const pools = Pools.create({
    smallBuffers: opts.poolBuffers ?? 4096,
    smallSize,
    bigBuffers: opts.bigBuffers ?? (bigFrames ? 1024 : 64),
    bigSize: opts.bigBufferSize ?? 65536 + 1024,
  });
  const capacity = opts.ringCapacity ?? 1 << 18;
  const rings: Record<string, RingRegion> = {};
  for (const [from, to] of linksFor(tcpInstances)) rings[linkName(from, to)] = Ring.create({ capacity });
  // On links of 64 KiB frames (the shared-memory wire, a TAP with TSO/GRO) connections get larger
  // buffers unless the caller chose (tcp/layout.ts wireBufferBytes says why).
  let tcp = opts.tcp;
  if ((opts.config?.link.kind === 'shm' || gsoTap) && tcp?.bufferBytes === undefined) {
    const maxConns = tcp?.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    if (Number.isInteger(maxConns) && maxConns >= 1) tcp = { ...tcp, bufferBytes: wireBufferBytes(maxConns) };
  }
  const state = Object.fromEntries(
    servers.map((n) => [n, n.startsWith('tcp') ? TcpLayout.create(tcp) : new SharedArrayBuffer(STATE_BYTES[n as keyof typeof STATE_BYTES])]),
  ) as Record<ServerName, SharedArrayBuffer>;
  let config: StackConfig = opts.config ?? { iface: null, link: { kind: 'none' } };
  if (tcpInstances > 1) config = { ...config, tcpShards: { count: tcpInstances, key: newShardKey() } };
  return {
    clock,
    pools,
    rings,
    control: ControlBlock.allocate(hosts.length),
    counters: Counters.allocate(servers.length),
    bells: new SharedArrayBuffer(64),
    hosts,
    servers,
    config,
    state,
    busyPollUs,
    ...(opts.hostBell ? { hostBell: opts.hostBell } : {}),
  };
}

/** A thread's view of the stack memory. */
export class StackMemory {
  readonly init: StackMemoryInit;
  readonly clock: Clock;
  readonly pools: Pools;
  readonly hosts: ServerName[][];
  /** Every server of the stack (the base four, then tcp instances 1..N-1). */
  readonly servers: ServerName[];
  /** The tcp instances' names: 'tcp', then 'tcp1'... */
  readonly tcpInstances: ServerName[];
  private readonly links: (readonly [Endpoint, Endpoint])[];

  constructor(init: StackMemoryInit) {
    this.init = init;
    this.clock = Clock.attach(init.clock);
    this.pools = new Pools(init.pools);
    this.hosts = init.hosts;
    this.servers = init.servers;
    this.tcpInstances = init.servers.filter((n) => n.startsWith('tcp'));
    this.links = linksFor(this.tcpInstances.length);
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
    const host = this.hostOf(endpoint);
    // Co-hosted (see StackMemoryOptions.hostBell): the thread's one doorbell, not the wire's.
    if (this.init.hostBell) return new Doorbell(new Int32Array(this.init.hostBell), 0);
    // The host that runs the driver on a shared-memory wire parks on the wire's receive doorbell, so
    // arriving frames wake it like a record in any of its rings (which then ring that doorbell too).
    const link = this.init.config.link;
    if (link.kind === 'shm' && this.hosts[host].includes('driver')) return ShmWire.rxDoorbell(link.wire, link.side);
    return new Doorbell(this.control(host).i32, C.BELL);
  }

  ring(from: Endpoint, to: Endpoint): RingRegion {
    const r = this.init.rings[linkName(from, to)];
    if (!r) throw new Error(`no ring ${linkName(from, to)}`);
    return r;
  }

  /** Rings into `to`, in a fixed order (their index names them in control blocks). */
  inputsOf(to: Endpoint): Endpoint[] {
    return this.links.filter(([, b]) => b === to).map(([a]) => a);
  }
  outputsOf(from: Endpoint): Endpoint[] {
    return this.links.filter(([a]) => a === from).map(([, b]) => b);
  }
}
