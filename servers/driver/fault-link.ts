/**
 * servers/driver/fault-link: a fault-injecting wrapper around any Link, for each direction on its own:
 * loss, duplication, corruption, delay, jitter / reordering and a rate limit (token bucket). It has no
 * timers and no real randomness: decisions come from seeded PRNGs and time only from poll(nowUs), so a
 * failing run replays exactly from its seed (given the same frames and the same times).
 *
 * ## Call order (per driver loop iteration)
 *   poll(now)      releases what is due (delayed tx frames are sent to the inner link) and returns the
 *                  next deadline: wake up then even if `wait` stays silent. A deadline <= now means
 *                  "frames are ready": call receive() / poll() again without sleeping.
 *   receive(into)  delivers released rx frames first, then frames from the inner link, after faults.
 *   transmit(f)    applies faults to f and sends what passes to the inner link.
 *
 * ## Pipeline of one frame (same for tx and rx)
 *   loss?  -> dropped (counted `lost`)
 *   dup?   -> two copies (counted `duplicated`); each copy then independently:
 *   corrupt? -> one byte XORed with a non-zero mask at a random offset in [corruptMinOffset, len), or at
 *              each of `corruptOffsets` that is < len (counted `corrupted`). Checksums are NOT fixed, so
 *              the receiver detects corruption, unless the link offloads checksums (flagged frames are
 *              then trusted: undetectable corruption, as on a real offloaded NIC with bad memory).
 *   delay  =  delayUs + uniform integer in [0, jitterUs] + (reorderGapUs with probability `reorder`)
 *   shaper -> a token bucket of `rateBytesPerSec` with `burstBytes` (>= maxFrame) holds a frame until
 *              enough tokens have accumulated (counted `shaped`).
 * A copy that needs none of corrupt-on-tx, delay or shaping, while nothing of that direction is queued,
 * goes straight through (tx: the caller's descriptor is forwarded, no copy; rx: it stays in its slot).
 * Otherwise it is copied into the direction's queue (a private arena of `queueFrames` slots of maxFrame
 * bytes, allocated on first use): ordered by (release time, arrival), then FIFO through the shaper. So
 * frames are reordered only by jitter / reorder, and all later frames queue behind a queued one. When
 * the queue is full the copy is dropped (counted `queueFull`).
 *
 * ## Determinism
 *   Each fault kind of each direction draws from its own mulberry32 stream derived from `seed`, and a
 *   stream is drawn only when its fault is enabled, once per frame (loss, dup) or per copy (corrupt,
 *   delay). Enabling corruption therefore does not change which frames are lost. Decisions never depend
 *   on the inner link's state; only the `queueFull` drops can (a full queue because the inner link
 *   pushed back for a long time).
 *
 * ## Backpressure
 *   transmit(): when the inner link takes fewer frames than offered, the decided but unsent frames are
 *   copied into the tx queue (counted `requeued`) and everything offered counts as taken; while queued tx
 *   frames cannot be sent, transmit() takes nothing (returns 0, decides nothing), so the caller holds its
 *   frames. poll() retries the inner link and asks to be called again after `retryUs`.
 *   receive(): a duplicate delivered at once needs a spare buffer from the caller's empty slots; without
 *   one the copy is queued (and, to keep the order, the frames after it too) and delivered by the next
 *   receive().
 */
import {
  ETH_HEADER_BYTES,
  FrameBatch,
  copyBytes,
  newLinkStats,
  type BufferSpace,
  type Link,
  type LinkStats,
  type LinkWait,
} from './link.js';

/** The faults of one direction. Probabilities are in [0, 1]; times in microseconds. */
export interface FaultSpec {
  loss?: number;
  duplicate?: number;
  corrupt?: number;
  /** Flip exactly these byte offsets (those < the frame length) instead of one random offset. */
  corruptOffsets?: readonly number[];
  /** Random corruption hits offsets >= this (e.g. 14 to spare the Ethernet header). Default 0. */
  corruptMinOffset?: number;
  delayUs?: number;
  jitterUs?: number;
  /** Probability that a copy is held back an extra reorderGapUs, so later frames overtake it. */
  reorder?: number;
  reorderGapUs?: number;
  /** Token bucket rate in bytes per second; 0 or absent = unlimited. */
  rateBytesPerSec?: number;
  /** Bucket size in bytes; default and minimum maxFrame. */
  burstBytes?: number;
}

