/**
 * Packet buffer pool: fixed-size buffers in one SharedArrayBuffer, handed between servers by
 * descriptor (buffer index, epoch, offset, length). A frame is written once (by the driver) and read
 * in place by IP, TCP and UDP; only ownership moves.
 *
 * LAYOUT (all offsets in bytes from the start of the SAB; every region starts on a 64-byte line)
 *   0    header, HEADER_WORDS Int32 words (see the H_* constants):
 *          magic 'KNPP', layout version, count, bufferSize, stride, ownerOff, epochOff, dataOff,
 *          dataLen, a count of attached handles, the free-count hint (alone on its line) and the
 *          counters (allocs, frees, exhausted, badFree, badTransfer, reclaimed, rehomed, badArg).
 *          attach() reads the layout from here.
 *   ownerOff   Int32  owner[count]   who owns buffer i (0 = free)
 *   epochOff   Uint32 epoch[count]   bumped by every successful alloc of buffer i (wraps)
 *   dataOff    count buffers of `stride` bytes (bufferSize rounded up to 64), buffer i at
 *              dataOff + i * stride. `bytes` covers exactly this data area, so offsetOf(i) = i * stride.
 *
 * OWNER ENCODING
 *   owner = (serverId << 16) | (generation & 0xffff), serverId 1..255, so every owner is in
 *   [0x10000, 0xffffff] and 0 means free. Generation 0 is reserved: (serverId, 0) means "in transit to
 *   serverId, not yet adopted by any incarnation"; the receiving incarnation calls adopt() to turn it
 *   into (serverId, gen). A server's generation changes at every restart (nextGen() skips 0), so the
 *   buffers of a dead incarnation are exactly those whose owner word equals its old owner value.
 *
 * WHO MAY WRITE WHAT
 *   - owner[i]: only through compareExchange, never a plain store.
 *       0 -> me            alloc(), by any thread, for itself
 *       me -> 0            free(), by the owner
 *       me -> other        transfer(), by the owner (other may be (server, 0), "in transit")
 *       (s, 0) -> (s, g)   adopt(), by incarnation g of server s
 *       dead -> 0 / new    reclaim() / rehome(), by the supervisor once `dead` is known to be dead
 *     Because every change is a CAS from an expected value, a wrong free (double free, free of a
 *     buffer that has since moved on, free by a non-owner) simply fails and is counted; nothing can
 *     free a buffer twice, and two threads can never both own one.
 *   - epoch[i]: only alloc() (Atomics.add after winning the CAS).
 *   - buffer data: only the current owner. A receiver may read a buffer in place only while it owns it
 *     (or while the sender keeps ownership until the receiver says it is done).
 *   - header counters: Atomics.add by anyone; the free hint also by audit().
 *
 * CRASHES (a thread can die at any instruction)
 *   Allocation IS the single CAS owner[i]: 0 -> me; there is no free list or lock that a death could
 *   leave half-updated. A buffer is therefore always either free (0) or owned by exactly one owner
 *   value. If the owner dies, its buffers keep its owner word until the supervisor calls
 *   reclaim(deadOwner) (or rehome() for a server whose state survives restarts). Buffers the dead
 *   thread had already transferred belong to their new owner and are untouched. A thread that dies
 *   between the CAS and the counter updates leaves the counters off by one; the free-count hint is
 *   updated in an order (free: hint++ before the CAS; alloc: hint-- after the CAS) that makes a death
 *   leave it too high, never too low, so it can only cost a useless scan, never a false "exhausted".
 *   audit() recomputes it.
 *
 * EPOCHS
 *   epoch[i] changes at every alloc, so a descriptor carries (idx, epoch) and a stale one (its buffer
 *   freed and allocated again, possibly by the same owner) is detected by epochOf(idx) !== epoch.
 *   Validate a received descriptor with ownerOf(idx) === me && epochOf(idx) === epoch (owns() does
 *   both): between the allocating CAS and the epoch bump only the new owner owns the buffer, so the
 *   owner test covers that window.
 *
 * HOT PATHS
 *   alloc, free, transfer, adopt, ownerOf, epochOf and owns allocate nothing and never throw: a bad
 *   index or owner returns -1/false and counts `badArg`; exhaustion returns -1 and counts `exhausted`.
 *   view() allocates a subarray: hot paths should use `bytes` with offsetOf().
 *
 * WARM REUSE
 *   Each handle remembers the last few buffers it freed (a small stack, private to the handle) and
 *   alloc() tries those first, newest first, with the same CAS as any alloc (a buffer someone else
 *   took meanwhile simply fails it). A stack whose servers share a thread then cycles through a few
 *   buffers that are still in the core's cache instead of next-fitting through all of them: with
 *   1024 big buffers (68 MB) every 64 KiB segment and receive slot used to land in cold memory.
 *
 * FREE-COUNT HINT
 *   An approximate shared count of free buffers. With no crashes and no concurrent audit() it is an
 *   upper bound of the true count at every instant, so alloc() fails fast (without scanning) when it is
 *   <= 0. As a safety net against an under-count (an audit() racing with in-flight operations), every
 *   64th consecutive fail-fast of a handle scans the pool anyway.
 */

