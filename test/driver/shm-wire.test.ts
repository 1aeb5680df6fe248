import t from 'tap';
import { Worker } from 'node:worker_threads';
import { Doorbell } from '../../shared-rings/doorbell.js';
import { BIG, Pools } from '../../shared-rings/pools.js';
import { FaultLink } from '../../servers/driver/fault-link.js';
import { FRAME_CSUM_OFFLOADED, FrameBatch } from '../../servers/driver/link.js';
import { ShmWire } from '../../servers/driver/shm-wire.js';
import { mulberry32, randInt } from '../helpers/prng.js';
import {
  OWNER_A, OWNER_B, RX_HEADROOM, TX_HEADROOM, bufferSet, freeSlots, isFrame, slots, stackPool, wirePair, writeFrame,
  stackLeaks, type Stack,
} from './link-helpers.js';
import type { EchoWorkerData } from './shm-wire-worker.js';

const pair = wirePair;

/** Every buffer back to the pool, nothing else in use. */
function leakCheck(t: any, s: Stack, what: string): void {
  t.equal(freeSlots(s.pool, s.owner, s.tx) + freeSlots(s.pool, s.owner, s.rx), 0, `${what}: every slot buffer freed once`);
  t.equal(s.pool.stats().inUse, 0, `${what}: pool back to zero`);
}

/**
 * Send frames of every size in [lo, hi] from `from` to `to` (ids = size), in batches, handling
 * backpressure by draining the receiver; returns counts of frames received and of mismatches.
 */
function sweep(from: Stack, to: Stack, lo: number, hi: number, flagsOf: (size: number) => number): {
  received: number; bad: number; outOfOrder: number; flagBad: number; backpressured: number;
} {
  let next = lo;
  let expect = lo;
  let bad = 0, outOfOrder = 0, flagBad = 0, backpressured = 0;
  const drain = (): void => {
    to.rx.count = 0;
    to.link.receive(to.rx);
    for (let i = 0; i < to.rx.count; i++) {
      const len = to.rx.len[i]!;
      if (len !== expect) outOfOrder++;
      if (!isFrame(to.rx.bytesAt(i), to.rx.pos(i), len, len)) bad++;
      if (to.rx.flags[i] !== flagsOf(len)) flagBad++;
      expect = len + 1;
    }
  };
  while (next <= hi) {
    const tx = from.tx;
    tx.count = 0;
    while (tx.count < tx.capacity && next <= hi) {
      const i = tx.count;
      tx.len[i] = next;
      tx.flags[i] = flagsOf(next) | (next & 1 ? FRAME_CSUM_OFFLOADED : 0);
      writeFrame(tx.bytesAt(i), tx.pos(i), next, next);
      tx.count++;
      next++;
    }
    let sent = 0;
    while (sent < tx.count) {
      const k = from.link.transmit(tx, sent);
      sent += k;
      if (sent < tx.count) {
        backpressured++;
        drain();
      }
    }
    drain();
  }
  drain();
  return { received: expect - lo, bad, outOfOrder, flagBad, backpressured };
}

