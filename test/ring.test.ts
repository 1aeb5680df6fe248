import t from 'tap';
import { Worker } from 'node:worker_threads';
import { Ring, RingConsumer, RingProducer, RECORD_HEADER_BYTES } from '../shared-rings/ring.js';
import { Doorbell } from '../shared-rings/doorbell.js';
import { mulberry32, randInt } from './helpers/prng.js';
import type { RingWorkerData } from './helpers/ring-worker.js';

const workerUrl = new URL('./helpers/ring-worker.js', import.meta.url);

function startWorker(data: RingWorkerData): { worker: Worker; messages: any[]; next: () => Promise<any>; exited: Promise<number> } {
  const worker = new Worker(workerUrl, { workerData: data });
  const messages: any[] = [];
  const waiters: ((m: any) => void)[] = [];
  worker.on('message', (m) => {
    const w = waiters.shift();
    if (w) w(m);
    else messages.push(m);
  });
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
  worker.on('error', (e) => {
    const w = waiters.shift();
    if (w) w({ error: String(e) });
    else messages.push({ error: String(e) });
  });
  const next = () => (messages.length ? Promise.resolve(messages.shift()) : new Promise<any>((r) => waiters.push(r)));
  return { worker, messages, next, exited };
}

t.test('rejects bad construction arguments with codes', async (t) => {
  t.throws(() => Ring.create({ capacity: 1000 }), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => Ring.create({ capacity: 512 }), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => Ring.create({ capacity: 4096, maxRecord: 4096 }), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => new RingConsumer({ sab: new SharedArrayBuffer(4096) }), { code: 'ERR_RING_BAD_HEADER' });
  t.throws(() => new RingConsumer({ sab: new ArrayBuffer(4096) as unknown as SharedArrayBuffer }), { code: 'ERR_INVALID_ARG_TYPE' });
  const p = new RingProducer(Ring.create({ capacity: 1024 }));
  t.throws(() => p.reserve(-1), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => p.reserve(p.maxRecord + 1), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => p.reserve(1.5), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => p.commit(), { code: 'ERR_RING_STATE' });
});

t.test('empty, full, and batched publication', async (t) => {
  const region = Ring.create({ capacity: 1024 });
  const p = new RingProducer(region);
  const c = new RingConsumer(region);
  t.equal(c.peek(), -1, 'empty ring has nothing to peek');
  t.ok(p.push(new Uint8Array([1, 2, 3]), 7));
  t.equal(c.peek(), -1, 'a committed record is invisible until flush');
  p.flush();
  t.equal(c.peek(), 3);
  t.equal(c.tag, 7);
  t.same([...c.bytes.subarray(c.offset, c.offset + 3)], [1, 2, 3]);
  t.equal(c.peek(), 3, 'peek is idempotent until commit');
  c.commit();
  t.equal(c.peek(), -1);
});

t.test('a ring fills to exactly its capacity', async (t) => {
  // Each 56-byte payload takes 64 bytes with its header, so exactly 16 fit in 1024.
  const region = Ring.create({ capacity: 1024 });
  const p = new RingProducer(region);
  const c = new RingConsumer(region);
  let n = 0;
  while (p.push(new Uint8Array(56))) n++;
  t.equal(n, 16, 'ring holds capacity / record size records');
  t.equal(p.reserve(0), -1, 'full ring refuses even an empty record');
  p.flush();
  t.equal(p.usedBytes, 1024);
  t.equal(c.peek(), 56);
  c.commit();
  t.ok(p.canReserve(56), 'one committed record frees its space');
  t.notOk(p.canReserve(57));
});

t.test('wrap-around never splits a record, at every size up to the maximum', async (t) => {
  const region = Ring.create({ capacity: 1024 });
  const p = new RingProducer(region);
  const c = new RingConsumer(region);
  t.equal(p.maxRecord, 1024 / 2 - RECORD_HEADER_BYTES);
  let seq = 0;
  let checked = 0;
  // Walk every length 0..max, twice, with a writer 0..3 records ahead so positions hit every alignment.
  const rand = mulberry32(42);
  const pending: number[] = [];
  for (let round = 0; round < 2; round++) {
    for (let len = 0; len <= p.maxRecord; len++) {
      const ahead = randInt(rand, 0, 3);
      while (pending.length > ahead) {
        t.equal(c.peek(), pending[0], 'record length survives');
        const s = c.tag;
        for (let i = 0; i < c.length; i++) {
          if (c.bytes[c.offset + i] !== ((s + i) & 255)) {
            t.fail(`byte ${i} of record ${s}`);
            return;
          }
        }
        t.ok(c.offset + c.length <= c.capacity);
        c.commit();
        pending.shift();
        checked++;
      }
      let off = p.reserve(len, seq);
      while (off < 0) {
        p.flush();
        t.ok(c.peek() >= 0, 'a full ring has something to read');
        c.commit();
        pending.shift();
        checked++;
        off = p.reserve(len, seq);
      }
      t.ok(off + len <= p.capacity, 'record fits before the end');
      for (let i = 0; i < len; i++) p.bytes[off + i] = (seq + i) & 255;
      p.commit();
      p.flush();
      pending.push(len);
      seq++;
    }
  }
  while (c.peek() >= 0) {
    c.commit();
    checked++;
  }
  t.equal(checked, seq, 'every record delivered once');
});