const MAGIC = 0x4b4e5050; // 'KNPP'
/** Buffers a handle remembers having freed (WARM REUSE). */
const RECENT_MAX = 32;
const VERSION = 1;
const LINE = 64;

const H_MAGIC = 0;
const H_VERSION = 1;
const H_COUNT = 2;
const H_BUFSIZE = 3;
const H_STRIDE = 4;
const H_OWNER_OFF = 5;
const H_EPOCH_OFF = 6;
const H_DATA_OFF = 7;
const H_DATA_LEN = 8;
const H_HANDLES = 9; // handles attached so far (spreads their cursors deterministically)
const H_FREE_HINT = 16; // own cache line: touched by every alloc and free
const H_ALLOCS = 24;
const H_FREES = 25;
const H_EXHAUSTED = 26;
const H_BAD_FREE = 27;
const H_BAD_TRANSFER = 28;
const H_RECLAIMED = 29;
const H_REHOMED = 30;
const H_BAD_ARG = 31;
const HEADER_WORDS = 32;
const HEADER_BYTES = HEADER_WORDS * 4;

/** Largest buffer count and buffer size accepted by create(). */
export const MAX_BUFFERS = 1 << 20;
export const MAX_BUFFER_SIZE = 1 << 20;
/** Largest total SAB size create() will allocate (the layout uses Int32 offsets). */
export const MAX_POOL_BYTES = 0x7fffffc0;

const FAILFAST_RESCAN_MASK = 63;

export interface PacketPoolOptions {
  /** Number of buffers, 1..MAX_BUFFERS. */
  buffers: number;
  /** Usable bytes per buffer, 1..MAX_BUFFER_SIZE (the stride is this rounded up to 64). */
  bufferSize: number;
}

export interface PacketPoolStats {
  count: number;
  bufferSize: number;
  /** Buffers whose owner word is non-zero (a scan, exact only when quiescent). */
  inUse: number;
  /** count - inUse. */
  free: number;
  /** The shared free-count hint (approximate; see the file header). */
  freeHint: number;
  allocs: number;
  frees: number;
  exhausted: number;
  badFree: number;
  badTransfer: number;
  reclaimed: number;
  rehomed: number;
  badArg: number;
}

/** Error with a Node-style `code`, so callers can branch on it. */
function argError(kind: 'type' | 'range', code: string, message: string): Error {
  const e = kind === 'type' ? new TypeError(message) : new RangeError(message);
  (e as Error & { code: string }).code = code;
  return e;
}