export interface FaultLinkOptions {
  seed: number;
  tx?: FaultSpec;
  rx?: FaultSpec;
  /** Queue slots per direction (each maxFrame bytes, allocated on first use). Default 256. */
  queueFrames?: number;
  /** How soon poll() wants to retry when the inner link pushed back (us). Default 200. */
  retryUs?: number;
  name?: string;
}

/** Counters of one direction. */
export interface FaultCounters {
  /** Frames that entered the pipeline (valid frames offered / received). */
  frames: number;
  lost: number;
  duplicated: number;
  corrupted: number;
  /** Copies given a non-zero delay. */
  delayed: number;
  /** Copies released ahead of a copy that entered the queue before them. */
  reordered: number;
  /** Copies that had to wait for tokens. */
  shaped: number;
  /** Copies dropped because the queue was full. */
  queueFull: number;
  /** tx copies queued because the inner link pushed back. */
  requeued: number;
  /** Copies that left the pipeline (sent to the inner link / delivered to the caller). */
  out: number;
}

function newCounters(): FaultCounters {
  return { frames: 0, lost: 0, duplicated: 0, corrupted: 0, delayed: 0, reordered: 0, shaped: 0, queueFull: 0, requeued: 0, out: 0 };
}

function codeError<E extends Error>(err: E, code: string): E {
  return Object.assign(err, { code });
}

