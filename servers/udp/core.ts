/**
 * The UDP protocol core: pure (no rings, no clock, no pools). The server shell (server.ts) parses ring
 * records, claims buffers and writes the outputs; this file decides.
 *
 * Call order (one UdpCore per udp incarnation, over the socket table in the server's shared state;
 * every result object is reused, nothing is allocated per datagram):
 *   input(bytes, l4Off, l4Len, src, dst, csumOk)      an L4_IN, its UDP datagram at bytes[l4Off]
 *     IN_DELIVER  rx.count sockets (rx.slots) get the payload rx.payloadOff/rx.payloadLen from
 *                 src:rx.srcPort (several only for a broadcast/multicast datagram)
 *     IN_UNREACH  unicast, checksum good, no socket: ip must answer ICMP port unreachable
 *     IN_DROP     rx.reason says why (counted in the table's counters)
 *   send(bytes, sockId, payOff, len, dst, dport, flags) a SEND: the payload sits at bytes[payOff]
 *     OUT_SEND    the UDP header is written in place at tx.segOff (payOff - 8): hand tx.segOff/segLen
 *                 to ip as an L4_OUT from tx.src to tx.dst with tx.ttl and tx.l4Flags
 *     OUT_ERROR   tx.code (UERR) for the sender (an ERROR with op OP_SEND); free the buffer
 *     OUT_DROP    tx.reason (counted); free the buffer
 *   icmpError(type, code, proto, src, dst, sport, dport, mtu, reporter)   an ICMP_ERR about a datagram
 *               we sent
 *     true        report err.code to socket err.slot (an ERROR with op err.op)
 *     false       nobody to tell (counted)
 *   bind / connect / disconnect / close / setOpt: the socket table's operations with this stack's env.
 *
 * Input checks, in order (Linux's __udp4_lib_rcv): the datagram fits its IP payload and its length
 * field is >= 8 ('truncated', 'bad-length'); the checksum verifies, unless the link verified it
 * (FRAME_CSUM_OK) or it is 0, "none" ('bad-checksum'); then demux (socket-table.ts). A unicast datagram
 * with no socket is answered with a port unreachable, a broadcast or multicast one silently dropped
 * (RFC 1122 §3.2.2: no ICMP error about a datagram sent to a broadcast or multicast address).
 *
 * Checksums on send: the core always knows the source address (this stack has one interface, so the
 * route's source address is the interface's, or 127.0.0.1 for the loopback), so it fills the checksum
 * itself, except:
 *   - to a local destination (127/8 or the interface's own address) the datagram never leaves the
 *     stack: the checksum is 0 ("none", legal for UDP over IPv4) and ip has nothing to do;
 *   - with checksum offload configured, the field is 0 and L4F_CSUM is set: ip (or the link) fills it.
 * The source address is always given in L4_OUT (never 0).
 */
import { FRAME_CSUM_OK, L4F_CSUM } from '../runtime/messages.js';
import type { StackConfig } from '../runtime/stack-memory.js';
import { ICMP_DST_UNREACHABLE, ICMP_TIME_EXCEEDED } from '../wire/icmp.js';
import { IPPROTO_UDP, ipv4IsLoopback, ipv4IsMulticast } from '../wire/ipv4.js';
import { UDP_HEADER_LEN, UdpRepr, UdpView } from '../wire/udp.js';
import { OP_RECV, OP_SEND, SENDF_CONNECTED, UDP_MAX_PAYLOAD, UERR, type UdpErrName } from './api.js';
import { UC } from './counters.js';
import { F_BROADCAST, isBroadcast, isUnicastLocal, sourceFor, SocketTable, type BindResult, type TableEnv } from './socket-table.js';

export const IN_DELIVER = 1;
export const IN_UNREACH = 2;
export const IN_DROP = 3;
export const OUT_SEND = 1;
export const OUT_ERROR = 2;
export const OUT_DROP = 3;

/** Most sockets one broadcast datagram is delivered to. */
export const MAX_FANOUT = 64;

