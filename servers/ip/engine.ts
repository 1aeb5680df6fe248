/**
 * The IP server's engine: one per incarnation, built in start() from the stack configuration, wiring
 * the pure protocol cores (route, ARP cache, reassembly, fragmentation, input classification, ICMP
 * errors) to pool buffers and rings. Packets move by descriptor; headers are written in place.
 *
 * Call order:
 *   onFrame(rec)      a FRAME from the driver: classify; ARP -> cache (reply, release waiters);
 *                     UDP/TCP -> L4_IN to that server (same buffer); echo request -> reply in place;
 *                     ICMP errors -> ICMP_ERR to the transport; unknown protocol -> ICMP unreachable.
 *   onL4Out(rec)      a segment from UDP/TCP: IPv4 header in place, transport checksum if asked,
 *                     then output().
 *   onPortUnreach(rec) UDP found no socket: ICMP port unreachable quoting the datagram.
 *   poll(now)         ARP requests and failures, reassembly timeouts; returns the next deadline.
 *   output(buf, ipOff, ipLen)  route; loopback (our own addresses, 127/8) back into input; else
 *                     fragment to the MTU, resolve the next hop, prepend Ethernet, FRAME to driver.
 * Volatile state (ARP cache, reassembly in progress, packets waiting for ARP) dies with the
 * incarnation, as a kernel's neighbour table would on a restart; the buffers it held are reclaimed by
 * the supervisor. The IPv4 identification counter lives in shared state so a restart does not reuse
 * identifications of fragments still in flight.
 */
import { checksumFinish, checksumPartial, pseudoHeaderSumV4 } from '../wire/checksum.js';
import { ETH_HEADER_LEN, ETHERTYPE_IPV4, writeMac } from '../wire/ethernet.js';
import { ArpRepr } from '../wire/arp.js';
import { IPPROTO_TCP, IPPROTO_UDP, IPV4_HEADER_LEN } from '../wire/ipv4.js';
import { ICMP_DST_UNREACHABLE } from '../wire/icmp.js';
import { D, DATA_MSG, FRAME_CSUM_OK, FRAME_GSO, HDR_DST_GEN, HDR_SRC_GEN, L4F_CSUM, L4F_DF, rd32, wr32 } from '../runtime/messages.js';
import type { ServerContext } from '../runtime/server.js';
import type { RingProducer } from '../../shared-rings/ring.js';
import { tcpInstanceName } from '../runtime/topology.js';
import { flowShard } from '../runtime/flow-shard.js';
import { ARP_COUNTERS, ArpCache, emitArpFrame } from './arp-cache.js';
import { FRAG_COUNTERS, Fragmenter } from './fragment.js';
import { ICMP_ERROR_COUNTERS, IcmpErrorBuilder, ICMP_ERROR_MAX_LEN } from './icmp-error.js';
import { IN_CSUM_OK, IN_LOOPBACK, INPUT_COUNTERS, IpInput, type InputResult } from './input.js';
import { REASM_COUNTERS, Reassembler, REASM_QUOTE_MAX } from './reassembly.js';
import { RouteTable } from './route.js';
import { ReasonCounters } from './counters.js';

export const IP_COUNTERS = [
  'frames-in',
  'to-udp',
  'to-tcp',
  'echo-replied',
  'icmp-errors-up',
  'packets-out',
  'frames-out',
  'fragments-out',
  'gso-out',
  'loopback',
  'arp-replies',
  'arp-requests',
  'port-unreachables',
  'drop:no-route',
  'drop:deliver-no-buffer', // a reassembled datagram for udp/tcp found no pool buffer to move into
  'drop:reply-no-buffer', // the echo reply to a reassembled ping found no pool buffer
  'drop:icmp-no-buffer', // an ICMP error we would have sent found no pool buffer
  'drop:frag-no-buffer', // a fragment of an outgoing datagram found no pool buffer
  'drop:arp-no-buffer', // an ARP request found no pool buffer
  'drop:ring-full',
  'drop:bad-message',
  'drop:replay',
  'drop:arp-failed',
  'drop:arp-queue',
  'drop:needs-frag',
  'drop:no-iface',
  'drop:oversize',
  'drop:icmp-unsupported',
] as const;
type IpCounter = (typeof IP_COUNTERS)[number];