/** mulberry32 with its state in a field (no closure). */
export class Mulberry32 {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

/** The seed of stream `k` of direction `dir` (0 tx, 1 rx). */
function streamSeed(seed: number, dir: number, k: number): number {
  let h = (seed >>> 0) ^ Math.imul(dir * 8 + k + 1, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function prob(name: string, v: number | undefined): number {
  const p = v ?? 0;
  if (!(p >= 0 && p <= 1)) throw codeError(new RangeError(`${name} must be a probability in [0, 1], got ${v}`), 'ERR_OUT_OF_RANGE');
  return p;
}

function nonNeg(name: string, v: number | undefined): number {
  const x = v ?? 0;
  if (!(x >= 0 && Number.isFinite(x))) throw codeError(new RangeError(`${name} must be a finite number >= 0, got ${v}`), 'ERR_OUT_OF_RANGE');
  return x;
}

const align8 = (n: number): number => (n + 7) & ~7;

/** A direction's private queue memory: `slots` buffers of maxFrame bytes (8-byte aligned). */
class Arena implements BufferSpace {
  readonly bytes: Uint8Array;
  readonly stride: number;
  constructor(slots: number, readonly maxFrame: number) {
    this.stride = align8(maxFrame);
    this.bytes = new Uint8Array(this.stride * slots);
  }
  bytesOf(_s: number): Uint8Array {
    return this.bytes;
  }
  offsetOf(s: number): number {
    return s * this.stride;
  }
  capacityOf(_s: number): number {
    return this.maxFrame;
  }
}

/** One direction: its spec, PRNG streams, queue (arena + heap + ready FIFO), shaper and counters. */
class Direction {
  // spec, normalised
  loss = 0;
  dup = 0;
  corrupt = 0;
  corruptOffsets: Int32Array = new Int32Array(0);
  corruptMin = 0;
  delayUs = 0;
  jitterUs = 0;
  reorder = 0;
  reorderGapUs = 0;
  rate = 0;
  burst = 0;

  readonly counters: FaultCounters = newCounters();
  private readonly rLoss: Mulberry32;
  private readonly rDup: Mulberry32;
  private readonly rCorrupt: Mulberry32;
  private readonly rDelay: Mulberry32;

  // the queue
  readonly slots: number;
  readonly maxFrame: number;
  area: Arena | null = null;
  private slotLen: Int32Array;
  private slotFlags: Int32Array;
  private release: Float64Array;
  private seq: Float64Array;
  private freeStack: Int32Array;
  private freeTop: number;
  private heap: Int32Array;
  heapSize = 0;
  private ready: Int32Array;
  private readyHead = 0;
  readySize = 0;
  private nextSeq = 0;
  private releasedSeq = -1;

  // shaper
  private tokens = 0;
  private lastRefill = NaN;

  // the fate of the current copy (set by fate())
  fCorrupt = false;
  fDelay = 0;

  constructor(seed: number, dir: number, slots: number, maxFrame: number) {
    this.rLoss = new Mulberry32(streamSeed(seed, dir, 0));
    this.rDup = new Mulberry32(streamSeed(seed, dir, 1));
    this.rCorrupt = new Mulberry32(streamSeed(seed, dir, 2));
    this.rDelay = new Mulberry32(streamSeed(seed, dir, 3));
    this.slots = slots;
    this.maxFrame = maxFrame;
    this.slotLen = new Int32Array(slots);
    this.slotFlags = new Int32Array(slots);
    this.release = new Float64Array(slots);
    this.seq = new Float64Array(slots);
    this.freeStack = new Int32Array(slots);
    for (let k = 0; k < slots; k++) this.freeStack[k] = slots - 1 - k;
    this.freeTop = slots;
    this.heap = new Int32Array(slots);
    this.ready = new Int32Array(slots);
  }

  configure(spec: FaultSpec): void {
    this.loss = prob('loss', spec.loss);
    this.dup = prob('duplicate', spec.duplicate);
    this.corrupt = prob('corrupt', spec.corrupt);
    this.corruptOffsets = Int32Array.from(spec.corruptOffsets ?? [], (o) => {
      if (!(Number.isInteger(o) && o >= 0)) throw codeError(new RangeError(`corrupt offset must be an integer >= 0, got ${o}`), 'ERR_OUT_OF_RANGE');
      return o;
    });
    this.corruptMin = Math.floor(nonNeg('corruptMinOffset', spec.corruptMinOffset));
    this.delayUs = nonNeg('delayUs', spec.delayUs);
    this.jitterUs = Math.floor(nonNeg('jitterUs', spec.jitterUs));
    this.reorder = prob('reorder', spec.reorder);
    this.reorderGapUs = nonNeg('reorderGapUs', spec.reorderGapUs);
    this.rate = nonNeg('rateBytesPerSec', spec.rateBytesPerSec);
    this.burst = Math.max(this.maxFrame, nonNeg('burstBytes', spec.burstBytes));
    this.tokens = Math.min(this.tokens, this.burst);
    if (Number.isNaN(this.lastRefill)) this.tokens = this.burst;
  }

  get shaping(): boolean {
    return this.rate > 0;
  }

  get queued(): number {
    return this.heapSize + this.readySize;
  }

  /** Loss and duplication of one frame: 0, 1 or 2 copies. */
  copies(): number {
    this.counters.frames++;
    if (this.loss > 0 && this.rLoss.next() < this.loss) {
      this.counters.lost++;
      return 0;
    }
    if (this.dup > 0 && this.rDup.next() < this.dup) {
      this.counters.duplicated++;
      return 2;
    }
    return 1;
  }

  /** Corruption and delay of one copy: sets fCorrupt and fDelay. */
  fate(): void {
    this.fCorrupt = this.corrupt > 0 && this.rCorrupt.next() < this.corrupt;
    let d = this.delayUs;
    if (this.jitterUs > 0) d += Math.floor(this.rDelay.next() * (this.jitterUs + 1));
    if (this.reorder > 0 && this.rDelay.next() < this.reorder) d += this.reorderGapUs;
    this.fDelay = d;
  }

  /** Whether the copy just decided by fate() may bypass the queue (`corruptForcesCopy` on tx). */
  direct(corruptForcesCopy: boolean): boolean {
    return this.fDelay === 0 && !this.shaping && this.heapSize === 0 && this.readySize === 0 && !(corruptForcesCopy && this.fCorrupt);
  }

  /** Apply corruption to bytes[pos, pos + len). */
  corruptBytes(bytes: Uint8Array, pos: number, len: number): void {
    const offs = this.corruptOffsets;
    let hit = false;
    if (offs.length > 0) {
      for (let k = 0; k < offs.length; k++) {
        const o = offs[k]!;
        if (o < len) {
          bytes[pos + o]! ^= 1 + Math.floor(this.rCorrupt.next() * 255);
          hit = true;
        }
      }
    } else if (len > this.corruptMin) {
      const o = this.corruptMin + Math.floor(this.rCorrupt.next() * (len - this.corruptMin));
      bytes[pos + o]! ^= 1 + Math.floor(this.rCorrupt.next() * 255);
      hit = true;
    }
    if (hit) this.counters.corrupted++;
  }

  private ensureArena(): Arena {
    return (this.area ??= new Arena(this.slots, this.maxFrame));
  }

  /**
   * Copy a frame into the queue, to be released at `releaseUs`. Corrupts the copy if `corrupt`.
   * Returns false (counted queueFull) when the queue is full.
   */
  enqueue(src: Uint8Array, pos: number, len: number, flags: number, releaseUs: number, corrupt: boolean): boolean {
    if (this.freeTop === 0) {
      this.counters.queueFull++;
      return false;
    }
    const area = this.ensureArena();
    const s = this.freeStack[--this.freeTop]!;
    const dst = s * area.stride;
    copyBytes(src, pos, area.bytes, dst, len);
    if (corrupt) this.corruptBytes(area.bytes, dst, len);
    this.slotLen[s] = len;
    this.slotFlags[s] = flags;
    this.release[s] = releaseUs;
    this.seq[s] = this.nextSeq++;
    this.heapPush(s);
    return true;
  }

  private less(a: number, b: number): boolean {
    const ra = this.release[a]!;
    const rb = this.release[b]!;
    return ra < rb || (ra === rb && this.seq[a]! < this.seq[b]!);
  }

  private heapPush(s: number): void {
    const h = this.heap;
    let i = this.heapSize++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(s, h[parent]!)) break;
      h[i] = h[parent]!;
      i = parent;
    }
    h[i] = s;
  }

  private heapPop(): number {
    const h = this.heap;
    const top = h[0]!;
    const last = h[--this.heapSize]!;
    let i = 0;
    const n = this.heapSize;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && this.less(h[c + 1]!, h[c]!)) c++;
      if (!this.less(h[c]!, last)) break;
      h[i] = h[c]!;
      i = c;
    }
    if (n > 0) h[i] = last;
    return top;
  }

  /** Move every copy whose release time has come from the heap to the ready FIFO. */
  releaseDue(now: number): void {
    while (this.heapSize > 0 && this.release[this.heap[0]!]! <= now) {
      const s = this.heapPop();
      const q = this.seq[s]!;
      if (q < this.releasedSeq) this.counters.reordered++;
      else this.releasedSeq = q;
      this.ready[(this.readyHead + this.readySize) % this.slots] = s;
      this.readySize++;
    }
  }

  private refill(now: number): void {
    if (Number.isNaN(this.lastRefill)) {
      this.lastRefill = now;
      this.tokens = this.burst;
      return;
    }
    if (now > this.lastRefill) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.lastRefill) * this.rate) / 1e6);
      this.lastRefill = now;
    }
  }

  /** The slot at the head of the ready FIFO if the shaper lets it go now (takes its tokens), else -1. */
  takeReady(now: number): number {
    if (this.readySize === 0) return -1;
    const s = this.ready[this.readyHead]!;
    if (this.shaping) {
      this.refill(now);
      const len = this.slotLen[s]!;
      if (this.tokens < len) {
        if (this.release[s] !== -1) {
          this.release[s] = -1; // marks "counted as shaped"
          this.counters.shaped++;
        }
        return -1;
      }
      this.tokens -= len;
    }
    this.readyHead = (this.readyHead + 1) % this.slots;
    this.readySize--;
    return s;
  }

  /** Put back the slot takeReady() just returned (the inner link refused it), refunding its tokens. */
  untake(s: number): void {
    this.readyHead = (this.readyHead - 1 + this.slots) % this.slots;
    this.readySize++;
    this.ready[this.readyHead] = s;
    if (this.shaping) this.tokens += this.slotLen[s]!;
  }

  freeSlot(s: number): void {
    this.freeStack[this.freeTop++] = s;
  }

  lenOf(s: number): number {
    return this.slotLen[s]!;
  }
  flagsOf(s: number): number {
    return this.slotFlags[s]!;
  }

  /** When this direction next needs attention (us), ignoring inner-link backpressure. */
  deadline(now: number): number {
    let d = Infinity;
    if (this.readySize > 0) {
      if (!this.shaping) return now;
      this.refill(now);
      const need = this.slotLen[this.ready[this.readyHead]!]! - this.tokens;
      d = need <= 0 ? now : this.lastRefill + Math.ceil((need * 1e6) / this.rate);
    }
    if (this.heapSize > 0) d = Math.min(d, this.release[this.heap[0]!]!);
    return d;
  }
}

