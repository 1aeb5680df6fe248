/**
 * SipHash-2-4 of four words (servers/tcp/siphash.ts), the keyed hash of the RFC 6528 ISN: checked
 * against a straightforward BigInt SipHash over bytes, itself checked against the reference vectors
 * (key 00..0f, message 00..n-1; Aumasson and Bernstein, appendix A, and the reference vectors.h).
 */
import t from 'tap';
import { siphash4x32 } from '../../servers/tcp/siphash.js';

const M64 = (1n << 64n) - 1n;
const rotl = (x: bigint, b: bigint): bigint => ((x << b) | (x >> (64n - b))) & M64;

function sipRef(key: Uint8Array, msg: Uint8Array): bigint {
  const le = (b: Uint8Array, o: number): bigint => {
    let x = 0n;
    for (let i = 7; i >= 0; i--) x = (x << 8n) | BigInt(b[o + i]);
    return x;
  };
  const k0 = le(key, 0);
  const k1 = le(key, 8);
  let v0 = k0 ^ 0x736f6d6570736575n;
  let v1 = k1 ^ 0x646f72616e646f6dn;
  let v2 = k0 ^ 0x6c7967656e657261n;
  let v3 = k1 ^ 0x7465646279746573n;
  const round = (): void => {
    v0 = (v0 + v1) & M64; v1 = rotl(v1, 13n); v1 ^= v0; v0 = rotl(v0, 32n);
    v2 = (v2 + v3) & M64; v3 = rotl(v3, 16n); v3 ^= v2;
    v0 = (v0 + v3) & M64; v3 = rotl(v3, 21n); v3 ^= v0;
    v2 = (v2 + v1) & M64; v1 = rotl(v1, 17n); v1 ^= v2; v2 = rotl(v2, 32n);
  };
  const full = msg.length - (msg.length % 8);
  const blocks: bigint[] = [];
  for (let o = 0; o < full; o += 8) blocks.push(le(msg, o));
  let last = BigInt(msg.length & 0xff) << 56n;
  for (let i = full; i < msg.length; i++) last |= BigInt(msg[i]) << BigInt(8 * (i - full));
  blocks.push(last);
  for (const m of blocks) {
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
  v2 ^= 0xffn;
  for (let i = 0; i < 4; i++) round();
  return v0 ^ v1 ^ v2 ^ v3;
}

const seq = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => i);

t.test('the BigInt reference matches the published vectors', async (t) => {
  t.equal(sipRef(seq(16), seq(0)), 0x726fdb47dd0e0e31n, 'empty message');
  t.equal(sipRef(seq(16), seq(15)), 0xa129ca6149be45e5n, '15-byte message (the paper, appendix A)');
});

t.test('siphash4x32 is the low 32 bits of SipHash-2-4 of the 16 little-endian bytes', async (t) => {
  const key = seq(16);
  const kw = new Uint32Array(key.buffer.slice(0));
  const m = seq(16);
  const mw = new Uint32Array(m.buffer.slice(0));
  t.equal(siphash4x32(kw, mw[0], mw[1], mw[2], mw[3]), Number(sipRef(key, m) & 0xffffffffn));
  // Random keys and messages, with words up to 2^32 - 1 and negative (Int32) inputs alike.
  let x = 0x12345678;
  const next = (): number => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) ^ (x >>> 7);
  for (let i = 0; i < 300; i++) {
    const k = Uint32Array.of(next(), next(), next(), next());
    const w = Uint32Array.of(next(), next() & 0xffff, next(), next() & 0xffff);
    const want = Number(sipRef(new Uint8Array(k.buffer), new Uint8Array(w.buffer)) & 0xffffffffn);
    const got = siphash4x32(k, w[0] | 0, w[1], w[2] | 0, w[3]);
    if (got !== want) {
      t.fail(`mismatch for key ${[...k]} message ${[...w]}: ${got} != ${want}`);
      return;
    }
  }
  t.pass('300 random keys and messages agree');
});