/** Shared state layout (Float64 slots, then Int32 words): counters of every core, then the ident. */
const IDENT_WORD = 0; // Int32 index in the ident area
const COUNTER_SLOTS = 512;

const UDP_CSUM_AT = 6;
const TCP_CSUM_AT = 16;
/** Frames a handler may emit for one input record; it refuses the record (backpressure) without room. */
const ROOM_BYTES = 64 * 48;

function be16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v;
}


/**
 * Every IP counter by name, read from the server's shared state (for stack.stats() on any thread).
 * The order is the one the engine registers its cores' counters in.
 */
export function readIpCounters(state: SharedArrayBuffer): Record<string, number> {
  const groups: readonly (readonly string[])[] = [IP_COUNTERS, INPUT_COUNTERS, ARP_COUNTERS, REASM_COUNTERS, FRAG_COUNTERS, ICMP_ERROR_COUNTERS];
  const out: Record<string, number> = {};
  let slot = 0;
  const f = new Float64Array(state, 0, COUNTER_SLOTS);
  for (const names of groups) {
    for (const n of names) {
      const v = f[slot++];
      if (v !== 0) out[n] = (out[n] ?? 0) + v;
    }
  }
  return out;
}

export class IpEngine {
  readonly counters = new ReasonCounters(IP_COUNTERS);
  private readonly slot: Readonly<Record<IpCounter, number>>;
  private readonly routes = new RouteTable();
  private readonly arp: ArpCache;
  private readonly input: IpInput;
  private readonly frag = new Fragmenter();
  private readonly icmp: IcmpErrorBuilder;
  private readonly ident: Int32Array;
  private readonly mac: number;
  private readonly address: number;
  private readonly offload: boolean;
  /** TSO: the largest transport segment the link cuts for us (0: none). */
  private readonly gsoMax: number;
  private readonly toDriver: RingProducer;
  private readonly toUdp: RingProducer;
  /** The tcp instances' rings, by instance (one unless tcp is flow-sharded: runtime/flow-shard.ts). */
  private readonly toTcp: RingProducer[];
  private readonly shardKey: readonly number[];
  private readonly arpRepr = new ArpRepr();
  /** Packets waiting for ARP: buffer handle -> where the IPv4 packet is in it. */
  private readonly waiting = new Map<number, { ipOff: number; ipLen: number; fflags: number }>();
  private readonly quote = new Uint8Array(REASM_QUOTE_MAX);
  private announced = false;

  constructor(private readonly ctx: ServerContext) {
    const iface = ctx.config.iface;
    this.mac = iface?.mac ?? 0;
    this.address = iface?.address ?? 0;
    this.offload = iface?.checksumOffload ?? false;
    this.gsoMax = iface?.gsoMaxBytes ?? 0;
    if (iface) {
      this.routes.addInterface({ addr: iface.address, prefixLen: iface.prefix, mtu: iface.mtu });
      if (iface.gateway) this.routes.setDefaultGateway(iface.gateway);
    }
    // Generous queues for packets waiting for ARP: after a restart, everything the transports had in
    // their rings arrives before the first answer, and none of it may be lost (bounded all the same).
    this.arp = new ArpCache({ maxQueuePerEntry: 128, maxQueued: 512 });
    this.arp.setLocal(this.mac, iface ? [iface.address] : []);
    this.input = new IpInput({ mac: this.mac, routes: this.routes, reassembler: new Reassembler() });
    this.icmp = new IcmpErrorBuilder(this.routes);
    this.toDriver = ctx.out.get('driver')!;
    this.toUdp = ctx.out.get('udp')!;
    const shards = ctx.config.tcpShards;
    this.toTcp = Array.from({ length: shards?.count ?? 1 }, (_, k) => ctx.out.get(tcpInstanceName(k))!);
    this.shardKey = shards?.key ?? [0, 0, 0, 0];
    this.slot = Object.fromEntries(IP_COUNTERS.map((n, i) => [n, i])) as Record<IpCounter, number>;
    // Every core counts straight into its slots of the shared state, in this order (readIpCounters'),
    // so totals survive restarts and stats() reads them as they move. (They used to be copied there on
    // every poll that followed a count: 4% of a co-hosted pair's thread in `bench rr`, on every frame's
    // path.) The ip server is not transactional: a count made for a record it dies on is made again
    // when the record is replayed, as any of its effects would be.
    let slot = 0;
    for (const c of [this.counters, this.input.counters, this.arp.counters, this.input.reassembler.counters, this.frag.counters, this.icmp.counters]) {
      const n = c.names.length;
      if (slot + n > COUNTER_SLOTS) throw new RangeError('IP counter area too small');
      (c as ReasonCounters<string>).rebase(new Float64Array(ctx.state, slot * 8, n));
      slot += n;
    }
    this.ident = new Int32Array(ctx.state, COUNTER_SLOTS * 8, 4);
  }

