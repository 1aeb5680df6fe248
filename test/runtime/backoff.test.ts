// RestartPolicy: immediate restarts, then exponential backoff with seeded jitter, capped; resets
// on progress or healthy uptime.
import t from 'tap';
import { RestartPolicy, type RestartDecision } from '../../servers/runtime/backoff.js';
import { seededRandom } from '../../servers/runtime/stats.js';

const MS = 1000;
const S = 1_000_000;

/** Crash `n` times without progress, each time right after the restart (a crash loop). */
function loop(p: RestartPolicy, n: number, startUs = 0): { decisions: RestartDecision[]; now: number } {
  const decisions: RestartDecision[] = [];
  let now = startUs;
  for (let i = 0; i < n; i++) {
    const d = p.onCrash(now, false);
    decisions.push(d);
    now += d.delayUs + 30 * MS; // restart, crash again 30 ms later
  }
  return { decisions, now };
}

t.test('immediate restarts, then doubling delays up to the cap (no jitter)', async (t) => {
  const p = new RestartPolicy({ jitter: 0 });
  const { decisions } = loop(p, 12);
  t.same(
    decisions.map((d) => d.delayUs / MS),
    [0, 0, 0, 50, 100, 200, 400, 800, 1600, 3200, 5000, 5000],
  );
  t.same(
    decisions.map((d) => d.crashLooping),
    [false, false, false, true, true, true, true, true, true, true, true, true],
  );
  t.same(
    decisions.map((d) => d.streak),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
  );
  t.equal(p.crashLooping, true);
  t.equal(p.crashCount, 12);
});

t.test('seeded jitter: deterministic, within [d(1-j), d], strictly growing until the cap', async (t) => {
  const run = (seed: number): number[] =>
    loop(new RestartPolicy({ random: seededRandom(seed) }), 40).decisions.map((d) => d.delayUs);
  const a = run(17);
  t.same(run(17), a, 'same seed, same delays');
  t.notSame(run(18), a, 'another seed, other delays');
  for (let i = 3; i < a.length; i++) {
    const d = Math.min(5 * S, 50 * MS * 2 ** (i - 3));
    if (a[i]! > d || a[i]! < Math.round(d * 0.75)) t.fail(`delay ${i}: ${a[i]} outside [${d * 0.75}, ${d}]`);
    if (d < 5 * S && i > 3 && !(a[i]! > a[i - 1]!)) t.fail(`delay ${i} did not grow`);
  }
  t.ok(a.every((x) => x <= 5 * S), 'never above the cap');
  // a misbehaving random source cannot break the bounds
  const bad = new RestartPolicy({ random: () => Number.NaN, immediateRestarts: 0 });
  t.equal(bad.onCrash(0, false).delayUs, 50 * MS);
  const big = new RestartPolicy({ random: () => 7, immediateRestarts: 0 });
  t.equal(big.onCrash(0, false).delayUs, 50 * MS);
});

t.test('progress since the last start resets the streak', async (t) => {
  const p = new RestartPolicy({ jitter: 0 });
  const { now } = loop(p, 6);
  t.equal(p.streak, 6);
  const d = p.onCrash(now, true);
  t.same(d, { delayUs: 0, crashLooping: false, streak: 1 });
  t.equal(p.crashLooping, false);
});

t.test('healthy uptime resets the streak, at the next crash or eagerly via onHealthy', async (t) => {
  const p = new RestartPolicy({ jitter: 0 });
  const { decisions, now } = loop(p, 5);
  const restartedAt = now - 30 * MS; // crash time + delay of the last decision
  t.equal(decisions[4]!.delayUs, 100 * MS);
  t.equal(p.onHealthy(restartedAt + 9 * S), false, 'up 9 s: not yet');
  t.equal(p.streak, 5);
  t.equal(p.onHealthy(restartedAt + 10 * S), true, 'up 10 s: healthy');
  t.equal(p.streak, 0);
  t.equal(p.crashLooping, false);
  t.equal(p.onHealthy(restartedAt + 20 * S), false, 'nothing left to reset');

  const q = new RestartPolicy({ jitter: 0 });
  const r = loop(q, 5);
  const d = q.onCrash(r.now - 30 * MS + 11 * S, false); // crashed after 11 s up, no onHealthy call
  t.same(d, { delayUs: 0, crashLooping: false, streak: 1 });
});

t.test('uptime counts from the end of the backoff delay, or from onStart', async (t) => {
  const p = new RestartPolicy({ jitter: 0, healthyAfterUs: 1 * S, immediateRestarts: 0 });
  t.equal(p.onCrash(0, false).delayUs, 50 * MS);
  t.equal(p.onHealthy(1 * S), false, 'started at 50 ms: up 950 ms only');
  t.equal(p.onHealthy(1 * S + 50 * MS), true);
  p.onCrash(2 * S, false); // streak 1, restart at 2.05 s
  p.onStart(2.5 * S); // the worker actually came up late
  t.equal(p.onHealthy(3.2 * S), false);
  t.equal(p.onHealthy(3.5 * S), true);
});

t.test('many servers with different seeds do not retry in lockstep', async (t) => {
  const delays = new Set<number>();
  for (let s = 0; s < 8; s++) delays.add(loop(new RestartPolicy({ random: seededRandom(s) }), 6).decisions[5]!.delayUs);
  t.ok(delays.size >= 7, `${delays.size} distinct delays out of 8`);
});

t.test('reset and validation', async (t) => {
  const p = new RestartPolicy();
  loop(p, 8);
  p.reset();
  t.equal(p.streak, 0);
  t.equal(p.crashCount, 0);
  t.equal(p.onCrash(0, false).delayUs, 0);
  t.throws(() => new RestartPolicy({ immediateRestarts: -1 }), RangeError);
  t.throws(() => new RestartPolicy({ baseDelayUs: 0 }), RangeError);
  t.throws(() => new RestartPolicy({ baseDelayUs: 100, maxDelayUs: 50 }), RangeError);
  t.throws(() => new RestartPolicy({ jitter: 1 }), RangeError);
  t.throws(() => new RestartPolicy({ healthyAfterUs: Number.NaN }), RangeError);
});
