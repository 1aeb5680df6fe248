/**
 * IPv4 input: validation and classification of a received frame (RFC 1122 §3.2.1, §3.3.6,
 * RFC 1812 §5.3.7 for the address sanity rules). Pure: no I/O; time is passed in for reassembly.
 *
 * Call order (one `IpInput` per IP server; every object here is reused, nothing allocated per frame):
 *   const r = input.receive(bytes, off, len, nowUs, flags);   // an Ethernet frame
 *   const r = input.receiveIp(bytes, ipOff, len, nowUs, flags); // an IPv4 packet with no link header
 *                                                             // (loopback; pass IN_LOOPBACK)
 *   switch (r.kind) {
 *     'arp'           r.arp holds the parsed ARP packet: hand it to ArpCache.input.
 *     'udp' | 'tcp'   deliver: the transport header is at r.bytes[r.l4Off], r.l4Len bytes (IP padding
 *                     excluded); r.src/r.dst/r.cast/r.tos for the socket lookup. Transport checksums
 *                     are the transport servers' job.
 *     'icmp'          an ICMP message for ping sockets (echo reply); r.icmp is parsed.
 *     'icmp-error'    destination unreachable / time exceeded about a datagram we sent: r.icmp has the
 *                     quoted protocol, addresses and ports; route it to that protocol's server.
 *     'echo-reply'    an echo request was turned into its reply IN PLACE: transmit
 *                     r.bytes[r.frameOff .. r.frameOff + r.frameLen) (an Ethernet frame from
 *                     `receive`, an IPv4 packet from `receiveIp`). r.ipOff/r.ipLen locate the reply's
 *                     IPv4 packet; if r.ipLen exceeds the MTU (a reassembled ping), fragment it.
 *     'proto-unreach' no handler for r.protocol: answer with IcmpErrorBuilder.unreachable(
 *                     ICMP_UNREACH_PROTOCOL, r.bytes, r.ipOff, r.ipLen, ...).
 *     'held'          a fragment was stored for reassembly; nothing to do (the frame may be freed).
 *     'drop'          r.reason says why (also counted).
 *   }
 * When `r.reassembled` is true the datagram lives in this object's own reassembly buffer, not in the
 * caller's frame: copy it out (e.g. into a pool buffer) before the next call.
 *
 * Checks, in order, each failure counted under its own reason:
 *  - Ethernet: header present, EtherType (not 802.3 length), destination MAC ours or group.
 *  - ARP: `ArpView`/`ArpRepr` checks.
 *  - IPv4: version, IHL, total length (trimming link padding), header checksum (skipped with
 *    IN_CSUM_OK when the driver verified it), option syntax.
 *  - Source (skipped with IN_LOOPBACK): not limited/directed broadcast, not multicast, not 0/8
 *    (except 0.0.0.0 to 255.255.255.255 over UDP, i.e. DHCP), not 127/8, not class E, not ours.
 *  - Destination: ours (unicast), limited or directed broadcast, or a joined multicast group;
 *    anything else is dropped (a host does not forward). 0.0.0.0 and 127/8 (without IN_LOOPBACK) are
 *    martians. A unicast IP destination in a link broadcast/multicast frame is dropped (RFC 1122
 *    §3.3.6).
 *  - TTL 0 is accepted and only noted (RFC 1812 §4.2.2.9: a datagram addressed to us is received
 *    whatever its TTL; TTL matters to forwarders).
 *  - Fragments go through the `Reassembler`.
 *  - ICMP: length and checksum; echo requests to broadcast/multicast are ignored (as Linux's
 *    icmp_echo_ignore_broadcasts); errors must be unicast to us and quote a datagram from us.
 *  - TCP only to unicast destinations (RFC 1122 §4.2.3.10); unknown protocols to broadcast or
 *    multicast are dropped without an ICMP error.
 */
