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
 *   [8] probeId u32  [12] hop u8 (index in the route of the receiving endpoint)  [13] routeLen u8
 *   [16..23] route endpoint ids
 *   [24] bufIdx i32 (-1: none)  [28] epoch i32  [32] len i32  [36] Internet checksum of the buffer's bytes  [40] sentUs f64
 *
 * POISON: a message whose handling throws, every time (fault injection).
 */
export const MSG = Object.freeze({
  PROBE: 1,
  POISON: 2,
});

export const HDR_DST_GEN = 0;
export const HDR_SRC_GEN = 4;
export const HEADER_BYTES = 8;

export const PROBE = Object.freeze({
  ID: 8,
  HOP: 12,
  ROUTE_LEN: 13,
  ROUTE: 16,
  MAX_ROUTE: 8,
  BUF: 24,
  EPOCH: 28,
  LEN: 32,
  SUM: 36,
  SENT_US: 40,
  BYTES: 48,
});
export const POISON_BYTES = HEADER_BYTES;