const ICMP_PARAMETER_PROBLEM = 12;
const LOOPBACK = 0x7f000001;

export interface UdpEnv extends TableEnv {
  /** The link computes transport checksums: leave them to ip/driver (L4F_CSUM). */
  checksumOffload: boolean;
}

export function envFromConfig(config: StackConfig): UdpEnv {
  const i = config.iface;
  return i ? { ifAddr: i.address >>> 0, prefix: i.prefix, checksumOffload: i.checksumOffload } : { ifAddr: 0, prefix: 32, checksumOffload: false };
}

/** What input() found (reused). */
export class RxResult {
  srcPort = 0;
  dstPort = 0;
  /** Absolute offset of the payload in the input bytes, and its length. */
  payloadOff = 0;
  payloadLen = 0;
  /** Sent to a broadcast or multicast address. */
  broadcast = false;
  /** Sockets (table slots) to deliver to. */
  readonly slots = new Int32Array(MAX_FANOUT);
  count = 0;
  reason: 'truncated' | 'bad-length' | 'bad-checksum' | 'no-socket-bcast' | 'no-socket' | '' = '';
}

/** What send() decided (reused). */
export class TxResult {
  slot = -1;
  src = 0;
  dst = 0;
  dport = 0;
  /** Absolute offset and length of the UDP segment (header + payload). */
  segOff = 0;
  segLen = 0;
  /** 0: ip's default. */
  ttl = 0;
  l4Flags = 0;
  code = 0;
  reason: 'send-no-socket' | '' = '';
}

/** What icmpError() found (reused). */
export class ErrResult {
  slot = -1;
  code = 0;
  /** OP_RECV (an ICMP error from the network) or OP_SEND (our own ip could not send it). */
  op = 0;
  info = 0;
  addr = 0;
  port = 0;
}

/**
 * Linux's icmp_err_convert for destination unreachable codes 0..15: [error, hard]. Only hard errors are
 * reported to a connected socket (without IP_RECVERR, which this stack does not offer).
 */
const UNREACH_ERRORS: readonly (readonly [UdpErrName, boolean])[] = [
  ['ENETUNREACH', false], // 0 net unreachable
  ['EHOSTUNREACH', false], // 1 host unreachable
  ['ENOPROTOOPT', true], // 2 protocol unreachable
  ['ECONNREFUSED', true], // 3 port unreachable
  ['EMSGSIZE', true], // 4 fragmentation needed (and DF set): path MTU discovery wants to know
  ['EOPNOTSUPP', false], // 5 source route failed
  ['ENETUNREACH', true], // 6 destination network unknown
  ['EHOSTDOWN', true], // 7 destination host unknown
  ['ENONET', true], // 8 source host isolated
  ['ENETUNREACH', true], // 9 network administratively prohibited
  ['EHOSTUNREACH', true], // 10 host administratively prohibited
  ['ENETUNREACH', false], // 11 network unreachable for TOS
  ['EHOSTUNREACH', false], // 12 host unreachable for TOS
  ['EHOSTUNREACH', true], // 13 communication administratively prohibited
  ['EHOSTUNREACH', true], // 14 host precedence violation
  ['EHOSTUNREACH', true], // 15 precedence cutoff in effect
];

export class UdpCore {
  readonly table: SocketTable;
  readonly env: UdpEnv;
  readonly rx = new RxResult();
  readonly tx = new TxResult();
  readonly err = new ErrResult();
  private readonly view = new UdpView();
  private readonly repr = new UdpRepr();

  constructor(table: SocketTable, env: UdpEnv) {
    this.table = table;
    this.env = env;
  }

  // ---- receive ------------------------------------------------------------------------------------

