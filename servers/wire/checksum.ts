/**
 * RFC 1071 Internet checksum, RFC 1624 incremental update, and the IPv4 pseudo-header.
 *
 * Vocabulary:
 *  - a *sum* is a ones'-complement sum of 16-bit big-endian words, not yet complemented. Functions here
 *    return sums folded into 0..0xffff (0 only when every summed byte was zero) and accept any
 *    non-negative integer below 2^53 as an input sum, so partial sums can be chained with `initial`.
 *  - a *checksum* is the complemented, folded sum: `checksumFinish(sum)`, the value stored in headers.
 *    Verifying a header that contains its checksum yields 0 (`checksum(...) === 0`).
 *
 * Chaining: `checksumPartial(b, o, n, s)` treats `b[o]` as the high byte of a word. A segment of odd
 * length therefore must be the last one in a chain (as with RFC 1071's C code); TCP/UDP/IP headers
 * are always even, so header + payload chains are fine.
 *
 * Speed: ranges of 64 bytes or more are summed as 32-bit words through a `Uint32Array` over the whole
 * underlying buffer (cached for the last few buffers seen, so no allocation per call). Words are
 * summed into a float64 accumulator (exact up to 2^53, i.e. 2^21 words, so the loop folds every
 * 1 Mi words). A uint32 word w = hi*65536 + lo is congruent to hi + lo modulo 65535, and the
 * ones'-complement sum is arithmetic modulo 65535 (with 0xffff standing for "non-zero multiple"),
 * so folding the total (`checksumFold`) gives the sum. Reading words in host order and at an
 * arbitrary phase only byte-swaps the result (RFC 1071 §2(B)), which is undone once at the end.
 * Bytes before the first 4-aligned address and after the last one are added one by one.
 */

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** Shift for a byte at an even absolute address when summing host-order words. */
const EVEN_SHIFT = LITTLE_ENDIAN ? 0 : 8;
const ODD_SHIFT = LITTLE_ENDIAN ? 8 : 0;

/** Ranges shorter than this are summed bytewise (cheaper than the cache lookup). */
const SMALL = 64;
/** Words per inner chunk: 2^20 words * 2^32 < 2^53 keeps the float64 accumulator exact. */
const CHUNK_WORDS = 1 << 20;

// A small round-robin cache of Uint32Array views over whole buffers. It keeps up to CACHE_SIZE
// buffers alive; the stack's buffers are long-lived SharedArrayBuffers, so that is harmless.
const CACHE_SIZE = 4;
const cacheBuf: (ArrayBufferLike | null)[] = [null, null, null, null];
const cacheWords: Uint32Array[] = [new Uint32Array(0), new Uint32Array(0), new Uint32Array(0), new Uint32Array(0)];
let cacheNext = 0;
let cacheLast = 0;

function wordsOf(buf: ArrayBufferLike, endWord: number): Uint32Array {
  // Fast path: the buffer used last time (servers checksum one ring or pool over and over).
  const last = cacheWords[cacheLast];
  if (cacheBuf[cacheLast] === buf && last.length >= endWord) return last;
  for (let i = 0; i < CACHE_SIZE; i++) {
    if (cacheBuf[i] === buf && cacheWords[i].length >= endWord) {
      cacheLast = i;
      return cacheWords[i];
    }
  }
  const w = new Uint32Array(buf, 0, Math.floor(buf.byteLength / 4));
  const slot = cacheNext;
  cacheNext = (cacheNext + 1) % CACHE_SIZE;
  cacheBuf[slot] = buf;
  cacheWords[slot] = w;
  cacheLast = slot;
  return w;
}

/** Fold any non-negative integer sum (< 2^53) to 0..0xffff, end-around-carry style. */
export function checksumFold(sum: number): number {
  // Above 32 bits, split with float division (exact for integers < 2^53; no fmod call):
  // hi * 65536 + lo is congruent to hi + lo modulo 65535, and stays non-zero when it was.
  while (sum > 0xffffffff) {
    const hi = Math.floor(sum / 65536);
    sum = hi + (sum - hi * 65536);
  }
  sum = (sum >>> 16) + (sum & 0xffff);
  return (sum >>> 16) + (sum & 0xffff);
}

function swap16(x: number): number {
  return ((x & 0xff) << 8) | (x >>> 8);
}

