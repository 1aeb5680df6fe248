/**
 * Hang detection for servers observed through shared memory: an adaptive phi-accrual failure
 * detector (Hayashibara, Defago, Yared, Katayama, "The phi accrual failure detector", SRDS 2004)
 * plus a `HangMonitor` that feeds it from a server's heartbeat counter and state word.
 *
 * Pure: no I/O, no timers, no clock reads. Every time is a number of microseconds passed in by the
 * caller (`nowUs`), from one monotonic clock (the supervisor's). Deterministic. No allocation per
 * `heartbeat()`/`phi()` call: the interval window is a preallocated Float64Array ring.
 *
 * ## Who calls what, in which order
 *
 * The server (worker thread) keeps two words in a SharedArrayBuffer: a heartbeat counter it bumps
 * once per event-loop iteration (and when it wakes up), and a state word: BUSY while it runs, IDLE or
 * PARKED while it waits in `Atomics.wait`. The supervisor (main thread) samples both every P ms
 * (P = 5..10 ms) and calls, per server and per sample:
 *
 *     monitor.sample(nowUs, beatCount, state, samplerLagUs) -> { verdict, phi, silenceUs }
 *
 * where `samplerLagUs` is how late the supervisor's own timer fired (it expected to run at t, ran at
 * t + lag). The monitor turns that into detector calls:
 *   - state != BUSY            -> `detector.rearm(now)`: a parked server is waiting, not silent; the
 *                                 suspicion clock restarts and no interval is recorded.
 *   - BUSY, counter changed    -> `detector.heartbeat(now)`: an arrival; the interval since the previous
 *                                 arrival feeds the window (only if both ends were BUSY).
 *   - BUSY, counter unchanged  -> `detector.phi(now)`: suspicion; 'suspect' when phi >= threshold,
 *                                 'hung' once suspicion held on `confirmSamples` (2) samples in a row.
 * `observeSamplerLag(lag)` is called first in every sample, so the lag credit applies to that sample.
 *
 * An arrival is timestamped with the sample time that saw the counter change, so no cross-thread
 * clock is needed; the detector therefore learns the *observed* cadence, max(server beat period,
 * sampling period) plus the supervisor's timer jitter.
 *
 * ## The formula
 *
 * Over the last `windowSize` inter-arrival intervals (BUSY time only) keep mean m and standard
 * deviation s (O(1) per sample: running sums over a ring, shifted by `firstIntervalUs` against
 * cancellation, recomputed exactly once per `windowSize` pushes against drift). With
 *
 *     mu    = m + acceptablePauseUs
 *     sigma = clamp(s, minStdDevUs, maxStdDevUs)
 *     t     = now - lastArrival - lagCredit            (the effective silence, >= 0)
 *     y     = (t - mu) / sigma
 *
 *     phi(t) = -log10(1 - F(y)),    F(y) ~= 1 / (1 + exp(-y (1.5976 + 0.070566 y^2)))
 *
 * F is the logistic approximation of the standard normal CDF (Bowling et al. 2009, max abs error
 * 1.4e-4), the one Akka and Cassandra use. Since 1 - F(y) = 1 / (1 + e^z) with z = y(1.5976 +
 * 0.070566 y^2), phi = log10(1 + e^z) = softplus(z) / ln 10, evaluated without overflow: phi is finite
 * and non-decreasing in t, ~0 when t << mu, log10(2) at t = mu, ~z / ln 10 when t >> mu.
 * phi >= threshold  <=>  y >= y*  where y* solves 0.070566 y^3 + 1.5976 y = ln(10^threshold - 1);
 * for threshold 8, y* = 5.226. So a server is suspected once its effective silence reaches
 *
 *     T_s = m + acceptablePauseUs + y* * sigma            (`suspectAfterUs()`).
 *
 * ## Supervisor-lag compensation
 *
 * On a 2-core machine running 4+ server threads, a thread routinely waits a scheduler slice (10 ms+)
 * for a core. When the supervisor itself was that late, the server most likely was descheduled too,
 * and its silence says nothing about the server. So the excess of each sampler lag over
 * `lagGraceUs` (ordinary timer jitter, not credited) is credited to the current silence: the
 * suspicion clock is frozen for that long. The credit resets at every arrival/rearm, is capped at
 * `maxLagCreditUs` per silence (so a supervisor starved by a hung server spinning on a core still
 * declares the hang: at most `maxLagCreditUs` later), and is also subtracted from the interval
 * recorded at the next arrival (the window learns the server's cadence, not the supervisor's lag).
 * Worker GC pauses are per-isolate and do not lag the supervisor: they are absorbed by
 * `acceptablePauseUs` instead.
 *
 * ## Defaults, and why (P = sampling period, 5..10 ms; times in us)
 *
 *   threshold          8       y* = 5.226: false-suspicion odds 1e-8 per silence under the model.
 *   windowSize         1000    Akka/Cassandra's; 5-10 s of BUSY sampling; one outlier moves m by
 *                              1/1000 of its excess, so rare GC gaps barely shift the estimate.
 *   firstIntervalUs    10_000  seeds the window (two samples, first +- first/4, as Akka does) =
 *                              the slow end of P; real intervals displace the seeds.
 *   acceptablePauseUs  25_000  absorbs a worker GC pause (the major one on a small heap) on top of m.
 *   minStdDevUs        5_000   observed intervals are quantised to P, so s ~ 0 on a steady stack;
 *                              the floor keeps y* * sigma >= 26 ms of slack for slices and jitter.
 *   maxStdDevUs        7_000   bounds adaptation so the detection deadline below still holds after
 *                              the window has learned a noisy history.
 *   lagGraceUs         2_000   normal setTimeout lateness on a loaded machine; not credited.
 *   maxLagCreditUs     50_000  a few scheduler slices; hang detection under supervisor lag is
 *                              delayed by at most this.
 *   confirmSamples     2       (HangMonitor) a suspicion must hold on two consecutive samples.
 *
 * With m ~ P: T_s = P + 25 + 5.226 * [5, 7] = [P + 51.1, P + 61.6] ms.
 *   Detection: a server hanging at H (state stuck BUSY, counter frozen) was last seen to beat at
 *   A < H + P; the first sample with t >= T_s comes at A + ceil(T_s / P) * P and confirmation one
 *   sample later. P = 10: T_s in [61.1, 71.6] -> 'hung' at A + 80..90 < H + 100 ms.
 *   P = 5: T_s in [56.1, 66.6] -> 'hung' at A + 65..75 < H + 80 ms.
 *   Tolerance: a gap G between two server beats is seen as at most G + P of silence, and 'hung'
 *   needs two samples at t >= T_s, i.e. G > ceil(T_s / P) * P. So a gap of up to ~55 ms never
 *   gives 'hung' even with no supervisor lag at all, up to ~50 ms never even gives 'suspect', and
 *   when the supervisor was descheduled alongside the server, its lag (up to `maxLagCreditUs`) is
 *   tolerated on top.
 * These bounds assume the server beats at least about once per sampling period while BUSY (an
 * event loop that works in bounded batches); a server with longer iterations is learned (m grows)
 * and is declared hung later, in proportion. They also assume the supervisor samples on a fixed
 * grid (next sample due at t0 + k P, lag = actual - due): a chained setTimeout lets its jitter
 * accumulate into the detection time. Stalls that follow each other with no beat in between add
 * up to one longer gap: two 40 ms GC pauses back to back are an 80 ms silence, and will be taken
 * for a hang unless the supervisor lagged too. That is the price of the 100 ms deadline.
 *
 * Measured by test/runtime/hang-monitor.test.ts (seeded simulation, 100k simulated seconds at each
 * of P = 5 and 10 ms; worker GC pauses of 2-40 ms, 1-3 scheduler slices with and without the
 * supervisor descheduled too, 40 ms GC + slices with supervisor lag, supervisor-only stalls, slow
 * 2-8 ms iterations; a setTimeout-chained supervisor with 0-1 ms timer jitter): no 'suspect' and no
 * 'hung' verdict; injected hangs declared after p50/max 68/77 ms (P = 5) and 84/95 ms (P = 10).
 *
 * Not this module's job: a server PARKED forever while work piles up in its rings (a lost wake-up)
 * is a liveness problem seen from ring occupancy, not from heartbeats.
 */

