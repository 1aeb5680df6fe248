import t from 'tap';
import { CC_SCRATCH, type CcEnv, type CcVars, type CongestionControl } from '../../servers/tcp/core/contracts.js';
import {
  ccById,
  ccByName,
  ccId,
  CC_ID_CUBIC,
  CC_ID_NEWRENO,
  initialWindow,
  newCcVars,
  SSTHRESH_INIT,
} from '../../servers/tcp/core/cc.js';
import { newReno } from '../../servers/tcp/core/cc-newreno.js';
import {
  cubic,
  cubicWindow,
  CUBIC_ALPHA,
  CUBIC_BETA,
  CUBIC_C,
  CU_CWND_EPOCH,
  CU_CWND_PRIOR,
  CU_IN_EPOCH,
  CU_K_US,
  CU_W_EST,
  CU_W_MAX,
} from '../../servers/tcp/core/cc-cubic.js';
import { mulberry32, randInt } from '../helpers/prng.js';

const MSS = 1000;

function env(over: Partial<CcEnv> = {}): CcEnv {
  return { mss: MSS, nowUs: 0, srttUs: 100_000, minRttUs: 100_000, flightSize: 0, ...over };
}

function fresh(algo: CongestionControl, e: CcEnv = env()): CcVars {
  const cc = newCcVars();
  algo.init(cc, e);
  return cc;
}

/**
 * One round trip of ACK clocking: cwnd bytes in flight, acknowledged in ACKs of `ackBytes` spread evenly
 * over the RTT starting at e.nowUs; e.nowUs ends one RTT later. Returns the number of ACKs.
 */
function roundTrip(algo: CongestionControl, cc: CcVars, e: CcEnv, ackBytes: number, rttUs = e.srttUs): number {
  const start = e.nowUs;
  const w = cc.cwnd;
  const n = Math.ceil(w / ackBytes);
  let left = w;
  for (let i = 0; i < n; i++) {
    e.nowUs = start + Math.floor((rttUs * i) / n);
    const a = Math.min(ackBytes, left);
    left -= a;
    algo.onAck(cc, a, e);
  }
  e.nowUs = start + rttUs;
  return n;
}

t.test('registry, ids, fresh state, initial window (RFC 6928)', async (t) => {
  t.equal(ccByName('newreno'), newReno);
  t.equal(ccByName('cubic'), cubic);
  t.equal(ccById(0), newReno);
  t.equal(ccById(1), cubic);
  t.equal(CC_ID_NEWRENO, 0);
  t.equal(CC_ID_CUBIC, 1);
  t.equal(ccId('newreno'), 0);
  t.equal(ccId('cubic'), 1);
  t.equal(newReno.name, 'newreno');
  t.equal(cubic.name, 'cubic');
  t.throws(() => ccById(2), RangeError);
  t.throws(() => ccById(-1), RangeError);
  const cc = newCcVars();
  t.same(cc, { cwnd: 0, ssthresh: 2 ** 31 - 1, v: new Array(CC_SCRATCH).fill(0) });
  t.equal(SSTHRESH_INIT, 0x7fffffff);
  t.not(newCcVars().v, cc.v, 'each CcVars has its own scratch');
  t.equal(initialWindow(1460), 14600);
  t.equal(initialWindow(536), 5360, '10 * MSS when below 14600');
  t.equal(initialWindow(1000), 10000);
  t.equal(initialWindow(1500), 14600);
  t.equal(initialWindow(8960), 17920, '2 * MSS when above 14600');
  t.equal(initialWindow(9000), 18000);
  for (const algo of [newReno, cubic]) {
    const c = newCcVars();
    c.v.fill(7);
    algo.init(c, env({ mss: 1460 }));
    t.equal(c.cwnd, 14600, `${algo.name}: init sets IW`);
    t.equal(c.ssthresh, SSTHRESH_INIT, `${algo.name}: ssthresh arbitrarily high`);
    t.same(c.v, new Array(CC_SCRATCH).fill(0), `${algo.name}: scratch cleared`);
  }
});