  private count(name: IpCounter, n = 1): void {
    this.counters.values[this.slot[name]] += n;
  }

  private nextIdent(): number {
    return Atomics.add(this.ident, IDENT_WORD, 1) & 0xffff;
  }

  /** Room for the frames one record may produce (else the host offers the record again later). */
  hasRoom(): boolean {
    if (!this.toDriver.canReserve(ROOM_BYTES) || !this.toUdp.canReserve(256)) return false;
    const tcp = this.toTcp;
    for (let i = 0; i < tcp.length; i++) if (!tcp[i].canReserve(256)) return false;
    return true;
  }

  /** The ring to the tcp instance that owns a four-tuple seen from this stack (local first). */
  private tcpOut(laddr: number, lport: number, raddr: number, rport: number): RingProducer {
    const tcp = this.toTcp;
    return tcp.length === 1 ? tcp[0] : tcp[flowShard(this.shardKey, tcp.length, laddr, lport, raddr, rport)];
  }

  /** The ring to a transport for an ICMP error about a segment this stack sent (src is local). */
  private errOut(target: 'udp' | 'tcp', src: number, dst: number, sport: number, dport: number): RingProducer {
    return target === 'udp' ? this.toUdp : this.tcpOut(src, sport, dst, dport);
  }

  // ---------------------------------------------------------------------------------------------
  // Input

  onFrame(rec: Uint8Array, off: number, nowUs: number): void {
    const ctx = this.ctx;
    const pools = ctx.pools;
    const buf = rd32(rec, off + D.BUF);
    if (!ctx.claim(buf, rd32(rec, off + D.EPOCH))) {
      this.count('drop:replay');
      return;
    }
    this.count('frames-in');
    const bytes = pools.bytesOf(buf);
    const base = pools.offsetOf(buf);
    const fflags = rd32(rec, off + D.FLAGS);
    const flags = fflags & FRAME_CSUM_OK ? IN_CSUM_OK : 0;
    // A frame larger than the MTU is accepted only when the link says it is a GSO/GRO frame (a TAP with
    // IFF_VNET_HDR: the kernel glued MTU-sized segments, or sends one large TCP segment to be cut).
    if (rd32(rec, off + D.LEN) > this.ifaceMtu() + ETH_HEADER_LEN && (fflags & FRAME_GSO) === 0) {
      this.count('drop:oversize');
      pools.free(buf, ctx.owner);
      return;
    }
    const r = this.input.receive(bytes, base + rd32(rec, off + D.OFF), rd32(rec, off + D.LEN), nowUs, flags);
    this.dispatchInput(r, buf, flags !== 0, nowUs);
  }