function checkInt(name: string, v: unknown, lo: number, hi: number): number {
  if (typeof v !== 'number') {
    throw argError('type', 'ERR_INVALID_ARG_TYPE', `The "${name}" argument must be of type number. Received ${typeof v}`);
  }
  if (!Number.isInteger(v) || v < lo || v > hi) {
    throw argError('range', 'ERR_OUT_OF_RANGE', `The value of "${name}" is out of range. It must be an integer >= ${lo} and <= ${hi}. Received ${v}`);
  }
  return v;
}

const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to;

/** owner = (serverId << 16) | (gen & 0xffff). serverId 1..255; gen 0 means "in transit". Throws on a bad serverId. */
export function makeOwner(serverId: number, gen: number): number {
  checkInt('serverId', serverId, 1, 255);
  checkInt('gen', gen, 0, Number.MAX_SAFE_INTEGER);
  return (serverId << 16) | (gen & 0xffff);
}

/** Server id of an owner word (0 for a free word). */
export function ownerServer(owner: number): number {
  return (owner >>> 16) & 0xff;
}

/** Generation of an owner word (0 = in transit / free). */
export function ownerGen(owner: number): number {
  return owner & 0xffff;
}

/** The generation after `gen`, wrapping 0xffff -> 1 (0 is reserved for "in transit"). */
export function nextGen(gen: number): number {
  const g = (gen + 1) & 0xffff;
  return g === 0 ? 1 : g;
}

/** True if `o` is a well-formed owner word (serverId 1..255, any generation including 0). */
export function isOwner(o: number): boolean {
  return (o >>> 0) === o && o >= 0x10000 && o <= 0xffffff;
}

export class PacketPool {
  /** The whole shared region: pass it to attach() in another thread. */
  readonly sab: SharedArrayBuffer;
  /** The data area only: buffer idx occupies bytes[offsetOf(idx) .. offsetOf(idx) + bufferSize). */
  readonly bytes: Uint8Array;
  /** Usable bytes per buffer. */
  readonly bufferSize: number;
  /** Distance between consecutive buffers in `bytes` (bufferSize rounded up to 64). */
  readonly stride: number;
  /** Number of buffers. */
  readonly count: number;

  private readonly h: Int32Array;
  private readonly owners: Int32Array;
  private readonly epochs: Uint32Array;
  /** Next-fit cursor: where this handle looks for a free buffer first. Per handle, not shared. */
  private cursor = 0;
  /** Consecutive fail-fast exhaustions of this handle (every 64th one scans anyway). */
  private failStreak = 0;
  /** Buffers this handle freed last (see WARM REUSE): a ring of RECENT_MAX, `recentN` of them valid. */
  private readonly recent = new Int32Array(RECENT_MAX);
  private recentTop = 0;
  private recentN = 0;

  private constructor(sab: SharedArrayBuffer) {
    const h = new Int32Array(sab, 0, HEADER_WORDS);
    this.sab = sab;
    this.h = h;
    this.count = h[H_COUNT]!;
    this.bufferSize = h[H_BUFSIZE]!;
    this.stride = h[H_STRIDE]!;
    this.owners = new Int32Array(sab, h[H_OWNER_OFF]!, this.count);
    this.epochs = new Uint32Array(sab, h[H_EPOCH_OFF]!, this.count);
    this.bytes = new Uint8Array(sab, h[H_DATA_OFF]!, h[H_DATA_LEN]!);
    // Spread the cursors of different handles (deterministically, by attach order) so they do not
    // all race for the same buffers first.
    const k = Atomics.add(h, H_HANDLES, 1);
    this.cursor = (Math.imul(k, 0x9e3779b1) >>> 0) % this.count;
  }

