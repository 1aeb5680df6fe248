/**
 * A keepnet stack as the application sees it: `createStack()` lays out the shared memory, starts every
 * server on its worker thread under the supervisor, and attaches the kernel shim (the application's end
 * of the rings, on the main thread). The net/dgram-compatible APIs hang off this object as the protocol
 * servers arrive; today it offers the runtime: stats, fault injection and probes.
 */
import { EventEmitter } from 'node:events';
import { makeOwner } from '../shared-rings/pool.js';
import { RingConsumer, RingProducer } from '../shared-rings/ring.js';
import type { Doorbell } from '../shared-rings/doorbell.js';
import type { Clock } from '../shared-rings/clock.js';
import type { Pools } from '../shared-rings/pools.js';
import type { StackConfig } from '../servers/runtime/stack-memory.js';
import type { ShimHost } from './shim-host.js';
import { resolveNetwork, type NetworkOptions } from './stack-config.js';
import { TUN_F, type TapDevice } from '../servers/driver/tap-device.js';
import { protocolCounters } from '../servers/registry.js';
import { TCP_MSG } from '../servers/tcp/api.js';
import { ShardedTcpChannel } from './tcp-sharded-channel.js';
import { DgramApi } from './dgram.js';
import { createNet, type NetModule } from './net.js';
import { ShmTcpChannel } from './tcp-shm-channel.js';
import { busyPollerFor } from '../servers/runtime/busy-poll.js';
import type { BusyPoller } from '../shared-rings/spin.js';
import { checksum } from '../servers/wire/checksum.js';
import { HDR_DST_GEN, HDR_SRC_GEN, MSG, PROBE } from '../servers/runtime/messages.js';
import { createStackMemory, StackMemory, type StackMemoryOptions } from '../servers/runtime/stack-memory.js';
import { Supervisor, type FaultKind, type SupervisorOptions } from '../servers/runtime/supervisor.js';
import { ENDPOINT_ID, tcpInstanceOf, type Endpoint, type ServerName } from '../servers/runtime/topology.js';

/** The shim's generation in the records it writes (it is never restarted). */
export const SHIM_GEN = 1;

/**
 * How long one turn of the event loop may keep checking for news while the pump busy polls (µs): see
 * BusyPoller.pollAsync. A turn per check made a request/response's wait for the stacks' thread some
 * twenty turns, each an Immediate to allocate: co-hosted `bench rr` ran a young-generation collection
 * (0.3 ms, the exchange stalled) every 9-14 ms; with 10 µs turns, a third fewer.
 */
const PUMP_SLICE_US = 10;

/** How often the shim's pump re-checks its rings whatever its doorbell says (ms): see pump(). */
const PUMP_NUDGE_MS = 200;

/**
 * The running stacks of this thread. One event loop serves all their pumps, so a pump's busy poll looks
 * for news on any of them: with two stacks in one process (both ends of a connection, as in `keepnet
 * bench`), the exchange goes back and forth between them, and each pump polling only its own rings
 * would miss half the time and park.
 */
let pumpsHere: Stack[] = [];
/** (An array, indexed: a poll calls this every check, and a Set's iterator is an allocation.) */
const newsHere = (): boolean => {
  const pumps = pumpsHere;
  for (let i = 0; i < pumps.length; i++) if (pumps[i].hasInput()) return true;
  return false;
};
/**
 * The busy poll under way on this thread, if any: one for all its pumps. Each pump polling on its own
 * cost every turn of the event loop a check and a sched_yield per stack; with both ends of `bench rr`
 * in one process that was two yields a turn, and the turn is what a record waits for. A pump that
 * finds a poll under way awaits it instead of starting its own.
 */
let pollHere: Promise<boolean> | null = null;
/** Bumped when a stack of this thread closes: a poll under way ends, so its pump can exit at once. */
let pumpsClosed = 0;
/** pumpsClosed when the poll under way began; and that poll's check (one function, not one per poll). */
let pollClosed = 0;
const pollNews = (): boolean => pumpsClosed !== pollClosed || newsHere();