  /** Act on a classified packet that arrived in buffer `buf` (owned by us). */
  private dispatchInput(r: InputResult, buf: number, csumOk: boolean, nowUs: number): void {
    const pools = this.ctx.pools;
    switch (r.kind) {
      case 'arp': {
        const res = this.arp.input(r.arp, nowUs);
        for (let i = 0; i < res.releasedCount; i++) this.sendResolved(res.released[i], res.releasedMac);
        if (res.replyReady) {
          const base = pools.offsetOf(buf);
          const len = emitArpFrame(pools.bytesOf(buf), base, res.replyEthDst, res.reply);
          this.count('arp-replies');
          this.toDriverFrame(buf, 0, len, 0);
        } else {
          pools.free(buf, this.ctx.owner);
        }
        return;
      }
      case 'udp':
      case 'tcp': {
        const target = r.kind;
        let b = buf;
        let ipOff = r.ipOff;
        let l4Off = r.l4Off;
        if (r.reassembled) {
          // The datagram is in the reassembler's own buffer: move it into a pool buffer.
          b = this.copyToPool(r.bytes, r.ipOff, r.ipLen, 'drop:deliver-no-buffer');
          pools.free(buf, this.ctx.owner);
          if (b < 0) return;
          const at = pools.offsetOf(b) + 64; // copyToPool leaves 64 bytes of headroom
          l4Off = at + (r.l4Off - r.ipOff);
          ipOff = at;
        }
        this.count(target === 'udp' ? 'to-udp' : 'to-tcp');
        this.toTransport(target, b, ipOff, r, l4Off, csumOk);
        return;
      }
      case 'echo-reply': {
        this.count('echo-replied');
        if (!r.reassembled && r.ipLen + ETH_HEADER_LEN <= this.ifaceMtu() + ETH_HEADER_LEN) {
          // Rewritten in place, Ethernet header included: send the same buffer back.
          this.toDriverFrame(buf, r.frameOff - pools.offsetOf(buf), r.frameLen, 0);
          return;
        }
        // A reassembled (large) ping: its reply goes through the output path (fragmentation).
        const b = this.copyToPool(r.bytes, r.ipOff, r.ipLen, 'drop:reply-no-buffer');
        pools.free(buf, this.ctx.owner);
        if (b >= 0) this.output(b, pools.offsetOf(b) + 64, r.ipLen, nowUs, 0);
        return;
      }
      case 'icmp-error': {
        const ic = r.icmp;
        const target = ic.innerProtocol === IPPROTO_UDP ? 'udp' : ic.innerProtocol === IPPROTO_TCP ? 'tcp' : null;
        if (target) this.icmpErrorUp(target, ic.type, ic.code, ic.innerProtocol, ic.innerSrc, ic.innerDst, ic.innerSrcPort, ic.innerDstPort, ic.mtu, r.src, ic.innerSeq);
        else this.count('drop:icmp-unsupported');
        pools.free(buf, this.ctx.owner);
        return;
      }
      case 'proto-unreach': {
        this.sendIcmpError(3, 2, r.bytes, r.ipOff, r.ipLen, nowUs);
        pools.free(buf, this.ctx.owner);
        return;
      }
      case 'icmp':
        // An echo reply or other informational message for us: no ping sockets (yet); counted by input.
        this.count('drop:icmp-unsupported');
        pools.free(buf, this.ctx.owner);
        return;
      case 'held':
      case 'drop':
      default:
        pools.free(buf, this.ctx.owner);
        return;
    }
  }

  private ifaceMtu(): number {
    return this.ctx.config.iface?.mtu ?? 1500;
  }

  /** Copy an IPv4 packet into a fresh pool buffer at offset 64 (headroom for Ethernet). */
  private copyToPool(src: Uint8Array, off: number, len: number, noBuffer: IpCounter): number {
    const pools = this.ctx.pools;
    const b = pools.alloc(64 + len, this.ctx.owner);
    if (b < 0) {
      this.count(noBuffer);
      return -1;
    }
    pools.bytesOf(b).set(src.subarray(off, off + len), pools.offsetOf(b) + 64);
    return b;
  }

