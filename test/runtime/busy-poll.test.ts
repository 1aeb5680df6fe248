/**
 * The busy poll of the host loop and of the shim's pump: BusyPoller's budget rules on a fake clock (the
 * blocking poll and the one that runs on the event loop), the busyPollUs option and its default, and
 * two stacks in one process whose server threads and pumps catch each other's records by polling
 * (counted in busyPollHits) or, with busyPollUs 0, never poll at all.
 */
import t from 'tap';
import { BusyPoller } from '../../shared-rings/spin.js';
import { BUSY_POLL_US, createStackMemory, defaultBusyPollUs, MAX_BUSY_POLL_US, validateBusyPollUs } from '../../servers/runtime/stack-memory.js';
import { createStack } from '../../kernel-shim/index.js';
import { createStackPair } from '../../kernel-shim/stack-pair.js';
import type { Stack } from '../../kernel-shim/stack.js';

/** A fake clock that moves `stepUs` every time it is read, and counts the relax calls. */
function fake(stepUs: number): { now: () => number; relax: () => void; relaxed: () => number } {
  let t = 0;
  let relaxed = 0;
  return {
    now: () => (t += stepUs),
    relax: () => void relaxed++,
    relaxed: () => relaxed,
  };
}

t.test('BusyPoller: news found within the budget is a hit and restores the full budget', async (t) => {
  const c = fake(1);
  const p = new BusyPoller(100, c.now, c.relax);
  let checks = 0;
  t.ok(p.poll(() => ++checks === 5), 'found on the fifth check');
  t.equal(checks, 5);
  t.equal(c.relaxed(), 4, 'the core was yielded between checks, not after the hit');
  t.equal(p.hits, 1);
  t.equal(p.currentUs, 100);
});

t.test('BusyPoller: a miss costs its budget and halves the next; misses in a row stop polling', async (t) => {
  const c = fake(1);
  const p = new BusyPoller(64, c.now, c.relax);
  let checks = 0;
  t.notOk(p.poll(() => (checks++, false)));
  t.ok(checks >= 60 && checks <= 66, `polled for its 64 µs budget (${checks} checks of 1 µs)`);
  t.equal(p.currentUs, 32, 'halved');
  for (let i = 0; i < 5; i++) p.poll(() => false);
  t.equal(p.currentUs, 0, 'below 2 µs it stops');
  t.equal(p.misses, 6);
  checks = 0;
  t.notOk(p.poll(() => (checks++, true)), 'at budget 0 a poll does not even check');
  t.equal(checks, 0);
  // Every 64th idle moment it probes with its full budget, to notice traffic coming back.
  let probes = 0;
  for (let i = 0; i < 62; i++) if (p.poll(() => true)) probes++;
  t.equal(probes, 0, 'no probe before the 64th park');
  checks = 0;
  t.notOk(p.poll(() => (checks++, false)), 'the probe misses');
  t.ok(checks >= 60 && checks <= 66, `a probe is a full poll (${checks} checks of 1 µs)`);
  t.equal(p.currentUs, 0, 'a missed probe leaves polling off');
  for (let i = 0; i < 64; i++) if (p.poll(() => true)) probes++;
  t.equal(probes, 1, 'the next one 64 parks later');
  t.equal(p.currentUs, 64, 'and a probe that hits restores the full budget');
});

t.test('BusyPoller: a probe that misses leaves polling off', async (t) => {
  const c = fake(1);
  const p = new BusyPoller(4, c.now, c.relax);
  p.poll(() => false);
  p.poll(() => false);
  t.equal(p.currentUs, 0);
  for (let i = 0; i < 64; i++) p.poll(() => false);
  t.equal(p.currentUs, 0, 'still off after the probe missed');
});

t.test('BusyPoller: never polls past the caller\'s next timer', async (t) => {
  const c = fake(1);
  const p = new BusyPoller(1000, c.now, c.relax);
  let checks = 0;
  t.notOk(p.poll(() => (checks++, false), 10));
  t.ok(checks <= 12, `stopped at the 10 µs limit (${checks} checks)`);
  checks = 0;
  t.notOk(p.poll(() => (checks++, true), 0), 'a timer already due: no poll at all');
  t.equal(checks, 0);
  t.notOk(p.poll(() => (checks++, true), -5));
  t.equal(checks, 0);
});