/** Values of the server's published state word. Only BUSY time accrues suspicion. */
export const ServerRunState = Object.freeze({
  /** Between tasks / about to wait. */
  IDLE: 0,
  /** Running its event loop: must keep bumping the heartbeat counter. */
  BUSY: 1,
  /** Blocked in Atomics.wait; the peer that notifies it will wake it. */
  PARKED: 2,
});

export type HangVerdict = 'ok' | 'suspect' | 'hung';

export interface PhiAccrualOptions {
  /** phi at or above which the server is suspected. Default 8. */
  threshold?: number;
  /** Number of inter-arrival intervals kept (sliding window). Default 1000. */
  windowSize?: number;
  /** Floor on the standard deviation used in phi. Default 5_000 us. */
  minStdDevUs?: number;
  /** Ceiling on the standard deviation used in phi (bounds the detection time). Default 7_000 us. */
  maxStdDevUs?: number;
  /** Pause tolerated on top of the mean interval (GC). Default 25_000 us. */
  acceptablePauseUs?: number;
  /** Interval assumed before any is measured (seeds the window). Default 10_000 us. */
  firstIntervalUs?: number;
  /** Sampler lateness considered normal timer jitter and not credited. Default 2_000 us. */
  lagGraceUs?: number;
  /** Most sampler lag credited to one silence. Default 50_000 us. */
  maxLagCreditUs?: number;
}

