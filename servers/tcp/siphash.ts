/**
 * The keyed hash F of the RFC 6528 ISN (server.ts): SipHash-2-4 of the four-tuple as 16 little-endian
 * bytes, low 32 bits. SipHash is a keyed PRF made for short inputs like this one (Linux uses it for its
 * ISNs, net/core/secure_seq.c), so RFC 6528's requirement holds (F a cryptographic hash of the
 * four-tuple and a secret no outsider can guess). The hash itself is not ours: the `siphash` package
 * (Frank Denis, author of libsodium; plain JavaScript, no dependencies).
 *
 * Why not node:crypto: a Hash object cannot be reused, and a fresh createHash('sha256') per connection
 * measured 29 - 41 us per call inside the tcp worker during `bench crr` (cold: once per connection,
 * between parks; 2.0 - 2.8 us in a hot loop), about 0.2 ms of every connection's 0.6 ms on two sides.
 * A pure-JavaScript SipHash measured 3.6 - 6.4 us cold in the same place; crr shared went from 1267 to
 * 1894 connections/s (medians of 7 alternated runs, together with random32's pool in server.ts).
 *
 * Checked against a BigInt SipHash that reproduces the published vectors: test/tcp/siphash.test.ts.
 */
import { createRequire } from 'node:module';

const SipHash = createRequire(import.meta.url)('siphash') as {
  hash(key: ArrayLike<number>, m: Uint8Array): { h: number; l: number };
};

// The message: four words in one reused buffer, read by the hash as little-endian bytes.
const words = new Uint32Array(4);
const bytes = new Uint8Array(words.buffer);
if (new Uint8Array(Uint32Array.of(1).buffer)[0] !== 1) throw new Error('siphash.ts assumes a little-endian machine');

/**
 * The low 32 bits of SipHash-2-4 with key `k` (four words, k0 = k[1]:k[0], k1 = k[3]:k[2], as the
 * 16 little-endian key bytes) of the 16-byte message w0, w1, w2, w3 (each little-endian).
 */
export function siphash4x32(k: Uint32Array, w0: number, w1: number, w2: number, w3: number): number {
  words[0] = w0;
  words[1] = w1;
  words[2] = w2;
  words[3] = w3;
  return SipHash.hash(k, bytes).l >>> 0;
}
