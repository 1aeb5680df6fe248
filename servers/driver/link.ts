/**
 * servers/driver/link: the one interface the driver server uses for every kind of link (TAP device,
 * shared-memory wire, fault injector, pcap tap, ...). Frames cross it in batches of descriptors, never as
 * objects: a FrameBatch is a set of parallel typed arrays (buffer handle, offset, length, flags) over one
 * BufferSpace: the stack's Pools (shared-rings/pools.ts) or one PacketPool. Nothing here allocates per
 * frame.
 *
 * ## Contract
 *   receive(into)   Appends frames to `into`, starting at slot `into.count`, up to `into.capacity`.
 *                   Slots [count, capacity) must hold EMPTY buffers the caller owns: buf[i] is the
 *                   buffer handle, off[i] where the frame should start (the caller's headroom); the room
 *                   of a slot is `capacityOf(buf[i]) - off[i]`. The link writes each frame into a slot,
 *                   sets len[i] and flags[i], and advances `count`. It may permute the (buf, off) pairs
 *                   of the slots in [old count, capacity) but never loses or invents one: afterwards
 *                   [0, count) are frames and [count, capacity) are still empty caller buffers. Returns
 *                   the number of frames appended (0 when nothing is ready). A frame larger than its slot
 *                   takes the first later slot that fits (FrameBatch.fit: offer a few large buffers among
 *                   small ones for jumbo frames); if none fits it is dropped and counted (rxTooBig),
 *                   never truncated silently. A slot with buf[i] < 0 is a HOLE (the pool was exhausted
 *                   when the driver refilled): links skip holes, and stop, leaving frames queued (not
 *                   dropped), once no slot from there on holds a buffer.
 *   transmit(frames, start = 0)
 *                   Sends frames [start, frames.count) in order and returns how many it took (from
 *                   `start` on). Fewer than offered means BACKPRESSURE (the link's queue is full): the
 *                   rest were not touched; the caller keeps them and retries later, or drops them and
 *                   counts. A frame the link can never send (shorter than an Ethernet header, longer
 *                   than maxFrame) is counted and dropped by the link and counts as taken. Links copy:
 *                   when transmit returns, the frames' buffers are the caller's again and unmodified.
 *   poll(nowUs)     Tells the link the time (central clock, microseconds) and lets a time-driven link
 *                   (fault injection, shaping) release what is due. Call it once per driver loop
 *                   iteration, before receive/transmit; links use the last time given. Returns the
 *                   next time (us) at which the link wants poll() again even if `wait` stays silent,
 *                   or Infinity. Plain links return Infinity.
 *   wait            How to sleep until receive() may have news: a doorbell in shared memory, an fd for
 *                   poll(2), or nothing (poll the link). Sleep with the doorbell protocol
 *                   (`key = bell.prepare(); if (link.rxReady) bell.cancel(); else bell.wait(key, ms)`),
 *                   with ms bounded by the deadline that poll() returned.
 *   rxReady         True if receive() would return a frame now (the re-check of the doorbell protocol).
 *   close()         Detaches; afterwards receive/transmit return 0. Idempotent.
 *
 * ## Checksum offload
 *   `checksumOffload` is a property of the link, agreed by both ends (as virtio's VIRTIO_NET_F_CSUM).
 *   On such a link the stack may skip computing checksums on transmit and set FRAME_CSUM_OFFLOADED on
 *   that frame; on receive the link sets FRAME_CSUM_OFFLOADED on frames whose checksums were not
 *   computed and must not be verified. Frames without the flag carry real checksums and are verified
 *   as usual. A link without offload clears the flag on transmit and never sets it on receive.
 */
import type { Doorbell } from '../../shared-rings/doorbell.js';
import { copyAnyAlign } from '../runtime/fast-copy.js';

/** Per-frame flag: checksums were not computed (tx) / must not be verified (rx). See the header. */
export const FRAME_CSUM_OFFLOADED = 1;
/**
 * Per-frame flag: a GSO frame (only on links with `gsoMaxBytes`, a TAP with IFF_VNET_HDR): on transmit a
 * TCP segment larger than the MTU that the link has cut into segments of `flags >>> 16` payload bytes;
 * on receive, segments the peer (the kernel's GSO/GRO) glued into one frame larger than the MTU.
 */
export const FRAME_GSO = 2;