export const PHI_DEFAULTS: Readonly<Required<PhiAccrualOptions>> = Object.freeze({
  threshold: 8,
  windowSize: 1000,
  minStdDevUs: 5_000,
  maxStdDevUs: 7_000,
  acceptablePauseUs: 25_000,
  firstIntervalUs: 10_000,
  lagGraceUs: 2_000,
  maxLagCreditUs: 50_000,
});

const LOGISTIC_A = 1.5976;
const LOGISTIC_B = 0.070566;

/** ln(1 + e^z) without overflow for large z nor loss for very negative z. */
function softplus(z: number): number {
  return z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z));
}

/** Logistic approximation of the standard normal CDF: P(Y <= y). */
export function normalCdfApprox(y: number): number {
  return 1 / (1 + Math.exp(-y * (LOGISTIC_A + LOGISTIC_B * y * y)));
}

/**
 * phi = -log10(P(interval > elapsed)) for a normal interval distribution (mean, stdDev), with the
 * logistic CDF approximation. Finite for every finite input; non-decreasing in elapsedUs.
 */
export function phiOf(elapsedUs: number, meanUs: number, stdDevUs: number): number {
  const y = (elapsedUs - meanUs) / stdDevUs;
  return softplus(y * (LOGISTIC_A + LOGISTIC_B * y * y)) / Math.LN10;
}

/** The z-score y* at which phiOf reaches `phi` (inverse of phiOf in units of stdDev). */
export function zScoreForPhi(phi: number): number {
  // phi = softplus(z)/ln10  =>  z = ln(10^phi - 1) = phi*ln10 + ln(1 - 10^-phi)
  const z = phi * Math.LN10 + Math.log1p(-Math.pow(10, -phi));
  // Solve B y^3 + A y - z = 0 (one real root, the cubic is increasing): Cardano, then Newton polish.
  const p = LOGISTIC_A / LOGISTIC_B;
  const q = -z / LOGISTIC_B;
  const d = Math.sqrt((q * q) / 4 + (p * p * p) / 27);
  let y = Math.cbrt(-q / 2 + d) + Math.cbrt(-q / 2 - d);
  for (let i = 0; i < 3; i++) {
    const f = LOGISTIC_B * y * y * y + LOGISTIC_A * y - z;
    y -= f / (3 * LOGISTIC_B * y * y + LOGISTIC_A);
  }
  return y;
}