  private toTransport(target: 'udp' | 'tcp', buf: number, ipOffAbs: number, r: InputResult, l4OffAbs: number, csumOk: boolean): void {
    const ctx = this.ctx;
    let out = this.toUdp;
    if (target === 'tcp') {
      // Flow-sharded tcp: the instance of (dst, dport, src, sport), our side first (ports read only then).
      const pb = this.toTcp.length === 1 ? null : ctx.pools.bytesOf(buf);
      out = pb === null ? this.toTcp[0] : this.tcpOut(r.dst, (pb[l4OffAbs + 2] << 8) | pb[l4OffAbs + 3], r.src, (pb[l4OffAbs] << 8) | pb[l4OffAbs + 1]);
    }
    const o = out.reserve(D.L4_IN_BYTES, DATA_MSG.L4_IN);
    if (o < 0) {
      this.count('drop:ring-full');
      ctx.pools.free(buf, ctx.owner);
      return;
    }
    const b = out.bytes;
    const base = ctx.pools.offsetOf(buf);
    wr32(b, o + HDR_DST_GEN, 0);
    wr32(b, o + HDR_SRC_GEN, ctx.generation);
    wr32(b, o + D.BUF, buf);
    wr32(b, o + D.EPOCH, ctx.pools.epochOf(buf));
    wr32(b, o + D.OFF, ipOffAbs - base);
    wr32(b, o + D.LEN, r.ipLen);
    wr32(b, o + D.L4_OFF, l4OffAbs - base);
    wr32(b, o + D.L4_LEN, r.l4Len);
    wr32(b, o + D.SRC, r.src);
    wr32(b, o + D.DST, r.dst);
    b[o + D.PROTO] = r.protocol;
    b[o + D.TTL] = r.ttl;
    b[o + D.IN_FLAGS] = csumOk ? FRAME_CSUM_OK : 0;
    b[o + D.IN_FLAGS + 1] = 0;
    out.commit();
  }

  private icmpErrorUp(target: 'udp' | 'tcp', type: number, code: number, proto: number, src: number, dst: number, sport: number, dport: number, mtu: number, reporter: number, seq = 0): void {
    const out = this.errOut(target, src, dst, sport, dport);
    const o = out.reserve(D.ICMP_ERR_BYTES, DATA_MSG.ICMP_ERR);
    if (o < 0) {
      this.count('drop:ring-full');
      return;
    }
    const b = out.bytes;
    b.fill(0, o, o + D.ICMP_ERR_BYTES);
    wr32(b, o + HDR_SRC_GEN, this.ctx.generation);
    b[o + D.E_TYPE] = type;
    b[o + D.E_CODE] = code;
    b[o + D.E_PROTO] = proto;
    wr32(b, o + D.E_SRC, src);
    wr32(b, o + D.E_DST, dst);
    b[o + D.E_SPORT] = sport;
    b[o + D.E_SPORT + 1] = sport >>> 8;
    b[o + D.E_DPORT] = dport;
    b[o + D.E_DPORT + 1] = dport >>> 8;
    b[o + D.E_MTU] = mtu;
    b[o + D.E_MTU + 1] = mtu >>> 8;
    wr32(b, o + D.E_REPORTER, reporter);
    wr32(b, o + D.E_SEQ, seq);
    out.commit();
    this.count('icmp-errors-up');
  }

  /** Build an ICMP error about the packet at orig[origOff, +origLen) and send it. */
  private sendIcmpError(type: number, code: number, orig: Uint8Array, origOff: number, origLen: number, nowUs: number, mtu = 0): void {
    const pools = this.ctx.pools;
    const b = pools.alloc(64 + ICMP_ERROR_MAX_LEN, this.ctx.owner);
    if (b < 0) {
      this.count('drop:icmp-no-buffer');
      return;
    }
    const at = pools.offsetOf(b) + 64;
    const n =
      type === ICMP_DST_UNREACHABLE
        ? this.icmp.unreachable(code, orig, origOff, origLen, pools.bytesOf(b), at, nowUs, 0, mtu)
        : this.icmp.timeExceeded(code, orig, origOff, origLen, pools.bytesOf(b), at, nowUs, 0);
    if (n <= 0) {
      pools.free(b, this.ctx.owner);
      return;
    }
    this.output(b, at, n, nowUs, 0);
  }

  /** UDP found no socket for a datagram it was given: ICMP port unreachable quoting it. */
  onPortUnreach(rec: Uint8Array, off: number, nowUs: number): void {
    const ctx = this.ctx;
    const buf = rd32(rec, off + D.BUF);
    if (!ctx.claim(buf, rd32(rec, off + D.EPOCH))) {
      this.count('drop:replay');
      return;
    }
    const pools = ctx.pools;
    this.count('port-unreachables');
    this.sendIcmpError(3, 3, pools.bytesOf(buf), pools.offsetOf(buf) + rd32(rec, off + D.OFF), rd32(rec, off + D.LEN), nowUs);
    pools.free(buf, ctx.owner);
  }

  // ---------------------------------------------------------------------------------------------
  // Output