  /** Allocate and initialise a pool; every buffer starts free with epoch 0. */
  static create(opts: PacketPoolOptions): PacketPool {
    if (opts === null || typeof opts !== 'object') {
      throw argError('type', 'ERR_INVALID_ARG_TYPE', 'The "opts" argument must be of type object.');
    }
    const count = checkInt('buffers', opts.buffers, 1, MAX_BUFFERS);
    const bufferSize = checkInt('bufferSize', opts.bufferSize, 1, MAX_BUFFER_SIZE);
    const stride = roundUp(bufferSize, LINE);
    const ownerOff = roundUp(HEADER_BYTES, LINE);
    const epochOff = ownerOff + roundUp(count * 4, LINE);
    const dataOff = epochOff + roundUp(count * 4, LINE);
    const dataLen = count * stride;
    const total = dataOff + dataLen;
    if (total > MAX_POOL_BYTES) {
      throw argError('range', 'ERR_OUT_OF_RANGE', `The pool would need ${total} bytes; it must be <= ${MAX_POOL_BYTES} (buffers * bufferSize too large).`);
    }
    const sab = new SharedArrayBuffer(total);
    const h = new Int32Array(sab, 0, HEADER_WORDS);
    h[H_VERSION] = VERSION;
    h[H_COUNT] = count;
    h[H_BUFSIZE] = bufferSize;
    h[H_STRIDE] = stride;
    h[H_OWNER_OFF] = ownerOff;
    h[H_EPOCH_OFF] = epochOff;
    h[H_DATA_OFF] = dataOff;
    h[H_DATA_LEN] = dataLen;
    h[H_FREE_HINT] = count;
    Atomics.store(h, H_MAGIC, MAGIC); // last: publishes the initialised header
    return new PacketPool(sab);
  }

  /** Attach to a pool created (possibly in another thread) by create(). */
  static attach(sab: SharedArrayBuffer): PacketPool {
    if (!(sab instanceof SharedArrayBuffer)) {
      throw argError('type', 'ERR_INVALID_ARG_TYPE', 'The "sab" argument must be a SharedArrayBuffer.');
    }
    if (sab.byteLength < HEADER_BYTES) {
      throw argError('type', 'ERR_INVALID_ARG_VALUE', 'The "sab" argument is too small to be a packet pool.');
    }
    const h = new Int32Array(sab, 0, HEADER_WORDS);
    if (Atomics.load(h, H_MAGIC) !== MAGIC || h[H_VERSION] !== VERSION) {
      throw argError('type', 'ERR_INVALID_ARG_VALUE', 'The "sab" argument is not a packet pool of layout version ' + VERSION + '.');
    }
    const count = h[H_COUNT]!, stride = h[H_STRIDE]!, bufferSize = h[H_BUFSIZE]!;
    const ownerOff = h[H_OWNER_OFF]!, epochOff = h[H_EPOCH_OFF]!, dataOff = h[H_DATA_OFF]!, dataLen = h[H_DATA_LEN]!;
    const sane = count >= 1 && count <= MAX_BUFFERS && bufferSize >= 1 && bufferSize <= stride &&
      stride % LINE === 0 && ownerOff >= HEADER_BYTES && epochOff >= ownerOff + count * 4 &&
      dataOff >= epochOff + count * 4 && dataOff % LINE === 0 && dataLen === count * stride &&
      dataOff + dataLen <= sab.byteLength;
    if (!sane) {
      throw argError('type', 'ERR_INVALID_ARG_VALUE', 'The "sab" argument has an inconsistent packet pool header.');
    }
    return new PacketPool(sab);
  }

  /** Byte offset of buffer idx in `bytes` (no check: idx must be valid). */
  offsetOf(idx: number): number {
    return idx * this.stride;
  }

  /**
   * A Uint8Array over bytes [off, off + len) of buffer idx. Allocates a view object on every call:
   * hot paths should index `bytes` at offsetOf(idx) instead. Throws RangeError (ERR_OUT_OF_RANGE) on
   * bad arguments.
   */
  view(idx: number, off = 0, len = this.bufferSize - off): Uint8Array {
    checkInt('idx', idx, 0, this.count - 1);
    checkInt('off', off, 0, this.bufferSize);
    checkInt('len', len, 0, this.bufferSize - off);
    const start = idx * this.stride + off;
    return this.bytes.subarray(start, start + len);
  }