function checkNumber(name: string, v: number, min: number): void {
  if (!Number.isFinite(v) || v < min) throw new RangeError(`${name} must be a finite number >= ${min}, got ${v}`);
}

/**
 * Phi-accrual detector over one heartbeat source. Before the first `heartbeat()`/`rearm()` it has
 * no reference point: phi is 0 and the source is available.
 */
export class PhiAccrualDetector {
  readonly threshold: number;
  readonly windowSize: number;
  readonly minStdDevUs: number;
  readonly maxStdDevUs: number;
  readonly acceptablePauseUs: number;
  readonly firstIntervalUs: number;
  readonly lagGraceUs: number;
  readonly maxLagCreditUs: number;
  /** z-score at which phi reaches `threshold`. */
  readonly thresholdZ: number;

  // Interval window: values stored shifted by firstIntervalUs (the reference) against cancellation.
  private readonly ring: Float64Array;
  private head = 0;
  private n = 0;
  private sum = 0;
  private sumSq = 0;
  private pushesSinceExact = 0;

  private originUs = Number.NaN; // start of the current silence (last arrival or rearm)
  private recordNext = false; // does the next arrival close a measurable interval?
  private creditUs = 0; // sampler lag credited to the current silence
  private arrivals = 0;
  private totalCreditUs = 0;

  constructor(options: PhiAccrualOptions = {}) {
    const o = { ...PHI_DEFAULTS, ...stripUndefined(options) };
    checkNumber('threshold', o.threshold, Number.MIN_VALUE);
    if (!Number.isInteger(o.windowSize) || o.windowSize < 2) {
      throw new RangeError(`windowSize must be an integer >= 2, got ${o.windowSize}`);
    }
    checkNumber('minStdDevUs', o.minStdDevUs, Number.MIN_VALUE);
    checkNumber('maxStdDevUs', o.maxStdDevUs, o.minStdDevUs);
    checkNumber('acceptablePauseUs', o.acceptablePauseUs, 0);
    checkNumber('firstIntervalUs', o.firstIntervalUs, Number.MIN_VALUE);
    checkNumber('lagGraceUs', o.lagGraceUs, 0);
    checkNumber('maxLagCreditUs', o.maxLagCreditUs, 0);
    this.threshold = o.threshold;
    this.windowSize = o.windowSize;
    this.minStdDevUs = o.minStdDevUs;
    this.maxStdDevUs = o.maxStdDevUs;
    this.acceptablePauseUs = o.acceptablePauseUs;
    this.firstIntervalUs = o.firstIntervalUs;
    this.lagGraceUs = o.lagGraceUs;
    this.maxLagCreditUs = o.maxLagCreditUs;
    this.thresholdZ = zScoreForPhi(o.threshold);
    this.ring = new Float64Array(o.windowSize);
    this.reset();
  }

  /** Forget everything: statistics back to the seed, no reference point. */
  reset(): void {
    this.ring.fill(0);
    this.head = 0;
    this.n = 0;
    this.sum = 0;
    this.sumSq = 0;
    this.pushesSinceExact = 0;
    this.originUs = Number.NaN;
    this.recordNext = false;
    this.creditUs = 0;
    this.arrivals = 0;
    this.totalCreditUs = 0;
    // Seed as Akka does: mean = first, standard deviation = first / 4.
    const d = this.firstIntervalUs / 4;
    this.push(this.firstIntervalUs - d);
    this.push(this.firstIntervalUs + d);
  }

