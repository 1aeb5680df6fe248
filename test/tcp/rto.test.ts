import t from 'tap';
import {
  newRttVars,
  RTO_INIT_US,
  RTO_MAX_US,
  RTO_MIN_US,
  RTO_SYN_FALLBACK_US,
  rtoAfterSynTimeout,
  rtoBackoff,
  rtoCurrentUs,
  rtoResetBackoff,
  rttSample,
} from '../../servers/tcp/core/rto.js';
import { mulberry32, randInt } from '../helpers/prng.js';

t.test('constants and a fresh estimator', async (t) => {
  t.equal(RTO_INIT_US, 1_000_000);
  t.equal(RTO_MIN_US, 200_000);
  t.equal(RTO_MAX_US, 120_000_000);
  t.equal(RTO_SYN_FALLBACK_US, 3_000_000);
  const v = newRttVars();
  t.same(v, { srttUs: 0, rttvarUs: 0, rtoUs: RTO_INIT_US, backoff: 0, minRttUs: 0, hasSample: 0 });
  t.equal(rtoCurrentUs(v), RTO_INIT_US);
});

t.test('first and second samples (RFC 6298 §2.2, §2.3)', async (t) => {
  const v = newRttVars();
  rttSample(v, 100_000, 1);
  t.equal(v.srttUs, 100_000, 'SRTT = R');
  t.equal(v.rttvarUs, 50_000, 'RTTVAR = R/2');
  t.equal(v.rtoUs, 300_000, 'RTO = SRTT + 4 RTTVAR');
  t.equal(v.hasSample, 1);
  t.equal(v.minRttUs, 100_000);
  rttSample(v, 200_000, 1);
  // RTTVAR uses the old SRTT: 3/4 * 50000 + 1/4 * |100000 - 200000| = 62500; SRTT = 7/8 100000 + 1/8 200000.
  t.equal(v.rttvarUs, 62_500);
  t.equal(v.srttUs, 112_500);
  t.equal(v.rtoUs, 112_500 + 4 * 62_500);
  t.equal(v.minRttUs, 100_000, 'min unchanged by a larger sample');
  rttSample(v, 50_000, 1);
  t.equal(v.minRttUs, 50_000, 'min follows a smaller sample');
});

t.test('granularity term: RTO = SRTT + max(G, 4 RTTVAR)', async (t) => {
  const v = newRttVars();
  for (let i = 0; i < 200; i++) rttSample(v, 300_000, 500_000);
  t.ok(v.rttvarUs < 1, 'RTTVAR decays to ~0 with constant samples');
  t.equal(v.srttUs, 300_000);
  t.equal(v.rtoUs, 800_000, 'G dominates');
  const w = newRttVars();
  for (let i = 0; i < 200; i++) rttSample(w, 300_000, 1);
  t.equal(w.rtoUs, 300_001, 'SRTT + G with G = 1 us (4 RTTVAR < 1 us)');
});

t.test('clamping to [RTO_MIN_US, RTO_MAX_US]', async (t) => {
  const v = newRttVars();
  rttSample(v, 1_000, 1);
  t.equal(v.rtoUs, RTO_MIN_US, '3 ms computed, 200 ms used');
  const w = newRttVars();
  rttSample(w, 100_000_000, 1);
  t.equal(w.rtoUs, RTO_MAX_US, '300 s computed, 120 s used');
  t.equal(w.srttUs, 100_000_000, 'SRTT itself is not clamped');
});

