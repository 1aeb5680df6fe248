/**
 * In-process test bench for the udp server and the dgram API, without worker threads:
 *   - UdpHost runs the real udpServer module as host.ts runs it (claim semantics, flush before commit,
 *     rewind on refusal, replays of the head record after a "restart");
 *   - FakeIp stands for the ip server: L4_OUT to a local address comes back as L4_IN (the loopback),
 *     anything else is captured as "the wire"; PORT_UNREACH becomes an ICMP_ERR port unreachable;
 *   - FakeShimHost implements ShimHost (the shim's end of the rings) for a DgramApi;
 *   - Bench wires them and steps them on setImmediate (no sleeps) until stopped.
 */
import { Clock, ClockPage } from '../../shared-rings/clock.js';
import { makeOwner } from '../../shared-rings/pool.js';
import { Pools } from '../../shared-rings/pools.js';
import { Ring, RingConsumer, RingProducer, type RingRegion } from '../../shared-rings/ring.js';
import { K, Counters } from '../../servers/runtime/counters.js';
import { D, DATA_MSG, FRAME_CSUM_OK, HDR_DST_GEN, HDR_SRC_GEN } from '../../servers/runtime/messages.js';
import type { ServerContext } from '../../servers/runtime/server.js';
import { STATE_BYTES, type StackConfig } from '../../servers/runtime/stack-memory.js';
import { ENDPOINT_ID, type Endpoint } from '../../servers/runtime/topology.js';
import { udpServer } from '../../servers/udp/server.js';
import { IPPROTO_UDP, Ipv4Repr, ipv4IsLoopback, ipv4Parse } from '../../servers/wire/ipv4.js';
import { UdpRepr } from '../../servers/wire/udp.js';
import type { ShimHost } from '../../kernel-shim/shim-host.js';

export const ip = (s: string): number => {
  const a = ipv4Parse(s);
  if (a === null) throw new Error(`bad address ${s}`);
  return a;
};

export function r32(b: Uint8Array, o: number): number {
  return b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24);
}
export function w32(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
  b[o + 2] = v >>> 16;
  b[o + 3] = v >>> 24;
}
export function w16(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
}

export interface NetOptions {
  config?: StackConfig;
  smallBuffers?: number;
  smallSize?: number;
  bigBuffers?: number;
  bigSize?: number;
  ringCapacity?: number;
}

export const IFACE = { address: ip('10.7.0.2'), prefix: 24, gateway: 0, mac: 0x02aabbccddee, mtu: 1500, checksumOffload: false };

/** Pools, rings and the udp server's state: what a StackMemory would hold for these tests. */
export class Net {
  readonly pools: Pools;
  readonly clock: Clock;
  readonly config: StackConfig;
  readonly state = new SharedArrayBuffer(STATE_BYTES.udp);
  readonly counters = Counters.allocate();
  private readonly rings = new Map<string, RingRegion>();

  constructor(o: NetOptions = {}) {
    this.pools = new Pools(
      Pools.create({
        smallBuffers: o.smallBuffers ?? 64,
        smallSize: o.smallSize ?? 2048,
        bigBuffers: o.bigBuffers ?? 4,
        bigSize: o.bigSize ?? 65536 + 1024,
      }),
    );
    this.clock = Clock.attach(ClockPage.create({ manual: true }).sab);
    this.config = o.config ?? { iface: { ...IFACE }, link: { kind: 'none' } };
    for (const [a, b] of [
      ['ip', 'udp'],
      ['udp', 'ip'],
      ['shim', 'udp'],
      ['udp', 'shim'],
    ] as const) {
      this.rings.set(`${a}>${b}`, Ring.create({ capacity: o.ringCapacity ?? 1 << 16 }));
    }
  }

  ring(from: Endpoint, to: Endpoint): RingRegion {
    return this.rings.get(`${from}>${to}`)!;
  }

  /** Buffers in use in both pools (a leak check expects 0 when everything settled). */
  inUse(): number {
    return this.pools.stats().inUse;
  }
}

interface Input {
  from: Endpoint;
  ring: RingConsumer;
  head: number;
  retryPos: number;
}