t.test('frames of every size 14..MTU+14 round trip both ways, at MTU 1500, 9000 and 65535', async (t) => {
  for (const mtu of [1500, 9000, 65535]) {
    for (const offload of [false, true]) {
      if (mtu === 65535 && !offload) continue; // the largest sweep once (it moves ~4 GB)
      const [a, b] = pair(mtu, { checksumOffload: offload });
      t.equal(a.link.maxFrame, mtu + 14);
      const flagsOf = (size: number): number => (offload && size & 1 ? FRAME_CSUM_OFFLOADED : 0);
      for (const [from, to, dir] of [[a, b, 'a->b'], [b, a, 'b->a']] as const) {
        const r = sweep(from, to, 14, mtu + 14, flagsOf);
        const what = `mtu ${mtu} offload ${offload} ${dir}`;
        t.equal(r.received, mtu + 1, `${what}: every size arrived`);
        t.equal(r.bad, 0, `${what}: every byte intact`);
        t.equal(r.outOfOrder, 0, `${what}: in order, no loss, no duplicate`);
        t.equal(r.flagBad, 0, `${what}: offload flag ${offload ? 'carried per frame' : 'stripped'}`);
        t.equal(from.link.stats.txFrames, mtu + 1);
        t.equal(to.link.stats.rxFrames, mtu + 1);
        t.equal(from.link.stats.txInvalid + to.link.stats.rxTooBig, 0);
        if (mtu === 65535) t.ok(r.backpressured > 0, `${what}: the 2 MiB ring pushed back on 64 KiB frames`);
      }
      leakCheck(t, a, `mtu ${mtu} a`);
      leakCheck(t, b, `mtu ${mtu} b`);
    }
  }
});

t.test('a batch is published with one flush and received in one call', async (t) => {
  const [a, b] = pair(1500, { batch: 128 });
  const tx = a.tx;
  for (let i = 0; i < 100; i++) {
    tx.len[i] = 60 + i;
    tx.flags[i] = 0;
    writeFrame(tx.bytesAt(i), tx.pos(i), 60 + i, i);
  }
  tx.count = 100;
  const flushes = a.link.txFlushes;
  t.notOk(b.link.rxReady, 'nothing before transmit');
  t.equal(a.link.transmit(tx), 100, 'all 100 taken');
  t.equal(a.link.txFlushes - flushes, 1, 'one flush (one Atomics.store) for the batch');
  t.ok(b.link.rxReady);
  const before = bufferSet(b.rx);
  t.equal(b.link.receive(b.rx), 100, 'one receive call gets them all');
  let ok = 0;
  for (let i = 0; i < 100; i++) if (b.rx.len[i] === 60 + i && isFrame(b.rx.bytesAt(i), b.rx.pos(i), 60 + i, i)) ok++;
  t.equal(ok, 100, 'in order, intact');
  t.same(bufferSet(b.rx), before, 'receive wrote into the offered buffers');
  t.equal(b.rx.off[0], RX_HEADROOM, 'frames start at the headroom the driver chose');
  // Appending: receive fills from rx.count on.
  tx.count = 3;
  a.link.transmit(tx);
  t.equal(b.link.receive(b.rx), 3, 'appends after the 100');
  t.equal(b.rx.count, 103);
  t.equal(b.rx.len[100], 60);
  t.equal(b.link.receive(b.rx), 0, 'empty now');
  t.equal(a.link.transmit(tx, 3), 0, 'start = count sends nothing');
  t.equal(a.link.txFlushes - flushes, 2, 'no flush without frames');
  leakCheck(t, a, 'a');
  leakCheck(t, b, 'b');
});

t.test('full ring: backpressure, no drops, order kept', async (t) => {
  const cap = ShmWire.minCapacity(1500);
  t.equal(cap, 4096, 'two max frames need 4 KiB');
  const [a, b] = pair(1500, { capacity: cap, batch: 64 });
  const tx = a.tx;
  for (let i = 0; i < 50; i++) {
    tx.len[i] = 1514;
    writeFrame(tx.bytesAt(i), tx.pos(i), 1514, i);
  }
  tx.count = 50;
  const k = a.link.transmit(tx);
  t.ok(k >= 1 && k <= 2, `only what fits is taken (${k})`);
  t.equal(a.link.stats.txBackpressure, 1, 'the short call is counted');
  t.equal(a.link.transmit(tx, k), 0, 'still full: nothing taken, nothing lost');
  t.equal(a.link.stats.txBackpressure, 2);
  t.ok(a.link.txQueuedBytes > 0);
  let sent = k;
  const got: number[] = [];
  let rounds = 0;
  while (got.length < 50 && rounds++ < 1000) {
    b.rx.count = 0;
    b.link.receive(b.rx);
    for (let i = 0; i < b.rx.count; i++) {
      if (isFrame(b.rx.bytesAt(i), b.rx.pos(i), b.rx.len[i]!, got.length)) got.push(got.length);
      else got.push(-1);
    }
    if (sent < 50) sent += a.link.transmit(tx, sent);
  }
  t.equal(got.length, 50, 'all 50 arrived once the receiver drained');
  t.same(got, Array.from({ length: 50 }, (_, i) => i), 'in order and intact');
  t.equal(a.link.txQueuedBytes, 0);
  leakCheck(t, a, 'a');
  leakCheck(t, b, 'b');
});

