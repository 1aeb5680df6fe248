import t from 'tap';
import { SB_MAX, type SbVars } from '../../servers/tcp/core/contracts.js';
import {
  NEXTSEG_LOST,
  NEXTSEG_NEW,
  NEXTSEG_NONE,
  NEXTSEG_RESCUE,
  NEXTSEG_UNSACKED,
  newSbVars,
  sbClear,
  sbEnterRecovery,
  sbHighSacked,
  sbIsLost,
  sbIsSacked,
  sbNextSeg,
  sbOnFastRetransmit,
  sbOnRetransmit,
  sbPipe,
  sbSackedAbove,
  sbSackedBytes,
  sbTrim,
  sbUpdate,
} from '../../servers/tcp/core/scoreboard.js';
import { mulberry32, randInt } from '../helpers/prng.js';

const add = (a: number, n: number): number => (a + n) >>> 0;

/** The ranges as [left, right] pairs relative to `base`. */
function rel(sb: SbVars, base: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < sb.n; i++) out.push([(sb.r[2 * i]! - base) | 0, (sb.r[2 * i + 1]! - base) | 0]);
  return out;
}

/** sbUpdate with blocks given relative to sndUna. */
function upd(sb: SbVars, una: number, max: number, ...blocks: [number, number][]): number {
  const flat: number[] = [];
  for (const [l, r] of blocks) flat.push(add(una, l), add(una, r));
  return sbUpdate(sb, una, max, flat, blocks.length);
}

/** Checks the SbVars invariants: sorted, non-empty, non-touching ranges, at most SB_MAX, above sndUna. */
function invariants(sb: SbVars, una: number): string | null {
  if (sb.n < 0 || sb.n > SB_MAX) return `n = ${sb.n}`;
  if (sb.r.length !== 2 * SB_MAX) return `r.length = ${sb.r.length}`;
  let prev = -1;
  for (let i = 0; i < sb.n; i++) {
    const l = (sb.r[2 * i]! - una) | 0;
    const r = (sb.r[2 * i + 1]! - una) | 0;
    if (l < 0) return `range ${i} starts below sndUna`;
    if (r <= l) return `range ${i} empty`;
    if (l <= prev) return `range ${i} overlaps or touches the previous one`;
    prev = r;
  }
  for (let i = 2 * sb.n; i < 2 * SB_MAX; i++) if (sb.r[i] !== 0) return `unused slot ${i} not 0`;
  return null;
}

t.test('fresh and cleared scoreboards', async (t) => {
  const sb = newSbVars();
  t.same(sb, { n: 0, r: new Array(2 * SB_MAX).fill(0), highRxt: 0, rescueRxt: 0 });
  t.equal(sbHighSacked(sb, 1234), 1234);
  t.equal(sbSackedBytes(sb), 0);
  upd(sb, 1000, 5000, [100, 200], [300, 400]);
  sb.highRxt = 1100;
  sb.rescueRxt = 1200;
  sbClear(sb);
  t.same(sb, newSbVars());
  sbEnterRecovery(sb, 1000);
  t.equal(sb.highRxt, 1000);
  t.equal(sb.rescueRxt, 999, 'RescueRxt "undefined" = sndUna - 1');
  sbEnterRecovery(sb, 0);
  t.equal(sb.rescueRxt, 0xffffffff, 'wraps');
  sbOnFastRetransmit(sb, 0, 500);
  t.equal(sb.highRxt, 500);
  t.equal(sb.rescueRxt, 500, 'RFC 6675 §5 (4.3): both set');
  sbOnRetransmit(sb, NEXTSEG_LOST, 800, 100, 9999);
  t.equal(sb.highRxt, 900);
  sbOnRetransmit(sb, NEXTSEG_UNSACKED, 950, 50, 9999);
  t.equal(sb.highRxt, 1000);
  sbOnRetransmit(sb, NEXTSEG_RESCUE, 4000, 100, 9999);
  t.equal(sb.highRxt, 1000, 'rescue does not move HighRxt');
  t.equal(sb.rescueRxt, 9999, 'rescue sets RescueRxt = RecoveryPoint');
  sbOnRetransmit(sb, NEXTSEG_NEW, 5000, 100, 1);
  sbOnRetransmit(sb, NEXTSEG_NONE, 5000, 100, 1);
  t.equal(sb.highRxt, 1000);
  t.equal(sb.rescueRxt, 9999);
});