export interface StackOptions extends Omit<StackMemoryOptions, 'config'>, SupervisorOptions, NetworkOptions {
  /**
   * Run this stack's servers on `cohostOf`'s thread, under its supervisor (createStackPair's `cohost`,
   * which also gives both the hostBell this needs). Both stacks have placement 'shared'.
   * @internal
   */
  cohostOf?: Stack;
}

/** Routes that make a probe visit a server and come back to the shim. */
export const PROBE_ROUTES: Readonly<Record<ServerName, readonly Endpoint[]>> = {
  udp: ['shim', 'udp', 'shim'],
  tcp: ['shim', 'tcp', 'shim'],
  ip: ['shim', 'udp', 'ip', 'udp', 'shim'],
  driver: ['shim', 'udp', 'ip', 'driver', 'ip', 'udp', 'shim'],
};

/** The probe route through any server (tcp instance k: shim, tcpK, shim). */
function probeRoute(server: ServerName): readonly Endpoint[] | undefined {
  return tcpInstanceOf(server) > 0 ? ['shim', server, 'shim'] : PROBE_ROUTES[server];
}

export interface ProbeResult {
  id: number;
  server: ServerName;
  rttUs: number;
  intact: boolean;
}

interface PendingProbe {
  server: ServerName;
  resolve: (r: ProbeResult) => void;
  reject: (e: Error) => void;
  buf: number;
  sum: number;
  timer: NodeJS.Timeout | null;
}

export class Stack extends EventEmitter implements ShimHost {
  readonly memory: StackMemory;
  readonly supervisor: Supervisor;
  /** Node's dgram API on this stack: `stack.dgram.createSocket('udp4')`. */
  readonly dgram: DgramApi;
  /** Node's net API on this stack: `stack.net.createServer()`, `stack.net.connect()`. */
  readonly net: NetModule;
  /** The shim's side of the tcp server (requests, wake-ups, the shared socket buffers); instance 0's. */
  readonly tcpChannel: ShmTcpChannel;
  /** One channel per tcp instance (just tcpChannel unless tcp is flow-sharded). */
  readonly tcpChannels: ShmTcpChannel[];
  /** With several tcp instances: the channel that spreads connects and installs listeners on all. */
  readonly shardedTcp: ShardedTcpChannel | null = null;
  /** A TAP device this stack opened (closed with the stack). */
  private readonly tap: TapDevice | null;
  private readonly out_ = new Map<Endpoint, RingProducer>();
  private readonly inputs: { from: Endpoint; ring: RingConsumer }[] = [];
  private readonly bell: Doorbell;
  private readonly pending = new Map<number, PendingProbe>();
  private nextProbe = 1;
  private running = false;
  private pumping: Promise<void> | null = null;
  /** The shim never restarts: it is incarnation 1 of endpoint 'shim' for good. */
  readonly owner = makeOwner(ENDPOINT_ID.shim, SHIM_GEN);
  private readonly handlers = new Map<number, (from: Endpoint, ring: RingConsumer) => void>();
  /** Probe outcomes (all time). */
  readonly probeStats = { sent: 0, returned: 0, corrupted: 0, timedOut: 0, late: 0, duplicates: 0, poolExhausted: 0 };
  /**
   * The shim's own counters: records of unknown type, handlers that threw, parks of the pump, and polls
   * that ended on news (a park saved; with several stacks in one thread, news for any of them).
   */
  readonly shimStats = { unknown: 0, handlerErrors: 0, parks: 0, busyPollHits: 0 };
  /** The pump's busy poll (the stack's busyPollUs): see pump(). */
  private readonly poller: BusyPoller;
  /** Probes given up on (timed out) whose buffers are still out: freed if they come back. */
  private readonly late = new Set<number>();

