/**
 * Two packet pools behind one handle space: MTU-sized buffers for ordinary frames and a few large ones
 * for what does not fit (64 KiB datagrams, reassembled packets, jumbo frames on the shared-memory
 * wire). A buffer handle is the small pool's index, or the large pool's index with the BIG bit set;
 * descriptors carry handles, and every call takes one. All operations are those of PacketPool (see
 * pool.ts for the ownership contract), routed by the handle; nothing here allocates.
 */
import { makeOwner, PacketPool, type PacketPoolStats } from './pool.js';

export const BIG = 1 << 24;
const INDEX = BIG - 1;

export interface PoolsInit {
  small: SharedArrayBuffer;
  big: SharedArrayBuffer;
}

export interface PoolsOptions {
  smallBuffers: number;
  smallSize: number;
  bigBuffers: number;
  bigSize: number;
}

export class Pools {
  readonly small: PacketPool;
  readonly big: PacketPool;
  /** Largest buffer this pair can hand out. */
  readonly maxSize: number;
  /** Requests larger than any buffer (counted; the caller reports EMSGSIZE or drops). */
  tooLarge = 0;

  constructor(init: PoolsInit) {
    this.small = PacketPool.attach(init.small);
    this.big = PacketPool.attach(init.big);
    this.maxSize = this.big.bufferSize;
  }

  static create(o: PoolsOptions): PoolsInit {
    return {
      small: PacketPool.create({ buffers: o.smallBuffers, bufferSize: o.smallSize }).sab,
      big: PacketPool.create({ buffers: o.bigBuffers, bufferSize: o.bigSize }).sab,
    };
  }

  /** A buffer of at least `size` bytes for `owner`, or -1 (exhausted or too large: both counted). */
  alloc(size: number, owner: number): number {
    if (size <= this.small.bufferSize) {
      const i = this.small.alloc(owner);
      if (i >= 0) return i;
      // Small buffers exhausted: a large one serves as well, while there are any.
    } else if (size > this.big.bufferSize) {
      this.tooLarge++;
      return -1;
    }
    const j = this.big.alloc(owner);
    return j < 0 ? -1 : j | BIG;
  }

  free(h: number, owner: number): boolean {
    return h & BIG ? this.big.free(h & INDEX, owner) : this.small.free(h, owner);
  }
  transfer(h: number, from: number, to: number): boolean {
    return h & BIG ? this.big.transfer(h & INDEX, from, to) : this.small.transfer(h, from, to);
  }
  ownerOf(h: number): number {
    return h & BIG ? this.big.ownerOf(h & INDEX) : this.small.ownerOf(h);
  }
  epochOf(h: number): number {
    return h & BIG ? this.big.epochOf(h & INDEX) : this.small.epochOf(h);
  }
  /** The byte array holding buffer `h` (use with offsetOf). */
  bytesOf(h: number): Uint8Array {
    return h & BIG ? this.big.bytes : this.small.bytes;
  }
  offsetOf(h: number): number {
    return h & BIG ? this.big.offsetOf(h & INDEX) : this.small.offsetOf(h);
  }
  capacityOf(h: number): number {
    return h & BIG ? this.big.bufferSize : this.small.bufferSize;
  }
  /**
   * Take buffer `h` from its sender into `to`, for a descriptor carrying `epoch` that arrived in a
   * record written by incarnation `senderGen` of server `senderId`. The sender holds it, or its transit
   * owner does (the sender died since and the supervisor moved it there). The epoch is checked after
   * the CAS, and the buffer given back if it is not the one the record meant: checking first would let
   * a stale record steal a buffer reallocated in between. False: not claimed (a replay whose effect
   * already happened, or a stale descriptor).
   */
  claimFrom(h: number, epoch: number, senderId: number, senderGen: number, to: number): boolean {
    let from = makeOwner(senderId, senderGen & 0xffff || 1);
    if (!this.transfer(h, from, to)) {
      from = makeOwner(senderId, 0);
      if (!this.transfer(h, from, to)) return false;
    }
    if (this.epochOf(h) === epoch >>> 0) return true;
    this.transfer(h, to, from);
    return false;
  }

  /** Free every buffer a dead owner held, in both pools. */
  reclaim(deadOwner: number): number {
    return this.small.reclaim(deadOwner) + this.big.reclaim(deadOwner);
  }

  stats(): { small: PacketPoolStats; big: PacketPoolStats; inUse: number; tooLarge: number; badFree: number } {
    const small = this.small.stats();
    const big = this.big.stats();
    return { small, big, inUse: small.inUse + big.inUse, tooLarge: this.tooLarge, badFree: small.badFree + big.badFree };
  }
}