  private validIdx(idx: number): boolean {
    return (idx >>> 0) === idx && idx < this.count;
  }

  /**
   * Allocate a free buffer for `owner`. Returns its index, or -1 if none is free (counted in
   * `exhausted`) or owner is malformed (counted in `badArg`). Lock-free: one CAS 0 -> owner.
   */
  alloc(owner: number): number {
    const h = this.h;
    if (!isOwner(owner)) {
      Atomics.add(h, H_BAD_ARG, 1);
      return -1;
    }
    if (Atomics.load(h, H_FREE_HINT) <= 0 && (++this.failStreak & FAILFAST_RESCAN_MASK) !== 0) {
      Atomics.add(h, H_EXHAUSTED, 1);
      return -1;
    }
    const owners = this.owners, n = this.count;
    while (this.recentN > 0) {
      this.recentN--;
      this.recentTop = (this.recentTop + RECENT_MAX - 1) % RECENT_MAX;
      const r = this.recent[this.recentTop]!;
      if (owners[r] === 0 && Atomics.compareExchange(owners, r, 0, owner) === 0) return this.allocated(r);
    }
    let i = this.cursor;
    for (let k = 0; k < n; k++) {
      // A plain read first: cheap filter, the CAS decides.
      if (owners[i] === 0 && Atomics.compareExchange(owners, i, 0, owner) === 0) {
        this.cursor = i + 1 === n ? 0 : i + 1;
        return this.allocated(i);
      }
      i = i + 1 === n ? 0 : i + 1;
    }
    Atomics.add(h, H_EXHAUSTED, 1);
    return -1;
  }

  /** The bookkeeping after alloc()'s CAS won buffer i. */
  private allocated(i: number): number {
    const h = this.h;
    // Hint after the CAS: dying here leaves the hint too high (harmless), never too low.
    if (Atomics.sub(h, H_FREE_HINT, 1) <= 0) Atomics.add(h, H_FREE_HINT, 1); // keep it >= 0
    Atomics.add(this.epochs, i, 1);
    Atomics.add(h, H_ALLOCS, 1);
    this.failStreak = 0;
    return i;
  }

  /**
   * Free buffer idx if `owner` owns it (CAS owner -> 0). Returns false, counting `badFree`, if it does
   * not (double free, stale free, free by a non-owner); false and `badArg` for a bad idx.
   */
  free(idx: number, owner: number): boolean {
    const h = this.h;
    if (!this.validIdx(idx) || !isOwner(owner)) {
      Atomics.add(h, H_BAD_ARG, 1);
      return false;
    }
    // Hint before the CAS: dying here leaves the hint too high (harmless), never too low.
    Atomics.add(h, H_FREE_HINT, 1);
    if (Atomics.compareExchange(this.owners, idx, owner, 0) !== owner) {
      Atomics.sub(h, H_FREE_HINT, 1);
      Atomics.add(h, H_BAD_FREE, 1);
      return false;
    }
    Atomics.add(h, H_FREES, 1);
    this.recent[this.recentTop] = idx;
    this.recentTop = (this.recentTop + 1) % RECENT_MAX;
    if (this.recentN < RECENT_MAX) this.recentN++;
    return true;
  }

  /**
   * Move buffer idx from `from` to `to` (CAS). `to` may be makeOwner(server, 0): in transit to a
   * server until its incarnation adopts it. Returns false, counting `badTransfer`, if `from` does not
   * own it; false and `badArg` for bad arguments.
   */
  transfer(idx: number, from: number, to: number): boolean {
    if (!this.validIdx(idx) || !isOwner(from) || !isOwner(to)) {
      Atomics.add(this.h, H_BAD_ARG, 1);
      return false;
    }
    if (Atomics.compareExchange(this.owners, idx, from, to) !== from) {
      Atomics.add(this.h, H_BAD_TRANSFER, 1);
      return false;
    }
    return true;
  }