t.test('commit may shrink a reservation; abort leaves nothing', async (t) => {
  const region = Ring.create({ capacity: 1024 });
  const p = new RingProducer(region);
  const c = new RingConsumer(region);
  const off = p.reserve(400);
  p.bytes.fill(9, off, off + 10);
  p.commit(10);
  p.reserve(100);
  p.abort();
  p.flush();
  t.equal(c.peek(), 10);
  c.commit();
  t.equal(c.peek(), -1);
  t.throws(() => {
    p.reserve(20);
    p.commit(21);
  }, { code: 'ERR_OUT_OF_RANGE' });
});

t.test('positions wrap past 2^32 safely', async (t) => {
  const region = Ring.create({ capacity: 1024 });
  // Start both positions just below 2^31 and 2^32 wrap points by writing the header directly.
  const h = new Int32Array(region.sab, 0, 64);
  for (const start of [0x7ffffe00 | 0, 0xfffffe00 | 0]) {
    h[16] = start;
    h[32] = start;
    const p = new RingProducer(region);
    const c = new RingConsumer(region);
    for (let i = 0; i < 200; i++) {
      t.ok(p.push(new Uint8Array([i & 255, 1, 2]), i) || (p.flush(), c.peek() >= 0));
      p.flush();
      t.equal(c.peek(), 3);
      if (c.tag !== i || c.bytes[c.offset] !== (i & 255)) t.fail('wrong record after position wrap');
      c.commit();
    }
    t.equal(p.usedBytes, 0);
  }
});

t.test('generation words tell incarnations apart', async (t) => {
  const region = Ring.create({ capacity: 1024 });
  const p1 = new RingProducer(region, { generation: 1 });
  const c = new RingConsumer(region, { generation: 5 });
  t.equal(c.producerGeneration, 1);
  t.equal(p1.consumerGeneration, 5);
  new RingProducer(region, { generation: 2 });
  t.equal(c.producerGeneration, 2);
});

t.test('doorbell: notify only when the other side announced a park', async (t) => {
  const d = Doorbell.create();
  d.ring();
  t.equal(d.notifies, 0, 'nobody parked: no notify');
  const key = d.prepare();
  t.ok(d.parked);
  d.ring();
  t.equal(d.notifies, 1);
  t.equal(d.wait(key, 0), 'not-equal', 'a ring between prepare and wait is not lost');
  t.notOk(d.parked);
  t.throws(() => new Doorbell(new Int32Array(4), 0), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => new Doorbell(new Int32Array(new SharedArrayBuffer(8)), 1), { code: 'ERR_OUT_OF_RANGE' });
});

t.test('async wait on the main thread wakes on flush', async (t) => {
  const region = Ring.create({ capacity: 1024 });
  const p = new RingProducer(region);
  const c = new RingConsumer(region);
  const waiting = c.waitAsync(5000);
  p.push(new Uint8Array([5]));
  p.flush();
  t.equal(await waiting, true);
  t.equal(c.peek(), 1);
  t.equal(await c.waitAsync(0), true);
  c.commit();
  t.equal(await c.waitAsync(1), false, 'times out when empty');
});

t.test('stress: 3 million checksummed records across two real threads, both parking', async (t) => {
  const region = Ring.create({ capacity: 1 << 16 });
  const count = 3_000_000;
  const seed = 1234;
  const cons = startWorker({ mode: 'consume', region, count, seed, maxLen: 200 });
  const prod = startWorker({ mode: 'produce', region, count, seed, maxLen: 200, flushEvery: 8 });
  const [pm, cm] = await Promise.all([prod.next(), cons.next()]);
  t.same(pm.done, true, 'producer finished');
  t.equal(cm.bad, 0, 'every record in order, right length, right bytes');
  t.equal(cm.timeouts, 0, 'no consumer wait ever timed out (no lost wake-up)');
  t.equal(cm.first, 0);
  t.comment(`producer full-waits ${pm.fullWaits}, consumer parks ${cm.parks}`);
  await Promise.all([prod.exited, cons.exited]);
});

