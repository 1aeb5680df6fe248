/**
 * shared-rings/ring: a lock-free single-producer single-consumer queue of variable-length records in a
 * SharedArrayBuffer. It is the only data path between keepnet's servers, and between a server and the
 * kernel shim. No postMessage on the data path.
 *
 * ## Layout (one SharedArrayBuffer, or a region of one)
 *   header, HEADER_BYTES, Int32 words; the producer's and the consumer's words sit on separate 64-byte
 *   lines so the two sides do not false-share:
 *     [0] magic  [1] version  [2] capacity (data bytes, a power of two)  [3] maxRecord (payload bytes)
 *     line 1 (producer writes): [16] write position  [17] producer generation
 *                               [18..19] space doorbell (the producer parks here when the ring is full)
 *     line 2 (consumer writes): [32] read position   [33] consumer generation
 *                               [34..35] data doorbell (the consumer parks here when the ring is empty,
 *                               unless it was given a doorbell of its own shared by all its input rings)
 *   data, `capacity` bytes.
 *
 * Positions are byte counts that grow forever, kept modulo 2^32 in Int32 words; the data offset of a
 * position is `pos & (capacity - 1)`; the bytes in use are `(write - read) | 0`, always in [0, capacity].
 *
 * ## Records
 *   [length: i32][tag: i32][payload: length bytes][padding to a multiple of 8]
 * Payloads start 8-byte aligned. A record never splits at the wrap: when it does not fit before the end
 * of the data area, the producer writes a PAD marker (length = -1) there and the record starts at offset
 * 0; the consumer skips PAD to the end. maxRecord is at most capacity / 2 - 8, which guarantees that any
 * record fits once the ring has drained, wherever the positions stand.
 *
 * ## Who writes what
 *   - Only the producer writes the write position, the producer generation and record bytes in the free
 *     region; only the consumer writes the read position and the consumer generation. Either side may
 *     ring the other's doorbell.
 *   - Publication is batched: `reserve`/`commit` write records locally; `flush` publishes them all with
 *     one Atomics.store of the write position, then rings the data doorbell (which calls Atomics.notify
 *     only if the consumer has announced it is parked: see doorbell.ts for why no wake-up can be lost).
 *   - The consumer reads in place: `peek` exposes the next record (`offset`, `length`, `tag` into
 *     `bytes`); `commit` moves the read position past it with an Atomics.store and rings the space
 *     doorbell. Peek is idempotent until commit. `consume` + `publish` batch the read side for handlers
 *     that are idempotent; servers commit per record.
 *
 * ## When a side dies
 *   - Producer dies mid-write: records not yet flushed were never published (the write position is
 *     unchanged), so no half-written record is ever exposed. The next incarnation attaches, takes the
 *     published write position, and writes on from there; the unpublished bytes are simply overwritten.
 *   - Consumer dies mid-record: the read position still points at the record it was handling (it commits
 *     only after it has finished), so the next incarnation sees that record again: nothing is lost, and
 *     nothing but that one record can be handled twice. (Handlers that batch with consume/publish accept
 *     replaying the whole unpublished batch.)
 *   - Either side dies while parked: the kernel drops it from the wait list; the next incarnation resets
 *     its doorbell's waiter count at attach.
 *   - Generations: each endpoint writes its incarnation number when it attaches, so the other side (and
 *     the supervisor) can tell a restarted server from its dead predecessor.
 */
import { Doorbell } from './doorbell.js';
import { AdaptiveSpinner } from './spin.js';

export const RING_MAGIC = 0x6b6e5247; // "knRG"
export const RING_VERSION = 1;
export const HEADER_BYTES = 256;
export const RECORD_HEADER_BYTES = 8;
const PAD = -1;

const H_MAGIC = 0;
const H_VERSION = 1;
const H_CAPACITY = 2;
const H_MAX_RECORD = 3;
const H_WRITE = 16;
const H_PROD_GEN = 17;
const H_SPACE_BELL = 18;
const H_READ = 32;
const H_CONS_GEN = 33;
const H_DATA_BELL = 34;
/** Word index of a ring's data doorbell in its header (for code that must locate it without attaching). */
export const RING_DATA_BELL_WORD = H_DATA_BELL;