  onL4Out(rec: Uint8Array, off: number, nowUs: number): void {
    const ctx = this.ctx;
    const pools = ctx.pools;
    const buf = rd32(rec, off + D.BUF);
    if (!ctx.claim(buf, rd32(rec, off + D.EPOCH))) {
      this.count('drop:replay');
      return;
    }
    const bytes = pools.bytesOf(buf);
    const l4 = pools.offsetOf(buf) + rd32(rec, off + D.OFF);
    const l4Len = rd32(rec, off + D.LEN);
    const dst = rd32(rec, off + D.OUT_DST) >>> 0;
    const proto = rec[off + D.OUT_PROTO];
    const flags = rec[off + D.OUT_FLAGS];
    const gso = proto === IPPROTO_TCP ? rec[off + D.OUT_GSO] | (rec[off + D.OUT_GSO + 1] << 8) : 0;
    const ipOff = l4 - IPV4_HEADER_LEN;
    if (ipOff < pools.offsetOf(buf) + ETH_HEADER_LEN || l4Len < 0 || l4 + l4Len > pools.offsetOf(buf) + pools.capacityOf(buf)) {
      this.count('drop:bad-message');
      pools.free(buf, ctx.owner);
      return;
    }
    const route = this.routes.lookup(dst);
    if (!route) {
      this.count('drop:no-route');
      // Back to the sender: for tcp, the instance its own four-tuple hashes to, which is the one that sent it.
      this.icmpErrorUp(proto === IPPROTO_TCP ? 'tcp' : 'udp', 3, 0, proto, rd32(rec, off + D.OUT_SRC) >>> 0, dst, bytes[l4] << 8 | bytes[l4 + 1], bytes[l4 + 2] << 8 | bytes[l4 + 3], 0, 0);
      pools.free(buf, ctx.owner);
      return;
    }
    const src = (rd32(rec, off + D.OUT_SRC) >>> 0) || route.src;
    // IPv4 header, in place in front of the segment.
    bytes[ipOff] = 0x45;
    bytes[ipOff + 1] = rec[off + D.OUT_TOS];
    be16(bytes, ipOff + 2, IPV4_HEADER_LEN + l4Len);
    be16(bytes, ipOff + 4, this.nextIdent());
    be16(bytes, ipOff + 6, flags & L4F_DF ? 0x4000 : 0);
    bytes[ipOff + 8] = rec[off + D.OUT_TTL] || 64;
    bytes[ipOff + 9] = proto;
    be16(bytes, ipOff + 10, 0);
    be16(bytes, ipOff + 12, src >>> 16);
    be16(bytes, ipOff + 14, src & 0xffff);
    be16(bytes, ipOff + 16, dst >>> 16);
    be16(bytes, ipOff + 18, dst & 0xffff);
    be16(bytes, ipOff + 10, checksumFinish(checksumPartial(bytes, ipOff, IPV4_HEADER_LEN)));
    // The transport checksum: needed unless the packet stays inside this stack or the link offloads it
    // (not when the packet will be fragmented: a link fills a checksum only in a whole packet).
    const tso = gso > 0 && this.gsoMax > 0 && !route.local && l4Len <= this.gsoMax;
    const skipCsum = route.local || (this.offload && (tso || IPV4_HEADER_LEN + l4Len <= route.mtu));
    if (flags & L4F_CSUM && !skipCsum) {
      const at = proto === IPPROTO_UDP ? UDP_CSUM_AT : proto === IPPROTO_TCP ? TCP_CSUM_AT : -1;
      if (at >= 0 && at + 2 <= l4Len) {
        be16(bytes, l4 + at, 0);
        let c = checksumFinish(checksumPartial(bytes, l4, l4Len, pseudoHeaderSumV4(src, dst, proto, l4Len)));
        if (c === 0 && proto === IPPROTO_UDP) c = 0xffff;
        be16(bytes, l4 + at, c);
      }
    }
    this.count('packets-out');
    let fflags = skipCsum && (flags & L4F_CSUM) !== 0 ? FRAME_CSUM_OK : 0;
    // TSO needs a partial checksum the link completes per segment: a segment that did not ask for
    // offload goes the ordinary way (fragmented, or dropped as needing it under DF).
    if (tso && fflags !== 0 && IPV4_HEADER_LEN + l4Len > route.mtu) {
      fflags |= FRAME_GSO | (gso << 16);
      this.count('gso-out');
    }
    this.output(buf, ipOff, IPV4_HEADER_LEN + l4Len, nowUs, fflags);
  }