import { EMPTY_BYTES } from '../wire/bytes.js';
import { ArpRepr, ArpView } from '../wire/arp.js';
import { ETH_HEADER_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, EthernetRepr, EthernetView, macIsMulticast, writeMac } from '../wire/ethernet.js';
import {
  ICMP_DST_UNREACHABLE,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  ICMP_TIME_EXCEEDED,
  IcmpRepr,
  IcmpView,
} from '../wire/icmp.js';
import {
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPV4_BROADCAST,
  IPV4_HEADER_LEN,
  IPV4_MAX_TOTAL_LEN,
  Ipv4View,
  ipv4IsMulticast,
} from '../wire/ipv4.js';
import type { WireError } from '../wire/errors.js';
import { ReasonCounters, counterSlots } from './counters.js';
import { echoReplyInPlace } from './icmp-error.js';
import { ipv4OptionsValid } from './options.js';
import { Reassembler } from './reassembly.js';
import type { RouteTable } from './route.js';

/** The driver verified the IPv4 header checksum. */
export const IN_CSUM_OK = 1;
/** The packet comes from our own loopback path: skip the martian-source checks. */
export const IN_LOOPBACK = 2;

/** 224.0.0.1, all hosts: always joined (RFC 1112). */
export const ALL_HOSTS_GROUP = 0xe0000001;

export type InputKind =
  | 'arp'
  | 'udp'
  | 'tcp'
  | 'icmp'
  | 'icmp-error'
  | 'echo-reply'
  | 'proto-unreach'
  | 'held'
  | 'drop';
export type Cast = 'unicast' | 'broadcast' | 'multicast';

export const INPUT_COUNTERS = [
  'rx-frames',
  'rx-arp',
  'rx-ipv4',
  'rx-fragments',
  'reassembled',
  'delivered-udp',
  'delivered-tcp',
  'delivered-icmp',
  'delivered-icmp-error',
  'echo-replies',
  'proto-unreach',
  'held:fragment',
  'note:ttl-zero',
  'note:options',
  'drop:eth-truncated',
  'drop:eth-8023',
  'drop:not-our-mac',
  'drop:ethertype',
  'drop:arp-truncated',
  'drop:arp-bad-hardware',
  'drop:arp-bad-protocol',
  'drop:arp-bad-operation',
  'drop:ip-truncated',
  'drop:ip-bad-version',
  'drop:ip-bad-ihl',
  'drop:ip-bad-length',
  'drop:ip-bad-checksum',
  'drop:ip-bad-option',
  'drop:src-broadcast',
  'drop:src-multicast',
  'drop:src-martian',
  'drop:src-ours',
  'drop:dst-martian',
  'drop:dst-not-ours',
  'drop:multicast-not-joined',
  'drop:l2-broadcast-unicast',
  'drop:fragment',
  'drop:icmp-truncated',
  'drop:icmp-bad-checksum',
  'drop:icmp-bad-code',
  'drop:icmp-bad-quote',
  'drop:icmp-unsupported',
  'drop:echo-broadcast',
  'drop:icmp-error-broadcast',
  'drop:icmp-error-not-ours',
  'drop:tcp-not-unicast',
  'drop:unknown-protocol-broadcast',
] as const;
export type InputCounter = (typeof INPUT_COUNTERS)[number];
const C = counterSlots(INPUT_COUNTERS);

/** The classification of one frame (one instance per IpInput, overwritten by every call). */
export class InputResult {
  kind: InputKind = 'drop';
  /** For 'drop': the counter that was bumped. */
  reason: InputCounter | null = null;
  /** Buffer holding the datagram: the caller's frame, or the reassembly buffer (`reassembled`). */
  bytes: Uint8Array = EMPTY_BYTES;
  reassembled = false;
  ethSrc = 0;
  ethDst = 0;
  ipOff = 0;
  ipHeaderLen = 0;
  /** IPv4 total length (link padding excluded). */
  ipLen = 0;
  l4Off = 0;
  l4Len = 0;
  src = 0;
  dst = 0;
  protocol = 0;
  ttl = 0;
  /** The whole TOS byte (DSCP and ECN). */
  tos = 0;
  cast: Cast = 'unicast';
  /** 'echo-reply': the bytes to transmit. */
  frameOff = 0;
  frameLen = 0;
  /** 'arp': the parsed packet. */
  readonly arp = new ArpRepr();
  /** 'icmp', 'icmp-error', 'echo-reply': the parsed message (of the request, for 'echo-reply'). */
  readonly icmp = new IcmpRepr();
}