function codeError<E extends Error>(err: E, code: string): E {
  return Object.assign(err, { code });
}

const align8 = (n: number): number => (n + 7) & ~7;

/**
 * One round of the doorbell protocol (see doorbell.ts): announce a park, re-check `ready`. Returns true
 * when ready, false when the deadline has passed (announcement withdrawn), or null with `slot.key` and
 * `slot.left` set: the caller parks with bell.wait / bell.waitAsync(slot.key, slot.left).
 */
function parkStep(bell: Doorbell, ready: () => boolean, deadline: number, slot: { key: number; left: number }): boolean | null {
  slot.key = bell.prepare();
  if (ready()) {
    bell.cancel();
    return true;
  }
  slot.left = deadline === Infinity ? Infinity : deadline - performance.now();
  if (slot.left <= 0) {
    bell.cancel();
    return false;
  }
  return null;
}

const deadlineOf = (timeoutMs: number): number => (timeoutMs === Infinity ? Infinity : performance.now() + timeoutMs);

export interface RingOptions {
  /** Data bytes: a power of two, 1 KiB .. 1 GiB. */
  capacity: number;
  /** Largest payload; default and upper bound capacity / 2 - 8. */
  maxRecord?: number;
}

export interface RingRegion {
  sab: SharedArrayBuffer;
  byteOffset?: number;
}

/** Sizing and creation of rings. */
export const Ring = {
  byteLength(capacity: number): number {
    return HEADER_BYTES + capacity;
  },

  /** Writes a fresh ring header into `region` (or a new SharedArrayBuffer) and returns the region. */
  create(opts: RingOptions, region?: RingRegion): Required<RingRegion> {
    const { capacity } = opts;
    if (!Number.isInteger(capacity) || capacity < 1024 || capacity > 2 ** 30 || (capacity & (capacity - 1)) !== 0) {
      throw codeError(new RangeError(`ring capacity must be a power of two in [1024, 2^30], got ${capacity}`), 'ERR_OUT_OF_RANGE');
    }
    const limit = capacity / 2 - RECORD_HEADER_BYTES;
    const maxRecord = opts.maxRecord ?? limit;
    if (!Number.isInteger(maxRecord) || maxRecord < 1 || maxRecord > limit) {
      throw codeError(new RangeError(`ring maxRecord must be in [1, ${limit}], got ${maxRecord}`), 'ERR_OUT_OF_RANGE');
    }
    const sab = region?.sab ?? new SharedArrayBuffer(Ring.byteLength(capacity));
    const byteOffset = region?.byteOffset ?? 0;
    if (byteOffset % 64 !== 0 || byteOffset + Ring.byteLength(capacity) > sab.byteLength) {
      throw codeError(new RangeError('ring region is misaligned or too small'), 'ERR_OUT_OF_RANGE');
    }
    const h = new Int32Array(sab, byteOffset, HEADER_BYTES / 4);
    h.fill(0);
    h[H_CAPACITY] = capacity;
    h[H_MAX_RECORD] = maxRecord;
    h[H_VERSION] = RING_VERSION;
    Atomics.store(h, H_MAGIC, RING_MAGIC);
    return { sab, byteOffset };
  },
};

/** State shared by both endpoints: the checked header and the data views. */
abstract class RingEnd {
  readonly sab: SharedArrayBuffer;
  readonly byteOffset: number;
  readonly header: Int32Array;
  /** The data area; record payloads are at `offset` values returned by reserve / set by peek. */
  readonly bytes: Uint8Array;
  /** The data area as Int32 words (record headers; aligned payload copies). */
  readonly words: Int32Array;
  readonly capacity: number;
  readonly maxRecord: number;
  protected readonly mask: number;