  input(bytes: Uint8Array, l4Off: number, l4Len: number, src: number, dst: number, inFlags: number): number {
    const rx = this.rx;
    const t = this.table;
    rx.count = 0;
    rx.reason = '';
    const v = this.view;
    const e = v.reset(bytes, l4Off, l4Len);
    if (e !== null) {
      rx.reason = e === 'bad-length' ? 'bad-length' : 'truncated';
      t.count(e === 'bad-length' ? UC['drop:bad-length'] : UC['drop:truncated']);
      return IN_DROP;
    }
    if ((inFlags & FRAME_CSUM_OK) === 0 && !v.verifyChecksum(src, dst)) {
      rx.reason = 'bad-checksum';
      t.count(UC['drop:bad-checksum']);
      return IN_DROP;
    }
    rx.srcPort = v.srcPort;
    rx.dstPort = v.dstPort;
    rx.payloadOff = v.payloadOff;
    rx.payloadLen = v.payloadLen;
    rx.broadcast = isBroadcast(dst, this.env) || ipv4IsMulticast(dst);
    if (rx.broadcast) {
      rx.count = t.lookupAll(dst, rx.dstPort, src, rx.srcPort, rx.slots);
      if (rx.count === 0) {
        rx.reason = 'no-socket-bcast';
        t.count(UC['drop:no-socket-bcast']);
        return IN_DROP;
      }
      return IN_DELIVER;
    }
    const s = t.lookup(dst, rx.dstPort, src, rx.srcPort);
    if (s < 0) {
      rx.reason = 'no-socket';
      t.count(UC['drop:no-socket']);
      return IN_UNREACH;
    }
    rx.slots[0] = s;
    rx.count = 1;
    return IN_DELIVER;
  }

  // ---- send ---------------------------------------------------------------------------------------

  /**
   * Prepare a datagram of `len` payload bytes at bytes[payOff] (the caller guarantees 8 writable bytes
   * before it) for socket `sockId`: to dst:dport, or to the connected peer with SENDF_CONNECTED.
   */
  send(bytes: Uint8Array, sockId: number, payOff: number, len: number, dst: number, dport: number, sendFlags: number): number {
    const tx = this.tx;
    const t = this.table;
    const env = this.env;
    tx.code = 0;
    tx.reason = '';
    const slot = t.slotOf(sockId);
    tx.slot = slot;
    if (slot < 0) {
      tx.reason = 'send-no-socket';
      t.count(UC['drop:send-no-socket']);
      return OUT_DROP;
    }
    const connected = t.isConnected(slot);
    if (sendFlags & SENDF_CONNECTED) {
      if (!connected) return this.refuse(UERR.EDESTADDRREQ, dst, dport);
      dst = t.remoteAddrOf(slot);
      dport = t.remotePortOf(slot);
    } else {
      dst >>>= 0;
      if (connected) return this.refuse(UERR.EISCONN, dst, dport);
      if (dport < 1 || dport > 0xffff) return this.refuse(UERR.EINVAL, dst, dport);
      // sendto(0.0.0.0) means this host (Linux routes it to the loopback).
      if (dst === 0) dst = LOOPBACK;
    }
    tx.dst = dst;
    tx.dport = dport;
    if (len > UDP_MAX_PAYLOAD || len < 0) return this.refuse(UERR.EMSGSIZE, dst, dport);
    const bcast = isBroadcast(dst, env);
    if (bcast && (t.flagsOf(slot) & F_BROADCAST) === 0) return this.refuse(UERR.EACCES, dst, dport);
    const la = t.localAddrOf(slot);
    const src = isUnicastLocal(la, env) ? la : sourceFor(dst, env);
    if (src === 0) return this.refuse(UERR.ENETUNREACH, dst, dport);
    const local = ipv4IsLoopback(dst) || (env.ifAddr !== 0 && dst === env.ifAddr);
    // A loopback source reaches only this host (Linux: EINVAL from the route lookup).
    if (ipv4IsLoopback(src) && !local) return this.refuse(UERR.EINVAL, dst, dport);

    const segOff = payOff - UDP_HEADER_LEN;
    const r = this.repr;
    r.srcPort = t.localPortOf(slot);
    r.dstPort = dport;
    r.payloadLen = len;
    const fill = !local && !env.checksumOffload;
    r.emit(bytes, segOff, src, dst, fill);
    tx.src = src;
    tx.segOff = segOff;
    tx.segLen = len + UDP_HEADER_LEN;
    // Multicast goes out with TTL 1 unless told otherwise (IP_MULTICAST_TTL's default); setTTL is the
    // unicast TTL, as in Linux.
    tx.ttl = ipv4IsMulticast(dst) ? 1 : t.ttlOf(slot);
    tx.l4Flags = !local && env.checksumOffload ? L4F_CSUM : 0;
    return OUT_SEND;
  }