t.test('merging: disjoint, overlapping, adjacent, contained, bridging', async (t) => {
  const una = 10_000;
  const max = 20_000;
  const sb = newSbVars();
  t.equal(upd(sb, una, max, [100, 200]), 100);
  t.equal(upd(sb, una, max, [300, 400]), 100);
  t.same(rel(sb, una), [[100, 200], [300, 400]]);
  t.equal(upd(sb, una, max, [200, 300]), 100, 'adjacent on both sides: bridges');
  t.same(rel(sb, una), [[100, 400]]);
  t.equal(upd(sb, una, max, [150, 250]), 0, 'contained: nothing new');
  t.equal(upd(sb, una, max, [50, 150]), 50, 'overlaps the left edge');
  t.equal(upd(sb, una, max, [350, 450]), 50, 'overlaps the right edge');
  t.same(rel(sb, una), [[50, 450]]);
  t.equal(upd(sb, una, max, [500, 600], [700, 800], [900, 1000]), 300, 'several blocks in one ACK');
  t.equal(upd(sb, una, max, [20, 950]), 980 - (400 + 100 + 100 + 100), 'one block swallowing four ranges');
  t.same(rel(sb, una), [[20, 1000]]);
  t.equal(upd(sb, una, max, [1000, 1001]), 1, 'touching the right end');
  t.equal(upd(sb, una, max, [19, 20]), 1, 'touching the left end');
  t.same(rel(sb, una), [[19, 1001]]);
  t.equal(invariants(sb, una), null);
  t.equal(sbSackedBytes(sb), 982);
  t.equal(sbHighSacked(sb, 0), una + 1001);
});

t.test('D-SACK, out-of-window and malformed blocks', async (t) => {
  const una = 5_000;
  const max = 6_000;
  const sb = newSbVars();
  t.equal(upd(sb, una, max, [-100, 0]), 0, 'D-SACK ending at sndUna ignored');
  t.equal(upd(sb, una, max, [-300, -100]), 0, 'D-SACK below sndUna ignored');
  t.equal(sb.n, 0);
  t.equal(upd(sb, una, max, [-10, 10]), 10, 'straddling sndUna: clipped');
  t.same(rel(sb, una), [[0, 10]]);
  t.equal(upd(sb, una, max, [900, 1001]), 0, 'reaching beyond sndMax: ignored (data never sent)');
  t.equal(upd(sb, una, max, [1000, 1100]), 0, 'entirely beyond sndMax: ignored');
  t.equal(upd(sb, una, max, [900, 1000]), 100, 'ending exactly at sndMax: accepted');
  t.equal(upd(sb, una, max, [500, 500]), 0, 'empty block ignored');
  t.equal(upd(sb, una, max, [600, 500]), 0, 'inverted block ignored');
  t.equal(upd(sb, una, max, [-2_000_000_000, 300]), 290, 'a left edge far below is clipped ([0, 10) was SACKed)');
  t.same(rel(sb, una), [[0, 300], [900, 1000]]);
  t.equal(upd(sb, una, una, [0, 10]), 0, 'nothing outstanding: nothing accepted');
  // A D-SACK inside a SACKed range (RFC 2883 first block) changes nothing.
  t.equal(upd(sb, una, max, [950, 960], [400, 450]), 50);
  t.same(rel(sb, una), [[0, 300], [400, 450], [900, 1000]]);
  // count limits the blocks read.
  t.equal(sbUpdate(sb, una, max, [una + 600, una + 700, una + 800, una + 850], 1), 100);
  t.equal(sbIsSacked(sb, una + 820), false, 'second block not read');
  t.equal(invariants(sb, una), null);
});

t.test('overflow: at most SB_MAX ranges, the highest is forgotten', async (t) => {
  const una = 0xfffff000; // also wraps
  const max = add(una, 100_000);
  const sb = newSbVars();
  for (let i = 0; i < SB_MAX; i++) t.equal(upd(sb, una, max, [1000 + i * 100, 1050 + i * 100]), 50);
  t.equal(sb.n, SB_MAX);
  const top = sbHighSacked(sb, 0);
  t.equal(upd(sb, una, max, [5000, 5100]), 0, 'a new highest range is dropped');
  t.equal(sb.n, SB_MAX);
  t.equal(sbHighSacked(sb, 0), top);
  t.equal(upd(sb, una, max, [100, 200]), 100, 'a new low range is kept...');
  t.equal(sb.n, SB_MAX);
  t.equal(sbHighSacked(sb, 0), add(una, 1050 + (SB_MAX - 2) * 100), '...and the highest is forgotten');
  t.equal(upd(sb, una, max, [1050, 1100]), 50, 'merging does not need a slot');
  t.equal(sb.n, SB_MAX - 1);
  t.equal(invariants(sb, una), null);
  t.ok(rel(sb, una).every(([l, r]) => l >= 0 && r <= 100_000));
});

