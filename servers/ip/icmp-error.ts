/**
 * Building ICMP error messages (destination unreachable, time exceeded) about a datagram, with the
 * rules of RFC 1122 §3.2.2 and RFC 1812 §4.3.2, and the echo reply. Pure: time is passed in (for the
 * rate limit), output goes into caller buffers.
 *
 * `IcmpErrorBuilder.unreachable(code, orig, origOff, origLen, out, outOff, nowUs, src?, mtu?)` and
 * `.timeExceeded(code, ...)` write a complete IPv4 packet (20-byte header, no options; ICMP header;
 * quote) and return its length, or 0 when the error must not be sent (reason counted):
 *  - 'refused:malformed'  the offending datagram is not a readable IPv4 header;
 *  - 'refused:icmp-error' it is itself an ICMP error (or an ICMP message too short to tell);
 *  - 'refused:fragment'   it is a non-initial fragment;
 *  - 'refused:bad-dst'    it was sent to a broadcast or multicast address;
 *  - 'refused:bad-src'    its source is not a single host (0/8, loopback, broadcast, multicast,
 *                         class E, or one of our subnets' broadcast addresses);
 *  - 'refused:rate-limit' the token bucket is empty (RFC 1812 §4.3.2.8; Linux's 1000/s, burst 50).
 * The quote is the offending datagram from its header on, as much as keeps the error within 576
 * bytes (RFC 1812 §4.3.2.3), never more than the datagram's own total length.
 *
 * Header of the error: TOS 0xc0 (internetwork control, as Linux), TTL 64, DF clear, identification
 * from `ident` (incremented per message, 16 bits; the IP server may share its counter by setting
 * it), source `src` (default: the offending datagram's destination, which must then be ours; pass
 * the outgoing interface address otherwise), destination the offending datagram's source.
 *
 * The output buffer needs `ICMP_ERROR_MAX_LEN` bytes at `outOff` (RangeError otherwise: a caller bug).
 */
import { needRoom, readU16, readU32, writeU16, writeU32 } from '../wire/bytes.js';
import { checksum, checksumUpdate16 } from '../wire/checksum.js';
import {
  ICMP_DST_UNREACHABLE,
  ICMP_ECHO_REPLY,
  ICMP_ERROR_MAX_QUOTE,
  ICMP_HEADER_LEN,
  ICMP_TIME_EXCEEDED,
  ICMP_UNREACH_FRAG_NEEDED,
} from '../wire/icmp.js';
import {
  IPPROTO_ICMP,
  IPV4_BROADCAST,
  IPV4_HEADER_LEN,
  Ipv4Repr,
  ipv4IsLoopback,
  ipv4IsMulticast,
} from '../wire/ipv4.js';
import { ReasonCounters, counterSlots } from './counters.js';
import type { RouteTable } from './route.js';

/** Largest packet the builder writes (576: RFC 1812 §4.3.2.3). */
export const ICMP_ERROR_MAX_LEN = IPV4_HEADER_LEN + ICMP_HEADER_LEN + ICMP_ERROR_MAX_QUOTE;
export const ICMP_ERROR_TOS = 0xc0;

export const ICMP_ERROR_COUNTERS = [
  'sent-unreachable',
  'sent-time-exceeded',
  'refused:malformed',
  'refused:icmp-error',
  'refused:fragment',
  'refused:bad-dst',
  'refused:bad-src',
  'refused:rate-limit',
] as const;
export type IcmpErrorCounter = (typeof ICMP_ERROR_COUNTERS)[number];
const C = counterSlots(ICMP_ERROR_COUNTERS);

export interface IcmpErrorOptions {
  /** Token refill per second. Default 1000. 0 disables the limit. */
  ratePerSec?: number;
  /** Bucket size. Default 50. */
  burst?: number;
  ttl?: number;
  tos?: number;
}

/** True for source addresses that name a single host (RFC 1122 §3.2.1.3, RFC 1812 §5.3.7). */
export function ipv4IsHostSource(a: number): boolean {
  const top = a >>> 24;
  return a !== IPV4_BROADCAST && top !== 0 && top !== 127 && top < 224;
}

