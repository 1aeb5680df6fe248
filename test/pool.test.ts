import t from 'tap';
import { Worker } from 'node:worker_threads';
import {
  PacketPool, makeOwner, ownerServer, ownerGen, nextGen, isOwner,
} from '../shared-rings/pool.js';
import {
  EXCHANGE_CTL_WORDS, READY_WORD, checkMessage, writeMessage,
  type ExchangeResult, type PoolWorkerData,
} from './helpers/pool-worker.js';

const workerUrl = new URL('./helpers/pool-worker.js', import.meta.url);

interface Started {
  worker: Worker;
  next: () => Promise<any>;
  exited: Promise<number>;
}

function start(data: PoolWorkerData): Started {
  const worker = new Worker(workerUrl, { workerData: data });
  const queue: any[] = [];
  const waiters: ((m: any) => void)[] = [];
  let failure: Error | null = null;
  worker.on('message', (m) => {
    const w = waiters.shift();
    if (w) w(m); else queue.push(m);
  });
  worker.on('error', (e) => { failure = e; });
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
  const next = (): Promise<any> => {
    if (queue.length > 0) return Promise.resolve(queue.shift());
    if (failure) return Promise.reject(failure);
    return new Promise((resolve, reject) => {
      waiters.push(resolve);
      worker.once('error', reject);
    });
  };
  return { worker, next, exited };
}

/** Leak check used by every test: every buffer free and the counters balance. */
function assertAllFree(t: any, pool: PacketPool, msg: string): void {
  const s = pool.stats();
  t.equal(s.inUse, 0, `${msg}: no buffer in use`);
  t.equal(s.free, pool.count, `${msg}: all free`);
  t.equal(s.allocs, s.frees + s.reclaimed, `${msg}: allocs == frees + reclaimed`);
}

const A = makeOwner(1, 1);
const B = makeOwner(2, 1);

t.test('owner encoding', async (t) => {
  t.equal(makeOwner(3, 1), 0x30001);
  t.equal(ownerServer(makeOwner(255, 0xffff)), 255);
  t.equal(ownerGen(makeOwner(255, 0xffff)), 0xffff);
  t.equal(ownerGen(makeOwner(7, 0x10005)), 5, 'generation is masked to 16 bits');
  t.equal(nextGen(1), 2);
  t.equal(nextGen(0xffff), 1, 'nextGen skips the reserved generation 0');
  t.ok(isOwner(makeOwner(1, 0)), 'in-transit owners are well formed');
  t.notOk(isOwner(0));
  t.notOk(isOwner(0x1000000));
  t.throws(() => makeOwner(0, 1), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => makeOwner(256, 1), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => makeOwner('1' as any, 1), { code: 'ERR_INVALID_ARG_TYPE' });
});

t.test('create and attach validate their arguments', async (t) => {
  t.throws(() => PacketPool.create(undefined as any), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => PacketPool.create({ buffers: '4' as any, bufferSize: 64 }), { code: 'ERR_INVALID_ARG_TYPE', name: 'TypeError' });
  t.throws(() => PacketPool.create({ buffers: 0, bufferSize: 64 }), { code: 'ERR_OUT_OF_RANGE', name: 'RangeError' });
  t.throws(() => PacketPool.create({ buffers: 4, bufferSize: 1.5 }), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => PacketPool.create({ buffers: 1 << 20, bufferSize: 1 << 20 }), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => PacketPool.attach(new ArrayBuffer(4096) as any), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => PacketPool.attach(new SharedArrayBuffer(4096)), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => PacketPool.attach(new SharedArrayBuffer(8)), { code: 'ERR_INVALID_ARG_VALUE' });
});

t.test('layout: aligned buffers, attach sees the same memory', async (t) => {
  const pool = PacketPool.create({ buffers: 5, bufferSize: 100 });
  t.equal(pool.count, 5);
  t.equal(pool.bufferSize, 100);
  t.equal(pool.stride, 128);
  t.equal(pool.bytes.length, 5 * 128);
  for (let i = 0; i < 5; i++) {
    t.equal((pool.bytes.byteOffset + pool.offsetOf(i)) % 64, 0, `buffer ${i} is 64-byte aligned`);
  }
  const other = PacketPool.attach(pool.sab);
  t.equal(other.count, 5);
  t.equal(other.stride, 128);
  const idx = pool.alloc(A);
  pool.view(idx, 10, 3).set([1, 2, 3]);
  t.same([...other.view(idx, 10, 3)], [1, 2, 3], 'the other handle reads the bytes in place');
  t.equal(other.bytes[other.offsetOf(idx) + 11], 2);
  t.equal(pool.view(idx).length, 100, 'view defaults to the whole buffer');
  t.equal(other.ownerOf(idx), A);
  t.throws(() => pool.view(5), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => pool.view(0, 90, 11), { code: 'ERR_OUT_OF_RANGE' });
  t.ok(other.free(idx, A));
  assertAllFree(t, pool, 'after layout test');
});

