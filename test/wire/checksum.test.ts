import t from 'tap';
import {
  checksum,
  checksumAdd,
  checksumFinish,
  checksumFold,
  checksumPartial,
  checksumUpdate16,
  checksumUpdate32,
  pseudoHeaderSumV4,
} from '../../servers/wire/checksum.js';
import { hex, inShared, mulberry32, naiveChecksum, naiveSum, randomBytes } from './fixtures/helpers.js';

t.test('known values', async (t) => {
  // RFC 1071 §3 numerical example: 0001 f203 f4f5 f6f7 sums to 0xddf2.
  const rfc = hex('0001 f203 f4f5 f6f7');
  t.equal(checksumPartial(rfc, 0, 8), 0xddf2);
  t.equal(checksum(rfc, 0, 8), ~0xddf2 & 0xffff);
  // The same bytes at every offset of a shared buffer (odd, even, unaligned).
  for (let at = 0; at < 8; at++) t.equal(checksumPartial(inShared(rfc, at), 0, 8), 0xddf2, `at ${at}`);
  // A classic IPv4 header whose checksum is 0xb861.
  const ip = hex('4500 0073 0000 4000 4011 0000 c0a8 0001 c0a8 00c7');
  t.equal(checksum(ip, 0, 20), 0xb861);
  ip[10] = 0xb8;
  ip[11] = 0x61;
  t.equal(checksum(ip, 0, 20), 0, 'a header containing its checksum verifies to 0');
  t.equal(checksumPartial(new Uint8Array(100), 0, 100), 0, 'all zeros sum to 0');
  t.equal(checksum(new Uint8Array(0), 0, 0), 0xffff, 'empty range: checksum 0xffff');
  t.equal(checksumPartial(hex('ff'), 0, 1), 0xff00, 'odd byte is the high byte');
  t.equal(checksumPartial(hex('ffff'), 0, 2), 0xffff, 'ones-complement -0 stays 0xffff');
  t.equal(checksumPartial(hex('8000 8000'), 0, 4), 0x0001, 'end-around carry');
  const ffs = new Uint8Array(4096).fill(0xff);
  t.equal(checksumPartial(ffs, 0, 4096), 0xffff, 'a large non-zero multiple of 65535 is 0xffff, not 0');
  t.equal(checksumPartial(ffs, 1, 4094), 0xffff);
});

t.test('matches the naive reference on every length 0..2000 at all alignments', async (t) => {
  const rng = mulberry32(0x1071);
  const src = randomBytes(rng, 2000 + 16);
  // One SharedArrayBuffer-backed Uint8Array per byteOffset 0..7, holding the same bytes.
  const views = [0, 1, 2, 3, 4, 5, 6, 7].map((at) => inShared(src, at));
  let mismatches = 0;
  let checked = 0;
  for (let len = 0; len <= 2000; len++) {
    for (const v of views) {
      for (const off of [0, 1, 2, 3, 5, 7, 13]) {
        if (off + len > v.length) continue;
        const want = naiveSum(v, off, len);
        if (checksumPartial(v, off, len) !== want) mismatches++;
        if (checksum(v, off, len) !== naiveChecksum(v, off, len)) mismatches++;
        checked++;
      }
    }
  }
  t.equal(mismatches, 0, `${checked} ranges`);
});

t.test('random data: chaining with initial, structured patterns', async (t) => {
  const rng = mulberry32(42);
  let bad = 0;
  for (let k = 0; k < 3000; k++) {
    const len = rng() % 3000;
    const split = (rng() % (len + 1)) & ~1; // first segment even, as the API requires
    const b = inShared(randomBytes(rng, len), rng() % 8);
    const whole = checksumPartial(b, 0, len);
    const chained = checksumPartial(b, split, len - split, checksumPartial(b, 0, split));
    if (whole !== chained) bad++;
    // checksumAdd of two partials agrees as well.
    if (checksumAdd(checksumPartial(b, 0, split), checksumPartial(b, split, len - split)) !== whole) bad++;
  }
  t.equal(bad, 0);
  // Bytes chosen to stress carries: long runs of 0xff and 0x00 with a few random bytes.
  for (const fill of [0x00, 0xff, 0x80, 0x01]) {
    for (const len of [63, 64, 65, 1499, 1500, 65535, 65536]) {
      const b = inShared(new Uint8Array(len + 3).fill(fill), 1);
      b[rng() % len] = rng() & 0xff;
      for (const off of [0, 1, 2, 3]) {
        if (checksumPartial(b, off, len) !== naiveSum(b, off, len)) bad++;
      }
    }
  }
  t.equal(bad, 0, 'carry-heavy patterns');
});