export interface IpInputOptions {
  /** Our interface MAC (frames to other unicast MACs are dropped). */
  mac: number;
  /** Our addresses, subnets and broadcast addresses. */
  routes: RouteTable;
  /** Default: `new Reassembler()`. */
  reassembler?: Reassembler;
  /** TTL of echo replies. Default 64. */
  echoTtl?: number;
}

export class IpInput {
  readonly counters = new ReasonCounters(INPUT_COUNTERS);
  readonly result = new InputResult();
  readonly reassembler: Reassembler;
  /** Our MAC (may be changed by the server when the driver reports it). */
  mac: number;
  /** Identification for the next echo reply (16 bits, wraps; the IP server may share its counter). */
  ident = 0;
  readonly echoTtl: number;

  private readonly routes: RouteTable;
  private readonly groups = new Set<number>([ALL_HOSTS_GROUP]);
  private readonly eth = new EthernetView();
  private readonly ethRepr = new EthernetRepr();
  private readonly arpView = new ArpView();
  private readonly ipView = new Ipv4View();
  private readonly icmpView = new IcmpView();
  /** Reassembled datagrams land here after a 14-byte gap (room for an echo reply's link header). */
  private readonly reasmBuf = new Uint8Array(ETH_HEADER_LEN + IPV4_MAX_TOTAL_LEN);

  constructor(options: IpInputOptions) {
    this.mac = options.mac;
    this.routes = options.routes;
    this.reassembler = options.reassembler ?? new Reassembler();
    this.echoTtl = options.echoTtl ?? 64;
  }

  joinGroup(group: number): void {
    if (ipv4IsMulticast(group)) this.groups.add(group >>> 0);
  }

  leaveGroup(group: number): void {
    if (group >>> 0 !== ALL_HOSTS_GROUP) this.groups.delete(group >>> 0);
  }

  /** Classify the Ethernet frame at `bytes[off..off+len)`. */
  receive(bytes: Uint8Array, off: number, len: number, nowUs: number, flags = 0): InputResult {
    const r = this.begin(bytes);
    const v = this.counters.values;
    v[C['rx-frames']]++;
    const eth = this.eth;
    if (eth.reset(bytes, off, len) !== null) return this.drop('drop:eth-truncated');
    if (this.ethRepr.parse(eth) !== null) return this.drop('drop:eth-8023');
    const ed = this.ethRepr.dst;
    r.ethDst = ed;
    r.ethSrc = this.ethRepr.src;
    const group = macIsMulticast(ed);
    if (!group && ed !== this.mac) return this.drop('drop:not-our-mac');
    switch (this.ethRepr.ethertype) {
      case ETHERTYPE_ARP: {
        v[C['rx-arp']]++;
        const e = this.arpView.reset(bytes, eth.payloadOff, eth.payloadLen) ?? r.arp.parse(this.arpView);
        if (e !== null) return this.drop(arpReason(e));
        r.kind = 'arp';
        return r;
      }
      case ETHERTYPE_IPV4:
        return this.ipv4(bytes, eth.payloadOff, eth.payloadLen, nowUs, flags, group, true);
      default:
        return this.drop('drop:ethertype');
    }
  }

  /** Classify the IPv4 packet at `bytes[ipOff..ipOff+len)` (no link header). */
  receiveIp(bytes: Uint8Array, ipOff: number, len: number, nowUs: number, flags = 0): InputResult {
    this.begin(bytes);
    return this.ipv4(bytes, ipOff, len, nowUs, flags, false, false);
  }

  // --- internals -------------------------------------------------------------------------------