t.test('alloc/free cycles, exhaustion counted and recovered', async (t) => {
  const pool = PacketPool.create({ buffers: 8, bufferSize: 64 });
  for (let round = 0; round < 50; round++) {
    const got = new Set<number>();
    for (let k = 0; k < 8; k++) {
      const idx = pool.alloc(A);
      if (idx >= 0 && idx < 8) got.add(idx);
    }
    if (got.size !== 8) t.fail(`round ${round}: 8 distinct valid indexes, got ${[...got]}`);
    if (pool.alloc(A) !== -1 || pool.alloc(B) !== -1) t.fail(`round ${round}: exhausted must return -1`);
    let freed = 0;
    for (const idx of got) if (pool.free(idx, A)) freed++;
    if (freed !== 8) t.fail(`round ${round}: frees`);
  }
  t.pass('50 rounds: 8 distinct indexes, then -1 without throwing, then 8 frees');
  const s = pool.stats();
  t.equal(s.allocs, 400);
  t.equal(s.frees, 400);
  t.equal(s.exhausted, 100, 'every failed alloc counted');
  t.equal(s.freeHint, 8, 'hint exact when quiescent');
  // Recovery: exhaust, free one, the next alloc finds it.
  const all: number[] = [];
  for (let k = 0; k < 8; k++) all.push(pool.alloc(B));
  t.equal(pool.alloc(B), -1);
  t.ok(pool.free(all[5]!, B));
  t.equal(pool.alloc(A), all[5], 'the freed buffer is found');
  t.ok(pool.free(all[5]!, A));
  for (const idx of all) if (idx !== all[5]) t.ok(pool.free(idx, B));
  assertAllFree(t, pool, 'after cycles');
});

t.test('warm reuse: a handle allocates what it freed last first, and never a buffer someone took', async (t) => {
  const pool = PacketPool.create({ buffers: 64, bufferSize: 64 });
  const other = PacketPool.attach(pool.sab);
  const held = [pool.alloc(A), pool.alloc(A), pool.alloc(A)];
  t.ok(pool.free(held[0]!, A));
  t.ok(pool.free(held[2]!, A));
  t.equal(pool.alloc(A), held[2], 'the newest free first');
  // Another handle takes the older one meanwhile: this handle's memory of it must not hand it out twice.
  const otherGot: number[] = [];
  while (otherGot.length < 64 && otherGot[otherGot.length - 1] !== held[0]) otherGot.push(other.alloc(B));
  t.equal(otherGot[otherGot.length - 1], held[0], 'the other handle found the freed buffer');
  for (const idx of otherGot.slice(0, -1)) t.ok(other.free(idx, B));
  const next = pool.alloc(A);
  t.not(next, held[0], 'a remembered buffer owned by someone else is skipped');
  t.ok(next >= 0);
  t.equal(pool.ownerOf(held[0]!), B);
  // A cycle of alloc/free keeps to the same few buffers (the point of it: they are in the cache).
  const seen = new Set<number>();
  let badFrees = 0;
  for (let k = 0; k < 1000; k++) {
    const a = pool.alloc(A), b = pool.alloc(A);
    seen.add(a).add(b);
    if (!pool.free(a, A) || !pool.free(b, A)) badFrees++;
  }
  t.equal(badFrees, 0, 'every cycle freed both');
  t.ok(seen.size <= 4, `1000 cycles of two buffers used ${seen.size} buffers`);
  for (const idx of [held[1]!, held[2]!, next]) t.ok(pool.free(idx, A));
  t.ok(other.free(held[0]!, B));
  assertAllFree(t, pool, 'after warm reuse');
  t.equal(pool.stats().freeHint, 64, 'hint exact when quiescent');
});

