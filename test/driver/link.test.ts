import t from 'tap';
import { PacketPool } from '../../shared-rings/pool.js';
import { FrameBatch, PoolSpace, copyBytes, maxFrameFor, poolSpace } from '../../servers/driver/link.js';

t.test('FrameBatch over a PacketPool: positions, room, push, swap, fit', async (t) => {
  t.throws(() => new FrameBatch(PacketPool.create({ buffers: 1, bufferSize: 64 }), 0), { code: 'ERR_OUT_OF_RANGE' });
  const pool = PacketPool.create({ buffers: 4, bufferSize: 100 });
  const b = new FrameBatch(pool, 3);
  t.ok(b.space instanceof PoolSpace, 'a bare pool is wrapped');
  t.ok(new FrameBatch(poolSpace(pool), 1).space instanceof PoolSpace);
  t.ok(b.push(2, 10, 50, 1) && b.push(1, 90, 5) && b.push(3, 0, 0));
  t.notOk(b.push(0, 0, 0), 'full');
  t.equal(b.pos(0), pool.offsetOf(2) + 10);
  t.equal(b.bytesAt(0), pool.bytes);
  t.same([b.room(0), b.room(1), b.room(2)], [90, 10, 100]);
  b.swap(0, 2);
  t.same([b.buf[0], b.off[0], b.len[0], b.flags[0], b.buf[2], b.off[2], b.len[2], b.flags[2]], [3, 0, 0, 0, 2, 10, 50, 1]);
  t.ok(b.fit(1, 10), 'fits in place');
  t.equal(b.buf[1], 1);
  t.ok(b.fit(1, 80), 'a later slot with room is swapped in');
  t.same([b.buf[1], b.buf[2]], [2, 1]);
  t.notOk(b.fit(1, 95), 'none from here on fits');
  b.set(0, 0, 0, 4);
  pool.bytes.set([1, 2, 3, 4], pool.offsetOf(0));
  t.same([...b.frame(0)], [1, 2, 3, 4]);
  t.equal(maxFrameFor(1500), 1514);
});

t.test('copyBytes: short and long copies', async (t) => {
  const src = Uint8Array.from({ length: 300 }, (_, i) => i & 255);
  for (const len of [0, 1, 64, 65, 299]) {
    const dst = new Uint8Array(310);
    copyBytes(src, 1, dst, 7, len);
    t.same([...dst.subarray(7, 7 + len)], [...src.subarray(1, 1 + len)], `${len} bytes`);
    t.equal(dst[6], 0);
    t.equal(dst[7 + len], 0);
  }
});