/** Length of an Ethernet II header: the smallest frame any link carries. */
export const ETH_HEADER_BYTES = 14;

/** The largest frame (no FCS, no VLAN tag) a link of this MTU carries. */
export function maxFrameFor(mtu: number): number {
  return mtu + ETH_HEADER_BYTES;
}

/** How a driver sleeps until a link may have frames. */
export type LinkWait =
  | { readonly kind: 'doorbell'; readonly doorbell: Doorbell }
  | { readonly kind: 'fd'; readonly fd: number }
  | { readonly kind: 'none' };

/**
 * Where the buffers named by descriptors live. `Pools` (shared-rings/pools.ts, two sizes behind one
 * handle space) satisfies it as is; a single PacketPool through `poolSpace(pool)`.
 */
export interface BufferSpace {
  /** The byte array holding buffer `h`. */
  bytesOf(h: number): Uint8Array;
  /** Byte offset of buffer `h` in bytesOf(h). */
  offsetOf(h: number): number;
  /** Usable bytes of buffer `h`. */
  capacityOf(h: number): number;
}

/** The parts of a PacketPool a BufferSpace needs. */
export interface PoolLike {
  readonly bytes: Uint8Array;
  readonly bufferSize: number;
  offsetOf(idx: number): number;
}

/** A single PacketPool as a BufferSpace (handles are its buffer indices). */
export class PoolSpace implements BufferSpace {
  constructor(readonly pool: PoolLike) {}
  bytesOf(_h: number): Uint8Array {
    return this.pool.bytes;
  }
  offsetOf(h: number): number {
    return this.pool.offsetOf(h);
  }
  capacityOf(_h: number): number {
    return this.pool.bufferSize;
  }
}

export function poolSpace(pool: PoolLike): BufferSpace {
  return new PoolSpace(pool);
}

function isSpace(x: BufferSpace | PoolLike): x is BufferSpace {
  return typeof (x as BufferSpace).bytesOf === 'function';
}

/**
 * A batch of frame descriptors over one buffer space. Slot i is the frame
 * `bytesAt(i)[pos(i) .. pos(i) + len[i])`. Typed arrays, reused across calls.
 */
export class FrameBatch {
  readonly space: BufferSpace;
  readonly capacity: number;
  /** Buffer handle per slot (a PacketPool index, or a Pools handle). */
  readonly buf: Int32Array;
  /** Byte offset of the frame inside its buffer. */
  readonly off: Int32Array;
  /** Frame length in bytes. */
  readonly len: Int32Array;
  /** FRAME_* flags. */
  readonly flags: Int32Array;
  /** Slots [0, count) hold frames. */
  count = 0;
  /**
   * Receive side: a link may start a frame up to 7 bytes after its slot's off (and update off) when
   * that makes its copy faster (shm-wire.ts: copies between equally aligned ends are word copies).
   * Off by default: a receiver that chose its headroom gets exactly that headroom.
   */
  realign = false;