for (const algo of [newReno, cubic]) {
  t.test(`${algo.name}: slow start with appropriate byte counting (RFC 3465)`, async (t) => {
    // One ACK per segment: cwnd doubles every RTT.
    const e = env();
    const cc = fresh(algo, e);
    const seen = [cc.cwnd];
    for (let r = 0; r < 5; r++) {
      roundTrip(algo, cc, e, MSS);
      seen.push(cc.cwnd);
    }
    t.same(seen, [10_000, 20_000, 40_000, 80_000, 160_000, 320_000], 'doubling per RTT, per-segment ACKs');
    // Delayed ACKs (2 segments each): still doubling, since L = 2*SMSS.
    const d = fresh(algo, e);
    roundTrip(algo, d, e, 2 * MSS);
    roundTrip(algo, d, e, 2 * MSS);
    t.equal(d.cwnd, 40_000, 'doubling per RTT with delayed ACKs');
    // Stretch ACKs of 4 segments: limited to 2*SMSS each, so x1.5 per RTT.
    const s = fresh(algo, e);
    s.cwnd = 12_000;
    roundTrip(algo, s, e, 4 * MSS);
    t.equal(s.cwnd, 18_000, 'ABC limit L = 2*SMSS per ACK: x1.5 per RTT with 4-segment ACKs');
    const one = fresh(algo, e);
    algo.onAck(one, 10 * MSS, e);
    t.equal(one.cwnd, 12_000, 'one ACK of 10 segments adds 2 SMSS');
    algo.onAck(one, 1, e);
    t.equal(one.cwnd, 12_001, 'a 1-byte ACK adds 1 byte');
    algo.onAck(one, 0, e);
    algo.onAck(one, -5, e);
    t.equal(one.cwnd, 12_001, 'nothing for 0 or negative');
    // Slow start stops at ssthresh; the excess goes to congestion avoidance.
    const x = fresh(algo, e);
    x.ssthresh = 11_000;
    algo.onAck(x, MSS, e);
    t.equal(x.cwnd, 11_000, 'reaches ssthresh exactly');
    const y = fresh(algo, e);
    y.ssthresh = 10_500;
    algo.onAck(y, 2 * MSS, e);
    t.ok(y.cwnd >= 10_500 && y.cwnd < 10_500 + MSS, `slow start capped at ssthresh, the rest to CA (${y.cwnd})`);
  });
}

t.test('newreno: congestion avoidance grows exactly 1 SMSS per RTT', async (t) => {
  const e = env();
  const cc = fresh(newReno, e);
  cc.cwnd = 20 * MSS;
  cc.ssthresh = 10 * MSS;
  for (let r = 1; r <= 10; r++) {
    roundTrip(newReno, cc, e, MSS);
    t.equal(cc.cwnd, (20 + r) * MSS, `RTT ${r}`);
  }
  // Odd ACK sizes: growth is per acknowledged byte, so exact over many bytes.
  const rand = mulberry32(5681);
  const o = fresh(newReno, e);
  o.cwnd = 50 * MSS;
  o.ssthresh = 2 * MSS;
  let acked = 0;
  let expectCwnd = o.cwnd;
  let budget = 0;
  for (let i = 0; i < 20_000; i++) {
    const a = randInt(rand, 1, 3 * MSS);
    newReno.onAck(o, a, e);
    acked += a;
    budget += a;
    while (budget >= expectCwnd) {
      budget -= expectCwnd;
      expectCwnd += MSS;
    }
  }
  t.equal(o.cwnd, expectCwnd, 'byte counter reference');
  t.equal(o.v[0], budget, 'v[0] is the RFC 3465 bytes_acked counter');
  // Crossing ssthresh in one ACK: the remainder is counted for congestion avoidance.
  const x = fresh(newReno, e);
  x.ssthresh = 11_000;
  x.cwnd = 10_000;
  newReno.onAck(x, 2 * MSS, e);
  t.equal(x.cwnd, 11_000);
  t.equal(x.v[0], 1000, 'excess beyond ssthresh counted');
  // One stretch ACK larger than cwnd: exact per-byte growth (Linux's tcp_cong_avoid_ai).
  const y = fresh(newReno, e);
  y.ssthresh = 1;
  y.cwnd = 10_000;
  newReno.onAck(y, 25_000, e);
  t.equal(y.cwnd, 12_000);
  t.equal(y.v[0], 5_000);
});