  private refuse(code: number, dst: number, dport: number): number {
    this.tx.code = code;
    this.tx.dst = dst >>> 0;
    this.tx.dport = dport;
    return OUT_ERROR;
  }

  // ---- ICMP errors --------------------------------------------------------------------------------

  /**
   * An ICMP error about a datagram src:sport -> dst:dport that this host sent; `reporter` is who said
   * so, 0 when our own ip server could not send it at all (no route). True if a socket must hear of it
   * (this.err, with err.op):
   *   - from the network: only hard errors, and only to a connected socket (Linux without
   *     IP_RECVERR), as OP_RECV (Node reports them from recvmsg);
   *   - from our own ip (reporter 0): to the sending socket, connected or not, as OP_SEND: where Linux
   *     would have failed the sendto() itself (ENETUNREACH), the datagram is gone by now, and an
   *     'error' beats silence. (An ICMP error that came back through the loopback names one of our
   *     addresses as reporter: it is an ordinary network error. So is ip's ARP failure, a soft
   *     EHOSTUNREACH that Linux does not report either.)
   */
  icmpError(type: number, code: number, proto: number, src: number, dst: number, sport: number, dport: number, mtu: number, reporter: number): boolean {
    const t = this.table;
    let name: UdpErrName;
    let hard: boolean;
    if (proto !== IPPROTO_UDP) {
      t.count(UC['icmp-ignored']);
      return false;
    }
    if (type === ICMP_DST_UNREACHABLE) {
      const e = UNREACH_ERRORS[code];
      [name, hard] = e ?? ['EHOSTUNREACH', false];
    } else if (type === ICMP_TIME_EXCEEDED) {
      name = 'EHOSTUNREACH';
      hard = false;
    } else if (type === ICMP_PARAMETER_PROBLEM) {
      name = 'EPROTO';
      hard = true;
    } else {
      t.count(UC['icmp-ignored']);
      return false;
    }
    src >>>= 0;
    dst >>>= 0;
    reporter >>>= 0;
    const local = reporter === 0;
    let slot = -1;
    if (local) {
      slot = t.lookupSender(src, sport, dst, dport);
      if (slot < 0) slot = t.lookup(src, sport, dst, dport);
    } else if (hard) {
      slot = t.lookupSender(src, sport, dst, dport);
    }
    if (slot < 0) {
      t.count(UC['icmp-ignored']);
      return false;
    }
    const r = this.err;
    r.slot = slot;
    r.code = UERR[name];
    r.op = local ? OP_SEND : OP_RECV;
    r.info = name === 'EMSGSIZE' ? mtu : 0;
    r.addr = dst;
    r.port = dport;
    t.count(UC['icmp-reported']);
    return true;
  }

  // ---- control ------------------------------------------------------------------------------------

  bind(sockId: number, addr: number, port: number, flags: number): BindResult {
    return this.table.bind(sockId, addr, port, flags, this.env);
  }
  connect(sockId: number, addr: number, port: number): BindResult {
    return this.table.connect(sockId, addr, port, this.env);
  }
  disconnect(sockId: number): BindResult {
    return this.table.disconnect(sockId);
  }
  close(sockId: number): number {
    return this.table.close(sockId);
  }
  setOpt(sockId: number, opt: number, value: number): number {
    return this.table.setOpt(sockId, opt, value);
  }
}