t.test('trimming', async (t) => {
  const una = 0xffffff00;
  const max = add(una, 10_000);
  const sb = newSbVars();
  upd(sb, una, max, [100, 200], [300, 400], [500, 600]);
  sbTrim(sb, add(una, 50));
  t.same(rel(sb, una), [[100, 200], [300, 400], [500, 600]], 'below every range: nothing changes');
  sbTrim(sb, add(una, 150));
  t.same(rel(sb, una), [[150, 200], [300, 400], [500, 600]], 'inside a range: clipped');
  sbTrim(sb, add(una, 200));
  t.same(rel(sb, una), [[300, 400], [500, 600]], 'at a range end: dropped');
  t.equal(invariants(sb, add(una, 200)), null);
  sbTrim(sb, add(una, 550));
  t.same(rel(sb, una), [[550, 600]], 'across 0 (sndUna wrapped)');
  t.equal(invariants(sb, add(una, 550)), null);
  sbTrim(sb, add(una, 700));
  t.equal(sb.n, 0);
  t.same(sb.r, new Array(2 * SB_MAX).fill(0), 'freed slots zeroed');
  // sbUpdate trims first.
  upd(sb, una, max, [1000, 1100]);
  const una2 = add(una, 1050);
  t.equal(sbUpdate(sb, una2, max, [], 0), 0);
  t.same(rel(sb, una2), [[0, 50]]);
});

t.test('IsLost boundaries (RFC 6675 §4, DupThresh = 3, SMSS = 100)', async (t) => {
  const una = 0xfffffe00;
  const max = add(una, 100_000);
  const M = 100;
  const D = 3;
  const lost = (...blocks: [number, number][]): boolean => {
    const sb = newSbVars();
    upd(sb, una, max, ...blocks);
    return sbIsLost(sb, una, M, D);
  };
  t.equal(lost(), false, 'nothing SACKed');
  t.equal(lost([1000, 1200]), false, '200 bytes = (DupThresh - 1) * SMSS: not more than');
  t.equal(lost([1000, 1201]), true, '201 bytes: more than (DupThresh - 1) * SMSS');
  t.equal(lost([1000, 1300]), true, 'three full segments');
  t.equal(lost([1000, 1100], [1200, 1300]), false, 'two segments');
  t.equal(lost([1000, 1001], [1200, 1201], [1400, 1401]), true, 'three discontiguous SACKed sequences');
  t.equal(lost([1000, 1001], [1200, 1201]), false, 'two discontiguous 1-byte sequences');
  t.equal(lost([1000, 1150], [1200, 1201]), true, '150 bytes count as 2 segments, +1');
  t.equal(lost([1000, 1100], [1200, 1250]), false, '150 bytes in 2 segments');
  // Only what lies strictly above seq counts.
  const sb = newSbVars();
  upd(sb, una, max, [100, 400]);
  t.equal(sbIsLost(sb, add(una, 99), M, D), true, '300 bytes above 99');
  t.equal(sbIsLost(sb, add(una, 100), M, D), true, '299 bytes above 100 (3 segments)');
  t.equal(sbIsLost(sb, add(una, 200), M, D), false, '199 bytes above 200 (2 segments)');
  t.equal(sbIsLost(sb, add(una, 199), M, D), false, 'exactly 200 bytes above 199: 2 segments');
  t.equal(sbIsLost(sb, add(una, 198), M, D), true, '201 bytes above 198');
  t.equal(sbSackedAbove(sb, add(una, 199)), 200);
  t.equal(sbSackedAbove(sb, add(una, 99)), 300);
  t.equal(sbSackedAbove(sb, add(una, 399)), 0);
  t.equal(sbSackedAbove(sb, add(una, -5)), 300, 'below sndUna');
  t.equal(sbIsLost(sb, una, M, 1), true, 'DupThresh 1');
  t.equal(sbIsLost(sb, add(una, 500), M, 1), false, 'nothing above');
});