t.test('newreno: onCongestion, onExitRecovery, onRto, onIdle', async (t) => {
  const cc = fresh(newReno);
  cc.cwnd = 120_000;
  cc.v[0] = 777;
  newReno.onCongestion(cc, env({ flightSize: 100_000 }));
  t.equal(cc.ssthresh, 50_000, 'FlightSize / 2');
  t.equal(cc.cwnd, 50_000, 'cwnd = ssthresh');
  t.equal(cc.v[0], 0, 'byte counter reset');
  newReno.onCongestion(cc, env({ flightSize: 3_001 }));
  t.equal(cc.ssthresh, 2_000, 'at least 2*SMSS');
  newReno.onCongestion(cc, env({ flightSize: 9_999 }));
  t.equal(cc.ssthresh, 4_999, 'whole bytes');

  // RFC 6582 §3.2 step 3 option (2): min(ssthresh, max(FlightSize, SMSS) + SMSS).
  const r = fresh(newReno);
  r.ssthresh = 50_000;
  r.cwnd = 90_000; // inflated by the core during recovery
  newReno.onExitRecovery(r, env({ flightSize: 30_000 }));
  t.equal(r.cwnd, 31_000);
  r.cwnd = 90_000;
  newReno.onExitRecovery(r, env({ flightSize: 0 }));
  t.equal(r.cwnd, 2_000, 'max(FlightSize, SMSS) + SMSS');
  r.cwnd = 90_000;
  newReno.onExitRecovery(r, env({ flightSize: 100_000 }));
  t.equal(r.cwnd, 50_000, 'at most ssthresh');

  const o = fresh(newReno);
  o.cwnd = 100_000;
  newReno.onRto(o, env({ flightSize: 80_000 }));
  t.equal(o.ssthresh, 40_000, 'RFC 5681 eq. 4');
  t.equal(o.cwnd, MSS, 'loss window = 1 SMSS');
  newReno.onRto(o, env({ flightSize: 1_000 }));
  t.equal(o.ssthresh, 2_000);

  const i = fresh(newReno);
  i.cwnd = 100_000;
  newReno.onIdle(i, env());
  t.equal(i.cwnd, initialWindow(MSS), 'restart window = IW');
  i.cwnd = 4_000;
  newReno.onIdle(i, env());
  t.equal(i.cwnd, 4_000, 'min(IW, cwnd)');
});

// ---- CUBIC ----

/** A CUBIC connection that just took a loss at cwnd = wmax bytes (first loss: no fast convergence). */
function cubicAfterLoss(wmax: number, e: CcEnv): CcVars {
  const cc = fresh(cubic, e);
  cc.cwnd = wmax;
  cubic.onCongestion(cc, e);
  return cc;
}

