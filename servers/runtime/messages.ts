/**
 * Runtime messages between endpoints. Every ring record's tag is a message type; every payload starts
 * with a common header:
 *   [0] dstGen i32   the incarnation this message is addressed to; 0 = whichever incarnation is running.
 *                    Replies and control messages addressed to a dead incarnation are dropped (counted as
 *                    stale) by the receiver, as MINIX's network server drops replies with a stale id.
 *                    Traffic (frames, datagrams) is addressed to 0: data already in a ring outlives the
 *                    incarnation that wrote it and must not be lost to a restart.
 *   [4] srcGen i32   the sender's incarnation.
 *
 * PROBE: a message that travels a route of endpoints hop by hop, optionally carrying a pool buffer by
 * descriptor (ownership is transferred at each hop). The shim and the fault campaign use probes to
 * check that every server on a path is serving and that nothing in flight is lost or corrupted.
 *   [8] buf i32 (-1: none)  [12] epoch i32  [16] probeId u32  [20] hop u8 (index in the route of the
 *   receiving endpoint)  [21] routeLen u8  [24..31] route endpoint ids  [32] len i32
 *   [36] Internet checksum of the buffer's bytes  [40] sentUs f64
 *
 * POISON: a message whose handling throws, every time (fault injection).
 */
export const MSG = Object.freeze({
  PROBE: 0x101,
  POISON: 2,
});

/**
 * Message types with this bit set carry a pool buffer: its handle at [8] (i32, -1 for none) and its
 * epoch at [12]. The supervisor relies on it to find the buffers referenced by a dead server's
 * published records (see Supervisor.onDeath), whatever the message type.
 */
export const CARRIES_BUFFER = 0x100;
export const DESC_BUF = 8;
export const DESC_EPOCH = 12;

/** Little-endian 32-bit read of a record field (signed; `>>> 0` for unsigned). No allocation. */
export function rd32(b: Uint8Array, o: number): number {
  return b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24);
}

/** Little-endian 32-bit write of a record field. */
export function wr32(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
  b[o + 2] = v >>> 16;
  b[o + 3] = v >>> 24;
}

/** Little-endian unsigned 16-bit read of a record field. */
export function rdU16(b: Uint8Array, o: number): number {
  return b[o] | (b[o + 1] << 8);
}

/** Little-endian 16-bit write of a record field. */
export function wr16(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
}

export const HDR_DST_GEN = 0;
export const HDR_SRC_GEN = 4;
export const HEADER_BYTES = 8;

export const PROBE = Object.freeze({
  BUF: 8,
  EPOCH: 12,
  ID: 16,
  HOP: 20,
  ROUTE_LEN: 21,
  ROUTE: 24,
  MAX_ROUTE: 8,
  LEN: 32,
  SUM: 36,
  SENT_US: 40,
  BYTES: 48,
});
export const POISON_BYTES = HEADER_BYTES;

