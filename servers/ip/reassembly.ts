/**
 * IPv4 reassembly (RFC 791 §3.2, RFC 815 "holes" kept as a sorted extent list), with the defences
 * of RFC 1858 (tiny fragments) and RFC 5722's rule in the form Linux applies to IPv4: overlapping
 * bytes that *differ* from bytes already received kill the whole datagram. Pure: no I/O, no clock
 * reads, no timers; fixed memory.
 *
 * Call order:
 *   1. The input path validates the IPv4 header (`Ipv4View.reset`, checksum, addresses) and, for a
 *      fragment (`view.isFragment`), calls `input(view, nowUs)`. The fragment's bytes are copied:
 *      the caller may free its buffer whatever the answer.
 *        'held'     stored (or an identical duplicate); wait for more.
 *        'complete' a datagram is ready: `readyLen` bytes; call `take(out, off)` before the next
 *                   `input` (otherwise it is discarded, 'drop:not-taken').
 *        'dropped'  refused; the reason is counted and kept in `lastDrop`.
 *   2. `take(out, off)` writes the datagram (fragment zero's header, with its options, total length
 *      set, MF and offset cleared, checksum recomputed; then the payload) and frees its memory.
 *   3. Timers: while `nextDeadline() <= nowUs`, call `expire(nowUs, quoteBuf, quoteOff)`:
 *        -1  nothing (more) expired;
 *         0  a datagram expired with no ICMP due (fragment zero never came, or it was already dead);
 *        n>0 a datagram with fragment zero expired: `quoteBuf[quoteOff..+n)` holds fragment zero's
 *            header and leading payload, to quote in an ICMP time exceeded, code 1 (reassembly),
 *            per RFC 792 / RFC 1122 §3.3.2 (sent only when fragment zero was received). Room needed:
 *            `REASM_QUOTE_MAX` bytes.
 *   4. `clear()` forgets everything (e.g. on restart); `inProgress` and `chunksInUse` go to 0.
 *
 * Acceptance rules for a fragment (offset `o`, payload length `n`, end `e = o + n`):
 *  - not MF and o == 0: not a fragment ('drop:not-fragment').
 *  - MF and n not a multiple of 8 ('drop:misaligned'); MF and n < `minFragmentPayload` ('drop:tiny').
 *  - RFC 1858: fragment zero with MF must carry the whole minimal transport header (TCP 20, else 8),
 *    and a TCP fragment may not start at offset 8 ('drop:tiny').
 *  - e beyond 65535 minus the header ('drop:too-big', the ping of death).
 *  - a last fragment (not MF) whose end differs from a previous last fragment's end or lies below
 *    bytes already received, or a fragment past a known end ('drop:inconsistent-length').
 *  - bytes overlapping received bytes must be identical ('overlap-identical' counted, accepted;
 *    otherwise 'drop:overlap-conflict'); a fragment wholly inside received bytes is a 'duplicate'.
 *  - RFC 3168 §5.3: fragments mixing Not-ECT with ECT/CE ('drop:ecn-mismatch'); any CE gives CE.
 * A datagram killed by a rule is kept as a dead key until its timeout, so its remaining fragments are
 * dropped too ('drop:poisoned'), and its memory is freed at once.
 *
 * Limits: `maxDatagrams` in progress (a new one evicts a dead one, else the oldest: 'evicted');
 * `maxBytes` of payload memory, in 2 KiB chunks mapped by datagram offset (a fragment that does not
 * fit evicts the oldest other datagrams; if it still does not fit, its datagram dies: 'drop:memory');
 * `maxExtents` disjoint received ranges per datagram ('drop:too-many-holes'); a datagram lives
 * `timeoutUs` (30 s, as Linux) from its first fragment.
 *
 * Deterministic: slot choice and tie-breaks are by creation order and slot index.
 */
import { needRoom, writeU16 } from '../wire/bytes.js';
import { checksum } from '../wire/checksum.js';
import { IPPROTO_TCP, IPV4_HEADER_LEN, IPV4_MAX_HEADER_LEN, IPV4_MAX_TOTAL_LEN, type Ipv4View } from '../wire/ipv4.js';
import { ICMP_HEADER_LEN } from '../wire/icmp.js';
import { ReasonCounters, counterSlots } from './counters.js';