export class IcmpErrorBuilder {
  readonly counters = new ReasonCounters(ICMP_ERROR_COUNTERS);
  /** Identification of the next message (16-bit, wraps). */
  ident = 0;
  readonly ratePerSec: number;
  readonly burst: number;
  readonly ttl: number;
  readonly tos: number;
  private tokens: number;
  private lastUs = -Infinity;
  private readonly ip = new Ipv4Repr();
  private readonly routes: RouteTable | null;

  /** `routes` (optional) lets the builder recognise subnet-directed broadcasts. */
  constructor(routes: RouteTable | null = null, options: IcmpErrorOptions = {}) {
    this.routes = routes;
    this.ratePerSec = options.ratePerSec ?? 1000;
    this.burst = Math.max(1, options.burst ?? 50);
    this.ttl = options.ttl ?? 64;
    this.tos = options.tos ?? ICMP_ERROR_TOS;
    this.tokens = this.burst;
  }

  /** Destination unreachable; `mtu` is the next-hop MTU for code 4 (fragmentation needed). */
  unreachable(
    code: number,
    orig: Uint8Array,
    origOff: number,
    origLen: number,
    out: Uint8Array,
    outOff: number,
    nowUs: number,
    src = 0,
    mtu = 0,
  ): number {
    const n = this.build(ICMP_DST_UNREACHABLE, code, orig, origOff, origLen, out, outOff, nowUs, src, mtu);
    if (n > 0) this.counters.values[C['sent-unreachable']]++;
    return n;
  }

  /** Time exceeded: code 0 TTL, code 1 reassembly. */
  timeExceeded(
    code: number,
    orig: Uint8Array,
    origOff: number,
    origLen: number,
    out: Uint8Array,
    outOff: number,
    nowUs: number,
    src = 0,
  ): number {
    const n = this.build(ICMP_TIME_EXCEEDED, code, orig, origOff, origLen, out, outOff, nowUs, src, 0);
    if (n > 0) this.counters.values[C['sent-time-exceeded']]++;
    return n;
  }

  private refuse(reason: IcmpErrorCounter): 0 {
    this.counters.values[C[reason]]++;
    return 0;
  }

  private build(
    type: number,
    code: number,
    b: Uint8Array,
    o: number,
    len: number,
    out: Uint8Array,
    outOff: number,
    nowUs: number,
    src: number,
    mtu: number,
  ): number {
    if (o < 0 || len < IPV4_HEADER_LEN || o + len > b.length) return this.refuse('refused:malformed');
    const vi = b[o];
    const hl = (vi & 0xf) * 4;
    if (vi >>> 4 !== 4 || hl < IPV4_HEADER_LEN || hl > len) return this.refuse('refused:malformed');
    const total = readU16(b, o + 2);
    if (total < hl) return this.refuse('refused:malformed');
    if ((readU16(b, o + 6) & 0x1fff) !== 0) return this.refuse('refused:fragment');
    if (b[o + 9] === IPPROTO_ICMP) {
      if (len < hl + 1) return this.refuse('refused:icmp-error');
      const t = b[o + hl];
      // Queries (echo 0/8, router 9/10, timestamp 13/14, info 15/16, mask 17/18) may be answered.
      if (t === 3 || t === 4 || t === 5 || t === 11 || t === 12 || t > 18) return this.refuse('refused:icmp-error');
    }
    const osrc = readU32(b, o + 12);
    const odst = readU32(b, o + 16);
    if (odst === IPV4_BROADCAST || ipv4IsMulticast(odst) || (this.routes !== null && this.routes.isBroadcast(odst))) {
      return this.refuse('refused:bad-dst');
    }
    if (!ipv4IsHostSource(osrc) && !(ipv4IsLoopback(osrc) && ipv4IsLoopback(odst))) return this.refuse('refused:bad-src');
    if (this.routes !== null && this.routes.isBroadcast(osrc)) return this.refuse('refused:bad-src');
    if (!this.takeToken(nowUs)) return this.refuse('refused:rate-limit');

    const quote = Math.min(len, total, ICMP_ERROR_MAX_QUOTE);
    const icmpLen = ICMP_HEADER_LEN + quote;
    const pkt = IPV4_HEADER_LEN + icmpLen;
    needRoom(out, outOff, pkt, 'icmp error');
    // Quote first: if the caller builds into the buffer holding the offending datagram, copyWithin
    // moves it safely, and nothing is read from it after this.
    const q = outOff + IPV4_HEADER_LEN + ICMP_HEADER_LEN;
    if (out === b) out.copyWithin(q, o, o + quote);
    else for (let i = 0; i < quote; i++) out[q + i] = b[o + i];
    const c = outOff + IPV4_HEADER_LEN;
    out[c] = type;
    out[c + 1] = code;
    writeU16(out, c + 2, 0);
    writeU16(out, c + 4, 0);
    writeU16(out, c + 6, type === ICMP_DST_UNREACHABLE && code === ICMP_UNREACH_FRAG_NEEDED ? mtu & 0xffff : 0);
    writeU16(out, c + 2, checksum(out, c, icmpLen));
    const ip = this.ip;
    ip.src = src !== 0 ? src : odst;
    ip.dst = osrc;
    ip.protocol = IPPROTO_ICMP;
    ip.payloadLen = icmpLen;
    ip.ttl = this.ttl;
    ip.dscp = this.tos >>> 2;
    ip.ecn = 0;
    ip.ident = this.ident;
    this.ident = (this.ident + 1) & 0xffff;
    ip.dontFrag = false;
    ip.moreFrags = false;
    ip.fragOffset = 0;
    ip.emit(out, outOff);
    return pkt;
  }

