/**
 * Helpers for the link tests: pools per stack, batches of empty slots, deterministic frame contents.
 *
 * Frame of id `id` and length `len`: an Ethernet header (dst, src, ethertype 0x88b5, the IEEE local
 * experimental type), the id as a big-endian u32 at bytes 14..17 (when len >= 18), then PATTERN bytes
 * starting at (id * 37) & 255. Frames shorter than 18 bytes carry only pattern bytes after offset 0.
 */
import { PacketPool, makeOwner } from '../../shared-rings/pool.js';
import { FrameBatch } from '../../servers/driver/link.js';
import { ShmWire, type ShmWireLink } from '../../servers/driver/shm-wire.js';

export const OWNER_A = makeOwner(1, 1);
export const OWNER_B = makeOwner(2, 1);
export const ETHERTYPE_TEST = 0x88b5;
export const TX_HEADROOM = 2;
export const RX_HEADROOM = 64;

const PATTERN_LEN = 65549 + 512;
/** A fixed pseudo-random byte pattern every frame is cut from. */
export const PATTERN: Uint8Array = (() => {
  const p = new Uint8Array(PATTERN_LEN);
  let x = 0x12345678;
  for (let i = 0; i < p.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    p[i] = x & 255;
  }
  return p;
})();

export function stackPool(maxFrame: number, buffers: number): PacketPool {
  return PacketPool.create({ buffers, bufferSize: maxFrame + RX_HEADROOM });
}

/** A batch whose `n` slots each hold a freshly allocated buffer at `headroom`; count = 0. */
export function slots(pool: PacketPool, owner: number, n: number, headroom: number): FrameBatch {
  const b = new FrameBatch(pool, n);
  for (let i = 0; i < n; i++) {
    const idx = pool.alloc(owner);
    if (idx < 0) throw new Error('test pool exhausted');
    b.set(i, idx, headroom, 0, 0);
  }
  return b;
}

/** Free every buffer held by the batch's slots. */
export function freeSlots(pool: PacketPool, owner: number, b: FrameBatch): number {
  let bad = 0;
  for (let i = 0; i < b.capacity; i++) if (!pool.free(b.buf[i]!, owner)) bad++;
  return bad;
}

/** The sorted buffer indices of a batch's slots (to check that a link permuted but lost none). */
export function bufferSet(b: FrameBatch): number[] {
  return Array.from(b.buf).sort((x, y) => x - y);
}

export function patternStart(id: number): number {
  return (id * 37) & 255;
}

/** Write frame `id` of `len` bytes at bytes[pos..]. */
export function writeFrame(bytes: Uint8Array, pos: number, len: number, id: number): void {
  const s = patternStart(id);
  bytes.set(PATTERN.subarray(s, s + len), pos);
  if (len >= 18) {
    for (let k = 0; k < 6; k++) bytes[pos + k] = 0xff;
    bytes[pos + 6] = 0x02;
    bytes[pos + 12] = ETHERTYPE_TEST >> 8;
    bytes[pos + 13] = ETHERTYPE_TEST & 255;
    bytes[pos + 14] = id >>> 24;
    bytes[pos + 15] = (id >>> 16) & 255;
    bytes[pos + 16] = (id >>> 8) & 255;
    bytes[pos + 17] = id & 255;
  }
}

/** The expected bytes of frame `id` (allocates). */
export function expectedFrame(len: number, id: number): Uint8Array {
  const b = new Uint8Array(len);
  writeFrame(b, 0, len, id);
  return b;
}

export function readId(bytes: Uint8Array, pos: number): number {
  return ((bytes[pos + 14]! << 24) | (bytes[pos + 15]! << 16) | (bytes[pos + 16]! << 8) | bytes[pos + 17]!) >>> 0;
}

const headScratch = new Uint8Array(18);

/** True if bytes[pos, pos + len) are exactly frame `id` (every byte). */
export function isFrame(bytes: Uint8Array, pos: number, len: number, id: number): boolean {
  const s = patternStart(id);
  if (len < 18) return Buffer.compare(bytes.subarray(pos, pos + len), PATTERN.subarray(s, s + len)) === 0;
  writeFrame(headScratch, 0, 18, id);
  for (let k = 0; k < 18; k++) if (bytes[pos + k] !== headScratch[k]) return false;
  return Buffer.compare(bytes.subarray(pos + 18, pos + len), PATTERN.subarray(s + 18, s + len)) === 0;
}

/** One stack's end of a wire: its link, its own pool, a tx batch and a batch of empty rx slots. */
export interface Stack {
  link: ShmWireLink;
  pool: PacketPool;
  owner: number;
  tx: FrameBatch;
  rx: FrameBatch;
}

export function wirePair(mtu: number, opts: { capacity?: number; checksumOffload?: boolean; batch?: number } = {}): [Stack, Stack] {
  const { batch = 32, ...wire } = opts;
  const init = ShmWire.create({ mtu, ...wire });
  const mk = (side: 'a' | 'b', owner: number): Stack => {
    const link = ShmWire.attach(init, side);
    const pool = stackPool(link.maxFrame, 2 * batch);
    return { link, pool, owner, tx: slots(pool, owner, batch, TX_HEADROOM), rx: slots(pool, owner, batch, RX_HEADROOM) };
  };
  return [mk('a', OWNER_A), mk('b', OWNER_B)];
}

/** Frees a stack's slot buffers; returns bad frees + buffers still in use (0 when nothing leaked). */
export function stackLeaks(s: Stack): number {
  return freeSlots(s.pool, s.owner, s.tx) + freeSlots(s.pool, s.owner, s.rx) + s.pool.stats().inUse;
}