export const REASM_CHUNK = 2048;
const CHUNK_SHIFT = 11;
const CHUNK_MASK = REASM_CHUNK - 1;
const CHUNKS_PER_DGRAM = 65536 / REASM_CHUNK;
/** Largest quote `expire` writes (keeps the ICMP error within 576 bytes, RFC 1812 §4.3.2.3). */
export const REASM_QUOTE_MAX = 576 - IPV4_HEADER_LEN - ICMP_HEADER_LEN;

const FREE = 0;
const ACTIVE = 1;
const DEAD = 2;
const READY = 3;

export const REASM_COUNTERS = [
  'fragments',
  'datagrams',
  'reassembled',
  'duplicate',
  'overlap-identical',
  'timeout',
  'time-exceeded',
  'evicted',
  'drop:not-fragment',
  'drop:misaligned',
  'drop:tiny',
  'drop:too-big',
  'drop:inconsistent-length',
  'drop:overlap-conflict',
  'drop:too-many-holes',
  'drop:memory',
  'drop:ecn-mismatch',
  'drop:poisoned',
  'drop:not-taken',
] as const;
export type ReasmCounter = (typeof REASM_COUNTERS)[number];
const C = counterSlots(REASM_COUNTERS);

export type ReassemblyResult = 'held' | 'complete' | 'dropped';

export interface ReassemblerOptions {
  /** Datagrams in progress. Default 64. */
  maxDatagrams?: number;
  /** Payload memory in bytes (rounded up to 2 KiB chunks). Default 1 MiB. */
  maxBytes?: number;
  /** Lifetime of a datagram in progress. Default 30 s. */
  timeoutUs?: number;
  /** Disjoint received ranges per datagram. Default 32. */
  maxExtents?: number;
  /** Smallest payload of a non-last fragment (at least 8). Default 8. */
  minFragmentPayload?: number;
}

export class Reassembler {
  readonly counters = new ReasonCounters(REASM_COUNTERS);
  readonly maxDatagrams: number;
  readonly maxChunks: number;
  readonly timeoutUs: number;
  readonly maxExtents: number;
  readonly minFragmentPayload: number;
  /** Reason of the last 'dropped' answer. */
  lastDrop: ReasmCounter | null = null;

  private readonly state: Uint8Array;
  private readonly src: Uint32Array;
  private readonly dst: Uint32Array;
  private readonly proto: Uint8Array;
  private readonly ident: Uint16Array;
  private readonly order: Float64Array;
  private readonly deadline: Float64Array;
  private readonly total: Int32Array;
  private readonly hdrLen: Uint8Array;
  private readonly hdr: Uint8Array;
  private readonly ecn: Uint8Array;
  private readonly extN: Int32Array;
  private readonly extS: Int32Array;
  private readonly extE: Int32Array;
  private readonly nChunks: Int32Array;
  private readonly chunkMap: Int32Array;
  private readonly arena: Uint8Array;
  private readonly chunkFree: Int32Array;
  private chunkFreeTop: number;
  private orderNext = 0;
  private ready = -1;
  private live = 0;