  /**
   * Adopt a buffer in transit to serverId: CAS (serverId, 0) -> (serverId, gen). Returns false,
   * counting `badTransfer`, if it is not in transit to serverId; false and `badArg` for bad arguments
   * (gen must be 1..0xffff).
   */
  adopt(idx: number, serverId: number, gen: number): boolean {
    if (!this.validIdx(idx) || (serverId >>> 0) !== serverId || serverId < 1 || serverId > 255 ||
      (gen >>> 0) !== gen || gen < 1 || gen > 0xffff) {
      Atomics.add(this.h, H_BAD_ARG, 1);
      return false;
    }
    const from = serverId << 16;
    if (Atomics.compareExchange(this.owners, idx, from, from | gen) !== from) {
      Atomics.add(this.h, H_BAD_TRANSFER, 1);
      return false;
    }
    return true;
  }

  /** Current owner word of buffer idx (0 = free), or -1 (counted in `badArg`) for a bad idx. */
  ownerOf(idx: number): number {
    if (!this.validIdx(idx)) {
      Atomics.add(this.h, H_BAD_ARG, 1);
      return -1;
    }
    return Atomics.load(this.owners, idx);
  }

  /** Current epoch of buffer idx (uint32, bumped by every alloc), or -1 (counted in `badArg`) for a bad idx. */
  epochOf(idx: number): number {
    if (!this.validIdx(idx)) {
      Atomics.add(this.h, H_BAD_ARG, 1);
      return -1;
    }
    return Atomics.load(this.epochs, idx);
  }

  /**
   * Descriptor check: true if `owner` owns buffer idx and its epoch is `epoch` (compared modulo 2^32,
   * so a descriptor may carry the epoch's low bits only if the caller masks both sides itself).
   */
  owns(idx: number, epoch: number, owner: number): boolean {
    if (!this.validIdx(idx)) {
      Atomics.add(this.h, H_BAD_ARG, 1);
      return false;
    }
    return Atomics.load(this.owners, idx) === owner && Atomics.load(this.epochs, idx) === (epoch >>> 0);
  }

  /**
   * Free every buffer whose owner word equals `deadOwner` exactly, except those for which keep(idx)
   * returns true. Returns how many were freed (counted in `reclaimed`). Call only once deadOwner can
   * no longer run (its thread has exited); every step is a CAS, so a buffer is never freed twice and
   * buffers the dead owner had transferred away are untouched.
   */
  reclaim(deadOwner: number, keep?: (idx: number) => boolean): number {
    if (!isOwner(deadOwner)) {
      Atomics.add(this.h, H_BAD_ARG, 1);
      return 0;
    }
    const h = this.h, owners = this.owners;
    let n = 0;
    for (let i = 0; i < this.count; i++) {
      if (Atomics.load(owners, i) !== deadOwner || (keep !== undefined && keep(i))) continue;
      Atomics.add(h, H_FREE_HINT, 1);
      if (Atomics.compareExchange(owners, i, deadOwner, 0) === deadOwner) {
        n++;
      } else {
        Atomics.sub(h, H_FREE_HINT, 1);
      }
    }
    if (n > 0) Atomics.add(h, H_RECLAIMED, n);
    return n;
  }

  /**
   * Re-own every buffer whose owner word equals `fromOwner` to `toOwner` (for a server whose state
   * survives restarts: its new incarnation keeps the buffers). Returns how many (counted in `rehomed`).
   */
  rehome(fromOwner: number, toOwner: number): number {
    if (!isOwner(fromOwner) || !isOwner(toOwner)) {
      Atomics.add(this.h, H_BAD_ARG, 1);
      return 0;
    }
    const owners = this.owners;
    let n = 0;
    for (let i = 0; i < this.count; i++) {
      if (Atomics.load(owners, i) === fromOwner &&
        Atomics.compareExchange(owners, i, fromOwner, toOwner) === fromOwner) n++;
    }
    if (n > 0) Atomics.add(this.h, H_REHOMED, n);
    return n;
  }

