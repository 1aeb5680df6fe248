import t from 'tap';
import { Worker } from 'node:worker_threads';
import { Clock, ClockPage } from '../shared-rings/clock.js';
import type { BracketResult, ClockWorkerData } from './helpers/clock-worker.js';

const workerUrl = new URL('./helpers/clock-worker.js', import.meta.url);

function start(data: ClockWorkerData): { worker: Worker; next: () => Promise<any>; exited: Promise<number> } {
  const worker = new Worker(workerUrl, { workerData: data });
  const queue: any[] = [];
  const waiters: ((m: any) => void)[] = [];
  worker.on('message', (m) => {
    const w = waiters.shift();
    if (w) w(m); else queue.push(m);
  });
  const errored = new Promise<never>((_, reject) => worker.on('error', reject));
  errored.catch(() => {});
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
  const next = (): Promise<any> => {
    if (queue.length > 0) return Promise.resolve(queue.shift());
    return Promise.race([new Promise((resolve) => waiters.push(resolve)), errored]);
  };
  return { worker, next, exited };
}

t.test('attach validates its argument', async (t) => {
  t.throws(() => Clock.attach(new ArrayBuffer(64) as any), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => Clock.attach(new SharedArrayBuffer(64)), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => Clock.attach(new SharedArrayBuffer(8)), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => ClockPage.create(null as any), { code: 'ERR_INVALID_ARG_TYPE' });
});

t.test('manual mode: advance and set, visible to a worker', async (t) => {
  const page = ClockPage.create({ manual: true });
  t.equal(page.manual, true);
  const clock = page.attach();
  t.equal(clock.manual, true);
  t.equal(clock.nowUs(), 0, 'starts at 0');
  const w = start({ mode: 'manual-read', page: page.sab });
  w.worker.postMessage('read');
  t.equal(await w.next(), 0);
  t.equal(clock.advance(1500), 1500);
  w.worker.postMessage('read');
  t.equal(await w.next(), 1500, 'the worker sees the advance');
  t.equal(clock.set(2 ** 40 + 7), 2 ** 40 + 7, 'values beyond 32 bits');
  w.worker.postMessage('read');
  t.equal(await w.next(), 2 ** 40 + 7);
  const other = Clock.attach(page.sab);
  t.equal(other.nowUs(), 2 ** 40 + 7, 'a new handle reads the same time');
  t.equal(other.nowMs(), (2 ** 40 + 7) / 1000);
  other.advance(3);
  t.equal(clock.nowUs(), 2 ** 40 + 10, 'writes from any handle');
  t.throws(() => clock.set(5), { code: 'ERR_OUT_OF_RANGE' }, 'never backwards');
  t.throws(() => clock.advance(-1), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => clock.advance(0.5), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => clock.advance('1' as any), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => clock.advance(Number.MAX_SAFE_INTEGER), { code: 'ERR_OUT_OF_RANGE' });
  t.equal(clock.nowUs(), 2 ** 40 + 10, 'failed writes change nothing');
  t.equal(clock.advance(0), 2 ** 40 + 10);
  w.worker.postMessage('close');
  await w.exited;
});

t.test('manual mode: a reader never sees a torn or backwards value', async (t) => {
  const page = ClockPage.create({ manual: true });
  const clock = page.attach();
  const step = 2 ** 32 + 1; // changes both 32-bit halves at every write
  const ctl = new SharedArrayBuffer(8);
  const seen = new Int32Array(ctl);
  const w = start({ mode: 'torn', page: page.sab, ctl, step });
  t.equal(await w.next(), 'ready');
  // Write until the reader has seen 2000 distinct values (or a cap, so the loop always ends).
  let writes = 0;
  while (Atomics.load(seen, 0) < 2000 && writes < 2_000_000) {
    clock.advance(step);
    writes++;
  }
  Atomics.store(seen, 1, 1);
  const r = await w.next();
  t.equal(r.bad, 0, 'no torn read');
  t.equal(r.back, 0, 'never backwards');
  t.equal(r.last, writes * step, 'the last value read is the last one written');
  t.ok(r.distinct > 1, 'the reader ran during the writes');
  t.comment(`writer: ${writes} writes; reader: ${r.reads} reads, ${r.distinct} distinct values`);
  await w.exited;
});