  constructor(options: ReassemblerOptions = {}) {
    const n = (this.maxDatagrams = Math.max(1, options.maxDatagrams ?? 64));
    const chunks = (this.maxChunks = Math.max(1, Math.ceil((options.maxBytes ?? 1 << 20) / REASM_CHUNK)));
    this.timeoutUs = options.timeoutUs ?? 30_000_000;
    const me = (this.maxExtents = Math.max(1, options.maxExtents ?? 32));
    this.minFragmentPayload = Math.max(8, options.minFragmentPayload ?? 8);
    this.state = new Uint8Array(n);
    this.src = new Uint32Array(n);
    this.dst = new Uint32Array(n);
    this.proto = new Uint8Array(n);
    this.ident = new Uint16Array(n);
    this.order = new Float64Array(n);
    this.deadline = new Float64Array(n).fill(Infinity);
    this.total = new Int32Array(n).fill(-1);
    this.hdrLen = new Uint8Array(n);
    this.hdr = new Uint8Array(n * IPV4_MAX_HEADER_LEN);
    this.ecn = new Uint8Array(n);
    this.extN = new Int32Array(n);
    this.extS = new Int32Array(n * me);
    this.extE = new Int32Array(n * me);
    this.nChunks = new Int32Array(n);
    this.chunkMap = new Int32Array(n * CHUNKS_PER_DGRAM).fill(-1);
    this.arena = new Uint8Array(chunks * REASM_CHUNK);
    this.chunkFree = new Int32Array(chunks);
    for (let i = 0; i < chunks; i++) this.chunkFree[i] = chunks - 1 - i;
    this.chunkFreeTop = chunks;
  }

  /** Datagrams in progress or dead-awaiting-timeout or ready (0 when idle: leak check). */
  get inProgress(): number {
    return this.live;
  }

  get chunksInUse(): number {
    return this.maxChunks - this.chunkFreeTop;
  }

  /** Length of the datagram `take` would write (0 if none is ready). */
  get readyLen(): number {
    const s = this.ready;
    return s < 0 ? 0 : this.hdrLen[s] + this.total[s];
  }

  /** Store one fragment (see the header). `view` must have passed `Ipv4View.reset`. */
  input(view: Ipv4View, nowUs: number): ReassemblyResult {
    const v = this.counters.values;
    v[C.fragments]++;
    if (this.ready >= 0) {
      v[C['drop:not-taken']]++;
      this.free(this.ready);
      this.ready = -1;
    }
    const b = view.bytes;
    const o = view.fragOffset;
    const n = view.payloadLen;
    const e = o + n;
    const mf = view.moreFrags;
    const proto = view.protocol;
    const hl = view.headerLen;
    if (!mf && o === 0) return this.refuse('drop:not-fragment');
    if (mf && (n & 7) !== 0) return this.refuse('drop:misaligned');
    if (mf && n < this.minFragmentPayload) return this.refuse('drop:tiny');
    if (o === 0 && n < (proto === IPPROTO_TCP ? 20 : 8)) return this.refuse('drop:tiny');
    if (proto === IPPROTO_TCP && o === 8) return this.refuse('drop:tiny');

    const src = view.src;
    const dst = view.dst;
    const id = view.ident;
    let s = this.find(src, dst, proto, id);
    if (s >= 0 && this.state[s] === DEAD) return this.refuse('drop:poisoned');
    if (e > IPV4_MAX_TOTAL_LEN - IPV4_HEADER_LEN || (o === 0 && hl + e > IPV4_MAX_TOTAL_LEN)) {
      return s >= 0 ? this.kill(s, 'drop:too-big') : this.refuse('drop:too-big');
    }
    if (s < 0) {
      s = this.newSlot(nowUs);
      this.src[s] = src;
      this.dst[s] = dst;
      this.proto[s] = proto;
      this.ident[s] = id;
    }

    // Length consistency (RFC 791: the last fragment fixes the total; nothing may lie beyond it).
    const base = s * this.maxExtents;
    const cnt = this.extN[s];
    const maxEnd = cnt > 0 ? this.extE[base + cnt - 1] : 0;
    const known = this.total[s];
    if (!mf) {
      if ((known >= 0 && known !== e) || maxEnd > e) return this.kill(s, 'drop:inconsistent-length');
    } else if (known >= 0 && e > known) {
      return this.kill(s, 'drop:inconsistent-length');
    }
    const hlAfter = o === 0 ? hl : this.hdrLen[s];
    if (hlAfter > 0 && hlAfter + Math.max(maxEnd, e, known) > IPV4_MAX_TOTAL_LEN) return this.kill(s, 'drop:too-big');

    // Overlaps must repeat the bytes already received.
    const pOff = view.payloadOff;
    const overlap = this.compare(s, b, pOff, o, e);
    if (overlap < 0) return this.kill(s, 'drop:overlap-conflict');
    if (overlap === n && n > 0 && (mf || known === e)) {
      v[C.duplicate]++;
      return 'held';
    }
    if (overlap > 0) v[C['overlap-identical']]++;

    // Room: extents after the merge, and chunks for the new bytes.
    if (n > 0 && this.extentsAfter(s, o, e) > this.maxExtents) return this.kill(s, 'drop:too-many-holes');
    if (n > 0 && !this.reserve(s, o, e)) return this.kill(s, 'drop:memory');

    // Commit.
    if (n > 0) {
      this.write(s, b, pOff, o, e);
      this.addExtent(s, o, e);
    }
    if (!mf) this.total[s] = e;
    if (o === 0 && this.hdrLen[s] === 0) {
      this.hdrLen[s] = hl;
      const h = s * IPV4_MAX_HEADER_LEN;
      for (let i = 0; i < hl; i++) this.hdr[h + i] = b[view.off + i];
    }
    this.ecn[s] |= 1 << view.ecn;

    // Complete: fragment zero's header, a known end, and one extent covering [0, end).
    const t = this.total[s];
    if (t < 0 || this.hdrLen[s] === 0) return 'held';
    if (t > 0 && (this.extN[s] !== 1 || this.extS[base] !== 0 || this.extE[base] !== t)) return 'held';
    const m = this.ecn[s];
    if ((m & 1) !== 0 && (m & 0xe) !== 0) return this.kill(s, 'drop:ecn-mismatch');
    v[C.reassembled]++;
    this.state[s] = READY;
    this.ready = s;
    return 'complete';
  }