  /** Over a BufferSpace (e.g. Pools), or a single PacketPool. */
  constructor(space: BufferSpace | PoolLike, capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw Object.assign(new RangeError(`batch capacity must be a positive integer, got ${capacity}`), {
        code: 'ERR_OUT_OF_RANGE',
      });
    }
    this.space = isSpace(space) ? space : new PoolSpace(space);
    this.capacity = capacity;
    this.buf = new Int32Array(capacity);
    this.off = new Int32Array(capacity);
    this.len = new Int32Array(capacity);
    this.flags = new Int32Array(capacity);
  }

  /** The byte array holding slot i's buffer. */
  bytesAt(i: number): Uint8Array {
    return this.space.bytesOf(this.buf[i]!);
  }

  /** Byte position of slot i's frame in bytesAt(i). */
  pos(i: number): number {
    return this.space.offsetOf(this.buf[i]!) + this.off[i]!;
  }

  /** Room for a frame in slot i (receive side); -1 for a hole (buf < 0: no buffer). */
  room(i: number): number {
    const h = this.buf[i]!;
    return h < 0 ? -1 : this.space.capacityOf(h) - this.off[i]!;
  }

  /**
   * Receive side: make empty slot i able to take `len` bytes. If it is too small (or a hole), the
   * first later slot (up to capacity) that is big enough is swapped in, so a driver can offer mostly
   * small buffers and a few large ones. False if no slot from i on fits.
   */
  fit(i: number, len: number): boolean {
    if (this.room(i) >= len) return true;
    for (let j = i + 1; j < this.capacity; j++) {
      if (this.room(j) >= len) {
        this.swap(i, j);
        return true;
      }
    }
    return false;
  }

  /** Receive side: whether any slot from i on holds a buffer (is not a hole). */
  hasBuffer(i: number): boolean {
    for (let j = i; j < this.capacity; j++) if (this.buf[j]! >= 0) return true;
    return false;
  }

  /** Set slot i (does not change count). */
  set(i: number, buf: number, off: number, len: number, flags = 0): void {
    this.buf[i] = buf;
    this.off[i] = off;
    this.len[i] = len;
    this.flags[i] = flags;
  }

  /** Append a frame descriptor; false if the batch is full. */
  push(buf: number, off: number, len: number, flags = 0): boolean {
    const i = this.count;
    if (i >= this.capacity) return false;
    this.set(i, buf, off, len, flags);
    this.count = i + 1;
    return true;
  }

  /** Exchange the descriptors of slots i and j. */
  swap(i: number, j: number): void {
    let x = this.buf[i]!;
    this.buf[i] = this.buf[j]!;
    this.buf[j] = x;
    x = this.off[i]!;
    this.off[i] = this.off[j]!;
    this.off[j] = x;
    x = this.len[i]!;
    this.len[i] = this.len[j]!;
    this.len[j] = x;
    x = this.flags[i]!;
    this.flags[i] = this.flags[j]!;
    this.flags[j] = x;
  }

  /** Slot i's frame as a view (allocates: tests and slow paths only). */
  frame(i: number): Uint8Array {
    const p = this.pos(i);
    return this.bytesAt(i).subarray(p, p + this.len[i]!);
  }
}

/** Counters every link keeps (plain numbers, local to the link's thread). */
export interface LinkStats {
  rxFrames: number;
  rxBytes: number;
  txFrames: number;
  txBytes: number;
  /** transmit() calls that stopped short because the link was full. */
  txBackpressure: number;
  /** Frames dropped at transmit: shorter than a header or longer than maxFrame. */
  txInvalid: number;
  /** Frames dropped at receive: larger than every empty slot offered. */
  rxTooBig: number;
}

export function newLinkStats(): LinkStats {
  return { rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, txBackpressure: 0, txInvalid: 0, rxTooBig: 0 };
}

export interface Link {
  /** For logs and counters. */
  readonly name: string;
  /** Largest IP packet; frames are at most maxFrame = mtu + 14 bytes. */
  readonly mtu: number;
  readonly maxFrame: number;
  /** Both ends agreed not to compute nor verify checksums on flagged frames (see the header). */
  readonly checksumOffload: boolean;
  /** TSO: the largest GSO frame's IP packet the link takes (FRAME_GSO); 0 or absent: none. */
  readonly gsoMaxBytes?: number;
  /** Bytes a receive slot needs (default maxFrame + 1): a link reading headers or GRO frames needs more. */
  readonly rxSlotBytes?: number;
  /** The Ethernet address this stack uses on the link (6 bytes). */
  readonly mac: Uint8Array;
  readonly wait: LinkWait;
  readonly rxReady: boolean;
  readonly stats: LinkStats;
  receive(into: FrameBatch): number;
  transmit(frames: FrameBatch, start?: number): number;
  poll(nowUs: number): number;
  close(): void;
}

/**
 * Copy `len` bytes between byte areas (they may be the same area; ranges must not overlap). Copies of
 * up to 24 bytes go byte by byte (no view object); longer ones through copyAnyAlign (a subarray and
 * TypedArray.prototype.set, or memmove from 1 KiB: runtime/fast-copy.ts). Measured between
 * SharedArrayBuffers here: a byte loop costs ~1.6 ns a byte, set with its subarray ~50-80 ns whatever
 * the length up to 512; they cross at 24-32 bytes (a 64-byte loop took 107-129 ns, set 51-67).
 */
export function copyBytes(src: Uint8Array, srcPos: number, dst: Uint8Array, dstPos: number, len: number): void {
  if (len <= 24) {
    for (let k = 0; k < len; k++) dst[dstPos + k] = src[srcPos + k]!;
  } else {
    copyAnyAlign(dst, dstPos, src, srcPos, len);
  }
}