  private begin(bytes: Uint8Array): InputResult {
    const r = this.result;
    r.kind = 'drop';
    r.reason = null;
    r.bytes = bytes;
    r.reassembled = false;
    r.ethSrc = r.ethDst = 0;
    r.ipOff = r.ipHeaderLen = r.ipLen = r.l4Off = r.l4Len = 0;
    r.src = r.dst = r.protocol = r.ttl = r.tos = 0;
    r.cast = 'unicast';
    r.frameOff = r.frameLen = 0;
    return r;
  }

  private drop(reason: InputCounter): InputResult {
    this.counters.values[C[reason]]++;
    const r = this.result;
    r.kind = 'drop';
    r.reason = reason;
    return r;
  }

  private ipv4(
    bytes: Uint8Array,
    ipOff: number,
    len: number,
    nowUs: number,
    flags: number,
    l2Group: boolean,
    hasEth: boolean,
  ): InputResult {
    const v = this.counters.values;
    const r = this.result;
    const ip = this.ipView;
    v[C['rx-ipv4']]++;
    const e = ip.reset(bytes, ipOff, len);
    if (e !== null) return this.drop(ipReason(e));
    if ((flags & IN_CSUM_OK) === 0 && !ip.verifyChecksum()) return this.drop('drop:ip-bad-checksum');
    const hl = ip.headerLen;
    if (hl > IPV4_HEADER_LEN) {
      v[C['note:options']]++;
      if (!ipv4OptionsValid(bytes, ip.optionsOff, hl - IPV4_HEADER_LEN)) return this.drop('drop:ip-bad-option');
    }
    const src = ip.src;
    const dst = ip.dst;
    const proto = ip.protocol;
    const loop = (flags & IN_LOOPBACK) !== 0;
    const routes = this.routes;

    if (!loop) {
      const top = src >>> 24;
      if (src === IPV4_BROADCAST) return this.drop('drop:src-broadcast');
      if (ipv4IsMulticast(src)) return this.drop('drop:src-multicast');
      if (top === 0) {
        // 0.0.0.0 is "this host" while it has no address yet (RFC 1122 §3.2.1.3): DHCP only.
        if (!(src === 0 && dst === IPV4_BROADCAST && proto === IPPROTO_UDP)) return this.drop('drop:src-martian');
      } else if (top === 127 || top >= 240) {
        return this.drop('drop:src-martian');
      } else if (routes.isBroadcast(src)) {
        return this.drop('drop:src-broadcast');
      } else if (routes.isLocal(src)) {
        return this.drop('drop:src-ours');
      }
    }

    let cast: Cast;
    if (dst === 0 || (!loop && dst >>> 24 === 127)) return this.drop('drop:dst-martian');
    if (routes.isBroadcast(dst)) cast = 'broadcast';
    else if (ipv4IsMulticast(dst)) {
      if (!this.groups.has(dst)) return this.drop('drop:multicast-not-joined');
      cast = 'multicast';
    } else if (routes.isLocal(dst)) cast = 'unicast';
    else return this.drop('drop:dst-not-ours');
    if (cast === 'unicast' && l2Group) return this.drop('drop:l2-broadcast-unicast');
    if (ip.ttl === 0) v[C['note:ttl-zero']]++;

    let b = bytes;
    if (ip.isFragment) {
      v[C['rx-fragments']]++;
      const ra = this.reassembler;
      switch (ra.input(ip, nowUs)) {
        case 'held':
          v[C['held:fragment']]++;
          r.kind = 'held';
          return r;
        case 'dropped':
          return this.drop('drop:fragment');
        case 'complete': {
          b = this.reasmBuf;
          const n = ra.take(b, ETH_HEADER_LEN);
          ip.reset(b, ETH_HEADER_LEN, n);
          r.bytes = b;
          r.reassembled = true;
          v[C.reassembled]++;
          break;
        }
      }
    }

    r.ipOff = ip.off;
    r.ipHeaderLen = ip.headerLen;
    r.ipLen = ip.totalLen;
    r.l4Off = ip.payloadOff;
    r.l4Len = ip.payloadLen;
    r.src = src;
    r.dst = dst;
    r.protocol = proto;
    r.ttl = ip.ttl;
    r.tos = b[ip.off + 1];
    r.cast = cast;

    switch (proto) {
      case IPPROTO_UDP:
        v[C['delivered-udp']]++;
        r.kind = 'udp';
        return r;
      case IPPROTO_TCP:
        if (cast !== 'unicast') return this.drop('drop:tcp-not-unicast');
        v[C['delivered-tcp']]++;
        r.kind = 'tcp';
        return r;
      case IPPROTO_ICMP:
        return this.icmp(b, hasEth);
      default:
        if (cast !== 'unicast') return this.drop('drop:unknown-protocol-broadcast');
        v[C['proto-unreach']]++;
        r.kind = 'proto-unreach';
        return r;
    }
  }

