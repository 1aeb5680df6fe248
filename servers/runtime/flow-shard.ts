/**
 * Flow sharding: which tcp instance owns a TCP four-tuple (createStack({ tcpInstances: N })).
 *
 * Like receive-side scaling in a NIC (and mTCP's and Seastar's per-core stacks), the ip server hands
 * every arriving segment to instance hash(tuple) mod N, and an instance that opens a connection picks
 * an ephemeral port whose tuple hashes to itself, so a connection's segments always reach the instance
 * that holds it and two instances never collide on a four-tuple. The tuple is always taken from this
 * stack's side (local address and port, remote address and port): for an arriving segment that is
 * (dst, dport, src, sport); for an ICMP error about a segment we sent, (inner src, inner sport, inner
 * dst, inner dport).
 *
 * The hash is MurmurHash3's 32-bit body and finalizer over three words, seeded and whitened with a
 * random 128-bit key per stack, so a remote host cannot aim many flows at one instance without knowing
 * the key (as the Toeplitz key of RSS). Not symmetric (it need not be: both directions of a flow reach
 * this stack with the same local side). No allocation: a handful of integer multiplies per segment.
 *
 * Why not the `siphash` package the tcp server uses for its ISNs (tcp/siphash.ts): this runs on every
 * segment, in ip and at every ephemeral-port probe, and the package's SipHash-2-4 costs about 1.4 us a
 * call here (it allocates its result) against 20 ns for these few multiplies; an ISN is computed once
 * per connection. Both are keyed, so an outsider can aim neither.
 */

/** The sharding parameters of a stack: plain data in StackConfig, read by ip, every tcp instance and the shim. */
export interface TcpShards {
  /** Number of tcp instances (>= 2 when present). */
  count: number;
  /** Four 32-bit words of key. */
  key: number[];
}

function round(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** The keyed hash of a four-tuple seen from this stack (addresses uint32, ports 0..65535). */
export function flowHash(key: ArrayLike<number>, laddr: number, lport: number, raddr: number, rport: number): number {
  let h = key[0] | 0;
  h = round(h, laddr ^ key[1]);
  h = round(h, raddr ^ key[2]);
  h = round(h, ((lport << 16) | (rport & 0xffff)) ^ key[3]);
  h ^= 12;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The instance (0..count-1) that owns a four-tuple. */
export function flowShard(key: ArrayLike<number>, count: number, laddr: number, lport: number, raddr: number, rport: number): number {
  return count <= 1 ? 0 : flowHash(key, laddr, lport, raddr, rport) % count;
}

/** A fresh random key. */
export function newShardKey(): number[] {
  const k = new Uint32Array(4);
  crypto.getRandomValues(k);
  return [...k];
}
