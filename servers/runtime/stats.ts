/**
 * Small fixed-memory statistics for the runtime: a log-linear latency histogram (detection and
 * recovery times) and a seeded PRNG (restart jitter, simulations). Pure: no I/O, no clock reads.
 *
 * ## Histogram layout (HDR-style, log-linear)
 *
 * With S = 2^subBucketBits sub-buckets (default 128): values in [0, 2S) get unit-wide buckets;
 * above, each power-of-two range [2^e, 2^(e+1)) is split into S equal buckets. Bucket index of v:
 *
 *     v < 2S:  idx = floor(v)
 *     else:    shift = floor(log2 v) - subBucketBits,  sub = floor(v / 2^shift) in [S, 2S),
 *              idx = shift * S + sub
 *
 * A bucket's width is 1 below 2S, else at most 1/S of its lower edge. `percentile(p)` takes the
 * nearest-rank sample (rank ceil(p/100 * count)) and returns the midpoint of its bucket clamped to
 * [min, max], so |result - exact| <= max(0.5, exact / (2S)): 0.39% with the defaults. min, max and
 * mean are exact. Values above `maxValue` land in the last bucket (max stays exact). Memory: one
 * Float64Array of about (log2(maxValue) - subBucketBits + 2) * S counts (34 KiB with the defaults,
 * values up to 2^40 ~ 12.7 days in us). `record` is O(1) and allocates nothing. Record integer
 * units fine enough for the job (us for latencies): values below 2S are resolved to 1 unit only.
 */

export interface HistogramOptions {
  /** log2 of the sub-buckets per power of two: precision. Default 7 (relative error <= 0.39%). */
  subBucketBits?: number;
  /** Largest value resolved; larger ones are clamped into the top bucket. Default 2^40. */
  maxValue?: number;
}

export interface LatencySummary {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export class Histogram {
  readonly subBucketBits: number;
  readonly maxValue: number;
  private readonly s: number;
  private readonly counts: Float64Array;
  private n = 0;
  private total = 0;
  private lo = Number.POSITIVE_INFINITY;
  private hi = Number.NEGATIVE_INFINITY;
  private rejected = 0;

  constructor(options: HistogramOptions = {}) {
    const { subBucketBits = 7, maxValue = 2 ** 40 } = options;
    if (!Number.isInteger(subBucketBits) || subBucketBits < 1 || subBucketBits > 16) {
      throw new RangeError(`subBucketBits must be an integer in [1, 16], got ${subBucketBits}`);
    }
    if (!Number.isFinite(maxValue) || maxValue < 1) throw new RangeError(`maxValue must be >= 1, got ${maxValue}`);
    this.subBucketBits = subBucketBits;
    this.maxValue = maxValue;
    this.s = 2 ** subBucketBits;
    this.counts = new Float64Array(this.indexOf(maxValue) + 1);
  }

  /** Record one value. Negative, NaN or infinite values are not recorded (see `invalidCount`). */
  record(v: number): void {
    if (!(v >= 0) || v === Number.POSITIVE_INFINITY) {
      this.rejected++;
      return;
    }
    const idx = this.indexOf(v > this.maxValue ? this.maxValue : v);
    this.counts[idx]! += 1;
    this.n++;
    this.total += v;
    if (v < this.lo) this.lo = v;
    if (v > this.hi) this.hi = v;
  }

  get count(): number {
    return this.n;
  }

  /** Exact smallest value recorded (NaN when empty). */
  get min(): number {
    return this.n === 0 ? Number.NaN : this.lo;
  }

  /** Exact largest value recorded (NaN when empty). */
  get max(): number {
    return this.n === 0 ? Number.NaN : this.hi;
  }

  /** Exact mean (NaN when empty). */
  get mean(): number {
    return this.n === 0 ? Number.NaN : this.total / this.n;
  }

  /** Values refused by `record` (negative, NaN, infinite). */
  get invalidCount(): number {
    return this.rejected;
  }

  /**
   * Nearest-rank percentile, p in [0, 100]: approximately the smallest recorded value v such that
   * at least p% of the values are <= v. p = 0 gives min, p = 100 gives max. NaN when empty.
   */
  percentile(p: number): number {
    if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be in [0, 100], got ${p}`);
    if (this.n === 0) return Number.NaN;
    if (p === 0) return this.lo;
    if (p === 100) return this.hi;
    const rank = Math.max(1, Math.ceil((p / 100) * this.n));
    let seen = 0;
    const counts = this.counts;
    for (let i = 0; i < counts.length; i++) {
      seen += counts[i]!;
      if (seen >= rank) {
        const mid = this.lowerEdge(i) + this.width(i) / 2;
        return mid < this.lo ? this.lo : mid > this.hi ? this.hi : mid;
      }
    }
    return this.hi; // unreachable: counts sum to n
  }

  summary(): LatencySummary {
    return {
      count: this.n,
      min: this.min,
      mean: this.mean,
      p50: this.percentile(50),
      p90: this.percentile(90),
      p99: this.percentile(99),
      max: this.max,
    };
  }

  /** Add another histogram's values (same layout required). */
  merge(other: Histogram): void {
    if (other.subBucketBits !== this.subBucketBits || other.counts.length !== this.counts.length) {
      throw new RangeError('cannot merge histograms with different layouts');
    }
    for (let i = 0; i < this.counts.length; i++) this.counts[i]! += other.counts[i]!;
    this.n += other.n;
    this.total += other.total;
    this.rejected += other.rejected;
    if (other.lo < this.lo) this.lo = other.lo;
    if (other.hi > this.hi) this.hi = other.hi;
  }

  reset(): void {
    this.counts.fill(0);
    this.n = 0;
    this.total = 0;
    this.lo = Number.POSITIVE_INFINITY;
    this.hi = Number.NEGATIVE_INFINITY;
    this.rejected = 0;
  }

  /** Bucket index of a value in [0, maxValue]. */
  private indexOf(v: number): number {
    const s = this.s;
    if (v < 2 * s) return Math.floor(v);
    let e = Math.floor(Math.log2(v));
    // Math.log2 may be off by one ulp around exact powers of two.
    if (2 ** e > v) e--;
    else if (2 ** (e + 1) <= v) e++;
    const shift = e - this.subBucketBits;
    return shift * s + Math.floor(v / 2 ** shift);
  }

  private lowerEdge(idx: number): number {
    const s = this.s;
    if (idx < 2 * s) return idx;
    const shift = Math.floor(idx / s) - 1;
    return (idx - shift * s) * 2 ** shift;
  }

  private width(idx: number): number {
    const s = this.s;
    return idx < 2 * s ? 1 : 2 ** (Math.floor(idx / s) - 1);
  }
}

/**
 * Seeded PRNG (mulberry32): deterministic uniform numbers in [0, 1) from a 32-bit seed. Good
 * enough for jitter and simulations; not for cryptography.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