t.test('pipe and NextSeg on a hand-made case', async (t) => {
  // sndUna = 0xffffff9c (-100), segments of 100; 0..1000 sent; SACKed: [300, 600) and [700, 800).
  const una = add(0, -100);
  const hd = add(una, 1000);
  const M = 100;
  const sb = newSbVars();
  upd(sb, una, hd, [300, 600], [700, 800]);
  sbEnterRecovery(sb, una);
  // Holes: [0,300): 4 segments above -> lost. [600,700): 1 segment above -> not lost. [800,1000): tail.
  t.equal(sbPipe(sb, una, hd, M, 3), 100 + 200);
  const out = { seq: 0, len: 0 };
  t.equal(sbNextSeg(sb, una, hd, M, 3, true, out), NEXTSEG_LOST);
  t.same(out, { seq: una, len: 100 });
  sbOnFastRetransmit(sb, out.seq, out.len);
  t.equal(sbPipe(sb, una, hd, M, 3), 300 + 100, 'a retransmitted lost segment counts once');
  t.equal(sbNextSeg(sb, una, hd, M, 3, false, out), NEXTSEG_LOST);
  t.same(out, { seq: add(una, 100), len: 100 });
  sbOnRetransmit(sb, NEXTSEG_LOST, out.seq, out.len, hd);
  t.equal(sbNextSeg(sb, una, hd, M, 3, false, out), NEXTSEG_LOST);
  t.same(out, { seq: add(una, 200), len: 100 }, 'stops at the SACKed range');
  sbOnRetransmit(sb, NEXTSEG_LOST, out.seq, out.len, hd);
  t.equal(sbPipe(sb, una, hd, M, 3), 300 + 300);
  t.equal(sbNextSeg(sb, una, hd, M, 3, true, out), NEXTSEG_NEW, 'rule 2: new data before rule 3');
  t.same(out, { seq: hd, len: 100 });
  t.equal(sbNextSeg(sb, una, hd, M, 3, false, out), NEXTSEG_UNSACKED, 'rule 3: the hole not yet lost');
  t.same(out, { seq: add(una, 600), len: 100 });
  sbOnRetransmit(sb, NEXTSEG_UNSACKED, out.seq, out.len, hd);
  t.equal(sbPipe(sb, una, hd, M, 3), 300 + 400);
  // Rule 4: the rescue needs HighACK > RescueRxt; the fast retransmission set RescueRxt to una + 100.
  t.equal(sbNextSeg(sb, una, hd, M, 3, false, out), NEXTSEG_NONE, 'no premature rescue');
  const una2 = add(una, 101);
  sbTrim(sb, una2);
  t.equal(sbNextSeg(sb, una2, hd, M, 3, false, out), NEXTSEG_RESCUE);
  t.same(out, { seq: add(una, 900), len: 100 }, 'the last SMSS ending at the highest unSACKed octet');
  sbOnRetransmit(sb, NEXTSEG_RESCUE, out.seq, out.len, hd);
  t.equal(sbNextSeg(sb, una2, hd, M, 3, false, out), NEXTSEG_NONE, 'one rescue per recovery');
  // Everything SACKed above sndUna: nothing to do.
  const full = newSbVars();
  sbEnterRecovery(full, una);
  upd(full, una, hd, [0, 1000]);
  t.equal(sbPipe(full, una, hd, M, 3), 0);
  t.equal(sbNextSeg(full, una, hd, M, 3, false, out), NEXTSEG_NONE);
  // No SACK at all: nothing lost, rules 1 and 3 need a SACK above; rule 4 rescues the tail.
  const none = newSbVars();
  sbEnterRecovery(none, una);
  t.equal(sbPipe(none, una, hd, M, 3), 1000);
  t.equal(sbNextSeg(none, una, hd, M, 3, false, out), NEXTSEG_RESCUE);
  t.same(out, { seq: add(una, 900), len: 100 });
  // A stale highRxt (outside [sndUna, HighData]) reads as sndUna.
  const stale = newSbVars();
  upd(stale, una, hd, [300, 600]);
  stale.highRxt = add(una, -5000);
  t.equal(sbPipe(stale, una, hd, M, 3), 400, 'nothing counts as retransmitted ([0, 300) lost, tail not)');
  stale.highRxt = add(una, 5000);
  t.equal(sbPipe(stale, una, hd, M, 3), 400);
  stale.highRxt = add(una, 100);
  t.equal(sbPipe(stale, una, hd, M, 3), 500, 'a valid highRxt counts');
});

// ---- Randomized comparison against a per-octet reference ----