/** The udp server in-process, one incarnation at a time, run as host.ts runs it. */
export class UdpHost {
  readonly net: Net;
  readonly generation: number;
  readonly ctx: ServerContext;
  readonly inputs: Input[] = [];
  readonly outputs: RingProducer[] = [];
  readonly counters: Counters;
  /** Handlers' refusals (backpressure) seen. */
  refusals = 0;
  private current = { from: 'ip' as Endpoint, srcGen: 0 };
  private replaying = false;

  constructor(net: Net, generation = 1) {
    this.net = net;
    this.generation = generation;
    const id = ENDPOINT_ID.udp;
    const out = new Map<Endpoint, RingProducer>();
    for (const to of ['ip', 'shim'] as const) {
      const p = new RingProducer(net.ring('udp', to), { generation });
      out.set(to, p);
      this.outputs.push(p);
    }
    for (const from of ['ip', 'shim'] as const) {
      const ring = new RingConsumer(net.ring(from, 'udp'), { generation });
      this.inputs.push({ from, ring, head: ring.position, retryPos: NaN });
    }
    this.counters = new Counters(net.counters, 'udp');
    const pools = net.pools;
    const owner = makeOwner(id, generation & 0xffff || 1);
    const transitOwner = makeOwner(id, 0);
    const self = this;
    this.ctx = {
      name: 'udp',
      id,
      generation,
      owner,
      transitOwner,
      clock: net.clock,
      pools,
      out,
      counters: this.counters,
      config: net.config,
      state: net.state,
      beat(): void {},
      claim(buf: number, epoch: number): boolean {
        const e = epoch >>> 0;
        const sender = ENDPOINT_ID[self.current.from];
        let from = makeOwner(sender, self.current.srcGen & 0xffff || 1);
        if (!pools.transfer(buf, from, owner)) {
          from = makeOwner(sender, 0);
          if (!pools.transfer(buf, from, owner)) {
            if (!self.replaying) return false;
            from = transitOwner;
            if (!pools.transfer(buf, from, owner)) return pools.ownerOf(buf) === owner && pools.epochOf(buf) === e;
          }
        }
        if (pools.epochOf(buf) === e) return true;
        pools.transfer(buf, owner, from);
        return false;
      },
    };
    udpServer.start(this.ctx);
  }

  /** Handle every record available (refused ones stay for later). Returns how many were handled. */
  step(): number {
    let did = 0;
    for (const input of this.inputs) {
      const ring = input.ring;
      while (ring.peek() >= 0) {
        this.current.from = input.from;
        this.current.srcGen = ring.length >= 8 ? r32(ring.bytes, ring.offset + HDR_SRC_GEN) : 0;
        this.replaying = ring.position === input.head || input.retryPos === ring.position;
        const marks = this.outputs.map((o) => o.mark());
        const dstGen = r32(ring.bytes, ring.offset + HDR_DST_GEN);
        if (dstGen !== 0 && dstGen !== this.generation) {
          ring.commit();
          continue;
        }
        if (!udpServer.handle(this.ctx, input.from, ring.tag, ring.bytes, ring.offset, ring.length)) {
          this.outputs.forEach((o, i) => o.rewind(marks[i]));
          this.counters.add(K.backpressure);
          this.refusals++;
          input.retryPos = ring.position;
          break;
        }
        input.retryPos = NaN;
        for (const o of this.outputs) o.flush();
        ring.commit();
        this.replaying = false;
        this.counters.add(K.handled);
        did++;
      }
    }
    return did;
  }

  /** Handle exactly the next record of `from`'s ring WITHOUT committing it (a crash after its effects). */
  handleNoCommit(from: Endpoint): boolean {
    const input = this.inputs.find((i) => i.from === from)!;
    const ring = input.ring;
    if (ring.peek() < 0) return false;
    this.current.from = from;
    this.current.srcGen = r32(ring.bytes, ring.offset + HDR_SRC_GEN);
    this.replaying = ring.position === input.head;
    const ok = udpServer.handle(this.ctx, from, ring.tag, ring.bytes, ring.offset, ring.length);
    for (const o of this.outputs) o.flush();
    return ok;
  }
}