  constructor(region: RingRegion) {
    const sab = region.sab;
    if (!(sab instanceof SharedArrayBuffer)) {
      throw codeError(new TypeError('a ring lives in a SharedArrayBuffer'), 'ERR_INVALID_ARG_TYPE');
    }
    const byteOffset = region.byteOffset ?? 0;
    const header = new Int32Array(sab, byteOffset, HEADER_BYTES / 4);
    if (Atomics.load(header, H_MAGIC) !== RING_MAGIC || header[H_VERSION] !== RING_VERSION) {
      throw codeError(new Error('not a keepnet ring (bad magic or version)'), 'ERR_RING_BAD_HEADER');
    }
    this.sab = sab;
    this.byteOffset = byteOffset;
    this.header = header;
    this.capacity = header[H_CAPACITY];
    this.maxRecord = header[H_MAX_RECORD];
    this.mask = this.capacity - 1;
    this.bytes = new Uint8Array(sab, byteOffset + HEADER_BYTES, this.capacity);
    this.words = new Int32Array(sab, byteOffset + HEADER_BYTES, this.capacity / 4);
  }

  get producerGeneration(): number {
    return Atomics.load(this.header, H_PROD_GEN);
  }
  get consumerGeneration(): number {
    return Atomics.load(this.header, H_CONS_GEN);
  }
  /** Published bytes not yet committed by the consumer (a snapshot). */
  get usedBytes(): number {
    return (Atomics.load(this.header, H_WRITE) - Atomics.load(this.header, H_READ)) | 0;
  }
}

export interface ProducerOptions {
  /** This endpoint's incarnation number, written to the header at attach. */
  generation?: number;
  /** The consumer's doorbell, when it parks on one shared by all its input rings. */
  wake?: Doorbell;
  /** Spin budget before parking when full (see spin.ts); 0 = park at once. */
  spin?: number;
}

export class RingProducer extends RingEnd {
  /** Local write position: everything committed, published or not. */
  private wpos: number;
  private readCache: number;
  private pendingPos = -1;
  private pendingNeed = 0;
  private unflushed = 0;
  /** The write position last published (only this producer writes it). */
  private publishedPos: number;
  readonly wake: Doorbell;
  readonly spaceBell: Doorbell;
  private readonly spinner: AdaptiveSpinner;
  /** Local counters. */
  records = 0;
  flushes = 0;
  fullWaits = 0;

  constructor(region: RingRegion, opts: ProducerOptions = {}) {
    super(region);
    this.wpos = Atomics.load(this.header, H_WRITE);
    this.publishedPos = this.wpos;
    this.readCache = Atomics.load(this.header, H_READ);
    this.wake = opts.wake ?? new Doorbell(this.header, H_DATA_BELL);
    this.spaceBell = new Doorbell(this.header, H_SPACE_BELL);
    this.spaceBell.reset();
    this.spinner = new AdaptiveSpinner(opts.spin ?? 0);
    Atomics.store(this.header, H_PROD_GEN, opts.generation ?? 0);
  }

  private fits(total: number): boolean {
    if (this.capacity - ((this.wpos - this.readCache) | 0) >= total) return true;
    this.readCache = Atomics.load(this.header, H_READ);
    return this.capacity - ((this.wpos - this.readCache) | 0) >= total;
  }

  private spaceFor(len: number): number {
    const need = RECORD_HEADER_BYTES + align8(len);
    const toEnd = this.capacity - (this.wpos & this.mask);
    return toEnd < need ? toEnd + need : need;
  }