  /**
   * Send the IPv4 packet at [ipOff, +ipLen) of `buf` (ours; absolute offsets in its byte area):
   * loopback, or fragment + resolve + Ethernet + driver. The transport checksum was
   * not computed (local delivery or an offloading link): `fflags` has FRAME_CSUM_OK; FRAME_GSO (with the
   * segment size in bits 16-31): a TSO segment the link cuts, never fragmented here.
   */
  output(buf: number, ipOff: number, ipLen: number, nowUs: number, fflags: number): void {
    const ctx = this.ctx;
    const pools = ctx.pools;
    const bytes = pools.bytesOf(buf);
    const dst = ((bytes[ipOff + 16] << 24) | (bytes[ipOff + 17] << 16) | (bytes[ipOff + 18] << 8) | bytes[ipOff + 19]) >>> 0;
    const route = this.routes.lookup(dst);
    if (!route) {
      this.count('drop:no-route');
      pools.free(buf, ctx.owner);
      return;
    }
    if (route.local) {
      // Loopback: our own address or 127/8 goes straight back into input, no wire, no link header.
      this.count('loopback');
      const r = this.input.receiveIp(bytes, ipOff, ipLen, nowUs, IN_LOOPBACK | IN_CSUM_OK);
      void fflags; // nothing to verify on a packet that never left this stack
      this.dispatchInput(r, buf, true, nowUs);
      return;
    }
    if (!this.ctx.config.iface) {
      this.count('drop:no-iface');
      pools.free(buf, ctx.owner);
      return;
    }
    const st = fflags & FRAME_GSO ? 'fits' : this.frag.start(bytes, ipOff, ipLen, route.mtu);
    if (st === 'fits') {
      this.toLink(buf, ipOff, ipLen, route.nextHop, route.broadcast, nowUs, fflags);
      return;
    }
    if (st !== 'fragment') {
      this.count('drop:needs-frag');
      pools.free(buf, ctx.owner);
      return;
    }
    // Each fragment in a buffer of its own (with room for the Ethernet header), then the original goes.
    while (this.frag.remaining > 0) {
      const n = this.frag.nextLen();
      const fb = pools.alloc(64 + n, ctx.owner);
      if (fb < 0) {
        this.count('drop:frag-no-buffer');
        break;
      }
      const at = pools.offsetOf(fb) + 64;
      this.frag.next(pools.bytesOf(fb), at);
      this.count('fragments-out');
      this.toLink(fb, at, n, route.nextHop, route.broadcast, nowUs, fflags);
    }
    pools.free(buf, ctx.owner);
  }

  private toLink(buf: number, ipOff: number, ipLen: number, nextHop: number, broadcast: boolean, nowUs: number, fflags: number): void {
    if (broadcast) {
      this.sendWithMac(buf, ipOff, ipLen, 0xffffffffffff, fflags);
      return;
    }
    const q = this.arp.query(nextHop, buf, nowUs);
    if (q === 'resolved') {
      this.sendWithMac(buf, ipOff, ipLen, this.arp.resolvedMac, fflags);
    } else if (q === 'queued') {
      this.waiting.set(buf, { ipOff, ipLen, fflags });
    } else {
      this.count('drop:arp-queue');
      this.ctx.pools.free(buf, this.ctx.owner);
    }
  }

  private sendResolved(handle: number, mac: number): void {
    const w = this.waiting.get(handle);
    if (!w) return;
    this.waiting.delete(handle);
    // The packet keeps its offload flag: its transport checksum was never computed under FRAME_CSUM_OK, and
    // without the flag the peer verifies it and drops the packet (the first SYN to a new neighbour was
    // lost this way, costing every first connection a 1 s SYN retransmission).
    this.sendWithMac(handle, w.ipOff, w.ipLen, mac, w.fflags);
  }