t.test('bad sizes are dropped and counted, never thrown', async (t) => {
  const [a, b] = pair(1500, { batch: 8 });
  const tx = a.tx;
  const lens = [13, 14, 1515, 1514, 0];
  for (let i = 0; i < lens.length; i++) {
    tx.len[i] = lens[i]!;
    writeFrame(tx.bytesAt(i), tx.pos(i), Math.min(lens[i]!, 1514), i);
  }
  tx.count = lens.length;
  t.equal(a.link.transmit(tx), 5, 'invalid frames count as taken');
  t.equal(a.link.stats.txInvalid, 3);
  t.equal(a.link.stats.txFrames, 2);
  // A slot too small for the frame: dropped and counted at receive.
  const small = new FrameBatch(b.pool, 2);
  small.set(0, b.rx.buf[0]!, b.pool.bufferSize - 100, 0);
  small.set(1, b.rx.buf[1]!, b.pool.bufferSize - 100, 0);
  t.equal(b.link.receive(small), 1, '14-byte frame fits; the 1514-byte one does not fit 100 bytes');
  t.equal(small.len[0], 14);
  t.equal(b.link.stats.rxTooBig, 1);
  t.equal(b.link.receive(small), 0, 'the too-big frame was consumed');
  leakCheck(t, a, 'a');
  leakCheck(t, b, 'b');
});

t.test('configuration: MTU bounds, capacity, MACs, attach and close', async (t) => {
  t.throws(() => ShmWire.create({ mtu: 65536 }), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => ShmWire.create({ mtu: 67 }), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => ShmWire.create({ mtu: 9000, capacity: 16384 }), { code: 'ERR_OUT_OF_RANGE' }, 'too small for 9014-byte frames');
  t.throws(() => ShmWire.create({ capacity: 300000 }), { code: 'ERR_OUT_OF_RANGE' }, 'not a power of two');
  t.throws(() => ShmWire.attach({ sab: new SharedArrayBuffer(4096), mtu: 1500, checksumOffload: false, id: 1 }, 'a'), {
    code: 'ERR_SHM_WIRE_BAD_HEADER',
  });
  t.throws(() => ShmWire.attach(ShmWire.create(), 'c' as 'a'), { code: 'ERR_INVALID_ARG_VALUE' });
  t.equal(ShmWire.defaultCapacity(1500), 256 * 1024);
  t.equal(ShmWire.defaultCapacity(65535), 2 * 1024 * 1024);

  const init = ShmWire.create({ id: 0x1234, checksumOffload: true });
  const a = ShmWire.attach(init, 'a');
  const b = ShmWire.attach(init, 'b', { generation: 3 });
  t.same([...a.mac], [0x02, 0x6b, 0x6e, 0x12, 0x34, 0x01]);
  t.same([...b.mac], [0x02, 0x6b, 0x6e, 0x12, 0x34, 0x02]);
  t.same([...a.peerMac], [...b.mac]);
  t.equal(a.mac[0]! & 0x02, 0x02, 'locally administered');
  t.equal(a.mac[0]! & 0x01, 0, 'unicast');
  t.ok(a.checksumOffload && b.checksumOffload, 'both ends see the agreed offload');
  t.equal(a.mtu, 1500);
  t.equal(a.poll(123), Infinity, 'no timers');
  t.equal(a.wait.kind, 'doorbell');
  t.not(ShmWire.create().id, ShmWire.create().id, 'default ids differ');

  // Close and re-attach (a restarted driver): frames flow again.
  const pool = stackPool(a.maxFrame, 8);
  const tx = slots(pool, OWNER_A, 2, 0);
  const rx = slots(pool, OWNER_A, 2, 0);
  tx.len[0] = 60;
  writeFrame(tx.bytesAt(0), tx.pos(0), 60, 9);
  tx.count = 1;
  t.notOk(a.peerClosed);
  b.close();
  b.close();
  t.ok(a.peerClosed, 'a sees b closed');
  t.equal(b.transmit(tx), 0, 'a closed link sends nothing');
  t.equal(b.receive(rx), 0);
  t.notOk(b.rxReady);
  t.equal(a.transmit(tx), 1, 'the ring still takes frames while b is away');
  const b2 = ShmWire.attach(init, 'b', { generation: 4 });
  t.notOk(a.peerClosed, 'b is back');
  t.equal(b2.attachments, 2);
  t.equal(b2.receive(rx), 1, 'the new incarnation gets the frame');
  t.ok(isFrame(rx.bytesAt(0), rx.pos(0), 60, 9));
  t.equal(freeSlots(pool, OWNER_A, tx) + freeSlots(pool, OWNER_A, rx), 0);
  t.equal(pool.stats().inUse, 0);
});