  private icmp(b: Uint8Array, hasEth: boolean): InputResult {
    const r = this.result;
    const v = this.counters.values;
    const view = this.icmpView;
    if (view.reset(b, r.l4Off, r.l4Len) !== null) return this.drop('drop:icmp-truncated');
    const e = r.icmp.parse(view, true);
    if (e !== null) return this.drop(icmpReason(e));
    switch (r.icmp.type) {
      case ICMP_ECHO_REQUEST: {
        if (r.cast !== 'unicast') return this.drop('drop:echo-broadcast');
        const n = echoReplyInPlace(b, r.ipOff, this.ident, this.echoTtl);
        this.ident = (this.ident + 1) & 0xffff;
        const len = r.ipLen - r.ipHeaderLen + IPV4_HEADER_LEN;
        r.ipOff = n;
        r.ipHeaderLen = IPV4_HEADER_LEN;
        r.ipLen = len;
        r.l4Off = n + IPV4_HEADER_LEN;
        const peer = r.src;
        r.src = r.dst;
        r.dst = peer;
        r.ttl = this.echoTtl;
        if (hasEth) {
          const f = n - ETH_HEADER_LEN;
          writeMac(b, f, r.ethSrc);
          writeMac(b, f + 6, this.mac);
          b[f + 12] = ETHERTYPE_IPV4 >>> 8;
          b[f + 13] = ETHERTYPE_IPV4 & 0xff;
          r.frameOff = f;
          r.frameLen = ETH_HEADER_LEN + len;
        } else {
          r.frameOff = n;
          r.frameLen = len;
        }
        v[C['echo-replies']]++;
        r.kind = 'echo-reply';
        return r;
      }
      case ICMP_ECHO_REPLY:
        v[C['delivered-icmp']]++;
        r.kind = 'icmp';
        return r;
      case ICMP_DST_UNREACHABLE:
      case ICMP_TIME_EXCEEDED:
        if (r.cast !== 'unicast') return this.drop('drop:icmp-error-broadcast');
        if (!this.routes.isLocal(r.icmp.innerSrc)) return this.drop('drop:icmp-error-not-ours');
        v[C['delivered-icmp-error']]++;
        r.kind = 'icmp-error';
        return r;
      default:
        return this.drop('drop:icmp-unsupported');
    }
  }
}

function arpReason(e: WireError): InputCounter {
  switch (e) {
    case 'bad-hardware':
      return 'drop:arp-bad-hardware';
    case 'bad-protocol':
      return 'drop:arp-bad-protocol';
    case 'bad-operation':
      return 'drop:arp-bad-operation';
    default:
      return 'drop:arp-truncated';
  }
}

function ipReason(e: WireError): InputCounter {
  switch (e) {
    case 'bad-version':
      return 'drop:ip-bad-version';
    case 'bad-ihl':
      return 'drop:ip-bad-ihl';
    case 'bad-length':
      return 'drop:ip-bad-length';
    default:
      return 'drop:ip-truncated';
  }
}

function icmpReason(e: WireError): InputCounter {
  switch (e) {
    case 'bad-checksum':
      return 'drop:icmp-bad-checksum';
    case 'bad-code':
      return 'drop:icmp-bad-code';
    case 'unsupported':
      return 'drop:icmp-unsupported';
    default:
      return 'drop:icmp-bad-quote';
  }
}