  constructor(opts: StackOptions = {}) {
    super();
    const net = resolveNetwork(opts);
    this.tap = net.tap;
    this.memory = new StackMemory(createStackMemory({ ...opts, config: net.config }));
    if (opts.cohostOf) {
      this.supervisor = opts.cohostOf.supervisor;
      this.supervisor.cohost(this.memory);
    } else {
      this.supervisor = new Supervisor(this.memory, opts);
    }
    for (const ev of ['death', 'recovered', 'hang', 'suspect', 'poison', 'crash-loop', 'warning']) {
      this.supervisor.on(ev, (e: unknown) => {
        // A co-hosted pair's supervisor says which stack an event is about: forward only our own.
        if (e !== null && typeof e === 'object' && 'memory' in e) {
          const { memory, ...rest } = e as { memory: unknown };
          if (memory === this.memory) this.emit(ev, rest);
        } else {
          this.emit(ev, e);
        }
      });
    }
    this.bell = this.memory.doorbellOf('shim');
    this.bell.reset();
    this.poller = busyPollerFor(this.memory.init.busyPollUs);
    for (const to of this.memory.outputsOf('shim')) {
      this.out_.set(to, new RingProducer(this.memory.ring('shim', to), { wake: this.memory.doorbellOf(to) }));
    }
    this.handle(MSG.PROBE, (from, ring) => this.receiveProbe(from, ring));
    this.dgram = new DgramApi(this);
    const tcpNames = this.memory.tcpInstances;
    if (tcpNames.length === 1) {
      this.tcpChannel = new ShmTcpChannel(this, this.memory.init.state.tcp);
      this.tcpChannels = [this.tcpChannel];
      this.net = createNet(this.tcpChannel);
    } else {
      // Flow-sharded tcp: a channel per instance; each TCP record goes to its sender's channel.
      this.tcpChannels = tcpNames.map((n) => new ShmTcpChannel(this, this.memory.init.state[n], n, false));
      this.tcpChannel = this.tcpChannels[0];
      const byFrom = new Map<Endpoint, ShmTcpChannel>(tcpNames.map((n, i) => [n, this.tcpChannels[i]]));
      const route = (from: Endpoint, ring: RingConsumer): void => {
        const ch = byFrom.get(from);
        if (ch) ch.receive(ring);
        else this.shimStats.unknown++;
      };
      for (const type of [TCP_MSG.REPLY, TCP_MSG.NOTIFY, TCP_MSG.ACCEPTED]) this.handle(type, route);
      this.shardedTcp = new ShardedTcpChannel(this.tcpChannels, this.memory.init.config);
      this.net = createNet(this.shardedTcp);
    }
    for (const from of this.memory.inputsOf('shim')) {
      this.inputs.push({ from, ring: new RingConsumer(this.memory.ring(from, 'shim'), { doorbell: this.bell }) });
    }
  }

  async start(): Promise<this> {
    await this.supervisor.start();
    this.running = true;
    if (!pumpsHere.includes(this)) pumpsHere = [...pumpsHere, this];
    this.pumping = this.pump();
    return this;
  }

  /**
   * Whether any input ring of the shim holds a record. Public for the busy poll of the pumps of this
   * thread (see pumpsHere), which look at every stack's rings; not part of the application's API.
   * @internal
   */
  hasInput(): boolean {
    const inputs = this.inputs;
    for (let i = 0; i < inputs.length; i++) if (inputs[i].ring.peek() >= 0) return true;
    return false;
  }