  /**
   * Reserve room for a record of `len` payload bytes. Returns the payload's offset in `bytes`, or -1 if
   * the ring is full (nothing is changed then). Write the payload, then commit(). Throws RangeError only
   * for a length outside [0, maxRecord], a programming error.
   */
  reserve(len: number, tag = 0): number {
    if (!(len >= 0 && len <= this.maxRecord) || (len | 0) !== len) {
      throw codeError(new RangeError(`record length ${len} outside [0, ${this.maxRecord}]`), 'ERR_OUT_OF_RANGE');
    }
    const need = RECORD_HEADER_BYTES + align8(len);
    let off = this.wpos & this.mask;
    const toEnd = this.capacity - off;
    if (!this.fits(toEnd < need ? toEnd + need : need)) return -1;
    if (toEnd < need) {
      // Does not fit before the end: mark the tail as padding and start at 0. The marker is not
      // published until the next flush, so a crash here exposes nothing.
      this.words[off >> 2] = PAD;
      this.wpos = (this.wpos + toEnd) | 0;
      off = 0;
    }
    this.words[off >> 2] = len;
    this.words[(off >> 2) + 1] = tag;
    this.pendingPos = this.wpos;
    this.pendingNeed = need;
    return off + RECORD_HEADER_BYTES;
  }

  /** Finish the reserved record; `len` may shrink it (reserve the maximum, commit what was written). */
  commit(len?: number): void {
    const pos = this.pendingPos;
    if (this.pendingNeed === 0) {
      throw codeError(new Error('commit without reserve'), 'ERR_RING_STATE');
    }
    let need = this.pendingNeed;
    if (len !== undefined) {
      const reserved = this.words[(pos & this.mask) >> 2];
      if (!(len >= 0 && len <= reserved) || (len | 0) !== len) {
        throw codeError(new RangeError(`commit length ${len} outside [0, ${reserved}]`), 'ERR_OUT_OF_RANGE');
      }
      this.words[(pos & this.mask) >> 2] = len;
      need = RECORD_HEADER_BYTES + align8(len);
    }
    this.wpos = (pos + need) | 0;
    this.pendingPos = -1;
    this.pendingNeed = 0;
    this.unflushed++;
  }

  /** The local write position, to rewind() to: everything committed after it can still be undone. */
  mark(): number {
    return this.wpos;
  }

  /**
   * Undo every record committed since mark() (they were never published: call it only if no flush()
   * happened in between). A host uses it when a handler refuses a record after writing outputs, so the
   * retry does not send them twice.
   */
  rewind(mark: number): void {
    this.pendingPos = -1;
    this.pendingNeed = 0;
    if (mark === this.wpos) return;
    this.wpos = mark;
    this.unflushed = mark === this.publishedPos ? 0 : Math.max(1, this.unflushed);
  }

  /** Forget a reserved record (a padding marker it wrote stays, harmlessly). */
  abort(): void {
    this.pendingPos = -1;
    this.pendingNeed = 0;
  }

  /** Copy a record in (reserve + set + commit); false if full. Not published until flush(). */
  push(src: Uint8Array, tag = 0): boolean {
    const off = this.reserve(src.length, tag);
    if (off < 0) return false;
    this.bytes.set(src, off);
    this.commit();
    return true;
  }

  /**
   * Forward the record `from` has peeked into this ring (same length and tag), without allocating:
   * payloads in rings are 8-byte aligned, so short records are copied a word at a time and long ones with
   * one typed-array copy. Returns false if this ring is full (nothing changed). Does not commit `from`.
   */
  forward(from: RingConsumer): boolean {
    const len = from.length;
    const off = this.reserve(len, from.tag);
    if (off < 0) return false;
    if (len <= 256) {
      const src = from.words;
      const dst = this.words;
      const s = from.offset >> 2;
      const d = off >> 2;
      for (let i = 0, n = (len + 3) >> 2; i < n; i++) dst[d + i] = src[s + i];
    } else {
      this.bytes.set(from.bytes.subarray(from.offset, from.offset + len), off);
    }
    this.commit();
    return true;
  }

  /** Publish every committed record with one store, and wake the consumer if it is parked. */
  flush(): void {
    if (this.unflushed === 0) return;
    Atomics.store(this.header, H_WRITE, this.wpos);
    this.publishedPos = this.wpos;
    this.records += this.unflushed;
    this.unflushed = 0;
    this.flushes++;
    this.wake.ring();
  }

  /** Committed records not yet flushed. */
  get pending(): number {
    return this.unflushed;
  }

  /** Whether a record of `len` bytes would fit now. */
  canReserve(len: number): boolean {
    return this.fits(this.spaceFor(len));
  }