t.test('BusyPoller: budget 0 never polls; bad budgets are range errors', async (t) => {
  const p = new BusyPoller(0, () => 0, () => {});
  let found = 0;
  for (let i = 0; i < 200; i++) if (p.poll(() => true)) found++;
  t.equal(found, 0, 'not even the every-64th probe');
  t.equal(p.hits + p.misses, 0);
  for (const bad of [-1, NaN, Infinity]) t.throws(() => new BusyPoller(bad, () => 0, () => {}), { code: 'ERR_OUT_OF_RANGE' }, String(bad));
});

t.test('BusyPoller.pollAsync: one check per turn of the event loop, the same budget rules', async (t) => {
  const c = fake(10);
  const p = new BusyPoller(100, c.now, c.relax);
  let checks = 0;
  // The application's own callbacks run between the checks: the poll does not hold the event loop.
  let appTurns = 0;
  const app = setInterval(() => appTurns++, 0);
  try {
    t.equal(await p.pollAsync(() => ++checks === 3), true, 'found on the third check');
    t.equal(p.hits, 1);
    t.equal(c.relaxed(), 2, 'relaxed after each check that found nothing');
    checks = 0;
    t.equal(await p.pollAsync(() => (checks++, false)), false, 'ran out');
    t.equal(checks, 10, 'a check per 10 µs clock step for the 100 µs budget');
    t.equal(p.misses, 1);
    t.equal(p.currentUs, 50, 'a miss halves the budget, as for poll()');
    await new Promise((r) => setTimeout(r, 2));
    const before = appTurns;
    // A budget of 100,000 checks (the fake clock moves 0.01 µs a read): ample for two 1 ms intervals.
    const slow = new BusyPoller(1000, fake(0.01).now, () => {});
    t.equal(await slow.pollAsync(() => appTurns >= before + 2), true, 'the poll saw what timers did meanwhile');
  } finally {
    clearInterval(app);
  }
  const off = new BusyPoller(0, c.now, c.relax);
  let offChecks = 0;
  t.equal(await off.pollAsync(() => (offChecks++, true)), false, 'budget 0: resolves at once without checking');
  t.equal(offChecks, 0);
});

t.test('BusyPoller.pollAsync: with a slice, a turn keeps checking for up to sliceUs', async (t) => {
  /** Turns of the event loop while `run` is under way: an Immediate chain of our own beside the poll's. */
  const turnsDuring = async (run: () => Promise<boolean>): Promise<{ found: boolean; turns: number }> => {
    let turns = 0;
    let live = true;
    const tick = (): void => {
      turns++;
      if (live) setImmediate(tick);
    };
    setImmediate(tick);
    const found = await run();
    live = false;
    return { found, turns };
  };
  // The fake clock moves 1 µs a read; a check reads it once, a turn once more to start its slice.
  let checks = 0;
  const sliced = new BusyPoller(1000, fake(1).now, () => {});
  const a = await turnsDuring(() => sliced.pollAsync(() => ++checks === 20, 10));
  t.ok(a.found, 'found on the twentieth check');
  t.ok(a.turns <= 4, `20 checks in 10 µs slices took ${a.turns} turns of the event loop`);
  checks = 0;
  const unsliced = new BusyPoller(1000, fake(1).now, () => {});
  const b = await turnsDuring(() => unsliced.pollAsync(() => ++checks === 20));
  t.ok(b.found);
  t.ok(b.turns >= 19, `without a slice, a turn per check (${b.turns})`);
  // A slice never outlasts the budget.
  checks = 0;
  const short = new BusyPoller(6, fake(1).now, () => {});
  t.equal(await short.pollAsync(() => (checks++, false), 100), false, 'ran out within the first slice');
  t.ok(checks <= 7, `stopped at the 6 µs budget (${checks} checks)`);
});