  /**
   * Write the ready datagram at `out[off..]` and free it; returns its length (0 if none is ready).
   * Throws RangeError if `out` is too small (`readyLen` says how much is needed).
   */
  take(out: Uint8Array, off: number): number {
    const s = this.ready;
    if (s < 0) return 0;
    const hl = this.hdrLen[s];
    const t = this.total[s];
    const len = hl + t;
    needRoom(out, off, len, 'reassembly take');
    const h = s * IPV4_MAX_HEADER_LEN;
    for (let i = 0; i < hl; i++) out[off + i] = this.hdr[h + i];
    writeU16(out, off + 2, len);
    out[off + 6] &= 0x40; // keep DF, clear MF and the offset
    out[off + 7] = 0;
    if ((this.ecn[s] & 8) !== 0) out[off + 1] |= 3; // CE
    writeU16(out, off + 10, 0);
    writeU16(out, off + 10, checksum(out, off, hl));
    this.read(s, 0, t, out, off + hl);
    this.free(s);
    this.ready = -1;
    return len;
  }

  /** Discard the ready datagram, if any. */
  discardReady(): void {
    if (this.ready >= 0) {
      this.free(this.ready);
      this.ready = -1;
    }
  }

  /** Earliest timeout (Infinity when nothing is in progress). */
  nextDeadline(): number {
    if (this.live === 0) return Infinity; // the host loop asks before every park: no scan when idle
    let d = Infinity;
    for (let s = 0; s < this.maxDatagrams; s++) {
      const st = this.state[s];
      if ((st === ACTIVE || st === DEAD) && this.deadline[s] < d) d = this.deadline[s];
    }
    return d;
  }

  /** Expire one datagram whose timeout passed (see the header for the answers). */
  expire(nowUs: number, quote: Uint8Array, quoteOff: number): number {
    if (this.live === 0) return -1;
    let s = -1;
    for (let i = 0; i < this.maxDatagrams; i++) {
      const st = this.state[i];
      if ((st === ACTIVE || st === DEAD) && this.deadline[i] <= nowUs && (s < 0 || this.deadline[i] < this.deadline[s])) {
        s = i;
      }
    }
    if (s < 0) return -1;
    if (this.state[s] === DEAD) {
      this.free(s);
      return 0;
    }
    this.counters.values[C.timeout]++;
    const hl = this.hdrLen[s];
    let n = 0;
    if (hl > 0) {
      const base = s * this.maxExtents;
      const head = this.extN[s] > 0 && this.extS[base] === 0 ? this.extE[base] : 0;
      const data = Math.min(head, REASM_QUOTE_MAX - hl);
      needRoom(quote, quoteOff, hl + data, 'reassembly quote');
      const h = s * IPV4_MAX_HEADER_LEN;
      for (let i = 0; i < hl; i++) quote[quoteOff + i] = this.hdr[h + i];
      this.read(s, 0, data, quote, quoteOff + hl);
      n = hl + data;
      this.counters.values[C['time-exceeded']]++;
    }
    this.free(s);
    return n;
  }