  /** Record a heartbeat arrival observed at nowUs. */
  heartbeat(nowUs: number): void {
    if (this.recordNext) {
      const interval = nowUs - this.originUs - this.creditUs;
      this.push(interval > 0 ? interval : 0);
    }
    this.originUs = nowUs;
    this.creditUs = 0;
    this.recordNext = true;
    this.arrivals++;
  }

  /**
   * Restart the suspicion clock at nowUs without recording an interval: the source was seen alive
   * but not beating for a reason that is not a fault (parked, just restarted). Keeps statistics.
   */
  rearm(nowUs: number): void {
    this.originUs = nowUs;
    this.creditUs = 0;
    this.recordNext = false;
  }

  /**
   * The sampler (supervisor) ran `lagUs` later than it meant to. The excess over `lagGraceUs` is
   * not counted as silence (capped at `maxLagCreditUs` per silence). Call before `heartbeat()` /
   * `phi()` for the same sample. Ignored before the first heartbeat/rearm.
   */
  observeSamplerLag(lagUs: number): void {
    if (!this.started) return;
    const excess = lagUs - this.lagGraceUs;
    if (!(excess > 0)) return; // also drops NaN
    const credit = Math.min(this.maxLagCreditUs, this.creditUs + excess);
    this.totalCreditUs += credit - this.creditUs;
    this.creditUs = credit;
  }

  /** True once there is a reference point (a heartbeat or rearm since construction/reset). */
  get started(): boolean {
    return this.originUs === this.originUs; // not NaN
  }

  /** Arrivals recorded since construction/reset. */
  get arrivalCount(): number {
    return this.arrivals;
  }

  /** Intervals in the window (including the two seeds until displaced). */
  get sampleCount(): number {
    return this.n;
  }

  /** Lag credited to the current silence. */
  get lagCreditUs(): number {
    return this.creditUs;
  }

  /** Lag credited over the detector's life (diagnostics). */
  get totalLagCreditUs(): number {
    return this.totalCreditUs;
  }

  /** Mean inter-arrival interval in the window. */
  get meanUs(): number {
    return this.firstIntervalUs + this.sum / this.n;
  }

  /** Population standard deviation of the window (unclamped). */
  get stdDevUs(): number {
    const m = this.sum / this.n;
    const v = this.sumSq / this.n - m * m;
    return v > 0 ? Math.sqrt(v) : 0;
  }

  /** Standard deviation used in phi: stdDevUs clamped to [minStdDevUs, maxStdDevUs]. */
  get effectiveStdDevUs(): number {
    const s = this.stdDevUs;
    return s < this.minStdDevUs ? this.minStdDevUs : s > this.maxStdDevUs ? this.maxStdDevUs : s;
  }

  /** Effective silence at nowUs: time since the last arrival/rearm minus lag credit, >= 0. */
  elapsedUs(nowUs: number): number {
    if (!this.started) return 0;
    const t = nowUs - this.originUs - this.creditUs;
    return t > 0 ? t : 0;
  }

  /** Suspicion level at nowUs (0 before the first heartbeat/rearm). */
  phi(nowUs: number): number {
    if (!this.started) return 0;
    return phiOf(this.elapsedUs(nowUs), this.meanUs + this.acceptablePauseUs, this.effectiveStdDevUs);
  }

  isAvailable(nowUs: number): boolean {
    return this.phi(nowUs) < this.threshold;
  }

  /** Effective silence at which phi reaches the threshold, with the current statistics. */
  suspectAfterUs(): number {
    return this.meanUs + this.acceptablePauseUs + this.thresholdZ * this.effectiveStdDevUs;
  }

  /**
   * Absolute time at which phi reaches the threshold if nothing arrives and no more lag is
   * credited (when to look again); Infinity before the first heartbeat/rearm.
   */
  suspectAtUs(): number {
    if (!this.started) return Number.POSITIVE_INFINITY;
    return this.originUs + this.creditUs + this.suspectAfterUs();
  }

