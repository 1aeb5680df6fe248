/**
 * The messages between the kernel shim (dgram API, main thread) and the udp server (and, for the
 * record, what the udp server sends ip besides L4_OUT: PORT_UNREACH, defined in runtime/messages.ts).
 *
 * Every record starts with the common header of runtime/messages.ts ([0] dstGen i32, [4] srcGen i32);
 * shim <-> udp records are addressed to dstGen 0 (whichever incarnation runs: the shim has no
 * generations, and a request queued in a ring must survive a restart of the udp server). Fields are
 * little-endian; offsets below are from the start of the payload. Addresses are uint32 (10.9.0.1 is
 * 0x0a090001), ports u16. Buffer descriptors are as in DATA-PATH messages: pool handle, its epoch, and
 * offsets RELATIVE TO THE START OF THE BUFFER (byte `off` of buffer `buf` is
 * pools.bytesOf(buf)[pools.offsetOf(buf) + off]).
 *
 * Tags: 0x220..0x22f for messages without a buffer, 0x320..0x32f for messages that carry one (the
 * CARRIES_BUFFER bit 0x100 of runtime/messages.ts set, with the buffer handle at [8] and its epoch at
 * [12], so the supervisor and the host can find it whatever the type).
 *
 * REQUESTS (shim -> udp). reqId 0 asks for no REPLY; any other reqId is echoed in exactly one REPLY per
 * handling (a request replayed after a crash of the udp server may be answered twice with the same
 * result: the shim ignores a REPLY whose reqId it no longer waits for). Every request is idempotent per
 * sockId, so a replay is harmless.
 *   BIND       [8] reqId u32  [12] sockId u32  [16] addr u32 (0: any)  [20] port u16 (0: ephemeral)
 *              [22] flags u16 (BINDF_REUSEADDR, BINDF_EXCLUSIVE)                               24 bytes
 *              REPLY: OK with the bound address/port; EADDRINUSE, EADDRNOTAVAIL, EINVAL (this sockId
 *              is bound elsewhere), EMFILE (socket table full).
 *   CONNECT    [8] reqId  [12] sockId  [16] addr u32 (0: this host)  [20] port u16          24 bytes
 *              Binds to 0.0.0.0:0 first if the sockId is unknown (as Linux's connect()).
 *              REPLY: OK with the local address/port (the local address becomes the source address
 *              chosen for the peer), EISCONN (connected to another peer), EINVAL (port 0), EACCES
 *              (broadcast peer without BROADCAST), ENETUNREACH (no interface for a non-loopback peer).
 *   DISCONNECT [8] reqId  [12] sockId                                                          16 bytes
 *              REPLY: OK, ENOTCONN, EBADF (unknown sockId).
 *   CLOSE      [8] reqId  [12] sockId                                                          16 bytes
 *              Frees the socket's slot and port. REPLY: OK (also for an unknown sockId: idempotent).
 *   SET_OPT    [8] reqId  [12] sockId  [16] opt u16 (OPT_BROADCAST: value 0/1, OPT_TTL: 1..255)
 *              [20] value i32                                                                 24 bytes
 *              REPLY: OK, EINVAL (bad option or value), EBADF (unknown sockId).
 *   SEND       [8] buf i32  [12] epoch i32  [16] off (payload; at least HEADROOM + 8 bytes of the buffer
 *              before it, for the UDP, IPv4 and Ethernet headers)  [20] len  [24] sockId u32
 *              [28] dst u32  [32] dport u16  [34] flags u16 (SENDF_CONNECTED: to the connected peer,
 *              dst/dport ignored)                                                             36 bytes
 *              The buffer stays the shim's (ShimHost.owner; the record's srcGen is the shim's
 *              generation) until the udp server claims it; from then on it is the udp server's (sent on
 *              to ip, or freed). No REPLY: a datagram that
 *              cannot be sent is reported by an ERROR with op OP_SEND (EMSGSIZE, EACCES, EDESTADDRREQ,
 *              EISCONN, EINVAL, ENETUNREACH) and freed.
 *
 * EVENTS (udp -> shim)
 *   REPLY      [8] reqId u32  [12] sockId u32  [16] code u16 (UERR)  [18] tag u16 (low bits of the
 *              request's tag)  [20] addr u32  [24] port u16  (local address and port after the request)
 *                                                                                               28 bytes
 *   RECV       [8] buf i32  [12] epoch i32  [16] off (payload)  [20] len  [24] sockId u32  [28] src u32
 *              [32] sport u16  [34] flags u16 (RECVF_BROADCAST: sent to a broadcast/multicast address)
 *                                                                                               36 bytes
 *              The buffer (the received frame itself, not a copy, unless one broadcast reached several
 *              sockets) stays the udp incarnation's until the shim claims it (ShimHost.claim(buf, epoch,
 *              'udp', srcGen)), copies the payload out and frees it. A failed claim is a replay of a
 *              RECV already handled: ignore it.
 *   ERROR      [8] sockId  [12] code u16 (UERR)  [14] op u8 (OP_SEND, OP_RECV)  [16] addr u32
 *              [20] port u16  (the peer concerned)  [24] info u32 (the next-hop MTU for EMSGSIZE from
 *              an ICMP "fragmentation needed", else 0)                                        28 bytes
 *              OP_SEND errors also come from our own ip server failing to send a datagram (an
 *              ICMP_ERR whose reporter is 0: no route -> ENETUNREACH), reported to the sending socket,
 *              connected or not.
 *              OP_RECV errors come from ICMP errors about datagrams a CONNECTED socket sent (Linux
 *              reports them only to connected sockets): port unreachable -> ECONNREFUSED, protocol
 *              unreachable -> ENOPROTOOPT, fragmentation needed -> EMSGSIZE, parameter problem -> EPROTO,
 *              the hard codes of RFC 1812 (prohibited, host unknown...) as Linux's icmp_err_convert; the soft errors (net/host
 *              unreachable, time exceeded) are counted, not reported, as Linux does without IP_RECVERR.
 *
 * udp -> ip
 *   PORT_UNREACH (DATA_MSG.PORT_UNREACH of runtime/messages.ts) for a unicast datagram with a good
 *              checksum and no socket: the L4_IN record sent back as it came (same layout, same buffer,
 *              untouched from off to off + len; srcGen is the udp incarnation's). ip claims the buffer,
 *              answers ICMP destination unreachable code 3 (port) quoting the datagram, and frees it.
 *              Best effort: when the ring to ip is full it is not sent (counted), never waited for.
 */