/** Where FakeIp puts datagrams to non-local destinations. */
export interface WireDatagram {
  src: number;
  dst: number;
  sport: number;
  dport: number;
  ttl: number;
  l4Flags: number;
  checksum: number;
  /** The checksum verified (or was 0). */
  checksumOk: boolean;
  payload: Buffer;
}

/** The ip server, reduced to what udp needs: loopback, a capture of the wire, port unreachables. */
export class FakeIp {
  readonly net: Net;
  readonly owner = makeOwner(ENDPOINT_ID.ip, 1);
  readonly toUdp: RingProducer;
  readonly fromUdp: RingConsumer;
  readonly wire: WireDatagram[] = [];
  portUnreach = 0;
  replays = 0;
  /** Deliver loopback datagrams with FRAME_CSUM_OK (as the real ip does) or make udp verify them. */
  csumOkOnLoopback = true;
  private readonly ipRepr = new Ipv4Repr();
  private readonly udp = new UdpRepr();

  constructor(net: Net) {
    this.net = net;
    this.toUdp = new RingProducer(net.ring('ip', 'udp'), { generation: 1 });
    this.fromUdp = new RingConsumer(net.ring('udp', 'ip'), { generation: 1 });
  }

  private isLocal(a: number): boolean {
    const i = this.net.config.iface;
    return ipv4IsLoopback(a) || (i !== null && a === i.address);
  }

  private claim(buf: number, epoch: number, srcGen: number): boolean {
    const pools = this.net.pools;
    let from = makeOwner(ENDPOINT_ID.udp, srcGen & 0xffff || 1);
    if (!pools.transfer(buf, from, this.owner)) {
      from = makeOwner(ENDPOINT_ID.udp, 0);
      if (!pools.transfer(buf, from, this.owner)) return false;
    }
    if (pools.epochOf(buf) === epoch >>> 0) return true;
    pools.transfer(buf, this.owner, from);
    return false;
  }

  step(): number {
    let did = 0;
    const ring = this.fromUdp;
    while (ring.peek() >= 0) {
      const b = ring.bytes;
      const o = ring.offset;
      const buf = r32(b, o + D.BUF);
      if (!this.claim(buf, r32(b, o + D.EPOCH), r32(b, o + HDR_SRC_GEN))) {
        this.replays++;
        ring.commit();
        continue;
      }
      if (ring.tag === DATA_MSG.L4_OUT) this.onL4Out(b, o, buf);
      else if (ring.tag === DATA_MSG.PORT_UNREACH) this.onPortUnreach(b, o, buf);
      else this.net.pools.free(buf, this.owner);
      ring.commit();
      did++;
    }
    this.toUdp.flush();
    return did;
  }

  private onL4Out(b: Uint8Array, o: number, buf: number): void {
    const pools = this.net.pools;
    const base = pools.offsetOf(buf);
    const bytes = pools.bytesOf(buf);
    const off = r32(b, o + D.OFF);
    const len = r32(b, o + D.LEN);
    const src = r32(b, o + D.OUT_SRC) >>> 0;
    const dst = r32(b, o + D.OUT_DST) >>> 0;
    const bcast = dst === 0xffffffff;
    if (!this.isLocal(dst) || bcast) {
      const u = bytes.subarray(base + off, base + off + len);
      const view = { sport: (u[0] << 8) | u[1], dport: (u[2] << 8) | u[3], sum: (u[6] << 8) | u[7] };
      const ok = view.sum === 0 || checksumOk(bytes, base + off, len, src, dst);
      this.wire.push({
        src,
        dst,
        sport: view.sport,
        dport: view.dport,
        ttl: b[o + D.OUT_TTL],
        l4Flags: b[o + D.OUT_FLAGS],
        checksum: view.sum,
        checksumOk: ok,
        payload: Buffer.from(u.subarray(8)),
      });
      if (!bcast) {
        pools.free(buf, this.owner);
        return;
      }
    }
    // The loopback: an IPv4 header in place in front of the segment, and back up as L4_IN.
    const r = this.ipRepr;
    r.src = src;
    r.dst = dst;
    r.protocol = IPPROTO_UDP;
    r.payloadLen = len;
    r.ttl = b[o + D.OUT_TTL] || 64;
    r.emit(bytes, base + off - 20);
    this.l4In(buf, off - 20, len + 20, off, len, src, dst, this.csumOkOnLoopback ? FRAME_CSUM_OK : 0);
  }