  /**
   * The shim's receive loop: drains its input rings, parks (without blocking the event loop) when idle.
   *
   * Before parking it busy polls (the stack's busyPollUs, adaptive like the host loop's: see
   * shared-rings/spin.ts), one check per turn of the event loop, so the application's timers and I/O
   * run between checks. While it polls it has not announced a park, so a server that publishes to the
   * shim skips Atomics.notify, and this thread skips the wake-up: V8 resolves a waitAsync by posting a
   * task to the event loop (a uv_async_send from the notifying thread, an epoll wake-up here), about
   * 10 µs of each request/response leg on this project's 2-vCPU VMs. Against the same pump parking at
   * once (two stacks in one process, shared placement; two A/Bs of five alternating 2 s runs, medians):
   * request/response 12.6k -> 15.0k and 16.6k -> 19.0k transactions/s, connect/request/close 1.9k ->
   * 2.9k and 2.0k -> 2.4k connections/s.
   *
   * It parks with no timeout: a finite Atomics.waitAsync costs a V8 delayed task (a libuv timer started
   * and stopped) and our own keep-alive interval on every park, twice per request/response on the main
   * thread in `bench rr` (a main-thread waitAsync ping-pong with a worker, here: 22.9 us and 27 us of CPU
   * per round trip with a 200 ms timeout and interval, 16.6 us and 16 us without). One interval for
   * the pump's whole life does both jobs instead: it keeps the
   * event loop alive, and every PUMP_NUDGE_MS it wakes a pump that sleeps on records (a producer that
   * died between publishing and ringing), which the 200 ms park timeout used to do.
   */
  private async pump(): Promise<void> {
    const nudge = setInterval(() => {
      if (this.hasInput()) this.bell.ring();
    }, PUMP_NUDGE_MS);
    try {
      while (this.running) {
        if (this.drain() > 0) continue;
        if (this.poller.maxUs > 0) {
          // One poll for the thread (pollHere): join the one under way, or start it.
          const mine = pollHere === null;
          if (mine) {
            pollClosed = pumpsClosed;
            pollHere = this.poller.pollAsync(pollNews, PUMP_SLICE_US);
          }
          const hit = await pollHere!;
          if (mine) pollHere = null;
          if (!this.running) break;
          if (hit) {
            // (Counted by every pump that waited on it: each was spared a park.)
            this.shimStats.busyPollHits++;
            // The news may be another stack's: handle it now, in this turn of the event loop, rather
            // than when that stack's pump runs next.
            if (mine) for (const s of pumpsHere) if (s !== this) s.drain();
            continue;
          }
        }
        const key = this.bell.prepare();
        if (!this.running || this.hasInput()) {
          this.bell.cancel();
          continue;
        }
        this.shimStats.parks++;
        await this.bell.waitAsync(key, Infinity);
      }
    } finally {
      clearInterval(nudge);
    }
  }

  /** Handle every record in the shim's input rings; how many there were. @internal */
  drain(): number {
    let did = 0;
    const inputs = this.inputs;
    for (let i = 0; i < inputs.length; i++) {
      const { from, ring } = inputs[i];
      while (ring.peek() >= 0) {
        this.receive(from, ring);
        ring.commit();
        did++;
      }
    }
    // What the application wrote in the handlers just run goes out now (see publishNow).
    if (did > 0) for (let i = 0; i < this.tcpChannels.length; i++) this.tcpChannels[i].publishNow();
    return did;
  }

  get pools(): Pools {
    return this.memory.pools;
  }
  get clock(): Clock {
    return this.memory.clock;
  }
  get config(): StackConfig {
    return this.memory.init.config;
  }

  out(to: 'udp' | Endpoint): RingProducer {
    return this.out_.get(to)!;
  }

  handle(type: number, fn: (from: Endpoint, ring: RingConsumer) => void): void {
    this.handlers.set(type, fn);
  }

  claim(buf: number, epoch: number, from: Endpoint, srcGen: number): boolean {
    return this.memory.pools.claimFrom(buf, epoch, ENDPOINT_ID[from], srcGen, this.owner);
  }

  private receive(from: Endpoint, ring: RingConsumer): void {
    const fn = this.handlers.get(ring.tag);
    if (!fn) {
      this.shimStats.unknown++;
      return;
    }
    try {
      fn(from, ring);
    } catch (err) {
      // The shim's receive loop must go on whatever one handler does: count, report, move on.
      this.shimStats.handlerErrors++;
      this.emit('warning', err);
    }
  }

