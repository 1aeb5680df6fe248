// Histogram percentiles against a sorted reference; seeded PRNG.
import t from 'tap';
import { Histogram, seededRandom } from '../../servers/runtime/stats.js';

/** Nearest-rank percentile of sorted values. */
function reference(sorted: number[], p: number): number {
  if (p === 0) return sorted[0]!;
  return sorted[Math.max(1, Math.ceil((p / 100) * sorted.length)) - 1]!;
}
const PS = [0, 0.1, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 100];

/** Problems found comparing a histogram of `values` with the sorted reference (empty if none). */
function check(name: string, values: number[], h = new Histogram()): string[] {
  const problems: string[] = [];
  for (const v of values) h.record(v);
  const sorted = [...values].sort((a, b) => a - b);
  const bound = (x: number): number => Math.max(0.5, x / 256) + 1e-9;
  for (const p of PS) {
    const exp = reference(sorted, p);
    const got = h.percentile(p);
    if (Math.abs(got - exp) > bound(exp)) problems.push(`${name}: p${p} = ${got}, reference ${exp}`);
  }
  if (h.count !== values.length) problems.push(`${name}: count ${h.count}`);
  if (h.max !== sorted[sorted.length - 1]) problems.push(`${name}: max ${h.max}`);
  if (h.min !== sorted[0]) problems.push(`${name}: min ${h.min}`);
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  if (Math.abs(h.mean - mean) > 1e-9 * Math.max(1, mean)) problems.push(`${name}: mean ${h.mean} vs ${mean}`);
  return problems;
}

t.test('percentiles match a sorted reference within the bucket precision', async (t) => {
  const rnd = seededRandom(1234);
  const cases: [string, number[], Histogram?][] = [
    ['uniform 0..100ms', Array.from({ length: 20_000 }, () => rnd() * 100_000)],
    ['integers 0..300', Array.from({ length: 5_000 }, () => Math.floor(rnd() * 300))],
    ['log-uniform 1us..1000s', Array.from({ length: 20_000 }, () => Math.pow(10, rnd() * 9))],
    ['bimodal', Array.from({ length: 10_000 }, () => (rnd() < 0.9 ? 60_000 + rnd() * 30_000 : 25_000 + rnd() * 5_000))],
    ['single value', [42_424]],
    ['powers of two', Array.from({ length: 41 }, (_, i) => 2 ** i)],
    ['fine precision', Array.from({ length: 3_000 }, () => rnd() * 1e6), new Histogram({ subBucketBits: 10 })],
  ];
  for (const [name, values, h] of cases) t.same(check(name, values, h), [], name);
});

t.test('empty, invalid values, clamping', async (t) => {
  const h = new Histogram({ maxValue: 1e6 });
  t.ok(Number.isNaN(h.percentile(50)) && Number.isNaN(h.max) && Number.isNaN(h.min) && Number.isNaN(h.mean));
  t.same(h.summary().count, 0);
  h.record(-1);
  h.record(Number.NaN);
  h.record(Number.POSITIVE_INFINITY);
  t.equal(h.count, 0);
  t.equal(h.invalidCount, 3);
  h.record(5e9); // above maxValue: top bucket, max exact
  h.record(10);
  t.equal(h.max, 5e9);
  t.equal(h.percentile(100), 5e9);
  t.ok(Math.abs(h.percentile(50) - 10) <= 0.5, 'p50 within its unit bucket');
  t.ok(h.percentile(99) <= 5e9);
  t.throws(() => h.percentile(101), RangeError);
  t.throws(() => h.percentile(Number.NaN), RangeError);
  t.throws(() => new Histogram({ subBucketBits: 0 }), RangeError);
  t.throws(() => new Histogram({ maxValue: 0 }), RangeError);
});

t.test('summary, merge, reset', async (t) => {
  const a = new Histogram();
  const b = new Histogram();
  const all: number[] = [];
  const rnd = seededRandom(99);
  for (let i = 0; i < 1000; i++) {
    const v = Math.round(rnd() * 100_000);
    (i % 2 ? a : b).record(v);
    all.push(v);
  }
  a.merge(b);
  const s = a.summary();
  all.sort((x, y) => x - y);
  t.equal(s.count, 1000);
  t.equal(s.max, all[999]);
  t.equal(s.min, all[0]);
  for (const [k, p] of [['p50', 50], ['p90', 90], ['p99', 99]] as const) {
    const r = reference(all, p);
    t.ok(Math.abs(s[k] - r) <= r / 256, `${k} ${s[k]} vs ${r}`);
  }
  t.throws(() => a.merge(new Histogram({ subBucketBits: 5 })), RangeError);
  a.reset();
  t.equal(a.count, 0);
  t.ok(Number.isNaN(a.percentile(50)));
});

t.test('seededRandom is deterministic and roughly uniform', async (t) => {
  const r1 = seededRandom(5);
  const r2 = seededRandom(5);
  const xs = Array.from({ length: 100_000 }, () => r1());
  t.same(Array.from({ length: 100_000 }, () => r2()), xs);
  t.ok(xs.every((x) => x >= 0 && x < 1));
  const buckets = new Array(10).fill(0);
  for (const x of xs) buckets[Math.floor(x * 10)]++;
  t.ok(buckets.every((c) => c > 9_500 && c < 10_500), `deciles ${buckets}`);
  t.not(seededRandom(6)(), seededRandom(5)());
});