t.test('two threads: echo through a worker stack, parked on doorbells', async (t) => {
  const bell = Doorbell.create();
  const init = ShmWire.create({ mtu: 1500, rxDoorbell: { a: bell } });
  const a = ShmWire.attach(init, 'a', { generation: 1 });
  t.equal(a.wait.kind === 'doorbell' && a.wait.doorbell.i32 === bell.i32, true, 'side a parks on the given doorbell');
  const count = 5000;
  const worker = new Worker(new URL('./shm-wire-worker.js', import.meta.url), {
    workerData: { init, count } satisfies EchoWorkerData,
  });
  const done = new Promise<any>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  const pool = stackPool(a.maxFrame, 128);
  const tx = slots(pool, OWNER_A, 16, TX_HEADROOM);
  const rx = slots(pool, OWNER_A, 64, RX_HEADROOM);
  const rand = mulberry32(42);
  const lens: number[] = [];
  for (let i = 0; i < count; i++) lens.push(randInt(rand, 14, 1514));
  const window = 48; // frames in flight: far below the ring's capacity, so the echo never pushes back
  let sent = 0, got = 0, bad = 0, parks = 0;
  while (got < count) {
    if (sent < count && sent - got < window) {
      tx.count = 0;
      while (tx.count < tx.capacity && sent + tx.count < count && sent + tx.count - got < window) {
        const id = sent + tx.count;
        tx.len[tx.count] = lens[id]!;
        writeFrame(tx.bytesAt(tx.count), tx.pos(tx.count), lens[id]!, id);
        tx.count++;
      }
      sent += a.transmit(tx);
    }
    rx.count = 0;
    if (a.receive(rx) === 0) {
      const key = bell.prepare();
      if (a.rxReady) bell.cancel();
      else {
        parks++;
        await bell.waitAsync(key, 1000);
      }
      continue;
    }
    for (let i = 0; i < rx.count; i++) {
      if (rx.len[i] !== lens[got] || !isFrame(rx.bytesAt(i), rx.pos(i), rx.len[i]!, got)) bad++;
      got++;
    }
  }
  const r = await done;
  t.equal(got, count, `${count} frames echoed`);
  t.equal(bad, 0, 'every echo intact and in order');
  t.equal(r.echoed, count);
  t.equal(r.leaked + r.inUse, 0, 'the worker stack returned its buffers');
  t.ok(parks > 0 || r.parks > 0, `someone parked (main ${parks}, worker ${r.parks}): no spinning`);
  t.equal(freeSlots(pool, OWNER_A, tx) + freeSlots(pool, OWNER_A, rx), 0);
  t.equal(pool.stats().inUse, 0);
  a.close();
  await new Promise((r) => worker.once('exit', r));
});