  private onPortUnreach(b: Uint8Array, o: number, buf: number): void {
    const pools = this.net.pools;
    const bytes = pools.bytesOf(buf);
    const l4 = pools.offsetOf(buf) + r32(b, o + D.L4_OFF);
    this.portUnreach++;
    this.icmpErr(3, 3, IPPROTO_UDP, r32(b, o + D.SRC) >>> 0, r32(b, o + D.DST) >>> 0, (bytes[l4] << 8) | bytes[l4 + 1], (bytes[l4 + 2] << 8) | bytes[l4 + 3], 0, r32(b, o + D.DST) >>> 0);
    pools.free(buf, this.owner);
  }

  /** Write an L4_IN for a buffer this fake owns. */
  l4In(buf: number, off: number, len: number, l4Off: number, l4Len: number, src: number, dst: number, flags: number): void {
    const out = this.toUdp;
    const o = out.reserve(D.L4_IN_BYTES, DATA_MSG.L4_IN);
    if (o < 0) throw new Error('fake ip: ring to udp full');
    const b = out.bytes;
    w32(b, o + HDR_DST_GEN, 0);
    w32(b, o + HDR_SRC_GEN, 1);
    w32(b, o + D.BUF, buf);
    w32(b, o + D.EPOCH, this.net.pools.epochOf(buf));
    w32(b, o + D.OFF, off);
    w32(b, o + D.LEN, len);
    w32(b, o + D.L4_OFF, l4Off);
    w32(b, o + D.L4_LEN, l4Len);
    w32(b, o + D.SRC, src);
    w32(b, o + D.DST, dst);
    b[o + D.PROTO] = IPPROTO_UDP;
    b[o + D.TTL] = 64;
    w16(b, o + D.IN_FLAGS, flags);
    out.commit();
  }

  /**
   * A datagram from the network: src:sport -> dst:dport with `payload`, its checksum good, bad or 0.
   * Returns the buffer handle (to check it is the one delivered).
   */
  inject(src: number, sport: number, dst: number, dport: number, payload: Uint8Array, o: { checksum?: 'good' | 'bad' | 'zero'; csumOk?: boolean; ulen?: number; l4Len?: number } = {}): number {
    const pools = this.net.pools;
    const buf = pools.alloc(64 + 28 + payload.length, this.owner);
    if (buf < 0) throw new Error('fake ip: pool exhausted');
    const bytes = pools.bytesOf(buf);
    const base = pools.offsetOf(buf);
    const ipOff = 64;
    const l4 = ipOff + 20;
    bytes.set(payload, base + l4 + 8);
    const u = this.udp;
    u.srcPort = sport;
    u.dstPort = dport;
    u.payloadLen = payload.length;
    u.emit(bytes, base + l4, src, dst, (o.checksum ?? 'good') !== 'zero');
    if (o.checksum === 'bad') bytes[base + l4 + 7] ^= 0x5a;
    if (o.ulen !== undefined) {
      bytes[base + l4 + 4] = o.ulen >>> 8;
      bytes[base + l4 + 5] = o.ulen;
    }
    const r = this.ipRepr;
    r.src = src;
    r.dst = dst;
    r.protocol = IPPROTO_UDP;
    r.payloadLen = 8 + payload.length;
    r.emit(bytes, base + ipOff);
    const l4Len = o.l4Len ?? 8 + payload.length;
    this.l4In(buf, ipOff, 20 + l4Len, l4, l4Len, src, dst, o.csumOk ? FRAME_CSUM_OK : 0);
    this.toUdp.flush();
    return buf;
  }

  icmpErr(type: number, code: number, proto: number, src: number, dst: number, sport: number, dport: number, mtu: number, reporter: number): void {
    const out = this.toUdp;
    const o = out.reserve(D.ICMP_ERR_BYTES, DATA_MSG.ICMP_ERR);
    if (o < 0) throw new Error('fake ip: ring to udp full');
    const b = out.bytes;
    b.fill(0, o, o + D.ICMP_ERR_BYTES);
    w32(b, o + HDR_SRC_GEN, 1);
    b[o + D.E_TYPE] = type;
    b[o + D.E_CODE] = code;
    b[o + D.E_PROTO] = proto;
    w32(b, o + D.E_SRC, src);
    w32(b, o + D.E_DST, dst);
    w16(b, o + D.E_SPORT, sport);
    w16(b, o + D.E_DPORT, dport);
    w16(b, o + D.E_MTU, mtu);
    w32(b, o + D.E_REPORTER, reporter);
    out.commit();
    out.flush();
  }
}