  private sendWithMac(buf: number, ipOff: number, ipLen: number, mac: number, fflags: number): void {
    const pools = this.ctx.pools;
    const bytes = pools.bytesOf(buf);
    const eth = ipOff - ETH_HEADER_LEN;
    writeMac(bytes, eth, mac);
    writeMac(bytes, eth + 6, this.mac);
    be16(bytes, eth + 12, ETHERTYPE_IPV4);
    this.toDriverFrame(buf, eth - pools.offsetOf(buf), ETH_HEADER_LEN + ipLen, fflags);
  }

  /** FRAME to the driver; the buffer (ours) goes with it. */
  private toDriverFrame(buf: number, relOff: number, len: number, flags: number): void {
    const ctx = this.ctx;
    const out = this.toDriver;
    const o = out.reserve(D.FRAME_BYTES, DATA_MSG.FRAME);
    if (o < 0) {
      this.count('drop:ring-full');
      ctx.pools.free(buf, ctx.owner);
      return;
    }
    const b = out.bytes;
    wr32(b, o + HDR_DST_GEN, 0);
    wr32(b, o + HDR_SRC_GEN, ctx.generation);
    wr32(b, o + D.BUF, buf);
    wr32(b, o + D.EPOCH, ctx.pools.epochOf(buf));
    wr32(b, o + D.OFF, relOff);
    wr32(b, o + D.LEN, len);
    wr32(b, o + D.FLAGS, flags);
    wr32(b, o + D.IFINDEX, 0);
    out.commit();
    this.count('frames-out');
  }

  // ---------------------------------------------------------------------------------------------
  // Timers

  poll(nowUs: number): number {
    const ctx = this.ctx;
    const pools = ctx.pools;
    if (!this.announced && ctx.config.iface && ctx.config.link.kind !== 'none') {
      // Gratuitous ARP: tell the link who has our address (updates neighbours' caches after a restart).
      this.announced = true;
      this.sendArpRequest(this.address, 0xffffffffffff);
    }
    const p = this.arp.poll(nowUs);
    for (let i = 0; i < p.requestCount; i++) this.sendArpRequest(p.requestIps[i], p.requestEthDsts[i]);
    for (let i = 0; i < p.failedCount; i++) {
      const h = p.failed[i];
      const w = this.waiting.get(h);
      this.waiting.delete(h);
      this.count('drop:arp-failed');
      if (w) {
        // Tell the transport its destination is unreachable (host unreachable), then drop the packet.
        const b = pools.bytesOf(h);
        const proto = b[w.ipOff + 9];
        const ihl = (b[w.ipOff] & 15) * 4;
        const l4 = w.ipOff + ihl;
        if (proto === IPPROTO_UDP || proto === IPPROTO_TCP) {
          const src = r32be(b, w.ipOff + 12);
          this.icmpErrorUp(proto === IPPROTO_UDP ? 'udp' : 'tcp', 3, 1, proto, src, p.failedIps[i], (b[l4] << 8) | b[l4 + 1], (b[l4 + 2] << 8) | b[l4 + 3], 0, src, proto === IPPROTO_TCP ? r32be(b, l4 + 4) : 0);
        }
      }
      pools.free(h, ctx.owner);
    }
    let deadline = p.nextDeadlineUs;
    const reasm = this.input.reassembler;
    for (;;) {
      const n = reasm.expire(nowUs, this.quote, 0);
      if (n < 0) break;
      if (n > 0) this.sendIcmpError(11, 1, this.quote, 0, n, nowUs);
    }
    deadline = Math.min(deadline, reasm.nextDeadline());
    return deadline;
  }

  private sendArpRequest(ip: number, ethDst: number): void {
    const pools = this.ctx.pools;
    const b = pools.alloc(64, this.ctx.owner);
    if (b < 0) {
      this.count('drop:arp-no-buffer');
      return;
    }
    this.arp.makeRequest(ip, this.arpRepr);
    const len = emitArpFrame(pools.bytesOf(b), pools.offsetOf(b), ethDst, this.arpRepr);
    this.count('arp-requests');
    this.toDriverFrame(b, 0, len, 0);
  }

  /** Free every buffer this incarnation holds privately (on a clean stop). */
  close(): void {
    for (const h of this.waiting.keys()) this.ctx.pools.free(h, this.ctx.owner);
    this.waiting.clear();
  }
}

function r32be(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}