t.test('two-size Pools: jumbo frames take the large slots offered among small ones', async (t) => {
  const init = ShmWire.create({ mtu: 9000 });
  const a = ShmWire.attach(init, 'a');
  const b = ShmWire.attach(init, 'b');
  const mkPools = (): Pools => new Pools(Pools.create({ smallBuffers: 16, smallSize: 1514 + 64, bigBuffers: 4, bigSize: 9014 + 64 }));
  const pa = mkPools();
  const pb = mkPools();
  const lens = [9014, 100, 9014, 200, 9014];
  const tx = new FrameBatch(pa, 8);
  for (let i = 0; i < lens.length; i++) {
    tx.push(pa.alloc(lens[i]! + TX_HEADROOM, OWNER_A), TX_HEADROOM, lens[i]!);
    writeFrame(tx.bytesAt(i), tx.pos(i), lens[i]!, i);
  }
  t.ok((tx.buf[0]! & BIG) !== 0 && (tx.buf[1]! & BIG) === 0, 'the sender used a big buffer for the jumbo frame');
  t.equal(a.transmit(tx), 5);
  const rx = new FrameBatch(pb, 8);
  for (let i = 0; i < 8; i++) rx.set(i, pb.alloc(i < 6 ? 1000 : 9000, OWNER_B), RX_HEADROOM, 0);
  const before = bufferSet(rx);
  t.equal(b.receive(rx), 4, 'two big slots: the third jumbo frame has none');
  t.equal(b.stats.rxTooBig, 1, 'and is dropped, counted');
  t.same(Array.from(rx.len.subarray(0, 4)), [9014, 100, 9014, 200]);
  t.ok([0, 1, 2, 3].every((i) => isFrame(rx.bytesAt(i), rx.pos(i), lens[i]!, i)), 'intact, in order');
  t.same([0, 1, 2, 3].map((i) => (rx.buf[i]! & BIG) !== 0), [true, false, true, false], 'jumbo frames in the big buffers');
  t.same(bufferSet(rx), before, 'no buffer lost or invented');

  // The same through a fault link's queue (rx delay): released frames also pick a slot that fits.
  const f = new FaultLink(b, { seed: 1, rx: { delayUs: 10 } });
  f.poll(0);
  tx.count = 2; // 9014 and 100
  a.transmit(tx);
  rx.count = 0;
  // Put the big buffers at the back again.
  const order = Array.from(rx.buf).sort((x, y) => (x & BIG) - (y & BIG));
  for (let i = 0; i < 8; i++) rx.set(i, order[i]!, RX_HEADROOM, 0);
  t.equal(f.receive(rx), 0, 'delayed');
  f.poll(10);
  t.equal(f.receive(rx), 2);
  t.ok((rx.buf[0]! & BIG) !== 0 && isFrame(rx.bytesAt(0), rx.pos(0), 9014, 0), 'the jumbo frame went to a big slot');
  t.ok(isFrame(rx.bytesAt(1), rx.pos(1), 100, 1));
  let bad = 0;
  for (let i = 0; i < 8; i++) if (!pb.free(rx.buf[i]!, OWNER_B)) bad++;
  for (let i = 0; i < tx.capacity; i++) if (i < 5 && !pa.free(tx.buf[i]!, OWNER_A)) bad++;
  t.equal(bad, 0);
  t.equal(pa.stats().inUse + pb.stats().inUse, 0, 'both stacks back to zero');
});