  /**
   * Park until a record of `len` bytes fits (flushes first, so the consumer can drain). Returns false on
   * timeout. Blocks the thread: not for the main thread (use waitForSpaceAsync there).
   */
  waitForSpace(len: number, timeoutMs = Infinity): boolean {
    this.flush();
    const total = this.spaceFor(len);
    if (this.fits(total)) return true;
    if (this.spinner.spin(() => this.fits(total))) return true;
    this.fullWaits++;
    const deadline = deadlineOf(timeoutMs);
    const slot = { key: 0, left: 0 };
    for (;;) {
      const r = parkStep(this.spaceBell, () => this.fits(total), deadline, slot);
      if (r !== null) return r;
      this.spaceBell.wait(slot.key, slot.left);
    }
  }

  async waitForSpaceAsync(len: number, timeoutMs = Infinity): Promise<boolean> {
    this.flush();
    const total = this.spaceFor(len);
    if (this.fits(total)) return true;
    this.fullWaits++;
    const deadline = deadlineOf(timeoutMs);
    const slot = { key: 0, left: 0 };
    for (;;) {
      const r = parkStep(this.spaceBell, () => this.fits(total), deadline, slot);
      if (r !== null) return r;
      await this.spaceBell.waitAsync(slot.key, slot.left);
    }
  }
}

export interface ConsumerOptions {
  generation?: number;
  /** A doorbell shared by all of this consumer's input rings; default: the ring's own. */
  doorbell?: Doorbell;
  /** Spin budget before parking when empty (see spin.ts); 0 = park at once. */
  spin?: number;
}

export class RingConsumer extends RingEnd {
  /** Local read position (the start of the record that peek exposes). */
  private rpos: number;
  private writeCache: number;
  /** Position after the peeked record, or -1 when none is peeked. */
  private nextPos = -1;
  private published: number;
  /** The peeked record: payload offset in `bytes`, payload length, tag. */
  offset = 0;
  length = 0;
  tag = 0;
  readonly doorbell: Doorbell;
  readonly spaceBell: Doorbell;
  private readonly spinner: AdaptiveSpinner;
  records = 0;
  parks = 0;

  constructor(region: RingRegion, opts: ConsumerOptions = {}) {
    super(region);
    this.rpos = Atomics.load(this.header, H_READ);
    this.published = this.rpos;
    this.writeCache = Atomics.load(this.header, H_WRITE);
    this.doorbell = opts.doorbell ?? new Doorbell(this.header, H_DATA_BELL);
    this.doorbell.reset();
    this.spaceBell = new Doorbell(this.header, H_SPACE_BELL);
    this.spinner = new AdaptiveSpinner(opts.spin ?? 0);
    Atomics.store(this.header, H_CONS_GEN, opts.generation ?? 0);
  }

  /**
   * Expose the next record: returns its payload length (and sets offset, length, tag), or -1 when the
   * ring is empty. Idempotent until commit()/consume(). A corrupt record header (impossible unless
   * memory was overwritten) throws ERR_RING_CORRUPT rather than handing out garbage.
   */
  peek(): number {
    if (this.nextPos !== -1) return this.length;
    for (;;) {
      if (this.rpos === this.writeCache) {
        this.writeCache = Atomics.load(this.header, H_WRITE);
        if (this.rpos === this.writeCache) return -1;
      }
      const off = this.rpos & this.mask;
      const len = this.words[off >> 2];
      if (len === PAD) {
        this.rpos = (this.rpos + (this.capacity - off)) | 0;
        continue;
      }
      const need = RECORD_HEADER_BYTES + align8(len);
      if (len < 0 || len > this.maxRecord || off + need > this.capacity || need > ((this.writeCache - this.rpos) | 0)) {
        throw codeError(new Error(`ring record header corrupt at offset ${off}: length ${len}`), 'ERR_RING_CORRUPT');
      }
      this.offset = off + RECORD_HEADER_BYTES;
      this.length = len;
      this.tag = this.words[(off >> 2) + 1];
      this.nextPos = (this.rpos + need) | 0;
      return len;
    }
  }