  /** Forget every datagram. */
  clear(): void {
    for (let s = 0; s < this.maxDatagrams; s++) if (this.state[s] !== FREE) this.free(s);
    this.ready = -1;
  }

  // --- internals -------------------------------------------------------------------------------

  private refuse(reason: ReasmCounter): 'dropped' {
    this.counters.values[C[reason]]++;
    this.lastDrop = reason;
    return 'dropped';
  }

  /** Poison slot s: memory freed, key kept until its timeout. */
  private kill(s: number, reason: ReasmCounter): 'dropped' {
    this.releaseChunks(s);
    this.extN[s] = 0;
    this.state[s] = DEAD;
    return this.refuse(reason);
  }

  private find(src: number, dst: number, proto: number, id: number): number {
    for (let s = 0; s < this.maxDatagrams; s++) {
      const st = this.state[s];
      if (
        (st === ACTIVE || st === DEAD) &&
        this.ident[s] === id &&
        this.src[s] === src &&
        this.dst[s] === dst &&
        this.proto[s] === proto
      ) {
        return s;
      }
    }
    return -1;
  }

  private newSlot(nowUs: number): number {
    let s = -1;
    for (let i = 0; i < this.maxDatagrams; i++) {
      if (this.state[i] === FREE) {
        s = i;
        break;
      }
    }
    if (s < 0) {
      // Full: replace the oldest dead key, else evict the oldest datagram in progress.
      s = this.oldest(DEAD, -1);
      if (s < 0) {
        s = this.oldest(ACTIVE, -1);
        this.counters.values[C.evicted]++;
      }
      this.free(s);
    }
    this.state[s] = ACTIVE;
    this.live++;
    this.order[s] = this.orderNext++;
    this.deadline[s] = nowUs + this.timeoutUs;
    this.total[s] = -1;
    this.hdrLen[s] = 0;
    this.ecn[s] = 0;
    this.extN[s] = 0;
    this.counters.values[C.datagrams]++;
    return s;
  }

  private oldest(state: number, except: number): number {
    let best = -1;
    for (let i = 0; i < this.maxDatagrams; i++) {
      if (i !== except && this.state[i] === state && (best < 0 || this.order[i] < this.order[best])) best = i;
    }
    return best;
  }

  private free(s: number): void {
    if (this.state[s] === FREE) return;
    this.releaseChunks(s);
    this.state[s] = FREE;
    this.deadline[s] = Infinity;
    this.extN[s] = 0;
    this.live--;
  }

  private releaseChunks(s: number): void {
    if (this.nChunks[s] === 0) return;
    const m = s * CHUNKS_PER_DGRAM;
    for (let i = 0; i < CHUNKS_PER_DGRAM; i++) {
      const c = this.chunkMap[m + i];
      if (c >= 0) {
        this.chunkFree[this.chunkFreeTop++] = c;
        this.chunkMap[m + i] = -1;
      }
    }
    this.nChunks[s] = 0;
  }

  /**
   * Compare the bytes of [o, e) (at b[p..]) with what slot s already holds there. Returns the number
   * of overlapping bytes, or -1 if any of them differs.
   */
  private compare(s: number, b: Uint8Array, p: number, o: number, e: number): number {
    const base = s * this.maxExtents;
    const m = s * CHUNKS_PER_DGRAM;
    let same = 0;
    for (let k = 0; k < this.extN[s]; k++) {
      const lo = Math.max(o, this.extS[base + k]);
      const hi = Math.min(e, this.extE[base + k]);
      for (let x = lo; x < hi; x++) {
        if (this.arena[this.chunkMap[m + (x >>> CHUNK_SHIFT)] * REASM_CHUNK + (x & CHUNK_MASK)] !== b[p + x - o]) {
          return -1;
        }
      }
      if (hi > lo) same += hi - lo;
    }
    return same;
  }