  private receiveProbe(from: Endpoint, ring: RingConsumer): void {
    if (ring.length < PROBE.BYTES) return;
    const b = ring.bytes;
    const off = ring.offset;
    const dv = new DataView(b.buffer, b.byteOffset + off, PROBE.BYTES);
    const id = dv.getUint32(PROBE.ID, true);
    const p = this.pending.get(id);
    const buf = dv.getInt32(PROBE.BUF, true);
    const pool = this.memory.pools;
    if (!p) {
      // A probe that returns after its caller gave up on it: take its buffer back, count it late.
      // (A replayed duplicate finds its buffer claimed already: the claim fails, nothing to free.)
      if (this.late.delete(id) && buf >= 0 && this.claim(buf, dv.getInt32(PROBE.EPOCH, true), from, dv.getInt32(HDR_SRC_GEN, true))) {
        pool.free(buf, this.owner);
        this.probeStats.late++;
      } else {
        this.probeStats.duplicates++;
      }
      return;
    }
    let intact = true;
    if (buf >= 0) {
      if (!this.claim(buf, dv.getInt32(PROBE.EPOCH, true), from, dv.getInt32(HDR_SRC_GEN, true))) {
        this.probeStats.duplicates++;
        return;
      }
      const len = dv.getInt32(PROBE.LEN, true);
      intact = checksum(pool.bytesOf(buf), pool.offsetOf(buf), len) === p.sum;
      pool.free(buf, this.owner);
    }
    this.pending.delete(id);
    if (p.timer) clearTimeout(p.timer);
    this.probeStats.returned++;
    if (!intact) this.probeStats.corrupted++;
    p.resolve({ id, server: p.server, rttUs: this.memory.clock.nowUs() - dv.getFloat64(PROBE.SENT_US, true), intact });
  }

  /**
   * Send a probe through `server` and back, carrying `payload` bytes in a pool buffer by descriptor.
   * Resolves when it returns (intact or not); rejects after `timeoutMs`.
   */
  probe(server: ServerName, payload = 256, timeoutMs = 10_000): Promise<ProbeResult> {
    const route = (this.memory.servers as readonly string[]).includes(server) ? probeRoute(server) : undefined;
    if (!route) {
      return Promise.reject(Object.assign(new TypeError(`unknown server '${server}'`), { code: 'ERR_INVALID_ARG_VALUE' }));
    }
    const ring = this.out_.get(route[1])!;
    const pool = this.memory.pools;
    const id = this.nextProbe++ >>> 0;
    let buf = -1;
    let sum = 0;
    if (payload > 0) {
      buf = pool.alloc(payload, this.owner);
      if (buf < 0) {
        this.probeStats.poolExhausted++;
        return Promise.reject(Object.assign(new Error('packet pool exhausted'), { code: 'ENOBUFS' }));
      }
      const base = pool.offsetOf(buf);
      const bytes = pool.bytesOf(buf);
      const len = Math.min(payload, pool.capacityOf(buf));
      for (let i = 0; i < len; i++) bytes[base + i] = (id * 13 + i) & 255;
      sum = checksum(bytes, base, len);
      payload = len;
    }
    const off = ring.reserve(PROBE.BYTES, MSG.PROBE);
    if (off < 0) {
      if (buf >= 0) pool.free(buf, this.owner);
      return Promise.reject(Object.assign(new Error(`ring to ${route[1]} is full`), { code: 'ENOBUFS' }));
    }
    const dv = new DataView(ring.bytes.buffer, ring.bytes.byteOffset + off, PROBE.BYTES);
    dv.setInt32(HDR_DST_GEN, 0, true);
    dv.setInt32(HDR_SRC_GEN, SHIM_GEN, true);
    dv.setUint32(PROBE.ID, id, true);
    dv.setUint8(PROBE.HOP, 1); // the index in the route of the endpoint receiving this record
    dv.setUint8(PROBE.ROUTE_LEN, route.length);
    for (let i = 0; i < PROBE.MAX_ROUTE; i++) dv.setUint8(PROBE.ROUTE + i, i < route.length ? ENDPOINT_ID[route[i]] : 0);
    dv.setInt32(PROBE.BUF, buf, true);
    dv.setInt32(PROBE.EPOCH, buf >= 0 ? pool.epochOf(buf) : 0, true);
    dv.setInt32(PROBE.LEN, payload, true);
    dv.setUint32(PROBE.SUM, sum, true);
    dv.setFloat64(PROBE.SENT_US, this.memory.clock.nowUs(), true);
    ring.commit();
    ring.flush();
    this.probeStats.sent++;
    return new Promise<ProbeResult>((resolve, reject) => {
      const p: PendingProbe = { server, resolve, reject, buf, sum, timer: null };
      p.timer = setTimeout(() => {
        this.pending.delete(id);
        this.late.add(id);
        this.probeStats.timedOut++;
        reject(Object.assign(new Error(`probe ${id} through ${server} timed out`), { code: 'ETIMEDOUT' }));
      }, timeoutMs);
      this.pending.set(id, p);
    });
  }