  /**
   * Free the buffers of every dead incarnation of serverId: owner server == serverId and generation
   * neither `liveGen` (the incarnation now running; pass 0 if none) nor 0 (in transit: the live
   * incarnation may still adopt those from its rings; drop them with reclaim(makeOwner(serverId, 0))).
   * keep(idx) as in reclaim(). Returns how many were freed.
   */
  reclaimServer(serverId: number, liveGen: number, keep?: (idx: number) => boolean): number {
    if ((serverId >>> 0) !== serverId || serverId < 1 || serverId > 255) {
      Atomics.add(this.h, H_BAD_ARG, 1);
      return 0;
    }
    const h = this.h, owners = this.owners, live = liveGen & 0xffff;
    let n = 0;
    for (let i = 0; i < this.count; i++) {
      const o = Atomics.load(owners, i);
      if (o === 0 || ownerServer(o) !== serverId) continue;
      const g = o & 0xffff;
      if (g === 0 || g === live || (keep !== undefined && keep(i))) continue;
      Atomics.add(h, H_FREE_HINT, 1);
      if (Atomics.compareExchange(owners, i, o, 0) === o) {
        n++;
      } else {
        Atomics.sub(h, H_FREE_HINT, 1);
      }
    }
    if (n > 0) Atomics.add(h, H_RECLAIMED, n);
    return n;
  }

  /** Number of buffers whose owner word equals `owner` (a scan). */
  countOwned(owner: number): number {
    const owners = this.owners;
    let n = 0;
    for (let i = 0; i < this.count; i++) if (Atomics.load(owners, i) === owner) n++;
    return n;
  }

  /**
   * Recompute the free-count hint from a scan of the owner words; returns the free count found.
   * Exact when no alloc/free is in flight (e.g. by the supervisor after a reclaim). Run concurrently,
   * it retries until the operation counters and the hint are unchanged across a scan; an operation
   * caught between its CAS and its counter updates can still skew the result by one, which alloc's
   * periodic rescan tolerates.
   */
  audit(): number {
    const h = this.h;
    let free = 0;
    for (let attempt = 0; attempt < 16; attempt++) {
      const h0 = Atomics.load(h, H_FREE_HINT);
      const a0 = Atomics.load(h, H_ALLOCS), f0 = Atomics.load(h, H_FREES), r0 = Atomics.load(h, H_RECLAIMED);
      free = this.count - this.countInUse();
      if (Atomics.load(h, H_ALLOCS) !== a0 || Atomics.load(h, H_FREES) !== f0 ||
        Atomics.load(h, H_RECLAIMED) !== r0) continue;
      if (Atomics.compareExchange(h, H_FREE_HINT, h0, free) === h0) return free;
    }
    return free;
  }

  private countInUse(): number {
    const owners = this.owners;
    let n = 0;
    for (let i = 0; i < this.count; i++) if (Atomics.load(owners, i) !== 0) n++;
    return n;
  }

  /** Counters (uint32, wrapping) and a scan of the owner words. Allocates: not for hot paths. */
  stats(): PacketPoolStats {
    const h = this.h;
    const inUse = this.countInUse();
    const u = (w: number): number => Atomics.load(h, w) >>> 0;
    return {
      count: this.count,
      bufferSize: this.bufferSize,
      inUse,
      free: this.count - inUse,
      freeHint: Atomics.load(h, H_FREE_HINT),
      allocs: u(H_ALLOCS),
      frees: u(H_FREES),
      exhausted: u(H_EXHAUSTED),
      badFree: u(H_BAD_FREE),
      badTransfer: u(H_BAD_TRANSFER),
      reclaimed: u(H_RECLAIMED),
      rehomed: u(H_REHOMED),
      badArg: u(H_BAD_ARG),
    };
  }
}