  /** Extent count after adding [o, e) (merging touching and overlapping ranges). */
  private extentsAfter(s: number, o: number, e: number): number {
    const base = s * this.maxExtents;
    const cnt = this.extN[s];
    let absorbed = 0;
    for (let k = 0; k < cnt; k++) if (this.extS[base + k] <= e && this.extE[base + k] >= o) absorbed++;
    return cnt - absorbed + 1;
  }

  private addExtent(s: number, o: number, e: number): void {
    const base = s * this.maxExtents;
    const cnt = this.extN[s];
    let i = 0;
    while (i < cnt && this.extE[base + i] < o) i++;
    let j = i;
    let lo = o;
    let hi = e;
    while (j < cnt && this.extS[base + j] <= e) {
      if (this.extS[base + j] < lo) lo = this.extS[base + j];
      if (this.extE[base + j] > hi) hi = this.extE[base + j];
      j++;
    }
    const removed = j - i;
    if (removed === 0) {
      for (let k = cnt; k > i; k--) {
        this.extS[base + k] = this.extS[base + k - 1];
        this.extE[base + k] = this.extE[base + k - 1];
      }
    } else if (removed > 1) {
      for (let k = j; k < cnt; k++) {
        this.extS[base + k - removed + 1] = this.extS[base + k];
        this.extE[base + k - removed + 1] = this.extE[base + k];
      }
    }
    this.extS[base + i] = lo;
    this.extE[base + i] = hi;
    this.extN[s] = cnt - removed + 1;
  }

  /** Map chunks for [o, e), evicting other datagrams if needed; false if memory cannot be found. */
  private reserve(s: number, o: number, e: number): boolean {
    const m = s * CHUNKS_PER_DGRAM;
    const first = o >>> CHUNK_SHIFT;
    const last = (e - 1) >>> CHUNK_SHIFT;
    let need = 0;
    for (let i = first; i <= last; i++) if (this.chunkMap[m + i] < 0) need++;
    while (need > this.chunkFreeTop) {
      const victim = this.oldest(ACTIVE, s);
      if (victim < 0) return false;
      this.counters.values[C.evicted]++;
      this.free(victim);
    }
    for (let i = first; i <= last; i++) {
      if (this.chunkMap[m + i] < 0) {
        this.chunkMap[m + i] = this.chunkFree[--this.chunkFreeTop];
        this.nChunks[s]++;
      }
    }
    return true;
  }

  private write(s: number, b: Uint8Array, p: number, o: number, e: number): void {
    const m = s * CHUNKS_PER_DGRAM;
    let x = o;
    while (x < e) {
      const within = x & CHUNK_MASK;
      const n = Math.min(e - x, REASM_CHUNK - within);
      copyBytes(b, p + x - o, this.arena, this.chunkMap[m + (x >>> CHUNK_SHIFT)] * REASM_CHUNK + within, n);
      x += n;
    }
  }

  private read(s: number, o: number, e: number, out: Uint8Array, outOff: number): void {
    const m = s * CHUNKS_PER_DGRAM;
    let x = o;
    while (x < e) {
      const within = x & CHUNK_MASK;
      const n = Math.min(e - x, REASM_CHUNK - within);
      copyBytes(this.arena, this.chunkMap[m + (x >>> CHUNK_SHIFT)] * REASM_CHUNK + within, out, outOff + x - o, n);
      x += n;
    }
  }
}

/** Byte copy: a loop for short runs, `set` over a subarray (one small view object) for long ones. */
function copyBytes(src: Uint8Array, so: number, dst: Uint8Array, d: number, n: number): void {
  if (n < 128) {
    for (let i = 0; i < n; i++) dst[d + i] = src[so + i];
  } else {
    dst.set(src.subarray(so, so + n), d);
  }
}