t.test('double free, free by a non-owner and bad arguments are refused and counted', async (t) => {
  const pool = PacketPool.create({ buffers: 4, bufferSize: 64 });
  const idx = pool.alloc(A);
  t.notOk(pool.free(idx, B), 'non-owner cannot free');
  t.equal(pool.ownerOf(idx), A, 'still owned');
  t.ok(pool.free(idx, A));
  t.notOk(pool.free(idx, A), 'double free refused');
  t.equal(pool.stats().badFree, 2);
  // Stale free: the buffer was freed and re-allocated by someone else.
  const a = pool.alloc(A);
  t.ok(pool.free(a, A));
  const bufs: number[] = [];
  for (let k = 0; k < 4; k++) bufs.push(pool.alloc(B));
  t.notOk(pool.free(a, A), 'stale free of a re-allocated buffer refused');
  t.equal(pool.ownerOf(a), B);
  t.equal(pool.stats().badFree, 3);
  for (const b of bufs) t.ok(pool.free(b, B));

  const bad: any[] = [-1, 4, 1.5, NaN, Infinity, '1', undefined, null, 2 ** 32];
  for (const b of bad) {
    t.doesNotThrow(() => {
      t.notOk(pool.free(b, A));
      t.notOk(pool.transfer(b, A, B));
      t.notOk(pool.adopt(b, 1, 1));
      t.equal(pool.ownerOf(b), -1);
      t.equal(pool.epochOf(b), -1);
      t.notOk(pool.owns(b, 0, A));
    }, `bad index ${String(b)}`);
  }
  for (const o of [0, -1, 1, 0x1000000, 1.5, '65537', undefined] as any[]) {
    t.equal(pool.alloc(o), -1, `bad owner ${String(o)}`);
    t.notOk(pool.free(0, o));
  }
  const s = pool.stats();
  t.equal(s.badArg, bad.length * 6 + 7 * 2, 'every bad argument counted');
  t.equal(s.badFree, 3, 'bad arguments are not counted as bad frees');
  t.equal(s.exhausted, 0, 'bad owners are not counted as exhaustion');
  assertAllFree(t, pool, 'after refusals');
});

t.test('transfer and adopt', async (t) => {
  const pool = PacketPool.create({ buffers: 4, bufferSize: 64 });
  const idx = pool.alloc(A);
  t.ok(pool.transfer(idx, A, B));
  t.equal(pool.ownerOf(idx), B);
  t.notOk(pool.free(idx, A), 'old owner can no longer free');
  t.notOk(pool.transfer(idx, A, B), 'nor transfer');
  t.equal(pool.stats().badTransfer, 1);

  const transit = makeOwner(5, 0);
  t.ok(pool.transfer(idx, B, transit), 'send to server 5, in transit');
  t.equal(ownerGen(pool.ownerOf(idx)), 0);
  t.notOk(pool.adopt(idx, 4, 1), 'another server cannot adopt');
  t.ok(pool.adopt(idx, 5, 3), 'incarnation 3 of server 5 adopts');
  t.equal(pool.ownerOf(idx), makeOwner(5, 3));
  t.notOk(pool.adopt(idx, 5, 4), 'adopted only once');
  t.notOk(pool.adopt(idx, 5, 0), 'generation 0 cannot adopt');
  const s = pool.stats();
  t.equal(s.badTransfer, 3);
  t.equal(s.badArg, 1);
  t.ok(pool.free(idx, makeOwner(5, 3)));
  assertAllFree(t, pool, 'after transfers');
});

t.test('epochs change at every alloc; owns() detects stale descriptors', async (t) => {
  const pool = PacketPool.create({ buffers: 1, bufferSize: 64 });
  const seen = new Set<number>();
  let prev = pool.epochOf(0);
  t.equal(prev, 0);
  for (let k = 0; k < 100; k++) {
    const idx = pool.alloc(k & 1 ? A : B);
    t.equal(idx, 0);
    const e = pool.epochOf(0);
    t.equal(e, (prev + 1) >>> 0);
    seen.add(e);
    prev = e;
    t.ok(pool.free(0, k & 1 ? A : B));
  }
  t.equal(seen.size, 100);
  const idx = pool.alloc(A);
  const desc = { idx, epoch: pool.epochOf(idx) };
  t.ok(pool.owns(desc.idx, desc.epoch, A));
  t.notOk(pool.owns(desc.idx, desc.epoch, B), 'wrong owner');
  pool.free(idx, A);
  t.notOk(pool.owns(desc.idx, desc.epoch, A), 'freed');
  pool.alloc(A);
  t.notOk(pool.owns(desc.idx, desc.epoch, A), 'same owner, re-allocated: stale epoch');
  pool.free(idx, A);
  assertAllFree(t, pool, 'after epochs');
});