t.test('cubic: onCongestion (§4.6) and fast convergence (§4.7)', async (t) => {
  const e = env();
  const cc = cubicAfterLoss(100_000, e);
  t.equal(cc.v[CU_W_MAX], 100_000, 'W_max = cwnd at the first loss');
  t.equal(cc.v[CU_CWND_PRIOR], 100_000, 'cwnd_prior');
  t.equal(cc.ssthresh, 70_000, 'ssthresh = cwnd * beta');
  t.equal(cc.cwnd, 70_000, 'cwnd = ssthresh');
  t.equal(cc.v[CU_IN_EPOCH], 0, 'epoch ended');
  // A second loss below W_max: fast convergence releases bandwidth.
  cc.cwnd = 80_000;
  cubic.onCongestion(cc, e);
  t.equal(cc.v[CU_W_MAX], (80_000 * (1 + CUBIC_BETA)) / 2, 'W_max = cwnd (1 + beta) / 2');
  t.equal(cc.v[CU_W_MAX], 68_000);
  t.equal(cc.ssthresh, 56_000);
  t.equal(cc.v[CU_CWND_PRIOR], 80_000);
  // A loss at or above W_max: W_max = cwnd.
  cc.cwnd = 90_000;
  cubic.onCongestion(cc, e);
  t.equal(cc.v[CU_W_MAX], 90_000);
  t.equal(cc.ssthresh, 63_000);
  // ssthresh never below 2*SMSS.
  cc.cwnd = 2_000;
  cubic.onCongestion(cc, e);
  t.equal(cc.ssthresh, 2_000);
  t.equal(cc.cwnd, 2_000);
  t.equal(CUBIC_C, 0.4);
  t.equal(CUBIC_BETA, 0.7);
  t.ok(Math.abs(CUBIC_ALPHA - 0.9 / 1.7) < 1e-12, 'alpha_cubic = 3 (1 - beta) / (1 + beta)');
});

t.test('cubic: K, W_max and the curve against the closed form', async (t) => {
  const e = env({ nowUs: 5_000_000 });
  const wmax = 1_000_000;
  const cc = cubicAfterLoss(wmax, e);
  cubic.onAck(cc, MSS, e); // first ACK in congestion avoidance starts the epoch
  t.equal(cc.v[CU_IN_EPOCH], 1);
  t.equal(cc.v[0], 5_000_000, 't_epoch = now');
  t.equal(cc.v[CU_CWND_EPOCH], 700_000, 'cwnd_epoch');
  const kSec = Math.cbrt((1000 - 700) / 0.4); // segments, as RFC 9438 eq. 2
  t.ok(Math.abs(cc.v[CU_K_US]! / 1e6 - kSec) < 1e-9, `K = ${kSec.toFixed(4)} s`);
  for (const ts of [0, 1, 2.5, kSec, 6, 10, 20]) {
    const closed = (CUBIC_C * (ts - kSec) ** 3 + 1000) * MSS; // RFC 9438 eq. 1 in segments, times SMSS
    t.ok(Math.abs(cubicWindow(cc, ts, MSS) - closed) < 1e-6, `W_cubic(${ts.toFixed(2)})`);
  }
  t.ok(Math.abs(cubicWindow(cc, 0, MSS) - 700_000) < 1e-6, 'W_cubic(0) = cwnd_epoch');
  t.ok(Math.abs(cubicWindow(cc, kSec, MSS) - wmax) < 1e-6, 'W_cubic(K) = W_max');
});