  private takeToken(nowUs: number): boolean {
    if (this.ratePerSec <= 0) return true;
    if (nowUs > this.lastUs) {
      this.tokens = Math.min(this.burst, this.tokens + ((nowUs - this.lastUs) * this.ratePerSec) / 1e6);
      this.lastUs = nowUs;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/**
 * Turn a received echo request into its echo reply *in place*; returns the new IPv4 offset.
 *
 * The request is the IPv4 packet at `bytes[ipOff..]` (header checked, ICMP checksum verified). The
 * reply has a 20-byte header (request options are dropped; RFC 1122 §3.2.2.6 only says SHOULD echo
 * record-route/timestamp), written so that it ends where the ICMP message starts: the packet begins
 * at `ipOff + headerLen - 20`, so nothing moves. Addresses swapped, TTL `ttl`, TOS kept, DF clear,
 * identification `ident`; ICMP type 0 with the checksum patched incrementally (RFC 1624).
 */
export function echoReplyInPlace(bytes: Uint8Array, ipOff: number, ident: number, ttl = 64): number {
  const hl = (bytes[ipOff] & 0xf) * 4;
  const total = readU16(bytes, ipOff + 2);
  const src = readU32(bytes, ipOff + 12);
  const dst = readU32(bytes, ipOff + 16);
  const tos = bytes[ipOff + 1];
  const c = ipOff + hl;
  const oldWord = (bytes[c] << 8) | bytes[c + 1];
  bytes[c] = ICMP_ECHO_REPLY;
  writeU16(bytes, c + 2, checksumUpdate16(readU16(bytes, c + 2), oldWord, (ICMP_ECHO_REPLY << 8) | bytes[c + 1]));
  const n = ipOff + hl - IPV4_HEADER_LEN;
  bytes[n] = 0x45;
  bytes[n + 1] = tos;
  writeU16(bytes, n + 2, total - hl + IPV4_HEADER_LEN);
  writeU16(bytes, n + 4, ident & 0xffff);
  writeU16(bytes, n + 6, 0);
  bytes[n + 8] = ttl;
  bytes[n + 9] = IPPROTO_ICMP;
  writeU16(bytes, n + 10, 0);
  writeU32(bytes, n + 12, dst);
  writeU32(bytes, n + 16, src);
  writeU16(bytes, n + 10, checksum(bytes, n, IPV4_HEADER_LEN));
  return n;
}