  /** Done with the peeked record: move past it and publish the read position (crash-safe per record). */
  commit(): void {
    this.consume();
    this.publish();
  }

  /** Move past the peeked record locally, without publishing (see publish). */
  consume(): void {
    if (this.nextPos === -1) throw codeError(new Error('consume without peek'), 'ERR_RING_STATE');
    this.rpos = this.nextPos;
    this.nextPos = -1;
    this.records++;
  }

  /** Publish the read position: frees the space of every consumed record, wakes a parked producer. */
  publish(): void {
    if (this.published === this.rpos) return;
    this.published = this.rpos;
    Atomics.store(this.header, H_READ, this.rpos);
    this.spaceBell.ring();
  }

  /** Position of the peeked record: a key that names it across consumer incarnations (for poison). */
  get position(): number {
    return this.rpos;
  }

  /** The ready check of the park protocol (bound once: no closure per wait). */
  private readonly hasRecord = (): boolean => this.peek() >= 0;

  /** Whether a record is available (does not expose it). */
  get available(): boolean {
    return this.peek() >= 0;
  }

  /**
   * Park until a record is available or timeout (ms). Spins first only as far as the adaptive budget
   * allows. Returns true if a record is available. Blocks: use waitAsync on the main thread.
   */
  wait(timeoutMs = Infinity): boolean {
    if (this.peek() >= 0) return true;
    this.publish();
    if (this.spinner.spin(this.hasRecord)) return true;
    const deadline = deadlineOf(timeoutMs);
    const slot = { key: 0, left: 0 };
    for (;;) {
      const r = parkStep(this.doorbell, this.hasRecord, deadline, slot);
      if (r !== null) return r;
      this.parks++;
      this.doorbell.wait(slot.key, slot.left);
      if (this.peek() >= 0) return true;
    }
  }

  async waitAsync(timeoutMs = Infinity): Promise<boolean> {
    if (this.peek() >= 0) return true;
    this.publish();
    const deadline = deadlineOf(timeoutMs);
    const slot = { key: 0, left: 0 };
    for (;;) {
      const r = parkStep(this.doorbell, this.hasRecord, deadline, slot);
      if (r !== null) return r;
      this.parks++;
      await this.doorbell.waitAsync(slot.key, slot.left);
      if (this.peek() >= 0) return true;
    }
  }
}

/**
 * Read-only walk over the published records a ring still holds (from the consumer's read position to
 * the producer's write position), without touching any word: for a supervisor inspecting the rings of a
 * dead server. `fn` gets each record's tag, the data area, the payload offset and length, and its
 * position. Safe while the producer is dead (nothing overwrites the region) or for records the consumer
 * has not committed (the producer cannot reach them).
 */
export function scanRing(
  region: RingRegion,
  fn: (tag: number, bytes: Uint8Array, offset: number, length: number, position: number) => void,
  from?: number,
  count = Infinity,
): void {
  const end = new RingView(region);
  end.scan(fn, from, count);
}

class RingView extends RingEnd {
  scan(
    fn: (tag: number, bytes: Uint8Array, offset: number, length: number, position: number) => void,
    from: number | undefined,
    count: number,
  ): void {
    let pos = from ?? Atomics.load(this.header, H_READ);
    const write = Atomics.load(this.header, H_WRITE);
    for (let n = 0; n < count && pos !== write; ) {
      if (((write - pos) | 0) <= 0) return;
      const off = pos & this.mask;
      const len = this.words[off >> 2];
      if (len === PAD) {
        pos = (pos + (this.capacity - off)) | 0;
        continue;
      }
      if (len < 0 || len > this.maxRecord || off + RECORD_HEADER_BYTES + len > this.capacity) return;
      fn(this.words[(off >> 2) + 1], this.bytes, off + RECORD_HEADER_BYTES, len, pos);
      pos = (pos + RECORD_HEADER_BYTES + align8(len)) | 0;
      n++;
    }
  }
}