t.test('real mode: monotonic, microseconds, recalibration keeps it monotonic', async (t) => {
  const page = ClockPage.create();
  t.equal(page.manual, false);
  const clock = Clock.attach(page.sab);
  t.throws(() => clock.advance(1), { code: 'ERR_INVALID_STATE' });
  t.throws(() => clock.set(1), { code: 'ERR_INVALID_STATE' });
  const cal = clock.calibration;
  t.ok(cal.errorUs >= 0 && cal.errorUs < 1000, `calibration error bound ${cal.errorUs.toFixed(3)} us`);
  const first = clock.nowUs();
  t.ok(first >= 0, 'time since the page origin');
  let prev = first, back = 0, increases = 0;
  for (let i = 0; i < 200_000; i++) {
    if (i === 100_000) clock.recalibrate();
    const now = clock.nowUs();
    if (now < prev) back++;
    if (now > prev) increases++;
    prev = now;
  }
  t.equal(back, 0, 'never backwards, also across recalibrate()');
  t.ok(increases > 1000, 'sub-millisecond resolution');
  const ms = clock.nowMs(), us = clock.nowUs();
  t.ok(us >= ms * 1000, 'nowMs is nowUs / 1000');
  t.equal(Clock.attach(page.sab).manual, false);
});

t.test('real mode: two workers agree (bracketed against each other)', async (t) => {
  const page = ClockPage.create();
  const ctl = new SharedArrayBuffer(16);
  const rounds = 2000;
  const a = start({ mode: 'bracket', page: page.sab, ctl, side: 0, rounds });
  const b = start({ mode: 'bracket', page: page.sab, ctl, side: 1, rounds });
  const [ra, rb] = (await Promise.all([a.next(), b.next()])) as [BracketResult, { errorUs: number }];
  await Promise.all([a.exited, b.exited]);
  t.comment(`A's reading before B's: min slack ${ra.minLow.toFixed(3)} us; after: ${ra.minHigh.toFixed(3)} us; ` +
    `error bounds A ${ra.errorUs.toFixed(3)} us, B ${rb.errorUs.toFixed(3)} us`);
  const tol = 20; // us: "a few tens of us"; in practice the slack stays positive (see the comment)
  t.ok(ra.minLow > -tol, `B never reads earlier than A's preceding reading by more than ${tol} us`);
  t.ok(ra.minHigh > -tol, `B never reads later than A's following reading by more than ${tol} us`);
  t.ok(ra.minLow > -(ra.errorUs + rb.errorUs) - 1 && ra.minHigh > -(ra.errorUs + rb.errorUs) - 1,
    'agreement within the calibration error bounds (+1 us)');
  t.equal(ra.rounds, rounds);
});

t.test('a new handle continues on the same timeline', async (t) => {
  const page = ClockPage.create();
  // Same thread, back to back, many times: the tightest case.
  let before = 0, after = 0, ok = 0;
  const c1 = Clock.attach(page.sab);
  for (let i = 0; i < 300; i++) {
    before = c1.nowUs();
    const c2 = Clock.attach(page.sab);
    after = c2.nowUs();
    if (after >= before) ok++;
  }
  t.equal(ok, 300, 'first reading of a new handle >= last reading of the old one');

  // A server that dies while reading the clock, then a restarted one in a new thread.
  const ctl = new SharedArrayBuffer(16);
  const ticker = start({ mode: 'ticker', page: page.sab, ctl });
  t.equal(await ticker.next(), 'ticking');
  await ticker.worker.terminate();
  await ticker.exited;
  const lastOfDead = new Float64Array(ctl, 8, 1)[0]!;
  t.ok(lastOfDead > 0);
  const restarted = start({ mode: 'first-read', page: page.sab });
  const { first } = await restarted.next();
  await restarted.exited;
  t.ok(first >= lastOfDead, `restarted server's first reading ${first.toFixed(1)} >= dead one's last ${lastOfDead.toFixed(1)}`);
  t.ok(c1.nowUs() >= first, 'and the main thread agrees it is in the past');
});
