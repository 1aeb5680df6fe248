/**
 * Restart policy for one server, in the manner of MINIX 3's reincarnation server: restart at once
 * while crashes are rare or the server makes progress between them; back off exponentially while
 * it keeps crashing without progress, and report it as crash looping.
 *
 * Pure: no I/O, no timers, no clock reads (`nowUs` is passed in, microseconds, the supervisor's
 * monotonic clock); jitter comes from a PRNG passed in, so a seeded PRNG makes it deterministic.
 *
 * ## Rules
 *
 * `streak` counts consecutive crashes without progress. On `onCrash(nowUs, madeProgress)`:
 *   1. The streak restarts (0) if the server made progress since its last start, or if it stayed up
 *      at least `healthyAfterUs` since then (its start = the previous crash + the delay returned,
 *      or the time given to `onStart`). `onHealthy(nowUs)` applies the second rule eagerly.
 *   2. streak += 1.
 *   3. streak <= immediateRestarts: delay 0. Otherwise, with k = streak - immediateRestarts - 1:
 *         d = min(maxDelayUs, baseDelayUs * 2^k),  delay = round(d * (1 - jitter * random()))
 *      The delay is in [d (1 - jitter), d]: never above the cap, and with jitter < 0.5 each step is
 *      strictly longer than the previous one until the cap (2 d (1 - jitter) > d).
 *   4. crashLooping = streak > immediateRestarts (the server is being backed off).
 *
 * ## Defaults, and why
 *   immediateRestarts  3          matches PoisonTracker's maxAttempts: a poison record costs three
 *                                 immediate restarts, then it is dropped and the server proceeds,
 *                                 without ever waiting for a backoff.
 *   baseDelayUs        50_000     about two worker start-ups (23-30 ms each on this machine).
 *   maxDelayUs         5_000_000  a crash-looping server still retries every few seconds.
 *   jitter             0.25       desynchronises servers that crash together.
 *   healthyAfterUs     10_000_000 up 10 s (twice the cap) counts as recovered.
 */

import { seededRandom } from './stats.js';

export interface RestartPolicyOptions {
  /** Crashes of a streak restarted with no delay. Default 3. */
  immediateRestarts?: number;
  /** First backoff delay. Default 50_000 us. */
  baseDelayUs?: number;
  /** Delay cap. Default 5_000_000 us. */
  maxDelayUs?: number;
  /** Fraction of the delay removed at random, in [0, 1). Default 0.25. */
  jitter?: number;
  /** Uptime after which the streak is forgotten. Default 10_000_000 us. */
  healthyAfterUs?: number;
  /**
   * Uniform [0, 1) source for the jitter. Pass a seeded one per server (stats.seededRandom(seed)) so
   * servers that crash together do not retry together. Default: seededRandom(0x6b6e6574).
   */
  random?: () => number;
}

export interface RestartDecision {
  /** Wait this long (us) before starting the server again. */
  delayUs: number;
  /** The server keeps crashing without progress: report it. */
  crashLooping: boolean;
  /** Consecutive crashes without progress, this one included. */
  streak: number;
}

export class RestartPolicy {
  readonly immediateRestarts: number;
  readonly baseDelayUs: number;
  readonly maxDelayUs: number;
  readonly jitter: number;
  readonly healthyAfterUs: number;
  private readonly random: () => number;
  private run = 0;
  private startUs = Number.NaN;
  private crashes = 0;

  constructor(options: RestartPolicyOptions = {}) {
    const {
      immediateRestarts = 3,
      baseDelayUs = 50_000,
      maxDelayUs = 5_000_000,
      jitter = 0.25,
      healthyAfterUs = 10_000_000,
      random = seededRandom(0x6b6e6574),
    } = options;
    if (!Number.isInteger(immediateRestarts) || immediateRestarts < 0) {
      throw new RangeError(`immediateRestarts must be an integer >= 0, got ${immediateRestarts}`);
    }
    if (!(baseDelayUs > 0) || !Number.isFinite(baseDelayUs)) throw new RangeError(`bad baseDelayUs ${baseDelayUs}`);
    if (!(maxDelayUs >= baseDelayUs) || !Number.isFinite(maxDelayUs)) throw new RangeError(`bad maxDelayUs ${maxDelayUs}`);
    if (!(jitter >= 0 && jitter < 1)) throw new RangeError(`jitter must be in [0, 1), got ${jitter}`);
    if (!(healthyAfterUs >= 0)) throw new RangeError(`bad healthyAfterUs ${healthyAfterUs}`);
    this.immediateRestarts = immediateRestarts;
    this.baseDelayUs = baseDelayUs;
    this.maxDelayUs = maxDelayUs;
    this.jitter = jitter;
    this.healthyAfterUs = healthyAfterUs;
    this.random = random;
  }

  /** The server (re)started at nowUs (optional: otherwise crash time + delay is assumed). */
  onStart(nowUs: number): void {
    this.startUs = nowUs;
  }

  onCrash(nowUs: number, madeProgressSinceLastStart: boolean): RestartDecision {
    this.crashes++;
    if (madeProgressSinceLastStart || this.upLongEnough(nowUs)) this.run = 0;
    this.run++;
    let delayUs = 0;
    if (this.run > this.immediateRestarts) {
      const k = this.run - this.immediateRestarts - 1;
      // 2^k overflows to Infinity only for k > 1023; min() keeps the cap either way.
      const d = Math.min(this.maxDelayUs, this.baseDelayUs * 2 ** Math.min(k, 1023));
      const r = this.random();
      const u = r >= 0 && r < 1 ? r : 0; // a misbehaving source must not break the bounds
      delayUs = Math.round(d * (1 - this.jitter * u));
    }
    this.startUs = nowUs + delayUs;
    return { delayUs, crashLooping: this.run > this.immediateRestarts, streak: this.run };
  }

  /**
   * The supervisor sees the server healthy at nowUs. Forgets the streak if the server has been up
   * at least healthyAfterUs; returns true if it did.
   */
  onHealthy(nowUs: number): boolean {
    if (this.run === 0 || !this.upLongEnough(nowUs)) return false;
    this.run = 0;
    return true;
  }

  /** Consecutive crashes without progress so far. */
  get streak(): number {
    return this.run;
  }

  /** Currently being backed off (the last decision said crashLooping and no reset since). */
  get crashLooping(): boolean {
    return this.run > this.immediateRestarts;
  }

  /** Crashes seen over the policy's life. */
  get crashCount(): number {
    return this.crashes;
  }

  reset(): void {
    this.run = 0;
    this.startUs = Number.NaN;
    this.crashes = 0;
  }

  private upLongEnough(nowUs: number): boolean {
    return nowUs - this.startUs >= this.healthyAfterUs; // false while startUs is NaN
  }
}