export class FaultLink implements Link {
  readonly name: string;
  readonly inner: Link;
  readonly mtu: number;
  readonly maxFrame: number;
  readonly checksumOffload: boolean;
  readonly mac: Uint8Array;
  readonly wait: LinkWait;
  /** What the caller sees: frames taken by transmit, frames delivered by receive. */
  readonly stats: LinkStats = newLinkStats();
  private readonly tx: Direction;
  private readonly rx: Direction;
  private readonly retryUs: number;
  private now = 0;
  private txStuck = false;
  private closed = false;
  /** Descriptors forwarded unchanged on tx (over the caller's area; rebound when it changes). */
  private direct: FrameBatch | null = null;
  /** Descriptors of queued tx copies being sent (over the tx arena). */
  private txOut: FrameBatch | null = null;
  /** rx scratch: descriptors of the slots [m, capacity) of the batch being processed. */
  private sBuf = new Int32Array(0);
  private sOff = new Int32Array(0);
  private sLen = new Int32Array(0);
  private sFlags = new Int32Array(0);

  constructor(inner: Link, opts: FaultLinkOptions) {
    if (!opts || !Number.isInteger(opts.seed)) {
      throw codeError(new TypeError('FaultLink needs an integer seed'), 'ERR_INVALID_ARG_TYPE');
    }
    const slots = opts.queueFrames ?? 256;
    if (!Number.isInteger(slots) || slots < 1 || slots > 1 << 16) {
      throw codeError(new RangeError(`queueFrames must be in [1, 65536], got ${slots}`), 'ERR_OUT_OF_RANGE');
    }
    this.inner = inner;
    this.name = opts.name ?? `fault(${inner.name})`;
    this.mtu = inner.mtu;
    this.maxFrame = inner.maxFrame;
    this.checksumOffload = inner.checksumOffload;
    this.mac = inner.mac;
    this.wait = inner.wait;
    this.retryUs = nonNeg('retryUs', opts.retryUs ?? 200) || 1;
    this.tx = new Direction(opts.seed, 0, slots, inner.maxFrame);
    this.rx = new Direction(opts.seed, 1, slots, inner.maxFrame);
    this.tx.configure(opts.tx ?? {});
    this.rx.configure(opts.rx ?? {});
  }