t.test('lost wake-up hunt: 1 million ping-pong round trips, both sides parking every message', async (t) => {
  const a = Ring.create({ capacity: 1024 });
  const b = Ring.create({ capacity: 1024 });
  const count = 1_000_000;
  const ping = startWorker({ mode: 'ping', region: a, region2: b, count });
  const pong = startWorker({ mode: 'pong', region: a, region2: b, count });
  const [x, y] = await Promise.all([ping.next(), pong.next()]);
  t.equal(x.bad + y.bad, 0, 'every message arrived intact and in order');
  t.equal(x.timeouts + y.timeouts, 0, 'no wait timed out: no wake-up was lost');
  t.ok(x.parks + y.parks > count, `both sides parked and were woken (${x.parks + y.parks} parks)`);
  t.comment(`parks ping ${x.parks} pong ${y.parks}; notifies ${x.notifies} / ${y.notifies}`);
  await Promise.all([ping.exited, pong.exited]);
});

t.test('lost wake-up hunt: tiny ring, producer parks on full and consumer on empty', async (t) => {
  const region = Ring.create({ capacity: 1024 });
  const count = 1_000_000;
  const cons = startWorker({ mode: 'consume', region, count, seed: 9, maxLen: 480 });
  const prod = startWorker({ mode: 'produce', region, count, seed: 9, maxLen: 480, flushEvery: 1 });
  const [pm, cm] = await Promise.all([prod.next(), cons.next()]);
  t.equal(cm.bad, 0);
  t.equal(cm.timeouts, 0, 'no lost wake-up on the data side');
  t.ok(pm.fullWaits > 0, `producer parked on full ${pm.fullWaits} times`);
  await Promise.all([prod.exited, cons.exited]);
});

t.test('a consumer terminated mid-record: its successor resumes with nothing lost or duplicated', async (t) => {
  const region = Ring.create({ capacity: 1 << 14 });
  const count = 50_000;
  const seed = 77;
  const prod = startWorker({ mode: 'produce', region, count, seed, maxLen: 100, flushEvery: 4 });
  const c1 = startWorker({ mode: 'consume-hold', region, count, seed, maxLen: 100, holdAt: 20_000, generation: 1 });
  const held = await c1.next();
  t.equal(held.holding, 20_000);
  t.equal(held.bad, 0);
  await c1.worker.terminate();
  // The successor starts at record 20000: the one that was peeked but never committed.
  const c2 = startWorker({ mode: 'consume', region, count: count - 20_000, startSeq: 20_000, seed, maxLen: 100, generation: 2 });
  const done = await c2.next();
  t.equal(done.first, 20_000, 'the uncommitted record is seen again, first');
  t.equal(done.bad, 0, 'and every later record exactly once, in order');
  t.equal(new RingConsumer(region, { generation: 3 }).peek(), -1, 'nothing left over');
  await prod.next();
  await Promise.all([prod.exited, c2.exited]);
});

t.test('a producer that dies mid-write never exposes a half-written record', async (t) => {
  const region = Ring.create({ capacity: 1 << 14 });
  const seed = 5;
  const p1 = startWorker({ mode: 'produce-die', region, count: 30, seed, maxLen: 100, generation: 1 });
  t.equal(await p1.exited, 3);
  const c = new RingConsumer(region, { generation: 1 });
  const rand = mulberry32(seed);
  for (let seq = 0; seq < 30; seq++) {
    const len = Math.floor(rand() * 101);
    t.equal(c.peek(), len);
    t.equal(c.tag, seq);
    c.commit();
  }
  t.equal(c.peek(), -1, 'the unflushed record is not visible');
  // The next incarnation writes on from the published position; the consumer sees only its records.
  const p2 = startWorker({ mode: 'produce', region, count: 30, startSeq: 30, seed: 99, maxLen: 10, generation: 2 });
  await p2.next();
  await p2.exited;
  t.equal(c.producerGeneration, 2);
  let n = 0;
  while (c.peek() >= 0) {
    t.equal(c.tag, 30 + n);
    c.commit();
    n++;
  }
  t.equal(n, 30);
});
