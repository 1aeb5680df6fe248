/**
 * copyAnyAlign: byte-exact at every relative alignment and size, between SharedArrayBuffers and plain
 * arrays (the native memmove when the addon is built, TypedArray.set otherwise).
 */
import t from 'tap';
import { copyAnyAlign } from '../../servers/runtime/fast-copy.js';

t.test('every alignment, small and large, shared and plain', async (t) => {
  const src = new Uint8Array(new SharedArrayBuffer(70_000));
  for (let i = 0; i < src.length; i++) src[i] = (i * 31 + (i >> 8)) & 255;
  for (const shared of [true, false]) {
    const dst = new Uint8Array(shared ? new SharedArrayBuffer(70_000) : new ArrayBuffer(70_000));
    for (const len of [0, 1, 100, 1023, 1024, 4096, 65_000]) {
      for (let d = 0; d < 8; d++) {
        dst.fill(0);
        const s = 3;
        copyAnyAlign(dst, 16 + d, src, s, len);
        let ok = dst[15 + d] === 0 && dst[16 + d + len] === 0;
        for (let i = 0; ok && i < len; i++) ok = dst[16 + d + i] === src[s + i];
        t.ok(ok, `${shared ? 'shared' : 'plain'} len ${len} skew ${d}`);
      }
    }
  }
});

t.test('a copy outside either array throws a RangeError, never writes', async (t) => {
  const a = new Uint8Array(new SharedArrayBuffer(4096));
  const b = new Uint8Array(new SharedArrayBuffer(4096));
  t.throws(() => copyAnyAlign(a, 3001, b, 0, 2048 - 1 + 1100));
});

t.test('offsets past 2 GiB (a tcp state of 256 connections with 4 MiB buffers is that large)', async (t) => {
  const big = new Uint8Array(new SharedArrayBuffer(2 ** 31 + 8192));
  const src = new Uint8Array(new SharedArrayBuffer(4096));
  for (let i = 0; i < src.length; i++) src[i] = (i * 7 + 1) & 255;
  const at = 2 ** 31 + 1001;
  copyAnyAlign(big, at, src, 5, 3000);
  let ok = big[at - 1] === 0 && big[at + 3000] === 0;
  for (let i = 0; ok && i < 3000; i++) ok = big[at + i] === src[5 + i];
  t.ok(ok, 'into a buffer past 2^31, misaligned');
  const back = new Uint8Array(4096);
  copyAnyAlign(back, 3, big, at, 3000);
  ok = true;
  for (let i = 0; ok && i < 3000; i++) ok = back[3 + i] === src[5 + i];
  t.ok(ok, 'out of it');
});
