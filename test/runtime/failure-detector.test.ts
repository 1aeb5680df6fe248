// Unit tests of the phi-accrual detector: formula, window statistics, lag credit, options.
// Fake time only (microsecond numbers), seeded PRNG.
import t from 'tap';
import {
  PHI_DEFAULTS,
  PhiAccrualDetector,
  normalCdfApprox,
  phiOf,
  zScoreForPhi,
} from '../../servers/runtime/failure-detector.js';
import { seededRandom } from '../../servers/runtime/stats.js';

const MS = 1000;

/** erfc, Numerical Recipes' erfcc (fractional error < 1.2e-7): reference for the normal CDF. */
function erfc(x: number): number {
  const z = Math.abs(x);
  const u = 1 / (1 + 0.5 * z);
  const r =
    u *
    Math.exp(
      -z * z -
        1.26551223 +
        u *
          (1.00002368 +
            u *
              (0.37409196 +
                u *
                  (0.09678418 +
                    u * (-0.18628806 + u * (0.27886807 + u * (-1.13520398 + u * (1.48851587 + u * (-0.82215223 + u * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}
const normalCdf = (y: number): number => 0.5 * erfc(-y / Math.SQRT2);

/** Detector fed with `n` heartbeats at the given interval from time 0; returns the last arrival time. */
function feed(d: PhiAccrualDetector, n: number, intervalUs: number | (() => number), startUs = 0): number {
  let now = startUs;
  d.heartbeat(now);
  for (let i = 1; i < n; i++) {
    now += typeof intervalUs === 'number' ? intervalUs : intervalUs();
    d.heartbeat(now);
  }
  return now;
}

t.test('formula', async (t) => {
  t.test('logistic CDF approximation stays within 1.5e-4 of the normal CDF', async (t) => {
    let worst = 0;
    for (let y = -8; y <= 8; y += 0.001) worst = Math.max(worst, Math.abs(normalCdfApprox(y) - normalCdf(y)));
    t.ok(worst < 1.5e-4, `max abs error ${worst}`);
  });

  t.test('phi = -log10(1 - F(y)) where that is computable', async (t) => {
    for (let y = -4; y <= 4; y += 0.25) {
      const expected = -Math.log10(1 - normalCdfApprox(y));
      t.ok(Math.abs(phiOf(y * 5 + 30, 30, 5) - expected) < 1e-9, `y=${y}`);
    }
    t.ok(Math.abs(phiOf(30, 30, 5) - Math.log10(2)) < 1e-12, 'phi at the mean is log10(2)');
  });

  t.test('phi is finite and non-decreasing, even far in the tail', async (t) => {
    let prev = -1;
    for (let e = 0; e <= 1e9; e = e < 1000 ? e + 1 : e * 1.01) {
      const p = phiOf(e, 35 * MS, 5 * MS);
      if (!Number.isFinite(p) || p < prev) {
        t.fail(`phi(${e}) = ${p} after ${prev}`);
        return;
      }
      prev = p;
    }
    t.ok(prev > 1e6, `phi after 1000 s of silence is huge but finite: ${prev}`);
    t.equal(phiOf(-1e12, 0, 1), 0, 'underflows cleanly to 0 on the left');
  });

  t.test('zScoreForPhi inverts phiOf', async (t) => {
    for (const th of [0.1, 0.5, 1, 3, 5, 8, 10, 16, 50, 300]) {
      const y = zScoreForPhi(th);
      t.ok(Math.abs(phiOf(y, 0, 1) - th) < 1e-9 * Math.max(1, th), `threshold ${th}: y*=${y}`);
    }
    t.ok(Math.abs(zScoreForPhi(8) - 5.225986644) < 1e-6, 'y* for threshold 8 is 5.226');
  });
});

t.test('detector basics', async (t) => {
  t.test('no reference point before the first heartbeat', async (t) => {
    const d = new PhiAccrualDetector();
    t.equal(d.started, false);
    t.equal(d.phi(1e9), 0);
    t.equal(d.isAvailable(1e9), true);
    t.equal(d.suspectAtUs(), Number.POSITIVE_INFINITY);
    d.observeSamplerLag(1e6); // ignored
    t.equal(d.lagCreditUs, 0);
  });

  t.test('defaults and seeded statistics', async (t) => {
    const d = new PhiAccrualDetector();
    t.same(
      {
        threshold: d.threshold,
        windowSize: d.windowSize,
        minStdDevUs: d.minStdDevUs,
        maxStdDevUs: d.maxStdDevUs,
        acceptablePauseUs: d.acceptablePauseUs,
        firstIntervalUs: d.firstIntervalUs,
        lagGraceUs: d.lagGraceUs,
        maxLagCreditUs: d.maxLagCreditUs,
      },
      PHI_DEFAULTS,
    );
    t.equal(d.sampleCount, 2, 'two seed intervals');
    t.ok(Math.abs(d.meanUs - 10 * MS) < 1e-9, 'seed mean = firstIntervalUs');
    t.ok(Math.abs(d.stdDevUs - 2.5 * MS) < 1e-9, 'seed std dev = firstIntervalUs / 4');
    t.equal(d.effectiveStdDevUs, 5 * MS, 'clamped up to minStdDevUs');
    // T_s = 10 + 25 + 5.226 * 5 = 61.13 ms
    t.ok(Math.abs(d.suspectAfterUs() - 61_130) < 1, `suspectAfterUs ${d.suspectAfterUs()}`);
  });

  t.test('phi grows with silence and crosses the threshold at suspectAfterUs', async (t) => {
    const d = new PhiAccrualDetector();
    const last = feed(d, 500, 10 * MS);
    let prev = -1;
    for (let s = 0; s <= 200 * MS; s += 100) {
      const p = d.phi(last + s);
      if (p < prev) t.fail(`phi decreased at ${s}`);
      prev = p;
    }
    const ts = d.suspectAfterUs();
    t.ok(d.isAvailable(last + ts - 1), 'available just before T_s');
    t.notOk(d.isAvailable(last + ts + 1), 'suspected just after T_s');
    t.ok(Math.abs(d.phi(last + ts) - d.threshold) < 1e-6, 'phi(T_s) = threshold');
    t.equal(d.suspectAtUs(), last + ts);
    t.ok(d.phi(last + 30 * MS) < 0.5 && d.phi(last + 100 * MS) > 20, 'low at 30 ms, high at 100 ms');
  });

  t.test('steady (jittery) heartbeats keep phi low', async (t) => {
    const rnd = seededRandom(7);
    const d = new PhiAccrualDetector();
    let now = 0;
    d.heartbeat(now);
    let worst = 0;
    for (let i = 0; i < 100_000; i++) {
      const gap = 5 * MS + rnd() * 6 * MS; // 5..11 ms
      worst = Math.max(worst, d.phi(now + gap)); // phi just before the beat arrives
      now += gap;
      d.heartbeat(now);
    }
    t.ok(worst < 0.01, `worst phi at arrival ${worst}`);
  });

  t.test('rearm restarts the silence without recording an interval', async (t) => {
    const d = new PhiAccrualDetector();
    const last = feed(d, 10, 10 * MS);
    const n = d.sampleCount;
    d.rearm(last + 5_000 * MS); // parked for 5 s
    t.equal(d.elapsedUs(last + 5_000 * MS), 0);
    t.ok(d.phi(last + 5_010 * MS) < 0.01);
    d.heartbeat(last + 5_012 * MS);
    t.equal(d.sampleCount, n, 'the rearm-to-beat span is not an interval');
    d.heartbeat(last + 5_022 * MS);
    t.equal(d.sampleCount, n + 1, 'the next beat-to-beat span is');
  });

  t.test('reset forgets statistics and the reference point', async (t) => {
    const d = new PhiAccrualDetector();
    feed(d, 100, 3 * MS);
    d.reset();
    t.equal(d.started, false);
    t.equal(d.sampleCount, 2);
    t.ok(Math.abs(d.meanUs - 10 * MS) < 1e-9);
    t.equal(d.arrivalCount, 0);
  });
});

t.test('sliding window statistics', async (t) => {
  t.test('match a naive recomputation over the last windowSize intervals', async (t) => {
    const W = 64;
    const d = new PhiAccrualDetector({ windowSize: W });
    const rnd = seededRandom(42);
    const all: number[] = [7_500, 12_500]; // seeds: first -+ first/4
    let now = 0;
    d.heartbeat(now);
    for (let i = 0; i < 5_000; i++) {
      const gap = Math.floor(rnd() < 0.05 ? 20 * MS + rnd() * 60 * MS : 1 * MS + rnd() * 12 * MS) + rnd();
      now += gap;
      d.heartbeat(now);
      all.push(gap);
      if (i % 97 === 0 || i > 4_990) {
        const win = all.slice(-W);
        const mean = win.reduce((a, b) => a + b, 0) / win.length;
        const sd = Math.sqrt(win.reduce((a, b) => a + (b - mean) ** 2, 0) / win.length);
        if (Math.abs(d.meanUs - mean) > 1e-6 || Math.abs(d.stdDevUs - sd) > 1e-6) {
          t.fail(`after ${i}: mean ${d.meanUs} vs ${mean}, sd ${d.stdDevUs} vs ${sd}`);
          return;
        }
      }
    }
    t.equal(d.sampleCount, W);
    t.pass('mean and std dev match at every check');
  });

  t.test('no drift after millions of pushes with fractional intervals', async (t) => {
    const W = 1000;
    const d = new PhiAccrualDetector({ windowSize: W });
    const rnd = seededRandom(3);
    const last = new Float64Array(W);
    let now = 0;
    d.heartbeat(now);
    const N = 2_000_000 + 123; // not a multiple of W: the exact recompute is not the last step
    for (let i = 0; i < N; i++) {
      const gap = 9_000 + rnd() * 2_000 + (rnd() < 0.001 ? 40_000 : 0) + 1e-3 * rnd();
      now += gap;
      d.heartbeat(now);
      last[i % W] = gap;
    }
    let s = 0;
    for (const v of last) s += v;
    const mean = s / W;
    let v2 = 0;
    for (const v of last) v2 += (v - mean) ** 2;
    const sd = Math.sqrt(v2 / W);
    t.ok(Math.abs(d.meanUs - mean) < 1e-6, `mean ${d.meanUs} vs ${mean}`);
    t.ok(Math.abs(d.stdDevUs - sd) < 1e-6, `sd ${d.stdDevUs} vs ${sd}`);
  });

  t.test('adapts: a noisy history widens the tolerance, up to maxStdDevUs', async (t) => {
    const steady = new PhiAccrualDetector();
    feed(steady, 2000, 10 * MS);
    const noisy = new PhiAccrualDetector();
    const rnd = seededRandom(9);
    feed(noisy, 2000, () => 4 * MS + rnd() * 20 * MS); // mean 14 ms, sd 5.8 ms
    const wild = new PhiAccrualDetector();
    feed(wild, 2000, () => rnd() * 40 * MS); // sd 11.5 ms > max
    t.ok(steady.effectiveStdDevUs === 5 * MS, 'steady: floor');
    t.ok(noisy.effectiveStdDevUs > 5 * MS && noisy.effectiveStdDevUs < 7 * MS, `noisy sd ${noisy.effectiveStdDevUs}`);
    t.equal(wild.effectiveStdDevUs, 7 * MS, 'wild: ceiling');
    t.ok(noisy.suspectAfterUs() > steady.suspectAfterUs() + 5 * MS, 'noisier history, later suspicion');
  });
});

t.test('sampler lag compensation', async (t) => {
  t.test('excess lag is credited, capped, reset at each arrival', async (t) => {
    const d = new PhiAccrualDetector();
    const last = feed(d, 100, 10 * MS);
    d.observeSamplerLag(1_500); // within grace
    t.equal(d.lagCreditUs, 0);
    d.observeSamplerLag(22 * MS);
    t.equal(d.lagCreditUs, 20 * MS, 'lag minus grace');
    t.equal(d.elapsedUs(last + 70 * MS), 50 * MS, 'the suspicion clock was frozen for 20 ms');
    t.ok(d.isAvailable(last + 70 * MS), '70 ms of raw silence with 20 ms supervisor lag: not suspect');
    d.observeSamplerLag(Number.NaN);
    d.observeSamplerLag(-5);
    t.equal(d.lagCreditUs, 20 * MS, 'NaN and negative lags are ignored');
    d.observeSamplerLag(100 * MS);
    t.equal(d.lagCreditUs, 50 * MS, 'capped at maxLagCreditUs');
    t.equal(d.suspectAtUs(), last + 50 * MS + d.suspectAfterUs());
    t.equal(d.elapsedUs(last + 10 * MS), 0, 'never negative');
    t.equal(d.totalLagCreditUs, 50 * MS);
    const n = d.sampleCount;
    const m = d.meanUs;
    d.heartbeat(last + 90 * MS);
    t.equal(d.lagCreditUs, 0, 'reset by the arrival');
    t.equal(d.sampleCount, n + 1, 'one interval recorded');
    t.ok(Math.abs(d.meanUs - (m * n + 40 * MS) / (n + 1)) < 1e-6, 'the recorded interval was 90 - 50 = 40 ms');
  });

  t.test('with lag every sample, a hang is still declared: at most maxLagCreditUs later', async (t) => {
    const d = new PhiAccrualDetector();
    const last = feed(d, 100, 10 * MS);
    let now = last;
    while (d.isAvailable(now)) {
      now += 20 * MS; // the supervisor runs every 20 ms instead of every 10 ms: 10 ms late each time
      d.observeSamplerLag(10 * MS);
    }
    t.ok(now - last <= d.suspectAfterUs() + d.maxLagCreditUs + 20 * MS, `suspected after ${(now - last) / MS} ms`);
  });
});

t.test('options are validated', async (t) => {
  t.throws(() => new PhiAccrualDetector({ threshold: 0 }), RangeError);
  t.throws(() => new PhiAccrualDetector({ windowSize: 1 }), RangeError);
  t.throws(() => new PhiAccrualDetector({ windowSize: 10.5 }), RangeError);
  t.throws(() => new PhiAccrualDetector({ minStdDevUs: 0 }), RangeError);
  t.throws(() => new PhiAccrualDetector({ minStdDevUs: 8_000, maxStdDevUs: 7_000 }), RangeError);
  t.throws(() => new PhiAccrualDetector({ acceptablePauseUs: -1 }), RangeError);
  t.throws(() => new PhiAccrualDetector({ firstIntervalUs: Number.NaN }), RangeError);
  t.throws(() => new PhiAccrualDetector({ maxLagCreditUs: Number.POSITIVE_INFINITY }), RangeError);
  const d = new PhiAccrualDetector({ threshold: undefined, windowSize: 16 });
  t.equal(d.threshold, 8, 'undefined falls back to the default');
  t.equal(d.windowSize, 16);
});