t.test('reclaim, keep, rehome, reclaimServer (single thread)', async (t) => {
  const pool = PacketPool.create({ buffers: 16, bufferSize: 64 });
  const dead = makeOwner(3, 1), live = makeOwner(3, 2), transit = makeOwner(3, 0), other = makeOwner(4, 1);
  const d = [0, 1, 2, 3, 4].map(() => pool.alloc(dead));
  [0, 1].forEach(() => pool.alloc(live));
  const tr = [0, 1].map(() => pool.alloc(other));
  for (const i of tr) pool.transfer(i, other, transit);
  t.equal(pool.reclaim(dead, (i) => i === d[0]), 4, 'all of the dead owner but the kept one');
  t.equal(pool.ownerOf(d[0]!), dead);
  t.equal(pool.reclaim(dead, (i) => i === d[0]), 0, 'nothing twice');
  t.equal(pool.rehome(dead, live), 1);
  t.equal(pool.countOwned(live), 3);
  t.equal(pool.countOwned(transit), 2, 'in-transit untouched');
  const old = makeOwner(3, 7);
  pool.alloc(old); pool.alloc(old);
  t.equal(pool.reclaimServer(3, 2), 2, 'frees generation 7, keeps the live generation 2 and transit');
  t.equal(pool.countOwned(live), 3);
  t.equal(pool.reclaim(transit), 2, 'transit dropped explicitly');
  t.equal(pool.reclaimServer(3, 0), 3, 'no live incarnation: everything of server 3');
  t.equal(pool.reclaim(0), 0, 'owner 0 (free) is not an owner');
  const s = pool.stats();
  t.equal(s.reclaimed, 11);
  t.equal(s.rehomed, 1);
  t.equal(s.freeHint, 16);
  assertAllFree(t, pool, 'after reclaim');
});

t.test('the free-count hint: fail fast, periodic rescan, audit', async (t) => {
  const pool = PacketPool.create({ buffers: 4, bufferSize: 64 });
  // White-box: the hint is header word 16 (see the layout in pool.ts). Simulate drift both ways.
  const header = new Int32Array(pool.sab, 0, 32);
  header[16] = 0; // under-count (only a racing audit could do this)
  let fails = 0, idx = -1;
  for (let k = 0; k < 200 && idx < 0; k++) {
    idx = pool.alloc(A);
    if (idx < 0) fails++;
  }
  t.ok(idx >= 0, 'a buffer is found despite an under-counted hint');
  t.ok(fails <= 63, `at most 63 false exhaustions per handle (${fails})`);
  t.equal(pool.audit(), 3, 'audit recomputes the free count');
  t.equal(pool.stats().freeHint, 3);
  pool.free(idx, A);
  header[16] = 1000; // over-count (threads that died mid-operation)
  const all = [0, 1, 2, 3].map(() => pool.alloc(A));
  t.equal(pool.alloc(A), -1, 'over-count only costs a scan');
  t.equal(pool.audit(), 0);
  for (const i of all) pool.free(i, A);
  t.equal(pool.audit(), 4);
  assertAllFree(t, pool, 'after audit');
});

t.test('a dead owner: worker terminated while parked', async (t) => {
  const pool = PacketPool.create({ buffers: 64, bufferSize: 256 });
  const dead = makeOwner(3, 1), heir = makeOwner(4, 1);
  const w = start({ mode: 'hold', pool: pool.sab, serverId: 3, gen: 1, count: 20, transfer: 5, transferTo: heir, ctl: new SharedArrayBuffer(8) });
  const { held, transferred } = await w.next();
  t.equal(held.length, 20);
  t.equal(transferred.length, 5);
  await w.worker.terminate();
  await w.exited;
  t.equal(pool.countOwned(dead), 15);
  for (const i of transferred) {
    t.ok(checkMessage(pool.bytes, pool.offsetOf(i), 3, held.indexOf(i), 16), 'transferred buffer intact');
  }
  t.equal(pool.reclaim(dead), 15);
  t.equal(pool.reclaim(dead), 0, 'nothing to reclaim twice');
  for (const i of transferred) t.equal(pool.ownerOf(i), heir, 'transferred buffers not reclaimed');
  for (const i of transferred) t.ok(pool.free(i, heir));
  assertAllFree(t, pool, 'after terminate');
  t.equal(pool.stats().reclaimed, 15);
});