  private push(intervalUs: number): void {
    const x = intervalUs - this.firstIntervalUs;
    const ring = this.ring;
    if (this.n === ring.length) {
      const old = ring[this.head]!;
      this.sum -= old;
      this.sumSq -= old * old;
    } else {
      this.n++;
    }
    ring[this.head] = x;
    this.sum += x;
    this.sumSq += x * x;
    this.head = this.head + 1 === ring.length ? 0 : this.head + 1;
    if (++this.pushesSinceExact >= ring.length) this.recomputeSums();
  }

  /** Exact sums, once per windowSize pushes: running sums cannot drift. Amortised O(1). */
  private recomputeSums(): void {
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < this.n; i++) {
      const x = this.ring[i]!;
      s += x;
      s2 += x * x;
    }
    this.sum = s;
    this.sumSq = s2;
    this.pushesSinceExact = 0;
  }
}

export interface HangMonitorOptions extends PhiAccrualOptions {
  /** Consecutive suspect samples needed for 'hung'. Default 2. */
  confirmSamples?: number;
}

export interface HangSample {
  verdict: HangVerdict;
  /** phi at this sample (0 when the server is not BUSY). */
  phi: number;
  /** Effective silence (us) the phi was computed from. */
  silenceUs: number;
}

/**
 * Per-server hang verdicts from the raw heartbeat counter and state word. One instance per server
 * incarnation (or `rearm()` it on restart to keep the learned cadence).
 */
export class HangMonitor {
  readonly detector: PhiAccrualDetector;
  readonly confirmSamples: number;
  private lastCount = 0;
  private sampled = false;
  private run = 0; // consecutive suspect samples

  constructor(options: HangMonitorOptions = {}) {
    const { confirmSamples = 2, ...phiOptions } = options;
    if (!Number.isInteger(confirmSamples) || confirmSamples < 1) {
      throw new RangeError(`confirmSamples must be an integer >= 1, got ${confirmSamples}`);
    }
    this.confirmSamples = confirmSamples;
    this.detector = new PhiAccrualDetector(phiOptions);
  }

  /**
   * One supervisor sample. `beatCount` is compared only for (in)equality, so a wrapping 32-bit
   * counter is fine. `state` is the server's state word (ServerRunState); anything but BUSY means
   * "waiting, not suspect". `samplerLagUs` is how late this sample ran (0 if unknown).
   */
  sample(nowUs: number, beatCount: number, state: number, samplerLagUs = 0): HangSample {
    const det = this.detector;
    const first = !this.sampled;
    const changed = beatCount !== this.lastCount;
    this.sampled = true;
    this.lastCount = beatCount;
    if (first || state !== ServerRunState.BUSY) {
      det.rearm(nowUs);
      this.run = 0;
      return { verdict: 'ok', phi: 0, silenceUs: 0 };
    }
    det.observeSamplerLag(samplerLagUs);
    if (changed) {
      det.heartbeat(nowUs);
      this.run = 0;
      return { verdict: 'ok', phi: det.phi(nowUs), silenceUs: 0 };
    }
    const phi = det.phi(nowUs);
    const silenceUs = det.elapsedUs(nowUs);
    if (phi < det.threshold) {
      this.run = 0;
      return { verdict: 'ok', phi, silenceUs };
    }
    this.run++;
    return { verdict: this.run >= this.confirmSamples ? 'hung' : 'suspect', phi, silenceUs };
  }

  /** Consecutive samples on which the server has been suspected. */
  get suspectSamples(): number {
    return this.run;
  }

  /** A new incarnation starts at nowUs: restart the silence, keep the learned cadence. */
  rearm(nowUs: number): void {
    this.detector.rearm(nowUs);
    this.run = 0;
    this.sampled = false;
  }

  /** Forget everything, learned cadence included. */
  reset(): void {
    this.detector.reset();
    this.run = 0;
    this.sampled = false;
    this.lastCount = 0;
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