interface Model {
  una: number;
  w: number;
  sacked: Uint8Array;
}

/** Reference IsLost for octet offset x: maximal SACKed runs strictly above x, in ceil(run / mss) segments. */
function refIsLost(m: Model, x: number, mss: number, d: number): boolean {
  let segs = 0;
  let bytes = 0;
  let run = 0;
  for (let y = x + 1; y <= m.w; y++) {
    if (y < m.w && m.sacked[y]) run++;
    else if (run > 0) {
      segs += Math.ceil(run / mss);
      bytes += run;
      run = 0;
    }
  }
  return segs >= d || bytes > (d - 1) * mss;
}

/** Reference SetPipe, octet by octet (RFC 6675 §4), with h = retransmitted prefix [0, h). */
function refPipe(m: Model, h: number, mss: number, d: number): number {
  let pipe = 0;
  for (let x = 0; x < m.w; x++) {
    if (m.sacked[x]) continue;
    if (!refIsLost(m, x, mss, d)) pipe++;
    if (x < h) pipe++;
  }
  return pipe;
}

/** Reference NextSeg, octet by octet, following the RFC's rules in order. */
function refNextSeg(
  m: Model,
  h: number,
  mss: number,
  d: number,
  canSendNew: boolean,
  rescueOk: boolean,
): [number, number, number] {
  let hs = -1;
  for (let x = 0; x < m.w; x++) if (m.sacked[x]) hs = x;
  const segAt = (x: number): [number, number] => {
    let len = 0;
    while (len < mss && x + len < m.w && !m.sacked[x + len]) len++;
    return [x, len];
  };
  for (let x = h; x < hs; x++) if (!m.sacked[x] && refIsLost(m, x, mss, d)) return [NEXTSEG_LOST, ...segAt(x)];
  if (canSendNew) return [NEXTSEG_NEW, m.w, mss];
  for (let x = h; x < hs; x++) if (!m.sacked[x]) return [NEXTSEG_UNSACKED, ...segAt(x)];
  if (!rescueOk) return [NEXTSEG_NONE, 0, 0];
  for (let u = m.w - 1; u >= 0; u--) {
    if (m.sacked[u]) continue;
    let a = u;
    while (a > 0 && !m.sacked[a - 1] && u + 1 - a < mss) a--;
    return [NEXTSEG_RESCUE, a, u + 1 - a];
  }
  return [NEXTSEG_NONE, 0, 0];
}

/** Applies one block to the model as sbUpdate must: validity, clipping, merge, then drop the highest run. */
let refOverflows = 0;
function refApply(m: Model, l: number, r: number): number {
  // l, r: offsets from sndUna as signed distances.
  if (r <= l || r <= 0 || r > m.w) return 0;
  const a = Math.max(l, 0);
  const before = m.sacked.slice();
  for (let x = a; x < r; x++) m.sacked[x] = 1;
  // Runs.
  const runs: [number, number][] = [];
  for (let x = 0; x < m.w; x++) {
    if (m.sacked[x] && (x === 0 || !m.sacked[x - 1])) runs.push([x, x]);
    if (m.sacked[x]) runs[runs.length - 1]![1] = x + 1;
  }
  if (runs.length > SB_MAX) {
    refOverflows++;
    const [s, e] = runs[runs.length - 1]!;
    for (let x = s; x < e; x++) m.sacked[x] = 0;
  }
  let newly = 0;
  for (let x = a; x < r; x++) if (m.sacked[x] && !before[x]) newly++;
  return newly;
}