t.test('busyPollUs: default by placement and cores, checked like a Node option', async (t) => {
  t.equal(defaultBusyPollUs(1, 2), BUSY_POLL_US, 'one thread a stack on 2 cores: on');
  t.equal(defaultBusyPollUs(4, 2), 0, 'four threads a stack on 2 cores: off');
  t.equal(defaultBusyPollUs(4, 8), BUSY_POLL_US, 'four on 8 cores: on');
  t.equal(defaultBusyPollUs(1, 1), BUSY_POLL_US);
  t.equal(validateBusyPollUs(undefined, 7), 7);
  t.equal(validateBusyPollUs(0, 7), 0);
  t.equal(validateBusyPollUs(MAX_BUSY_POLL_US, 7), MAX_BUSY_POLL_US);
  for (const bad of [-1, NaN, Infinity, MAX_BUSY_POLL_US + 1]) t.throws(() => validateBusyPollUs(bad, 0), { code: 'ERR_OUT_OF_RANGE', name: 'RangeError' }, String(bad));
  for (const bad of ['50', null, {}]) t.throws(() => validateBusyPollUs(bad, 0), { code: 'ERR_INVALID_ARG_TYPE' }, String(bad));
  t.equal(createStackMemory({ placement: 'shared', busyPollUs: 30 }).busyPollUs, 30, 'an explicit budget is kept');
  t.equal(createStackMemory({ placement: 'shared' }).busyPollUs, defaultBusyPollUs(1));
  t.equal(createStackMemory({ placement: 'dedicated' }).busyPollUs, defaultBusyPollUs(4));
  await t.rejects(createStack({ busyPollUs: -3 }), { code: 'ERR_OUT_OF_RANGE' });
  await t.rejects(createStack({ busyPollUs: '3' as unknown as number }), { code: 'ERR_INVALID_ARG_TYPE' });
});

/**
 * `count` 64-byte request/responses over one connection from B to A; resolves with the count. `onWarm`
 * is called after the first `warm` of them.
 */
async function pingPong(A: Stack, B: Stack, count: number, warm = 0, onWarm = (): void => {}): Promise<number> {
  const srv = A.net.createServer((s) => {
    s.setNoDelay(true);
    s.on('data', (d: Buffer) => s.write(d));
    s.on('error', () => {});
  });
  await new Promise<void>((r) => srv.listen(7000, '10.91.0.1', () => r()));
  const c = B.net.connect(7000, '10.91.0.1');
  c.setNoDelay(true);
  const req = Buffer.alloc(64, 7);
  let got = 0;
  let done = 0;
  await new Promise<void>((resolve, reject) => {
    c.on('error', reject);
    c.on('connect', () => c.write(req));
    c.on('data', (d: Buffer) => {
      got += d.length;
      while (got >= 64) {
        got -= 64;
        if (++done === count) return resolve();
        if (done === warm) onWarm();
        c.write(req);
      }
    });
  });
  c.destroy();
  srv.close();
  return done;
}

const hitsOf = (s: Stack): number => Object.values(s.stats().servers).reduce((n, v) => n + (v.counters['busyPollHits'] ?? 0), 0);

const shimOf = (A: Stack, B: Stack): { hits: number; parks: number } => ({
  hits: A.stats().shim.busyPollHits + B.stats().shim.busyPollHits,
  parks: A.stats().shim.parks + B.stats().shim.parks,
});

t.test('two stacks, shared placement: request/response hand-offs are caught by polling, or not with 0', async (t) => {
  for (const busyPollUs of [MAX_BUSY_POLL_US, 0]) {
    const [A, B] = await createStackPair({ mtu: 1500 }, { address: '10.91.0.1/24', placement: 'shared', busyPollUs }, { address: '10.91.0.2/24', placement: 'shared', busyPollUs });
    try {
      // The pumps' figures count from after 100 round trips: while the code is still being compiled a
      // round trip can outlast the budget, and a few such misses in a row stop polling for 64 parks.
      let warm = shimOf(A, B);
      t.equal(await pingPong(A, B, 600, 100, () => (warm = shimOf(A, B))), 600, `busyPollUs ${busyPollUs}: 600 round trips`);
      const hits = hitsOf(A) + hitsOf(B);
      const end = shimOf(A, B);
      const shim = { hits: end.hits - warm.hits, parks: end.parks - warm.parks };
      if (busyPollUs === 0) {
        t.equal(hits, 0, 'no polling: every idle moment was a park');
        t.equal(shim.hits, 0, 'nor in the pumps');
        // Each request and each response reaches the main thread while its pump is parked.
        t.ok(shim.parks >= 1000, `the pumps parked for every record: ${shim.parks}`);
      } else {
        // Some hand-offs arrive while the receiving thread polls (a 1 ms budget covers any round trip
        // but one the scheduler stalls): at least a tenth of the 2400 idle moments of the servers, and
        // of the 1000 of the pumps in the last 500 at least 20 (alone, 280-500 here; with the whole
        // suite running beside it, 78 once: stalls past 1 ms halve a pump's budget until it stops
        // polling, and then it polls again only after a probe every 64th park hits; with 0, none).
        t.ok(hits > 240, `records found by polling: ${hits}`);
        t.ok(shim.hits >= 20, `records the pumps found by polling: ${shim.hits} (parks ${shim.parks})`);
      }
    } finally {
      await Promise.allSettled([A.close(), B.close()]);
    }
  }
});