t.test('holes (slots without a buffer): skipped, and frames wait in the ring when only holes are left', async (t) => {
  const [a, b] = wirePair(1500, { batch: 4 });
  for (let i = 0; i < 3; i++) {
    a.tx.len[i] = 100 + i;
    writeFrame(a.tx.bytesAt(i), a.tx.pos(i), 100 + i, i);
  }
  a.tx.count = 3;
  t.equal(a.link.transmit(a.tx), 3);
  const saved = Array.from(b.rx.buf);
  b.rx.count = 0;
  b.rx.buf.fill(-1);
  b.rx.buf[2] = saved[2]!; // one buffer, at slot 2
  t.equal(b.link.receive(b.rx), 1, 'one buffer: one frame');
  t.equal(b.rx.buf[0], saved[2], 'the buffer was swapped to the front');
  t.ok(isFrame(b.rx.bytesAt(0), b.rx.pos(0), 100, 0));
  t.equal(b.link.stats.rxTooBig, 0, 'nothing dropped');
  t.ok(b.link.rxReady, 'two frames still waiting');
  b.rx.set(1, saved[0]!, RX_HEADROOM, 0);
  b.rx.set(3, saved[1]!, RX_HEADROOM, 0);
  t.equal(b.link.receive(b.rx), 2, 'after a refill the rest arrive');
  t.ok([1, 2].every((k) => isFrame(b.rx.bytesAt(k), b.rx.pos(k), 100 + k, k)), 'in order, intact');
  t.same(Array.from(b.rx.buf).sort((x, y) => x - y), [-1, ...saved.slice(0, 3)].sort((x, y) => x - y), 'the hole is still a hole');
  b.rx.buf[3] = saved[3]!;
  t.equal(stackLeaks(a) + stackLeaks(b), 0);
});

t.test('alignment: a frame keeps its address modulo 8 across the wire when the receiver allows realign', async (t) => {
  const [a, b] = pair(9000, { batch: 16 });
  b.rx.realign = true;
  const abs = (s: Stack, which: 'tx' | 'rx', i: number): number => s[which].bytesAt(i).byteOffset + s[which].pos(i);
  let i = 0;
  for (let shift = 0; shift < 8; shift++) {
    for (const len of [60, 1514, 9000]) { // room for the shift: rx buffers are maxFrame + RX_HEADROOM
      const tx = a.tx;
      tx.off[0] = TX_HEADROOM + shift;
      tx.len[0] = len;
      tx.flags[0] = 0;
      tx.count = 1;
      writeFrame(tx.bytesAt(0), tx.pos(0), len, i);
      t.equal(a.link.transmit(tx), 1);
      b.rx.count = 0;
      for (let k = 0; k < b.rx.capacity; k++) b.rx.off[k] = RX_HEADROOM;
      t.equal(b.link.receive(b.rx), 1);
      t.equal(b.rx.len[0], len, `len ${len} shift ${shift}`);
      t.ok(isFrame(b.rx.bytesAt(0), b.rx.pos(0), len, i), 'intact');
      t.equal(abs(b, 'rx', 0) & 7, abs(a, 'tx', 0) & 7, 'same address modulo 8 on both sides');
      t.ok(b.rx.off[0]! >= RX_HEADROOM && b.rx.off[0]! < RX_HEADROOM + 8, 'moved forward by at most 7 bytes');
      i++;
    }
  }
  // Without realign the receiver's headroom is kept exactly (the pad is invisible).
  b.rx.realign = false;
  a.tx.off[0] = TX_HEADROOM + 3;
  a.tx.len[0] = 1514;
  a.tx.count = 1;
  writeFrame(a.tx.bytesAt(0), a.tx.pos(0), 1514, 99);
  a.link.transmit(a.tx);
  b.rx.count = 0;
  b.rx.off[0] = RX_HEADROOM;
  b.link.receive(b.rx);
  t.equal(b.rx.off[0], RX_HEADROOM, 'headroom kept');
  t.ok(isFrame(b.rx.bytesAt(0), b.rx.pos(0), 1514, 99), 'intact');
  a.tx.off[0] = TX_HEADROOM;
});