for (const [name, baseUna] of [
  ['random sndUna', -1],
  ['sndUna just below 2^32 (wrap)', 0x100000000 - 300],
  ['sndUna just below 2^31', 0x80000000 - 200],
] as const) {
  t.test(`randomized vs per-octet reference: ${name}`, async (t) => {
    const rand = mulberry32(6675 + (baseUna >>> 0));
    let bad = 0;
    let checks = 0;
    const note = (ok: boolean, what: string): void => {
      checks++;
      if (!ok && bad++ < 10) t.fail(what);
    };
    const rules = [0, 0, 0, 0, 0];
    for (let trial = 0; trial < 300; trial++) {
      const una = baseUna < 0 ? randInt(rand, 0, 0xffffffff) : baseUna;
      const w = randInt(rand, 0, 700);
      const mss = randInt(rand, 1, 4) === 1 ? randInt(rand, 1, 20) : randInt(rand, 20, 120);
      const d = randInt(rand, 1, 4);
      const hd = add(una, w);
      const m: Model = { una, w, sacked: new Uint8Array(w) };
      const sb = newSbVars();
      sbEnterRecovery(sb, una);
      const dense = trial % 4 === 0; // many small blocks: exercises the SB_MAX overflow
      const nacks = dense ? randInt(rand, 10, 30) : randInt(rand, 0, 12);
      for (let k = 0; k < nacks; k++) {
        const nb = randInt(rand, 1, 4);
        const flat: number[] = [];
        let expect = 0;
        for (let b = 0; b < nb; b++) {
          let l: number;
          let r: number;
          const kind = rand();
          if (kind < 0.1) {
            l = randInt(rand, -300, 0);
            r = randInt(rand, l, 10); // D-SACK-ish, possibly straddling
          } else if (kind < 0.15) {
            l = randInt(rand, w - 50, w + 100);
            r = randInt(rand, l - 5, w + 200); // beyond sndMax, or inverted
          } else {
            l = randInt(rand, 0, w);
            r = dense ? l + randInt(rand, 1, 8) : Math.min(w, l + randInt(rand, 0, 3) * mss + randInt(rand, 0, mss));
          }
          flat.push(add(una, l), add(una, r));
          expect += refApply(m, l, r);
        }
        const got = sbUpdate(sb, una, hd, flat, nb);
        note(got === expect, `trial ${trial}: sbUpdate returned ${got}, expected ${expect}`);
        const inv = invariants(sb, una);
        note(inv === null, `trial ${trial}: ${inv}`);
      }
      // Membership, totals, SACKed-above, IsLost at every octet (and just outside the window).
      let total = 0;
      let high = -1;
      for (let x = 0; x < w; x++) {
        if (m.sacked[x]) {
          total++;
          high = x + 1;
        }
      }
      note(sbSackedBytes(sb) === total, `trial ${trial}: total`);
      note(sbHighSacked(sb, 7) === (high < 0 ? 7 : add(una, high)), `trial ${trial}: highSacked`);
      let above = total;
      for (let x = -1; x <= w; x++) {
        if (x >= 0 && x < w && m.sacked[x]) above--;
        const seq = add(una, x);
        note(sbIsSacked(sb, seq) === (x >= 0 && x < w && m.sacked[x] === 1), `trial ${trial}: isSacked ${x}`);
        note(sbSackedAbove(sb, seq) === (x < 0 ? total : above), `trial ${trial}: sackedAbove ${x}`);
        if (x >= 0 && x < w) note(sbIsLost(sb, seq, mss, d) === refIsLost(m, x, mss, d), `trial ${trial}: isLost ${x}`);
      }
      // Pipe and NextSeg for several HighRxt / RescueRxt values.
      for (let q = 0; q < 6; q++) {
        let h: number;
        const hk = rand();
        if (hk < 0.15) {
          sb.highRxt = add(una, -randInt(rand, 1, 1000)); // stale, below sndUna
          h = 0;
        } else if (hk < 0.2) {
          sb.highRxt = add(hd, randInt(rand, 1, 1000)); // beyond HighData: invalid
          h = 0;
        } else {
          h = randInt(rand, 0, w);
          sb.highRxt = add(una, h);
        }
        const rescueOk = rand() < 0.5;
        sb.rescueRxt = rescueOk ? add(una, -randInt(rand, 1, 1000)) : add(una, randInt(rand, 0, w + 10));
        note(sbPipe(sb, una, hd, mss, d) === refPipe(m, h, mss, d), `trial ${trial}.${q}: pipe`);
        const canSendNew = rand() < 0.3;
        const out = { seq: -1, len: -1 };
        const rule = sbNextSeg(sb, una, hd, mss, d, canSendNew, out);
        const [er, es, el] = refNextSeg(m, h, mss, d, canSendNew, rescueOk);
        rules[rule]!++;
        const same = rule === er && (rule === NEXTSEG_NONE || (out.seq === add(una, es) && out.len === el));
        const got = `${rule} ${(out.seq - una) | 0}+${out.len}`;
        note(same, `trial ${trial}.${q}: nextSeg ${got}, expected ${er} ${es}+${el}`);
      }
    }
    t.equal(bad, 0, `${checks} checks against the reference`);
    t.ok(refOverflows > 0, `overflow exercised (${refOverflows} times so far)`);
    t.ok(rules.every((c) => c > 0), `every NextSeg outcome exercised (${rules.join('/')})`);
  });
}