t.test('large ranges cross the accumulator chunk (4 MiB) and the view cache', async (t) => {
  const rng = mulberry32(7);
  const big = inShared(randomBytes(rng, (5 << 20) + 7), 3);
  t.equal(checksumPartial(big, 1, big.length - 1), naiveSum(big, 1, big.length - 1));
  const ffs = new Uint8Array((9 << 20) + 2).fill(0xff);
  t.equal(checksumPartial(ffs, 0, ffs.length), 0xffff);
  // More buffers than cache slots, used round-robin, plus ArrayBuffer (non-shared) and subarrays.
  const bufs = Array.from({ length: 7 }, (_, i) => inShared(randomBytes(rng, 300 + i), i));
  bufs.push(randomBytes(rng, 999).subarray(5));
  let bad = 0;
  for (let r = 0; r < 5; r++) {
    for (const b of bufs) if (checksumPartial(b, 1, b.length - 1) !== naiveSum(b, 1, b.length - 1)) bad++;
  }
  t.equal(bad, 0);
});

t.test('bad ranges throw RangeError (caller bug, not input)', async (t) => {
  const b = new Uint8Array(10);
  t.throws(() => checksumPartial(b, 5, 6), RangeError);
  t.throws(() => checksumPartial(b, -1, 2), RangeError);
  t.throws(() => checksumPartial(b, 0, -1), RangeError);
});

t.test('fold and finish', async (t) => {
  t.equal(checksumFold(0), 0);
  t.equal(checksumFold(0xffff), 0xffff);
  t.equal(checksumFold(0x10000), 1);
  t.equal(checksumFold(0x1fffe), 0xffff);
  t.equal(checksumFold(0xffffffff), 0xffff);
  t.equal(checksumFold(2 ** 40 + 5), checksumFold(checksumFold(2 ** 40) + 5));
  t.equal(checksumFinish(0xddf2), 0x220d);
  t.equal(checksumFinish(0xffff), 0);
});

t.test('pseudo-header sum equals summing the 12 pseudo-header bytes', async (t) => {
  const rng = mulberry32(99);
  let bad = 0;
  for (let k = 0; k < 1000; k++) {
    const src = rng();
    const dst = rng();
    const proto = rng() & 0xff;
    const len = rng() & 0xffff;
    const ph = new Uint8Array(12);
    const dv = new DataView(ph.buffer);
    dv.setUint32(0, src);
    dv.setUint32(4, dst);
    ph[9] = proto;
    dv.setUint16(10, len);
    if (pseudoHeaderSumV4(src, dst, proto, len) !== naiveSum(ph, 0, 12)) bad++;
  }
  t.equal(bad, 0);
});

t.test('RFC 1624 incremental update matches recomputation', async (t) => {
  const rng = mulberry32(1624);
  let bad = 0;
  for (let k = 0; k < 20000; k++) {
    // A random IPv4-like header: version nibble non-zero, so its sum is never zero.
    const h = randomBytes(rng, 20);
    h[0] = 0x45;
    h[10] = 0;
    h[11] = 0;
    const c = checksum(h, 0, 20);
    h[10] = c >>> 8;
    h[11] = c & 0xff;
    // Rewrite a 16-bit word (not the checksum itself).
    let w = (rng() % 9) * 2;
    if (w >= 10) w += 2;
    const oldWord = (h[w] << 8) | h[w + 1];
    const newWord = k % 7 === 0 ? (~oldWord & 0xffff) : rng() & 0xffff;
    h[w] = newWord >>> 8;
    h[w + 1] = newWord & 0xff;
    const inc = checksumUpdate16(c, oldWord, newWord);
    h[10] = 0;
    h[11] = 0;
    if (inc !== checksum(h, 0, 20)) bad++;
    h[10] = inc >>> 8;
    h[11] = inc & 0xff;
    // Rewrite an address (32 bits), NAT style.
    const a = (rng() % 2) * 4 + 12;
    const oldAddr = ((h[a] << 24) | (h[a + 1] << 16) | (h[a + 2] << 8) | h[a + 3]) >>> 0;
    const newAddr = rng();
    new DataView(h.buffer).setUint32(a, newAddr);
    const inc32 = checksumUpdate32(inc, oldAddr, newAddr);
    h[10] = 0;
    h[11] = 0;
    if (inc32 !== checksum(h, 0, 20)) bad++;
  }
  t.equal(bad, 0);
  // RFC 1624 §4's example: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285 gives HC' = 0x0000.
  t.equal(checksumUpdate16(0xdd2f, 0x5555, 0x3285), 0x0000);
});