  /** Inject a fault into a server: 'crash' | 'exit' | 'hang' | 'poison'. */
  inject(server: ServerName, kind: FaultKind): void {
    if (!(this.memory.servers as readonly string[]).includes(server)) {
      throw Object.assign(new TypeError(`server must be one of ${this.memory.servers.join(', ')}, got '${server}'`), {
        code: 'ERR_INVALID_ARG_VALUE',
      });
    }
    this.supervisor.inject(server, kind, this.memory);
  }

  stats() {
    const servers = this.supervisor.stats(this.memory);
    const state = this.memory.init.state;
    const names = this.memory.servers;
    const protocol = Object.fromEntries(names.map((n) => [n, protocolCounters(n, state[n])])) as Record<ServerName, Record<string, number>>;
    return {
      servers: Object.fromEntries(names.map((n) => [n, { ...servers[n], protocol: protocol[n] }])) as Record<
        ServerName,
        (typeof servers)[ServerName] & { protocol: Record<string, number> }
      >,
      poisonDropped: this.supervisor.poisonDroppedOf(this.memory),
      // A TAP this stack opened: what the kernel granted (why offload is off, when it is).
      ...(this.tap ? { tap: tapReport(this.tap) } : {}),
      pool: this.memory.pools.stats(),
      probes: { ...this.probeStats, inFlight: this.pending.size },
      shim: { ...this.shimStats },
      ...this.supervisor.latencies(),
    };
  }

  async close(): Promise<void> {
    this.running = false;
    pumpsHere = pumpsHere.filter((s) => s !== this);
    pumpsClosed++;
    this.bell.ring();
    Atomics.notify(this.bell.i32, this.bell.index);
    this.dgram.close();
    for (const c of this.tcpChannels) c.close();
    await this.pumping;
    for (const [id, p] of this.pending) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(Object.assign(new Error(`probe ${id} aborted: the stack is closing`), { code: 'ABORT_ERR', name: 'AbortError' }));
    }
    this.pending.clear();
    await this.supervisor.stop(this.memory);
    this.tap?.close();
  }
}

/** stats().tap: the device's name, header size, the offloads granted and why any were refused. */
function tapReport(tap: TapDevice): { name: string; vnetHdrSize: number; offload: string[]; offloadError: string | null } {
  const offload = Object.entries(TUN_F)
    .filter(([, bit]) => (tap.offload & bit) !== 0)
    .map(([name]) => name.toLowerCase());
  return { name: tap.name, vnetHdrSize: tap.vnetHdrSize, offload, offloadError: tap.offloadError ?? null };
}

/** Create and start a stack. */
export async function createStack(opts: StackOptions = {}): Promise<Stack> {
  return new Stack(opts).start();
}