t.test('cubic: cwnd follows W_cubic(t) under ACK clocking (concave, plateau, convex)', async (t) => {
  const rtt = 100_000;
  const e = env({ srttUs: rtt, minRttUs: rtt });
  const wmaxSeg = 1000;
  const cc = cubicAfterLoss(wmaxSeg * MSS, e);
  const k = Math.cbrt((wmaxSeg * (1 - CUBIC_BETA)) / CUBIC_C);
  let worst = 0;
  let concave = 0;
  let convex = 0;
  let shrank = 0;
  let tooFast = 0;
  let renoFriendly = 0;
  for (let r = 1; r <= 200; r++) {
    const before = cc.cwnd;
    roundTrip(cubic, cc, e, MSS);
    if (cc.cwnd < before) shrank++;
    if (cc.cwnd > Math.ceil(before * 1.5)) tooFast++;
    const ts = e.nowUs / 1e6;
    const closed = (CUBIC_C * (ts - k) ** 3 + wmaxSeg) * MSS;
    if (ts >= 1) worst = Math.max(worst, Math.abs(cc.cwnd / closed - 1));
    if (cc.cwnd < wmaxSeg * MSS) concave++;
    else convex++;
    if (cc.v[CU_W_EST]! >= cc.cwnd) renoFriendly++;
  }
  t.equal(shrank, 0, 'cwnd never shrinks on ACKs');
  t.equal(tooFast, 0, 'at most x1.5 per RTT (target clamp)');
  t.equal(renoFriendly, 0, 'never in the Reno-friendly region with this BDP');
  t.ok(worst < 1e-3, `cwnd within 0.1% of W_cubic(t) from t = 1 s (worst ${(worst * 100).toFixed(4)}%)`);
  t.ok(concave > 50 && convex > 50, `both regions visited (${concave} concave, ${convex} convex RTTs)`);
});

t.test('cubic: per-ACK increment (target - cwnd) / cwnd and the 1.5 cwnd clamp', async (t) => {
  const e = env({ nowUs: 1_000_000, srttUs: 200_000 });
  const cc = cubicAfterLoss(100_000, e);
  cubic.onAck(cc, MSS, e); // starts the epoch at t = 0
  // At t = 0 W_cubic(0) = cwnd_epoch, and W_est has just grown past it: this first ACK is Reno-friendly.
  t.equal(cc.cwnd, 70_000 + Math.floor((CUBIC_ALPHA * MSS * MSS) / 70_000));
  // 50 ms later the curve is above W_est: concave region, target = W_cubic(t + RTT).
  e.nowUs += 50_000;
  const c1 = cc.cwnd;
  const acc = cc.v[6]!;
  const target = cubicWindow(cc, 0.25, MSS);
  t.ok(target > c1 && target < 1.5 * c1);
  cubic.onAck(cc, MSS, e);
  t.equal(cc.cwnd, c1 + Math.floor(acc + ((target - c1) * MSS) / c1), 'cwnd += (target - cwnd) / cwnd per byte');
  // Far in the convex region, the target is clamped to 1.5 cwnd: +acked/2 per ACK.
  e.nowUs += 60_000_000;
  const c0 = cc.cwnd;
  cc.v[6] = 0;
  cubic.onAck(cc, 1000, e);
  t.equal(cc.cwnd, c0 + 500);
  // Above the curve (target < cwnd): no growth beyond the Reno-friendly estimate.
  const hi = cubicAfterLoss(100_000, env());
  cubic.onAck(hi, MSS, env());
  hi.cwnd = 2_000_000; // far above W_cubic for a while
  hi.v[6] = 0;
  cubic.onAck(hi, MSS, env({ nowUs: 100_000 }));
  t.equal(hi.cwnd, 2_000_000, 'target clamped to cwnd');
});

t.test('cubic: Reno-friendly region (§4.3)', async (t) => {
  const rtt = 100_000;
  const e = env({ srttUs: rtt, minRttUs: rtt });
  const cc = cubicAfterLoss(20 * MSS, e); // small window, short K: Reno-friendly
  t.equal(cc.cwnd, 14_000);
  // W_est grows by alpha_cubic ~ 0.53 SMSS per RTT while below cwnd_prior (20 SMSS), then 1 SMSS.
  for (let r = 0; r < 10; r++) {
    roundTrip(cubic, cc, e, MSS);
    t.ok(cc.cwnd >= Math.floor(cc.v[CU_W_EST]!), 'cwnd >= W_est');
  }
  const west1s = cc.v[CU_W_EST]!;
  const westOk = west1s > 14_000 + 9 * 0.45 * MSS && west1s < 14_000 + 10 * CUBIC_ALPHA * MSS;
  t.ok(westOk, `W_est after 1 s (${west1s.toFixed(0)})`);
  for (let r = 0; r < 10; r++) roundTrip(cubic, cc, e, MSS);
  const at2s = cc.cwnd;
  for (let r = 0; r < 30; r++) {
    roundTrip(cubic, cc, e, MSS);
    const ts = e.nowUs / 1e6;
    t.ok(cubicWindow(cc, ts, MSS) < cc.v[CU_W_EST]!, `W_cubic < W_est at ${ts.toFixed(1)} s`);
    t.equal(cc.cwnd, Math.floor(cc.v[CU_W_EST]!), 'cwnd = W_est');
  }
  const at5s = cc.cwnd;
  const perRtt = (at5s - at2s) / 30;
  t.ok(perRtt > 0.95 * MSS && perRtt <= 1.0 * MSS, `alpha = 1 once W_est >= cwnd_prior (${perRtt.toFixed(1)} B/RTT)`);
});