t.test('zero, negative and non-finite samples', async (t) => {
  const v = newRttVars();
  rttSample(v, 0, 10_000);
  t.equal(v.srttUs, 10_000, 'a 0 sample with a 10 ms clock counts as one granule');
  t.equal(v.minRttUs, 10_000);
  t.equal(v.hasSample, 1);
  const w = newRttVars();
  rttSample(w, 0, 0);
  t.equal(w.srttUs, 1, 'with no granularity a 0 sample counts as 1 us');
  const before = { ...v };
  for (const bad of [-1, -1_000_000, NaN, Infinity, -Infinity]) {
    v.backoff = 3;
    before.backoff = 3;
    rttSample(v, bad, 1);
    t.same(v, before, `sample ${bad} ignored (backoff untouched too)`);
  }
  const x = newRttVars();
  rttSample(x, 100_000, NaN);
  t.equal(x.rtoUs, 300_000, 'a non-finite granularity counts as 0');
});

t.test('backoff (RFC 6298 §5.5) and its reset', async (t) => {
  const v = newRttVars();
  rttSample(v, 100_000, 1); // RTO 300 ms
  const seen: number[] = [rtoCurrentUs(v)];
  for (let i = 0; i < 20; i++) {
    rtoBackoff(v);
    seen.push(rtoCurrentUs(v));
  }
  t.same(seen.slice(0, 5), [300_000, 600_000, 1_200_000, 2_400_000, 4_800_000], 'doubles');
  t.equal(seen[seen.length - 1], RTO_MAX_US, 'capped at 120 s');
  // 300 ms * 2^9 = 153.6 s >= 120 s: the backoff stops at 9.
  t.equal(v.backoff, 9, 'backoff stops growing once the max is reached');
  for (let i = 1; i < seen.length; i++) t.ok(seen[i]! >= seen[i - 1]!, 'monotone');
  rttSample(v, 100_000, 1);
  t.equal(v.backoff, 0, 'a new sample resets the backoff');
  rtoBackoff(v);
  rtoResetBackoff(v);
  t.equal(v.backoff, 0);
  t.equal(rtoCurrentUs(v), v.rtoUs);
  const fresh = newRttVars();
  for (let i = 0; i < 100; i++) rtoBackoff(fresh);
  t.equal(rtoCurrentUs(fresh), RTO_MAX_US);
  t.equal(fresh.backoff, 7, '1 s * 2^7 = 128 s >= 120 s');
});

t.test('RFC 6298 §5.7: 3 s after a SYN timeout without a sample', async (t) => {
  const v = newRttVars();
  rtoBackoff(v); // the SYN timed out
  rtoAfterSynTimeout(v);
  t.equal(v.rtoUs, RTO_SYN_FALLBACK_US);
  t.equal(v.backoff, 0);
  t.equal(rtoCurrentUs(v), 3_000_000);
  const w = newRttVars();
  rtoBackoff(w);
  rttSample(w, 50_000, 1); // e.g. an unambiguous timestamp sample on the SYN-ACK
  const rto = w.rtoUs;
  rtoAfterSynTimeout(w);
  t.equal(w.rtoUs, rto, 'a measured RTO is kept');
  const x = newRttVars();
  x.rtoUs = 5_000_000;
  rtoAfterSynTimeout(x);
  t.equal(x.rtoUs, 5_000_000, 'never lowered');
});

t.test('state round-trips through a plain copy', async (t) => {
  const rand = mulberry32(6298);
  const a = newRttVars();
  const samples: number[] = [];
  for (let i = 0; i < 500; i++) samples.push(randInt(rand, 0, 400_000));
  for (let i = 0; i < 250; i++) rttSample(a, samples[i]!, 1000);
  let b = JSON.parse(JSON.stringify(a));
  for (let i = 250; i < 500; i++) {
    rttSample(a, samples[i]!, 1000);
    rttSample(b, samples[i]!, 1000);
    if (i % 7 === 0) {
      rtoBackoff(a);
      rtoBackoff(b);
    }
    b = JSON.parse(JSON.stringify(b));
  }
  t.same(b, a);
  t.ok(a.rtoUs >= RTO_MIN_US && a.rtoUs <= RTO_MAX_US);
  t.equal(a.minRttUs, Math.min(...samples.map((s) => (s === 0 ? 1000 : s))), 'min RTT, a 0 sample counting as G');
});
