import t from 'tap';
import { FrameBatch, type Link } from '../../servers/driver/link.js';
import { FaultLink, type FaultLinkOptions } from '../../servers/driver/fault-link.js';
import {
  bufferSet, expectedFrame, isFrame, readId, stackLeaks, wirePair, writeFrame, type Stack,
} from './link-helpers.js';

/** Fill `s.tx` with frames ids[from..] of length len(id); returns how many were put in. */
function fill(s: Stack, ids: number[], from: number, len: (id: number) => number): number {
  const tx = s.tx;
  tx.count = 0;
  while (tx.count < tx.capacity && from + tx.count < ids.length) {
    const id = ids[from + tx.count]!;
    const i = tx.count++;
    tx.len[i] = len(id);
    tx.flags[i] = 0;
    writeFrame(tx.bytesAt(i), tx.pos(i), len(id), id);
  }
  return tx.count;
}

interface Got {
  id: number;
  ok: boolean;
  len: number;
}

/** Receive everything `link` has now into s.rx (recycling the slots); checks the slots kept their buffers. */
function drain(link: Link, s: Stack, out: Got[], lost: { buffers: number }): void {
  for (;;) {
    const before = bufferSet(s.rx);
    s.rx.count = 0;
    const n = link.receive(s.rx);
    if (bufferSet(s.rx).join() !== before.join()) lost.buffers++;
    for (let i = 0; i < n; i++) {
      const p = s.rx.pos(i);
      const len = s.rx.len[i]!;
      const id = readId(s.rx.bytesAt(i), p);
      out.push({ id, ok: isFrame(s.rx.bytesAt(i), p, len, id), len });
    }
    if (n === 0) return;
  }
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const len64 = (): number => 64;

t.test('bad options are refused with codes', async (t) => {
  const [a] = wirePair(1500, { batch: 4 });
  t.throws(() => new FaultLink(a.link, {} as FaultLinkOptions), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => new FaultLink(a.link, { seed: 1, tx: { loss: 1.5 } }), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => new FaultLink(a.link, { seed: 1, rx: { delayUs: -1 } }), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => new FaultLink(a.link, { seed: 1, tx: { corruptOffsets: [-2] } }), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => new FaultLink(a.link, { seed: 1, queueFrames: 0 }), { code: 'ERR_OUT_OF_RANGE' });
  const f = new FaultLink(a.link, { seed: 1 });
  t.equal(f.mtu, a.link.mtu);
  t.equal(f.mac, a.link.mac);
  t.equal(f.wait, a.link.wait, 'waits where the inner link waits');
  t.equal(f.poll(0), Infinity, 'nothing queued: no deadline');
});

/** One seeded run with every fault on both directions; returns its trace and counters. */
function seededRun(seed: number): { trace: string[]; counters: unknown } {
  const [a, b] = wirePair(1500, { batch: 64 });
  const opts = {
    tx: { loss: 0.1, duplicate: 0.1, corrupt: 0.1, corruptMinOffset: 18, delayUs: 100, jitterUs: 300, reorder: 0.05, reorderGapUs: 1000 },
    rx: { loss: 0.05, duplicate: 0.05, corrupt: 0.05, corruptMinOffset: 18, jitterUs: 50 },
  };
  const fa = new FaultLink(a.link, { seed, tx: opts.tx });
  const fb = new FaultLink(b.link, { seed: seed + 1, rx: opts.rx });
  const ids = range(2000);
  const trace: string[] = [];
  const got: Got[] = [];
  const lost = { buffers: 0 };
  let now = 0;
  const step = (): void => {
    fa.poll(now);
    fb.poll(now);
    const before = got.length;
    drain(fb, b, got, lost);
    for (let k = before; k < got.length; k++) trace.push(`${now}:${got[k]!.id}:${got[k]!.ok ? 1 : 0}`);
  };
  for (let sent = 0; sent < ids.length; now += 50) {
    step();
    const n = fill(a, ids, sent, (id) => 60 + (id % 200));
    a.tx.count = Math.min(n, 8); // 8 frames per 50 us: the 256-slot queues never fill
    t.equal(fa.transmit(a.tx), a.tx.count);
    sent += a.tx.count;
  }
  for (let guard = 0; guard < 10000; guard++) {
    step();
    const d = Math.min(fa.poll(now), fb.poll(now));
    if (d === Infinity) break;
    now = Math.max(now + 1, d);
  }
  t.equal(lost.buffers, 0, 'rx slots never lost a buffer');
  t.equal(stackLeaks(a) + stackLeaks(b), 0, 'pools back to zero');
  return { trace, counters: { tx: { ...fa.faults.tx }, rx: { ...fb.faults.rx } } };
}

t.test('seeded determinism: the same seed replays exactly, another seed differs', async (t) => {
  const r1 = seededRun(7);
  const r2 = seededRun(7);
  const r3 = seededRun(8);
  t.ok(r1.trace.length > 1800, `${r1.trace.length} frames arrived`);
  t.same(r2.trace, r1.trace, 'same arrival times, ids and corruption');
  t.same(r2.counters, r1.counters, 'same counters');
  t.notSame(r3.trace, r1.trace, 'another seed, another run');
  const c = r1.counters as { tx: Record<string, number>; rx: Record<string, number> };
  for (const k of ['lost', 'duplicated', 'corrupted', 'delayed', 'reordered']) t.ok(c.tx[k]! > 0, `tx ${k} happened`);
  for (const k of ['lost', 'duplicated', 'corrupted', 'delayed']) t.ok(c.rx[k]! > 0, `rx ${k} happened`);
  t.equal(c.tx['queueFull']! + c.rx['queueFull']!, 0, 'no queue overflow');
});

t.test('enabling one fault does not change the decisions of another', async (t) => {
  const lostIds = (corrupt: number): number[] => {
    const [a, b] = wirePair(1500, { batch: 64 });
    const f = new FaultLink(a.link, { seed: 99, tx: { loss: 0.2, corrupt, corruptMinOffset: 18 } });
    const got: Got[] = [];
    const ids = range(1000);
    for (let sent = 0; sent < ids.length; ) {
      sent += fill(a, ids, sent, len64);
      f.transmit(a.tx);
      drain(b.link, b, got, { buffers: 0 });
    }
    const seen = new Set(got.map((g) => g.id));
    return ids.filter((id) => !seen.has(id));
  };
  t.same(lostIds(0.5), lostIds(0), 'the same frames are lost with or without corruption');
});

/** Push `total` frames through with the given faults, no time-based faults; returns the receiver's view. */
function bulk(dir: 'tx' | 'rx', total: number, spec: object): { got: Got[]; f: FaultLink; lostBuffers: number; leaks: number } {
  const [a, b] = wirePair(1500, { batch: 64 });
  const f = dir === 'tx' ? new FaultLink(a.link, { seed: 2024, tx: spec }) : new FaultLink(b.link, { seed: 2024, rx: spec });
  const sender: Link = dir === 'tx' ? f : a.link;
  const receiver: Link = dir === 'rx' ? f : b.link;
  const got: Got[] = [];
  const lost = { buffers: 0 };
  const ids = range(total);
  for (let sent = 0; sent < total; ) {
    const n = fill(a, ids, sent, len64);
    a.tx.count = Math.min(n, 48); // leave spare rx slots for duplicates
    sent += sender.transmit(a.tx);
    drain(receiver, b, got, lost);
  }
  f.poll(0);
  drain(receiver, b, got, lost);
  return { got, f, lostBuffers: lost.buffers, leaks: stackLeaks(a) + stackLeaks(b) };
}

for (const dir of ['tx', 'rx'] as const) {
  t.test(`${dir}: loss, duplication and corruption rates over 100k frames`, async (t) => {
    const N = 100_000;
    const p = { loss: 0.1, duplicate: 0.05, corrupt: 0.02 };
    const { got, f, lostBuffers, leaks } = bulk(dir, N, { ...p, corruptMinOffset: 18 });
    const c = f.faults[dir];
    const within = (name: string, k: number, n: number, q: number): void => {
      const sigma = Math.sqrt((n * q * (1 - q)));
      t.ok(Math.abs(k - n * q) < 5 * sigma, `${name}: ${k} of ${n} (expected ${Math.round(n * q)} +- ${Math.round(5 * sigma)})`);
    };
    t.equal(c.frames, N);
    within('lost', c.lost, N, p.loss);
    within('duplicated', c.duplicated, N - c.lost, p.duplicate);
    const copies = N - c.lost + c.duplicated;
    within('corrupted', c.corrupted, copies, p.corrupt);
    t.equal(got.length, copies, 'the receiver got every surviving copy');
    t.equal(c.out, copies);
    t.equal(got.filter((g) => !g.ok).length, c.corrupted, 'exactly the corrupted copies differ from what was sent');
    const counts = new Map<number, number>();
    for (const g of got) counts.set(g.id, (counts.get(g.id) ?? 0) + 1);
    t.equal(counts.size, N - c.lost, 'distinct frames = sent - lost');
    t.equal([...counts.values()].filter((k) => k === 2).length, c.duplicated, 'each duplicated frame arrived twice');
    t.equal(c.queueFull + c.delayed + c.reordered + c.shaped, 0, 'no queue faults configured');
    t.equal(lostBuffers, 0, 'receive kept every slot buffer');
    t.equal(leaks, 0, 'pools back to zero');
  });
}

t.test('tx corruption flips the given offsets in a copy, never in the caller buffer', async (t) => {
  const [a, b] = wirePair(1500, { batch: 8 });
  const f = new FaultLink(a.link, { seed: 5, tx: { corrupt: 1, corruptOffsets: [14, 30, 5000] } });
  fill(a, [1, 2], 0, () => 100);
  t.equal(f.transmit(a.tx), 2);
  t.ok(isFrame(a.tx.bytesAt(0), a.tx.pos(0), 100, 1) && isFrame(a.tx.bytesAt(1), a.tx.pos(1), 100, 2), 'caller buffers untouched');
  b.rx.count = 0;
  t.equal(b.link.receive(b.rx), 2);
  for (let i = 0; i < 2; i++) {
    const want = expectedFrame(100, i + 1);
    const got = b.rx.frame(i);
    const diff = [];
    for (let k = 0; k < 100; k++) if (got[k] !== want[k]) diff.push(k);
    t.same(diff, [14, 30], `frame ${i + 1}: exactly offsets 14 and 30 differ (5000 is past the end)`);
  }
  t.equal(f.faults.tx.corrupted, 2);
  t.equal(stackLeaks(a) + stackLeaks(b), 0);
});

t.test('rx corruption at a random offset >= corruptMinOffset', async (t) => {
  const [a, b] = wirePair(1500, { batch: 64 });
  const f = new FaultLink(b.link, { seed: 11, rx: { corrupt: 1, corruptMinOffset: 40 } });
  fill(a, range(50), 0, () => 100);
  a.link.transmit(a.tx);
  b.rx.count = 0;
  t.equal(f.receive(b.rx), 50);
  let good = 0;
  for (let i = 0; i < 50; i++) {
    const want = expectedFrame(100, i);
    const got = b.rx.frame(i);
    const diff = [];
    for (let k = 0; k < 100; k++) if (got[k] !== want[k]) diff.push(k);
    if (diff.length === 1 && diff[0]! >= 40) good++;
  }
  t.equal(good, 50, 'one byte changed per frame, at or after offset 40');
  t.equal(stackLeaks(a) + stackLeaks(b), 0);
});

t.test('delay by fake time: nothing before the deadline, everything at it', async (t) => {
  const [a, b] = wirePair(1500, { batch: 8 });
  const f = new FaultLink(a.link, { seed: 3, tx: { delayUs: 1000 } });
  t.equal(f.poll(5000), Infinity);
  fill(a, range(5), 0, len64);
  t.equal(f.transmit(a.tx), 5, 'taken (queued)');
  t.same(f.queued, { tx: 5, rx: 0 });
  t.notOk(b.link.rxReady, 'nothing on the wire yet');
  t.equal(f.poll(5999), 6000, 'the deadline is send time + delay');
  t.notOk(b.link.rxReady);
  t.equal(f.poll(6000), Infinity, 'released at the deadline');
  const got: Got[] = [];
  drain(b.link, b, got, { buffers: 0 });
  t.same(got.map((g) => g.id), range(5), 'in order');
  t.equal(f.faults.tx.delayed, 5);
  t.equal(f.faults.tx.reordered, 0);
  t.equal(stackLeaks(a) + stackLeaks(b), 0);
});

t.test('rx delay: queued frames are delivered by receive() after their deadline', async (t) => {
  const [a, b] = wirePair(1500, { batch: 8 });
  const f = new FaultLink(b.link, { seed: 3, rx: { delayUs: 500 } });
  f.poll(100);
  fill(a, range(3), 0, len64);
  a.link.transmit(a.tx);
  t.ok(f.rxReady, 'the wire has frames');
  const before = bufferSet(b.rx);
  b.rx.count = 0;
  t.equal(f.receive(b.rx), 0, 'all three delayed');
  t.same(bufferSet(b.rx), before, 'the slots kept their buffers');
  t.notOk(f.rxReady);
  t.equal(f.poll(599), 600);
  t.notOk(f.rxReady);
  t.equal(f.poll(600), 600, 'due now: receive without sleeping');
  t.ok(f.rxReady);
  const got: Got[] = [];
  drain(f, b, got, { buffers: 0 });
  t.same(got.map((g) => `${g.id}${g.ok}`), ['0true', '1true', '2true']);
  t.equal(f.poll(600), Infinity);
  t.equal(stackLeaks(a) + stackLeaks(b), 0);
});

t.test('jitter reorders within [delay, delay + jitter], counted exactly', async (t) => {
  const [a, b] = wirePair(1500, { batch: 64 });
  const f = new FaultLink(a.link, { seed: 17, tx: { delayUs: 100, jitterUs: 1000 } });
  const sentAt = new Map<number, number>();
  const arrivals: { id: number; at: number }[] = [];
  let now = 0;
  const tick = (): number => {
    const d = f.poll(now);
    const got: Got[] = [];
    drain(b.link, b, got, { buffers: 0 });
    for (const g of got) arrivals.push({ id: g.id, at: now });
    return d;
  };
  for (let id = 0; id < 500; id++, now += 10) {
    tick();
    fill(a, [id], 0, len64);
    f.transmit(a.tx);
    sentAt.set(id, now);
  }
  for (let d = tick(); d !== Infinity; d = tick()) now = d;
  t.equal(arrivals.length, 500, 'every frame arrived once');
  t.same(new Set(arrivals.map((x) => x.id)).size, 500);
  const bad = arrivals.filter((x) => x.at < sentAt.get(x.id)! + 100 || x.at > sentAt.get(x.id)! + 1100);
  t.equal(bad.length, 0, 'each arrived within [sent + 100, sent + 1100] us');
  let max = -1, late = 0;
  for (const x of arrivals) {
    if (x.id < max) late++;
    else max = x.id;
  }
  t.ok(late > 100, `reordered: ${late} frames overtaken`);
  t.equal(f.faults.tx.reordered, late, 'the reordered counter matches the arrival order');
  t.equal(stackLeaks(a) + stackLeaks(b), 0);
});

t.test('reorder: a fraction held back by a gap, the rest straight through', async (t) => {
  const [a, b] = wirePair(1500, { batch: 64 });
  const f = new FaultLink(a.link, { seed: 23, tx: { reorder: 0.2, reorderGapUs: 300 } });
  const order: number[] = [];
  let now = 0;
  const tick = (): number => {
    const d = f.poll(now);
    const got: Got[] = [];
    drain(b.link, b, got, { buffers: 0 });
    for (const g of got) order.push(g.id);
    return d;
  };
  for (let id = 0; id < 2000; id++, now += 10) {
    tick();
    fill(a, [id], 0, len64);
    f.transmit(a.tx);
  }
  for (let d = tick(); d !== Infinity; d = tick()) now = d;
  t.equal(order.length, 2000);
  const held = f.faults.tx.delayed;
  t.ok(Math.abs(held - 400) < 5 * Math.sqrt(2000 * 0.2 * 0.8), `${held} held back (about 400)`);
  t.ok(f.faults.tx.reordered > 0 && order.some((id, i) => i > 0 && id < order[i - 1]!), 'later frames overtook');
  t.equal(stackLeaks(a) + stackLeaks(b), 0);
});

t.test('rate limit: a token bucket in fake time (1 byte/us, burst 1514)', async (t) => {
  const [a, b] = wirePair(1500, { batch: 128 });
  const f = new FaultLink(a.link, { seed: 1, tx: { rateBytesPerSec: 1_000_000 } });
  f.poll(0);
  fill(a, range(100), 0, () => 1000);
  t.equal(f.transmit(a.tx), 100, 'all taken into the shaper queue');
  const arrivals: number[] = [];
  let now = 0;
  let polls = 0;
  for (;;) {
    const d = f.poll(now);
    polls++;
    const got: Got[] = [];
    drain(b.link, b, got, { buffers: 0 });
    for (let k = 0; k < got.length; k++) arrivals.push(now);
    if (d === Infinity) break;
    t.ok(d >= now, 'deadlines never go back');
    now = d;
  }
  // Frame k leaves when (k + 1) * 1000 bytes <= 1514 + now: at max(0, 1000k - 514).
  const want = range(100).map((k) => Math.max(0, 1000 * (k + 1) - 1514));
  t.same(arrivals, want, 'each frame leaves exactly when its tokens are there');
  t.ok(polls <= 102, `woken only at deadlines (${polls} polls)`);
  t.equal(f.faults.tx.shaped, 99, 'all but the first waited for tokens');
  // After a long idle time the bucket is full again (burst), not more.
  now += 1_000_000;
  f.poll(now);
  fill(a, range(3), 0, () => 1000);
  f.transmit(a.tx);
  const got: Got[] = [];
  drain(b.link, b, got, { buffers: 0 });
  t.equal(got.length, 1, 'the burst lets one 1000-byte frame through at once');
  t.equal(f.poll(now), now + 486, 'the next one 486 us later');
  t.equal(stackLeaks(a) + stackLeaks(b), 0);
});

t.test('rx rate limit: receive() delivers at the token rate', async (t) => {
  const [a, b] = wirePair(1500, { batch: 64 });
  const f = new FaultLink(b.link, { seed: 1, rx: { rateBytesPerSec: 2_000_000, burstBytes: 2000 } });
  f.poll(0);
  fill(a, range(10), 0, () => 1000);
  a.link.transmit(a.tx);
  const times: number[] = [];
  let now = 0;
  for (let d = 0; d !== Infinity; d = f.poll(now)) {
    now = d;
    f.poll(now);
    const got: Got[] = [];
    drain(f, b, got, { buffers: 0 });
    for (const g of got) times.push(g.ok ? now : -1);
  }
  t.same(times, [0, 0, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000], '2 at once (burst 2000), then one per 500 us');
  t.equal(stackLeaks(a) + stackLeaks(b), 0);
});

t.test('a bounded queue: drops when full are counted', async (t) => {
  const [a, b] = wirePair(1500, { batch: 32 });
  const f = new FaultLink(a.link, { seed: 1, queueFrames: 8, tx: { delayUs: 1000 } });
  f.poll(0);
  fill(a, range(20), 0, len64);
  t.equal(f.transmit(a.tx), 20);
  t.equal(f.faults.tx.queueFull, 12, '12 dropped, queue full');
  t.same(f.queued, { tx: 8, rx: 0 });
  f.poll(1000);
  const got: Got[] = [];
  drain(b.link, b, got, { buffers: 0 });
  t.same(got.map((g) => g.id), range(8), 'the first 8 arrive');
  t.equal(stackLeaks(a) + stackLeaks(b), 0);
});

t.test('rx duplicates use spare slots, else arrive with the next receive', async (t) => {
  const [a, b] = wirePair(1500, { batch: 8 });
  const f = new FaultLink(b.link, { seed: 1, rx: { duplicate: 1 } });
  fill(a, range(4), 0, len64);
  a.link.transmit(a.tx);
  const before = bufferSet(b.rx);
  b.rx.count = 0;
  t.equal(f.receive(b.rx), 8, 'spare slots: all 8 copies at once');
  t.same(range(8).map((i) => readId(b.rx.bytesAt(i), b.rx.pos(i))), [0, 0, 1, 1, 2, 2, 3, 3], 'each copy right after its original');
  t.ok(range(8).every((i) => isFrame(b.rx.bytesAt(i), b.rx.pos(i), 64, readId(b.rx.bytesAt(i), b.rx.pos(i)))));
  t.same(bufferSet(b.rx), before);

  const small = new FrameBatch(b.pool, 4);
  for (let i = 0; i < 4; i++) small.set(i, b.rx.buf[i]!, 64, 0);
  fill(a, range(4), 0, len64);
  a.link.transmit(a.tx);
  const got: number[][] = [];
  for (let k = 0; k < 4; k++) {
    small.count = 0;
    f.receive(small);
    got.push(range(small.count).map((i) => readId(small.bytesAt(i), small.pos(i))));
  }
  // No spare slot for the copy of 0: it is queued, and the later frames queue behind it (order kept).
  t.same(got, [[0], [0, 1, 1, 2], [2, 3, 3], []], 'no spare slot: the copies come with the next receive, in order');
  t.equal(f.faults.rx.queueFull, 0);
  t.equal(stackLeaks(a) + stackLeaks(b), 0);
});

t.test('inner backpressure: decided frames are queued, the caller is held, order kept', async (t) => {
  const [a, b] = wirePair(1500, { capacity: 4096, batch: 32 });
  const f = new FaultLink(a.link, { seed: 1, retryUs: 250 });
  f.poll(0);
  fill(a, range(20), 0, () => 1514);
  t.equal(f.transmit(a.tx), 20, 'all taken: the ones the wire refused are queued');
  t.ok(f.faults.tx.requeued >= 18, `${f.faults.tx.requeued} requeued`);
  fill(a, range(25).slice(20), 0, () => 1514);
  t.equal(f.transmit(a.tx), 0, 'stuck behind the queue: nothing more taken, nothing decided');
  t.equal(f.stats.txBackpressure, 1);
  t.equal(f.poll(10), 260, 'poll asks to retry after retryUs');
  const got: Got[] = [];
  let sent = 20;
  let now = 10;
  for (let guard = 0; guard < 200 && got.length < 25; guard++) {
    drain(b.link, b, got, { buffers: 0 });
    now = Math.min(f.poll(now), now + 1000);
    if (sent < 25) sent += f.transmit(a.tx, sent - 20);
  }
  t.same(got.map((g) => g.id), range(25), 'all 25 in order');
  t.ok(got.every((g) => g.ok));
  t.equal(f.poll(now), Infinity, 'nothing left');
  t.equal(stackLeaks(a) + stackLeaks(b), 0);
});

t.test('close closes the inner link', async (t) => {
  const [a, b] = wirePair(1500, { batch: 4 });
  const f = new FaultLink(a.link, { seed: 1 });
  f.close();
  f.close();
  fill(a, [1], 0, len64);
  t.equal(f.transmit(a.tx), 0);
  t.ok(b.link.peerClosed);
  t.equal(stackLeaks(a) + stackLeaks(b), 0);
});

t.test('rx holes: queued frames wait for a buffer instead of being dropped', async (t) => {
  const [a, b] = wirePair(1500, { batch: 4 });
  const f = new FaultLink(b.link, { seed: 1, rx: { delayUs: 5 } });
  f.poll(0);
  fill(a, range(2), 0, len64);
  a.link.transmit(a.tx);
  const saved = Array.from(b.rx.buf);
  b.rx.count = 0;
  t.equal(f.receive(b.rx), 0, 'both queued');
  f.poll(5);
  b.rx.buf.fill(-1);
  t.equal(f.receive(b.rx), 0, 'no buffer: nothing delivered');
  t.equal(f.stats.rxTooBig, 0, 'and nothing dropped');
  t.ok(f.rxReady);
  for (let i = 0; i < 4; i++) b.rx.set(i, saved[i]!, 64, 0);
  t.equal(f.receive(b.rx), 2, 'delivered once there are buffers');
  t.same([readId(b.rx.bytesAt(0), b.rx.pos(0)), readId(b.rx.bytesAt(1), b.rx.pos(1))], [0, 1]);
  t.equal(stackLeaks(a) + stackLeaks(b), 0);
});