/**
 * Data-path messages. Packets travel by descriptor: a pool buffer handle (see shared-rings/pools.ts),
 * its epoch, and offset/length inside the buffer. The buffer stays owned by the sending incarnation
 * until the receiver claims it (ServerContext.claim), which makes replays after a crash harmless.
 * Every record is little-endian; offsets below are from the start of the payload.
 *
 * FRAME (driver <-> ip): an Ethernet frame.
 *   [8] buf  [12] epoch  [16] off  [20] len  [24] flags (FRAME_CSUM_OK: checksums verified by the link
 *   or offloaded; do not verify / need not compute. FRAME_GSO: the frame is a TCP segment larger than
 *   the MTU, to be cut by the link (ip -> driver) or glued by it (driver -> ip: the kernel's GSO/GRO
 *   over a TAP with IFF_VNET_HDR); without it, ip drops a packet larger than the MTU. Bits 16-31
 *   (ip -> driver, with FRAME_GSO): the payload bytes per wire segment, FRAME_GSO_SIZE(flags))
 *   [28] ifIndex
 * L4_IN (ip -> udp/tcp): a received IPv4 packet for a transport server.
 *   [8] buf  [12] epoch  [16] off (IPv4 header)  [20] len (IPv4 total length)  [24] l4Off (absolute
 *   offset of the transport header in the buffer)  [28] l4Len  [32] src  [36] dst (uint32 addresses)
 *   [40] proto u8  [41] ttl u8  [42] flags u16 (FRAME_CSUM_OK)
 * L4_OUT (udp/tcp -> ip): a transport segment to send. The segment (transport header + payload) is at
 *   off/len inside the buffer with at least HEADROOM bytes before it, so IP and Ethernet headers are
 *   written in place in front of it (no copy).
 *   [8] buf  [12] epoch  [16] off  [20] len  [24] src (0: the interface address)  [28] dst
 *   [32] proto u8  [33] ttl u8 (0: default 64)  [34] tos u8  [35] flags u8 (L4F_DF, L4F_CSUM: IP must
 *   fill the transport checksum, after choosing the source address)  [36] gsoSize u16 (TCP only; 0:
 *   none): the segment is larger than the MSS (TSO, the interface's gsoMaxBytes): IP must not fragment
 *   it; the link cuts it into segments of gsoSize payload bytes each  [38] reserved u16 (0)
 * PORT_UNREACH (udp -> ip): no socket for a datagram: the L4_IN record sent back as it came (same
 *   layout, same buffer); IP answers with ICMP port unreachable quoting it, then frees the buffer.
 * ICMP_ERR (ip -> udp/tcp): an ICMP error about a packet this host sent.
 *   [8] type u8  [9] code u8  [10] proto u8  [12] src  [16] dst  (of the original packet)
 *   [20] srcPort u16  [22] dstPort u16  [24] mtu u16 (fragmentation needed)  [28] reporter (address)
 *   [32] seq u32 (TCP: the quoted segment's sequence number, so tcp can ignore forged or stale reports,
 *   RFC 5927 §4.1; 0 when not known)
 */
export const DATA_MSG = Object.freeze({
  FRAME: 0x110,
  L4_IN: 0x111,
  L4_OUT: 0x112,
  ICMP_ERR: 0x13,
  PORT_UNREACH: 0x114,
});

export const D = Object.freeze({
  BUF: 8,
  EPOCH: 12,
  OFF: 16,
  LEN: 20,
  // FRAME
  FLAGS: 24,
  IFINDEX: 28,
  FRAME_BYTES: 32,
  // L4_IN
  L4_OFF: 24,
  L4_LEN: 28,
  SRC: 32,
  DST: 36,
  PROTO: 40,
  TTL: 41,
  IN_FLAGS: 42,
  L4_IN_BYTES: 44,
  // L4_OUT
  OUT_SRC: 24,
  OUT_DST: 28,
  OUT_PROTO: 32,
  OUT_TTL: 33,
  OUT_TOS: 34,
  OUT_FLAGS: 35,
  OUT_GSO: 36,
  L4_OUT_BYTES: 40,
  // ICMP_ERR
  E_TYPE: 8,
  E_CODE: 9,
  E_PROTO: 10,
  E_SRC: 12,
  E_DST: 16,
  E_SPORT: 20,
  E_DPORT: 22,
  E_MTU: 24,
  E_REPORTER: 28,
  E_SEQ: 32,
  ICMP_ERR_BYTES: 36,
});

export const FRAME_CSUM_OK = 1;
/** FRAME flag: a GSO frame (see FRAME above); the segment size is in bits 16-31. */
export const FRAME_GSO = 2;
export function frameGsoSize(flags: number): number {
  return flags >>> 16;
}
export const L4F_DF = 1;
export const L4F_CSUM = 2;
/** Bytes a transport server leaves free in front of a segment: room for Ethernet and IPv4 headers. */
export const HEADROOM = 64;