t.test('cubic: onRto (§4.8), onExitRecovery, onIdle', async (t) => {
  const e = env({ nowUs: 10_000_000 });
  const cc = cubicAfterLoss(100_000, e);
  for (let r = 0; r < 20; r++) roundTrip(cubic, cc, e, MSS);
  const cw = cc.cwnd;
  e.flightSize = 10_000; // ignored: CUBIC uses cwnd
  cubic.onRto(cc, e);
  t.equal(cc.ssthresh, Math.floor(cw * CUBIC_BETA), 'ssthresh = cwnd * beta');
  t.equal(cc.cwnd, MSS, 'loss window');
  t.equal(cc.v[CU_W_MAX], 0, 'W_max reset');
  t.equal(cc.v[CU_CWND_PRIOR], cw);
  t.equal(cc.v[CU_IN_EPOCH], 0);
  // Slow start back to ssthresh, then the first epoch has K = 0 and W_max = W_est = cwnd_epoch.
  let guard = 0;
  while (cc.cwnd < cc.ssthresh && guard++ < 1000) cubic.onAck(cc, MSS, e);
  const epochCwnd = cc.ssthresh;
  if (cc.v[CU_IN_EPOCH] !== 1) cubic.onAck(cc, MSS, e);
  t.equal(cc.v[CU_IN_EPOCH], 1, 'the epoch starts once cwnd reaches ssthresh');
  t.equal(cc.v[CU_K_US], 0, 'K = 0');
  t.equal(cc.v[CU_W_MAX], epochCwnd, 'W_max = cwnd_epoch');
  t.equal(cc.v[CU_CWND_EPOCH], epochCwnd);
  t.ok(cc.v[CU_W_EST]! >= epochCwnd && cc.v[CU_W_EST]! < epochCwnd + MSS, 'W_est starts at cwnd_epoch');

  const r = cubicAfterLoss(100_000, env());
  r.cwnd = 95_000;
  cubic.onExitRecovery(r, env({ flightSize: 40_000 }));
  t.equal(r.cwnd, 41_000, 'RFC 6582 option (2)');
  r.cwnd = 95_000;
  cubic.onExitRecovery(r, env({ flightSize: 90_000 }));
  t.equal(r.cwnd, 70_000, 'at most ssthresh');
  t.equal(r.v[CU_IN_EPOCH], 0, 'the next CA ACK starts a new epoch');

  const i = cubicAfterLoss(100_000, env());
  cubic.onAck(i, MSS, env());
  t.equal(i.v[CU_IN_EPOCH], 1);
  cubic.onIdle(i, env());
  t.equal(i.cwnd, initialWindow(MSS));
  t.equal(i.v[CU_IN_EPOCH], 0, 'idle time does not count in t');
  t.equal(i.v[CU_W_MAX], 100_000, 'W_max kept');
  cubic.onAck(i, MSS, env({ nowUs: 50_000_000 }));
  t.equal(i.cwnd, initialWindow(MSS) + MSS, 'below ssthresh after the restart: slow start');
  t.equal(i.v[CU_IN_EPOCH], 0);
  i.ssthresh = i.cwnd;
  cubic.onAck(i, MSS, env({ nowUs: 50_000_000 }));
  t.equal(i.v[0], 50_000_000, 'new epoch starts at the first CA ACK after idle');
  t.ok(i.v[CU_K_US]! > 0, 'K recomputed toward W_max');
});