function checksumOk(bytes: Uint8Array, off: number, len: number, src: number, dst: number): boolean {
  // The UDP checksum over the pseudo-header verifies to 0.
  let s = (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + IPPROTO_UDP + len;
  for (let i = 0; i + 1 < len; i += 2) s += (bytes[off + i] << 8) | bytes[off + i + 1];
  if (len & 1) s += bytes[off + len - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 65536);
  return s === 0xffff;
}

/** The shim's side of the rings, as Stack implements ShimHost. */
export class FakeShimHost implements ShimHost {
  readonly net: Net;
  readonly owner = makeOwner(ENDPOINT_ID.shim, 1);
  private readonly producer: RingProducer;
  readonly fromUdp: RingConsumer;
  private readonly handlers = new Map<number, (from: Endpoint, ring: RingConsumer) => void>();

  constructor(net: Net) {
    this.net = net;
    this.producer = new RingProducer(net.ring('shim', 'udp'));
    this.fromUdp = new RingConsumer(net.ring('udp', 'shim'));
  }
  get pools(): Pools {
    return this.net.pools;
  }
  get clock(): Clock {
    return this.net.clock;
  }
  get config(): StackConfig {
    return this.net.config;
  }
  out(): RingProducer {
    return this.producer;
  }
  handle(type: number, fn: (from: Endpoint, ring: RingConsumer) => void): void {
    this.handlers.set(type, fn);
  }
  claim(buf: number, epoch: number, from: Endpoint, srcGen: number): boolean {
    return this.net.pools.claimFrom(buf, epoch, ENDPOINT_ID[from], srcGen, this.owner);
  }
  /** The pump: every record from udp to its handler, then commit. */
  step(): number {
    let did = 0;
    const ring = this.fromUdp;
    while (ring.peek() >= 0) {
      this.handlers.get(ring.tag)?.('udp', ring);
      ring.commit();
      did++;
    }
    return did;
  }
}

/** Everything wired and stepped on setImmediate. */
export class Bench {
  readonly net: Net;
  host: UdpHost;
  readonly ipf: FakeIp;
  readonly shim: FakeShimHost;
  private running = false;
  private paused = false;

  constructor(o: NetOptions = {}) {
    this.net = new Net(o);
    this.host = new UdpHost(this.net);
    this.ipf = new FakeIp(this.net);
    this.shim = new FakeShimHost(this.net);
  }

  step(): number {
    if (this.paused) return 0;
    return this.host.step() + this.ipf.step() + this.shim.step();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const tick = (): void => {
      if (!this.running) return;
      this.step();
      setImmediate(tick);
    };
    setImmediate(tick);
  }

  stop(): void {
    this.running = false;
  }

  /** Stop stepping the udp server (its input rings fill up) until resume(). */
  pauseUdp(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }

  /** A new udp incarnation on the same rings, pools and state (the old one is simply dropped). */
  restartUdp(): UdpHost {
    this.host = new UdpHost(this.net, this.host.generation + 1);
    return this.host;
  }

  /** Step until nothing moves (several rounds, letting timers and microtasks run in between). */
  async settle(rounds = 5): Promise<void> {
    let quiet = 0;
    while (quiet < rounds) {
      const did = this.step();
      await new Promise((r) => setImmediate(r));
      quiet = did === 0 ? quiet + 1 : 0;
    }
  }
}

/** Resolve with the first `event` of `em` (rejecting after `ms`). */
export function once<T = unknown[]>(em: NodeJS.EventEmitter, event: string, ms = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      em.off(event, on);
      reject(new Error(`no '${event}' within ${ms} ms`));
    }, ms);
    const on = (...args: unknown[]): void => {
      clearTimeout(timer);
      resolve(args as T);
    };
    em.once(event, on);
  });
}