/** Message tags (ring record tags). */
export const UDP_MSG = Object.freeze({
  BIND: 0x220,
  CONNECT: 0x221,
  DISCONNECT: 0x222,
  CLOSE: 0x223,
  SET_OPT: 0x224,
  REPLY: 0x228,
  ERROR: 0x229,
  // CARRIES_BUFFER (0x100) set: buffer at [8], epoch at [12]
  SEND: 0x320,
  RECV: 0x321,
});

/** Field offsets, by message. */
export const U = Object.freeze({
  // requests
  REQ_ID: 8,
  SOCK_ID: 12,
  ADDR: 16,
  PORT: 20,
  BIND_FLAGS: 22,
  BIND_BYTES: 24,
  CONNECT_BYTES: 24,
  SIMPLE_BYTES: 16,
  OPT: 16,
  OPT_VALUE: 20,
  SET_OPT_BYTES: 24,
  // SEND
  S_BUF: 8,
  S_EPOCH: 12,
  S_OFF: 16,
  S_LEN: 20,
  S_SOCK_ID: 24,
  S_DST: 28,
  S_DPORT: 32,
  S_FLAGS: 34,
  SEND_BYTES: 36,
  // REPLY
  R_REQ_ID: 8,
  R_SOCK_ID: 12,
  R_CODE: 16,
  R_TAG: 18,
  R_ADDR: 20,
  R_PORT: 24,
  REPLY_BYTES: 28,
  // RECV
  V_BUF: 8,
  V_EPOCH: 12,
  V_OFF: 16,
  V_LEN: 20,
  V_SOCK_ID: 24,
  V_SRC: 28,
  V_SPORT: 32,
  V_FLAGS: 34,
  RECV_BYTES: 36,
  // ERROR
  E_SOCK_ID: 8,
  E_CODE: 12,
  E_OP: 14,
  E_ADDR: 16,
  E_PORT: 20,
  E_INFO: 24,
  ERROR_BYTES: 28,
});

export const BINDF_REUSEADDR = 1;
/** Node's `exclusive` (cluster handle sharing): carried and stored, no effect (there is no cluster here). */
export const BINDF_EXCLUSIVE = 2;
export const SENDF_CONNECTED = 1;
export const RECVF_BROADCAST = 1;
export const OPT_BROADCAST = 1;
export const OPT_TTL = 2;
export const OP_SEND = 1;
export const OP_RECV = 2;

/** Largest UDP payload over IPv4: 65535 - 20 (IPv4 header) - 8 (UDP header). */
export const UDP_MAX_PAYLOAD = 65507;

/**
 * Result codes, a closed set; the wire carries the index. Names are the POSIX errno names Node uses as
 * `code` (the shim maps them to Node's errno numbers with os.constants.errno).
 */
export const UERR_NAMES = [
  'OK',
  'EADDRINUSE',
  'EADDRNOTAVAIL',
  'EINVAL',
  'ENOTCONN',
  'EISCONN',
  'EDESTADDRREQ',
  'EMSGSIZE',
  'ECONNREFUSED',
  'EACCES',
  'EMFILE',
  'EBADF',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENONET',
  'ENOPROTOOPT',
  'EOPNOTSUPP',
  'ENOBUFS',
  'EPROTO',
] as const;
export type UdpErrName = (typeof UERR_NAMES)[number];
export const UERR = Object.freeze(Object.fromEntries(UERR_NAMES.map((n, i) => [n, i])) as Record<UdpErrName, number>);

/** Name of a wire code ('EINVAL' for a code outside the set). */
export function uerrName(code: number): UdpErrName {
  return UERR_NAMES[code] ?? 'EINVAL';
}

// Little-endian field access on ring bytes (no DataView allocation per record); the 32-bit ones are
// the runtime's (messages.ts).
import { rd32 } from '../runtime/messages.js';
export { rd32 as rdI32, wr32, rdU16, wr16 } from '../runtime/messages.js';
export function rdU32(b: Uint8Array, o: number): number {
  return rd32(b, o) >>> 0;
}