t.test('a dead owner: worker calls process.exit()', async (t) => {
  const pool = PacketPool.create({ buffers: 32, bufferSize: 128 });
  const dead = makeOwner(3, 1), heir = makeOwner(4, 2);
  const w = start({ mode: 'hold', pool: pool.sab, serverId: 3, gen: 1, count: 40, transfer: 3, transferTo: heir, exitCode: 7 });
  const code = await w.exited;
  t.equal(code, 7);
  t.equal(pool.stats().exhausted, 1, 'the worker hit exhaustion once (40 wanted, 32 exist)');
  t.equal(pool.countOwned(heir), 3);
  t.equal(pool.reclaim(dead), 29);
  t.equal(pool.countOwned(heir), 3, 'transferred buffers not reclaimed');
  t.equal(pool.reclaim(heir), 3, 'the heir dies too');
  assertAllFree(t, pool, 'after process.exit');
});

t.test('a dead owner: worker terminated while busy allocating', async (t) => {
  const pool = PacketPool.create({ buffers: 32, bufferSize: 128 });
  const dead = makeOwner(3, 1), mid = makeOwner(9, 1);
  const ctl = new SharedArrayBuffer(8);
  const w = start({ mode: 'churn', pool: pool.sab, serverId: 3, gen: 1, transferTo: mid, ctl });
  t.equal(await w.next(), 'busy');
  await w.worker.terminate();
  await w.exited;
  // The worker may have died between any two instructions, including while a buffer sat with `mid`.
  const n = pool.reclaim(dead) + pool.reclaim(mid);
  t.ok(n <= 8, `at most the 8 buffers it holds at a time (${n})`);
  const s = pool.stats();
  t.equal(s.inUse, 0, 'all free after reclaiming both owners');
  t.ok(Math.abs(s.allocs - s.frees - s.reclaimed) <= 1, 'counters balance (a death between CAS and counter may leave one off)');
  t.equal(s.badFree, 0);
  t.ok(s.freeHint >= s.free, 'a death never leaves the hint too low');
  t.equal(pool.audit(), 32);
});

t.test('two workers exchange buffers a few million operations', async (t) => {
  const pool = PacketPool.create({ buffers: 64, bufferSize: 256 });
  const ctl = new SharedArrayBuffer(EXCHANGE_CTL_WORDS * 4);
  const messages = 400_000; // per direction: alloc + transfer + adopt + free = 3.2M pool operations
  const common = { mode: 'exchange' as const, pool: pool.sab, ctl, gen: 1, messages, peerGen: 1 };
  const w1 = start({ ...common, serverId: 1, side: 0, peerServerId: 2, seed: 12345 });
  const w2 = start({ ...common, serverId: 2, side: 1, peerServerId: 1, seed: 67890 });
  const [r1, r2] = (await Promise.all([w1.next(), w2.next()])) as [ExchangeResult, ExchangeResult];
  await Promise.all([w1.exited, w2.exited]);
  t.equal(Atomics.load(new Int32Array(ctl), READY_WORD), 2);
  for (const [name, r] of [['w1', r1], ['w2', r2]] as const) {
    t.equal(r.sent, messages, `${name} sent all`);
    t.equal(r.received, messages, `${name} received all`);
    t.equal(r.badContent, 0, `${name}: every payload verified`);
    t.equal(r.badDescriptor, 0, `${name}: every descriptor valid`);
    t.equal(r.refusedBadFrees, r.deliberateBadFrees, `${name}: every deliberate double free refused`);
    t.equal(r.refusedBadTransfers, r.deliberateBadTransfers, `${name}: every deliberate bad transfer refused`);
  }
  const s = pool.stats();
  t.comment(`exhausted ${s.exhausted} times; alloc failures w1 ${r1.allocFailures} w2 ${r2.allocFailures}`);
  t.equal(s.allocs, 2 * messages);
  t.equal(s.frees, 2 * messages);
  t.equal(s.badFree, r1.deliberateBadFrees + r2.deliberateBadFrees);
  t.equal(s.badTransfer, r1.deliberateBadTransfers + r2.deliberateBadTransfers);
  t.equal(s.exhausted, r1.allocFailures + r2.allocFailures);
  t.equal(s.freeHint, 64, 'hint exact when quiescent');
  assertAllFree(t, pool, 'after exchange');
});

t.test('helpers: message pattern round trip', async (t) => {
  const b = new Uint8Array(64);
  writeMessage(b, 0, 1, 42, 50);
  t.ok(checkMessage(b, 0, 1, 42, 54));
  b[30]! ^= 1;
  t.notOk(checkMessage(b, 0, 1, 42, 54), 'a flipped bit is caught');
});