  /** Change the faults of one direction (the PRNG streams and queued frames carry on). */
  configure(dir: 'tx' | 'rx', spec: FaultSpec): void {
    (dir === 'tx' ? this.tx : this.rx).configure(spec);
  }

  /** Counters per fault kind, per direction (live objects). */
  get faults(): { readonly tx: FaultCounters; readonly rx: FaultCounters } {
    return { tx: this.tx.counters, rx: this.rx.counters };
  }

  /** Copies waiting in the queues. */
  get queued(): { tx: number; rx: number } {
    return { tx: this.tx.queued, rx: this.rx.queued };
  }

  get rxReady(): boolean {
    if (this.closed) return false;
    return this.rx.deadline(this.now) <= this.now || this.inner.rxReady;
  }

  poll(nowUs: number): number {
    this.now = nowUs;
    const innerDeadline = this.inner.poll(nowUs);
    if (this.closed) return Infinity;
    this.drainTx();
    this.rx.releaseDue(nowUs);
    let d = Math.min(innerDeadline, this.rx.deadline(nowUs));
    d = Math.min(d, this.txStuck ? nowUs + this.retryUs : this.tx.deadline(nowUs));
    return d;
  }

  // ---- transmit ----

  /** Send released tx copies to the inner link; returns false if some stay stuck behind backpressure. */
  private drainTx(): boolean {
    const d = this.tx;
    d.releaseDue(this.now);
    this.txStuck = false;
    if (d.readySize === 0) return true;
    const area = d.area!;
    const out = (this.txOut ??= new FrameBatch(area, d.slots));
    for (;;) {
      out.count = 0;
      for (let s = d.takeReady(this.now); s >= 0; s = out.count < out.capacity ? d.takeReady(this.now) : -1) {
        out.push(s, 0, d.lenOf(s), d.flagsOf(s));
      }
      if (out.count === 0) return true; // shaper holds the rest (or nothing left)
      const k = this.inner.transmit(out);
      for (let j = 0; j < k; j++) d.freeSlot(out.buf[j]!);
      d.counters.out += k;
      if (k < out.count) {
        for (let j = out.count - 1; j >= k; j--) d.untake(out.buf[j]!);
        this.txStuck = true;
        return false;
      }
    }
  }