t.test('cubic: slow start identical to NewReno', async (t) => {
  const rand = mulberry32(9438);
  const e = env();
  const a = fresh(cubic, e);
  const b = fresh(newReno, e);
  a.ssthresh = b.ssthresh = 5_000_000;
  let acks = 0;
  let differ = 0;
  while (a.cwnd < a.ssthresh) {
    const n = randInt(rand, 1, 5000);
    cubic.onAck(a, n, e);
    newReno.onAck(b, n, e);
    acks++;
    if (a.cwnd !== b.cwnd) differ++;
  }
  t.equal(differ, 0, `same cwnd after each of ${acks} ACKs up to ssthresh`);
  t.equal(a.cwnd, 5_000_000);
});

for (const algo of [newReno, cubic]) {
  t.test(`${algo.name}: all state in CcVars (plain copies, interleaved connections)`, async (t) => {
    const rand = mulberry32(algo === cubic ? 17 : 29);
    type Ev = { kind: number; n: number; dt: number; flight: number };
    const evs: Ev[] = [];
    for (let i = 0; i < 30_000; i++) {
      const p = rand();
      const kind = p < 0.995 ? 0 : p < 0.997 ? 1 : p < 0.998 ? 2 : p < 0.999 ? 3 : 4;
      evs.push({ kind, n: randInt(rand, 1, 3 * MSS), dt: randInt(rand, 0, 2_000), flight: randInt(rand, 0, 200_000) });
    }
    const run = (a: CcVars, e: CcEnv, ev: Ev): void => {
      e.nowUs += ev.dt;
      e.flightSize = ev.flight;
      if (ev.kind === 0) algo.onAck(a, ev.n, e);
      else if (ev.kind === 1) algo.onCongestion(a, e);
      else if (ev.kind === 2) algo.onExitRecovery(a, e);
      else if (ev.kind === 3) algo.onRto(a, e);
      else algo.onIdle(a, e);
    };
    // Reference: one object, never copied.
    const ea = env({ nowUs: 1_000_000, srttUs: 30_000, minRttUs: 20_000 });
    const ref = fresh(algo, ea);
    const trace: string[] = [];
    for (const ev of evs) {
      run(ref, ea, ev);
      trace.push(JSON.stringify(ref));
    }
    // The same events on a state that is serialised and rebuilt before every call, interleaved with a
    // second connection driven by other events through the same algorithm object.
    const eb = env({ nowUs: 1_000_000, srttUs: 30_000, minRttUs: 20_000 });
    const eo = env({ nowUs: 7, srttUs: 1_000, minRttUs: 900 });
    let copy: CcVars = JSON.parse(JSON.stringify(fresh(algo, eb)));
    const other = fresh(algo, eo);
    let mismatch = -1;
    for (let i = 0; i < evs.length; i++) {
      run(copy, eb, evs[i]!);
      run(other, eo, evs[evs.length - 1 - i]!);
      const s = JSON.stringify(copy);
      if (s !== trace[i] && mismatch < 0) mismatch = i;
      copy = JSON.parse(s);
      copy.v = Array.from(copy.v); // a plain array rebuilt from numbers only
    }
    t.equal(mismatch, -1, 'identical trajectory');
    t.equal(copy.v.length, CC_SCRATCH);
    t.ok(ref.v.every((x) => Number.isFinite(x)), 'scratch stays finite');
    t.ok(ref.cwnd >= MSS && Number.isInteger(ref.cwnd), 'cwnd an integer number of bytes, >= 1 SMSS');
  });
}