/** Sum of a range of >= 4 bytes via aligned 32-bit words; returns a folded sum. */
function sumLarge(bytes: Uint8Array, off: number, len: number): number {
  const base = bytes.byteOffset;
  const absStart = base + off;
  const absEnd = absStart + len;
  const headEnd = Math.min(absEnd, absStart + ((4 - (absStart & 3)) & 3));
  const bodyEnd = headEnd + ((absEnd - headEnd) & ~3);
  // Weighted sum: a byte at an even absolute address is shifted by EVEN_SHIFT, odd by ODD_SHIFT,
  // which is exactly what summing host-order aligned words produces modulo 65535.
  let t = 0;
  for (let a = absStart; a < headEnd; a++) t += bytes[a - base] << ((a & 1) === 0 ? EVEN_SHIFT : ODD_SHIFT);
  for (let a = bodyEnd; a < absEnd; a++) t += bytes[a - base] << ((a & 1) === 0 ? EVEN_SHIFT : ODD_SHIFT);
  let i = headEnd >>> 2;
  const end = bodyEnd >>> 2;
  if (i < end) {
    const w = wordsOf(bytes.buffer, end);
    while (i < end) {
      const stop = Math.min(end, i + CHUNK_WORDS);
      let s = 0;
      for (; i + 8 <= stop; i += 8) {
        s += w[i] + w[i + 1] + w[i + 2] + w[i + 3] + w[i + 4] + w[i + 5] + w[i + 6] + w[i + 7];
      }
      for (; i < stop; i++) s += w[i];
      t += checksumFold(s);
    }
  }
  const folded = checksumFold(t);
  // Our weighting puts the byte at an even address into the low (LE) or high (BE) half; the RFC wants
  // the byte at the range's start in the high half.
  const startEven = (absStart & 1) === 0;
  return startEven === LITTLE_ENDIAN ? swap16(folded) : folded;
}

/**
 * Ones'-complement sum of `len` bytes of `bytes` from `off`, added to `initial` (another sum).
 * Returns a folded, uncomplemented sum (0..0xffff). An odd trailing byte is the high byte of a word
 * padded with zero. Throws RangeError if the range is outside `bytes` (a caller bug).
 */
export function checksumPartial(bytes: Uint8Array, off: number, len: number, initial = 0): number {
  if (off < 0 || len < 0 || off + len > bytes.length) {
    throw new RangeError(`checksum range [${off}, ${off + len}) outside buffer of ${bytes.length}`);
  }
  let s: number;
  if (len < SMALL) {
    s = 0;
    const end = off + len;
    let i = off;
    for (; i + 1 < end; i += 2) s += (bytes[i] << 8) | bytes[i + 1];
    if (i < end) s += bytes[i] << 8;
  } else {
    s = sumLarge(bytes, off, len);
  }
  return initial === 0 ? checksumFold(s) : checksumFold(s + checksumFold(initial));
}

/** Fold and complement a sum into the 16-bit checksum to store (or 0 when verifying a good packet). */
export function checksumFinish(sum: number): number {
  return ~checksumFold(sum) & 0xffff;
}

/** Checksum of a range: `checksumFinish(checksumPartial(bytes, off, len, initial))`. */
export function checksum(bytes: Uint8Array, off: number, len: number, initial = 0): number {
  return ~checksumPartial(bytes, off, len, initial) & 0xffff;
}

/** Ones'-complement addition of two sums (folded). */
export function checksumAdd(a: number, b: number): number {
  return checksumFold(checksumFold(a) + checksumFold(b));
}

/**
 * Sum of the IPv4 pseudo-header used by TCP and UDP (RFC 793 §3.1, RFC 768): source and destination
 * addresses (uint32), zero, protocol, and the transport length (header + data). Returns a folded sum
 * to pass as `initial` to `checksumPartial`.
 */
export function pseudoHeaderSumV4(src: number, dst: number, proto: number, len: number): number {
  return checksumFold(
    (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + (proto & 0xff) + (len & 0xffff),
  );
}

/**
 * RFC 1624 eqn. 3 incremental update: the checksum `oldChecksum` covered a 16-bit word `oldWord`
 * that is now `newWord`; returns the new checksum, HC' = ~(~HC + ~m + m'). For headers whose sum is
 * non-zero (all IP/TCP/UDP headers) the result equals a full recomputation bit for bit.
 */
export function checksumUpdate16(oldChecksum: number, oldWord: number, newWord: number): number {
  const s = (~oldChecksum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  return ~checksumFold(s) & 0xffff;
}

/** RFC 1624 update for a 32-bit field (e.g. an address rewritten by NAT), as two 16-bit words. */
export function checksumUpdate32(oldChecksum: number, oldValue: number, newValue: number): number {
  const s =
    (~oldChecksum & 0xffff) +
    (~(oldValue >>> 16) & 0xffff) +
    (~oldValue & 0xffff) +
    ((newValue >>> 16) & 0xffff) +
    (newValue & 0xffff);
  return ~checksumFold(s) & 0xffff;
}