  private directBatch(frames: FrameBatch): FrameBatch {
    const b = this.direct;
    if (b && b.space === frames.space && b.capacity >= 2 * frames.capacity) return b;
    this.direct = new FrameBatch(frames.space, 2 * frames.capacity);
    return this.direct;
  }

  /** Send the forwarded descriptors; queue (requeued) whatever the inner link refuses. */
  private flushDirect(b: FrameBatch): void {
    if (b.count === 0) return;
    const d = this.tx;
    const k = this.inner.transmit(b);
    d.counters.out += k;
    for (let j = k; j < b.count; j++) {
      if (d.enqueue(b.bytesAt(j), b.pos(j), b.len[j]!, b.flags[j]!, this.now, false)) d.counters.requeued++;
    }
    b.count = 0;
  }

  transmit(frames: FrameBatch, start = 0): number {
    if (this.closed) return 0;
    if (!this.drainTx()) {
      this.stats.txBackpressure++;
      return 0;
    }
    const d = this.tx;
    const b = this.directBatch(frames);
    b.count = 0;
    const now = this.now;
    const st = this.stats;
    for (let i = start; i < frames.count; i++) {
      const len = frames.len[i]!;
      if (len < ETH_HEADER_BYTES || len > this.maxFrame) {
        st.txInvalid++;
        continue;
      }
      st.txFrames++;
      st.txBytes += len;
      const n = d.copies();
      for (let c = 0; c < n; c++) {
        d.fate();
        if (d.fDelay > 0) d.counters.delayed++;
        if (d.direct(true)) {
          b.push(frames.buf[i]!, frames.off[i]!, len, frames.flags[i]!);
        } else {
          this.flushDirect(b);
          d.enqueue(frames.bytesAt(i), frames.pos(i), len, frames.flags[i]!, now + d.fDelay, d.fCorrupt);
        }
      }
    }
    this.flushDirect(b);
    this.drainTx();
    return frames.count - start;
  }

  // ---- receive ----

  private scratch(n: number): void {
    if (this.sBuf.length >= n) return;
    this.sBuf = new Int32Array(n);
    this.sOff = new Int32Array(n);
    this.sLen = new Int32Array(n);
    this.sFlags = new Int32Array(n);
  }

  /** Copy released rx copies into empty slots of `into`. */
  private deliverQueued(into: FrameBatch): void {
    const d = this.rx;
    d.releaseDue(this.now);
    while (into.count < into.capacity && d.readySize > 0) {
      const i = into.count;
      const s = d.takeReady(this.now);
      if (s < 0) return;
      const len = d.lenOf(s);
      if (!into.fit(i, len)) {
        if (!into.hasBuffer(i)) {
          d.untake(s); // only holes left: it waits in the queue
          return;
        }
        this.stats.rxTooBig++;
      } else {
        const area = d.area!;
        copyBytes(area.bytes, s * area.stride, into.bytesAt(i), into.pos(i), len);
        into.len[i] = len;
        into.flags[i] = d.flagsOf(s);
        into.count = i + 1;
        d.counters.out++;
      }
      d.freeSlot(s);
    }
  }

  receive(into: FrameBatch): number {
    if (this.closed) return 0;
    const first = into.count;
    this.deliverQueued(into);
    const m = into.count;
    if (m < into.capacity && this.inner.receive(into) > 0) this.applyRx(into, m);
    const n = into.count - first;
    this.stats.rxFrames += n;
    for (let i = first; i < into.count; i++) this.stats.rxBytes += into.len[i]!;
    return n;
  }

  /**
   * Faults on the frames the inner link appended at [m, count). The slots [m, capacity) are rewritten:
   * surviving direct copies in order from m, then every buffer left over (lost or queued frames, the
   * untouched empty slots, minus spares used for duplicates) as empty slots.
   */
  private applyRx(into: FrameBatch, m: number): void {
    const d = this.rx;
    const cap = into.capacity;
    const total = cap - m;
    const got = into.count - m;
    this.scratch(total);
    const sBuf = this.sBuf, sOff = this.sOff, sLen = this.sLen, sFlags = this.sFlags;
    for (let k = 0; k < total; k++) {
      sBuf[k] = into.buf[m + k]!;
      sOff[k] = into.off[m + k]!;
      sLen[k] = into.len[m + k]!;
      sFlags[k] = into.flags[m + k]!;
    }
    // Spares for direct duplicates: the untouched empty slots, a stack at scratch [got, spareTop).
    // Buffers freed on the way (lost or queued frames) go to the tail of the batch, from cap down.
    // Invariant: outputs [m, w) + spares left + freed [tail, cap) = the cap - m buffers we started with.
    let spareTop = total; // spares are sBuf[got .. spareTop)
    let w = m; // next output slot
    let tail = cap; // freed buffers fill slots [tail, cap) from the end
    const sp = into.space;
    const now = this.now;
    for (let k = 0; k < got; k++) {
      const buf = sBuf[k]!, off = sOff[k]!, len = sLen[k]!, fl = sFlags[k]!;
      const bytes = sp.bytesOf(buf);
      const pos = sp.offsetOf(buf) + off;
      const n = d.copies();
      if (n === 0) {
        into.set(--tail, buf, off, 0, 0);
        continue;
      }
      d.fate();
      const c0Corrupt = d.fCorrupt;
      const c0Delay = d.fDelay;
      const c0Direct = d.direct(false);
      if (c0Delay > 0) d.counters.delayed++;
      let c1Corrupt = false;
      let c1Delay = 0;
      let c1Direct = false;
      if (n === 2) {
        d.fate();
        c1Corrupt = d.fCorrupt;
        c1Delay = d.fDelay;
        if (c1Delay > 0) d.counters.delayed++;
        c1Direct = c0Direct && d.direct(false);
      }
      // The second copy first, from the pristine bytes.
      let c1Slot = -1; // scratch index of the spare holding a direct second copy
      if (n === 2) {
        const spare = spareTop > got ? sBuf[spareTop - 1]! : -1;
        if (c1Direct && spare >= 0 && sp.capacityOf(spare) - sOff[spareTop - 1]! >= len) {
          c1Slot = --spareTop;
          const b1 = sp.bytesOf(sBuf[c1Slot]!);
          const p1 = sp.offsetOf(sBuf[c1Slot]!) + sOff[c1Slot]!;
          copyBytes(bytes, pos, b1, p1, len);
          if (c1Corrupt) d.corruptBytes(b1, p1, len);
        } else {
          // No spare (or a delayed copy): through the queue, delivered by a later receive().
          d.enqueue(bytes, pos, len, fl, now + c1Delay, c1Corrupt);
        }
      }
      if (c0Direct) {
        if (c0Corrupt) d.corruptBytes(bytes, pos, len);
        into.set(w++, buf, off, len, fl);
        d.counters.out++;
      } else {
        d.enqueue(bytes, pos, len, fl, now + c0Delay, c0Corrupt);
        into.set(--tail, buf, off, 0, 0);
      }
      if (c1Slot >= 0) {
        into.set(w++, sBuf[c1Slot]!, sOff[c1Slot]!, len, fl);
        d.counters.out++;
      }
    }
    // Unused spares become empty slots between the output and the tail.
    for (let k = got; k < spareTop; k++) into.set(w + (k - got), sBuf[k]!, sOff[k]!, 0, 0);
    into.count = w;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.inner.close();
  }
}
