/**
 * The RFC 6675 SACK scoreboard over SbVars (contracts.ts): the SACKed ranges above SND.UNA, sorted,
 * merged (touching ranges are joined), non-overlapping, at most SB_MAX of them. When a new range would
 * make SB_MAX + 1, the highest range is forgotten, so the scoreboard may under-report SACKed data, never
 * over-report it. Pure functions, no allocation, O(SB_MAX) per call; every sequence comparison goes
 * through servers/wire/seq.ts, so all of this is correct across the 2^32 wrap.
 *
 * Conventions (read these before calling):
 * - Ranges and blocks are half-open: [left, right), as in SACK blocks on the wire (RFC 2018).
 * - HighData is passed as an exclusive end: the core passes SND.MAX (one past the highest octet sent).
 *   The RFC's HighData is the highest octet sent, i.e. SND.MAX - 1.
 * - sb.highRxt is stored as an EXCLUSIVE end: one past the highest octet retransmitted in this recovery
 *   (the RFC's HighRxt + 1). Octets in [SND.UNA, highRxt) count as retransmitted in SetPipe, and NextSeg's
 *   rule (1.a) "S2 > HighRxt" reads S2 >= highRxt. A highRxt outside [SND.UNA, HighData] (stale from an
 *   earlier recovery, or the 0 left by sbClear) is read as SND.UNA: nothing retransmitted.
 * - sb.rescueRxt is also stored as an exclusive end (the RFC's RescueRxt + 1). NextSeg rule (4) allows a
 *   rescue when SND.UNA > rescueRxt: RFC 6675's "HighACK > RescueRxt", with HighACK = SND.UNA - 1.
 * - "Unset": sequence number 0 is a legal value, so sbClear's 0s cannot mean "undefined" by themselves.
 *   The core MUST call sbEnterRecovery(sb, sndUna) when loss recovery starts (RFC 6675 §5 step (4)):
 *   highRxt = SND.UNA (nothing retransmitted yet) and rescueRxt = SND.UNA - 1 (RescueRxt "undefined": a
 *   rescue is allowed). Then, for the fast retransmission of RFC 6675 §5 step (4.3), it calls
 *   sbOnFastRetransmit(sb, seq, len), which sets both highRxt and rescueRxt to seq + len, as the RFC
 *   requires "to prevent repeated retransmission of the same data or a premature rescue retransmission".
 *
 * Call order (the core's side):
 *   newSbVars()                                       when the Tcb is created.
 *   sbUpdate(sb, sndUna, sndMax, blocks, count)       for each ACK carrying SACK blocks, after SND.UNA
 *                                                     has been advanced (it trims below sndUna); pass
 *                                                     SND.MAX (not SND.NXT, which an RTO pulls back).
 *   sbTrim(sb, sndUna)                                for an ACK without SACK blocks that advances SND.UNA.
 *   sbEnterRecovery(sb, sndUna)                       when loss recovery starts (RecoveryPoint = SND.MAX).
 *   sbOnFastRetransmit(sb, seq, len)                  after the first retransmission (RFC 6675 §5 (4.3)).
 *   sbPipe(sb, sndUna, sndMax, mss, dupThresh)        RFC 6675 SetPipe (§4), in bytes.
 *   sbNextSeg(sb, sndUna, sndMax, mss, dupThresh, canSendNew, out)
 *                                                     RFC 6675 NextSeg (§4): what to send next while
 *                                                     cwnd - pipe >= 1 SMSS. Returns the RFC rule:
 *                                                       0 NEXTSEG_NONE     nothing to send;
 *                                                       1 NEXTSEG_LOST     retransmit out (rule 1: lost);
 *                                                       2 NEXTSEG_NEW      send new data from out.seq ==
 *                                                                          HighData, at most out.len bytes
 *                                                                          (only when canSendNew, i.e. the
 *                                                                          caller has unsent data and the
 *                                                                          peer's window allows);
 *                                                       3 NEXTSEG_UNSACKED retransmit out (rule 3: unSACKed,
 *                                                                          not yet deemed lost);
 *                                                       4 NEXTSEG_RESCUE   retransmit out (rule 4: rescue).
 *                                                     It does not change sb: after actually sending, call
 *   sbOnRetransmit(sb, rule, seq, len, recoveryPoint) which sets highRxt = seq + len (rules 1 and 3) or
 *                                                     rescueRxt = recoveryPoint (rule 4; recoveryPoint is
 *                                                     exclusive, SND.MAX when recovery began, i.e. the
 *                                                     RFC's RecoveryPoint + 1; HighRxt is not updated,
 *                                                     RFC 6675 §4 NextSeg (4)).
 *   sbClear(sb)                                       after a retransmission timeout (RFC 2018 §8: the
 *                                                     sender SHOULD forget SACK information then, since
 *                                                     the receiver may have reneged) and on reset.
 *
 * IsLost (RFC 6675 §4): "either DupThresh discontiguous SACKed sequences have arrived above 'SeqNum' or
 * more than (DupThresh - 1) * SMSS bytes with sequence numbers greater than 'SeqNum' have been SACKed."
 * Byte ranges do not remember segment boundaries, so, as Linux and FreeBSD count SACKed segments, we count
 * each maximal SACKed run above SeqNum as ceil(run / SMSS) segments (each run holds at least that many
 * segments of at most SMSS bytes; a run of one small segment counts as one). IsLost(s) is then
 *   segments >= DupThresh  ||  bytes > (DupThresh - 1) * SMSS
 * (the byte test is implied by the segment count, as sum(ceil(run / SMSS)) >= ceil(bytes / SMSS); it is
 * kept to mirror the RFC's wording). For an
 * unSACKed octet, the SACKed data above it is the same for every octet of its hole, so loss is decided
 * once per hole, which keeps SetPipe and NextSeg O(SB_MAX) instead of per octet or per segment.
 *
 * Deviations:
 * - NextSeg rule (1) returns at most SMSS bytes and never crosses into a SACKed range (the RFC only says
 *   "one segment of up to SMSS octets starting with S2"): resending SACKed bytes is wasted.
 * - Rule (4) returns the last min(SMSS, hole) bytes ending at the highest outstanding unSACKed octet
 *   (the RFC requires the segment to include that octet; it does not fix where the segment starts).
 * - When the scoreboard overflows and forgets its highest range, a later SACK of those bytes counts them
 *   as newly SACKed again in sbUpdate's return value.
 */
import { SB_MAX, type SbVars } from './contracts.js';
import { seqAdd, seqDiff, seqGt, seqInWindow, seqLe, seqLt } from '../../wire/seq.js';

export const NEXTSEG_NONE = 0;
export const NEXTSEG_LOST = 1;
export const NEXTSEG_NEW = 2;
export const NEXTSEG_UNSACKED = 3;
export const NEXTSEG_RESCUE = 4;

/** An empty scoreboard: n = 0, r all 0, highRxt = rescueRxt = 0 (see "Unset" in the header). */
export function newSbVars(): SbVars {
  return { n: 0, r: new Array<number>(2 * SB_MAX).fill(0), highRxt: 0, rescueRxt: 0 };
}

/** Forgets every range and resets highRxt and rescueRxt to 0 ("unset": call sbEnterRecovery before use). */
export function sbClear(sb: SbVars): void {
  sb.n = 0;
  sb.r.fill(0);
  sb.highRxt = 0;
  sb.rescueRxt = 0;
}

/** Loss recovery starts: nothing retransmitted yet (highRxt = sndUna), RescueRxt undefined (sndUna - 1). */
export function sbEnterRecovery(sb: SbVars, sndUna: number): void {
  sb.highRxt = sndUna >>> 0;
  sb.rescueRxt = seqAdd(sndUna, -1);
}

/** RFC 6675 §5 (4.3): the first retransmission [seq, seq + len) sets both HighRxt and RescueRxt. */
export function sbOnFastRetransmit(sb: SbVars, seq: number, len: number): void {
  sb.highRxt = seqAdd(seq, len);
  sb.rescueRxt = seqAdd(seq, len);
}

/**
 * Records a retransmission made on NextSeg's advice: rules 1 and 3 set highRxt = seq + len (NextSeg only
 * proposes ranges at or above highRxt, so this only moves it up); rule 4 sets rescueRxt = recoveryPoint
 * (exclusive: SND.MAX when recovery began). Other rules change nothing.
 */
export function sbOnRetransmit(sb: SbVars, rule: number, seq: number, len: number, recoveryPoint: number): void {
  if (rule === NEXTSEG_LOST || rule === NEXTSEG_UNSACKED) sb.highRxt = seqAdd(seq, len);
  else if (rule === NEXTSEG_RESCUE) sb.rescueRxt = recoveryPoint >>> 0;
}

/** Drops the ranges at or below sndUna and clips a range that straddles it. */
export function sbTrim(sb: SbVars, sndUna: number): void {
  const r = sb.r;
  const n = sb.n;
  let k = 0;
  while (k < n && seqLe(r[2 * k + 1]!, sndUna)) k++;
  if (k > 0) {
    for (let i = k; i < n; i++) {
      r[2 * (i - k)] = r[2 * i]!;
      r[2 * (i - k) + 1] = r[2 * i + 1]!;
    }
    for (let i = n - k; i < n; i++) r[2 * i] = r[2 * i + 1] = 0;
    sb.n = n - k;
  }
  if (sb.n > 0 && seqLt(r[0]!, sndUna)) r[0] = sndUna >>> 0;
}

/**
 * Merges `count` SACK blocks, blocks[2i] = left edge, blocks[2i+1] = right edge (exclusive), into the
 * scoreboard, after trimming it to sndUna. A block is ignored when it is empty or inverted (left >= right),
 * lies entirely at or below sndUna (a D-SACK, RFC 2883) or reaches beyond sndMax (it reports data never
 * sent: RFC 2018 receivers cannot, so the block is bogus; Linux drops such blocks too). A block that starts
 * below sndUna is clipped to sndUna. Returns the number of bytes newly marked SACKed.
 */
export function sbUpdate(sb: SbVars, sndUna: number, sndMax: number, blocks: ArrayLike<number>, count: number): number {
  sbTrim(sb, sndUna);
  let newly = 0;
  const wnd = seqDiff(sndMax, sndUna);
  if (wnd <= 0) return 0;
  for (let i = 0; i < count; i++) {
    const left = blocks[2 * i]! >>> 0;
    const right = blocks[2 * i + 1]! >>> 0;
    if (!seqLt(left, right)) continue;
    if (seqLe(right, sndUna) || seqGt(right, sndMax)) continue;
    // right is in (sndUna, sndMax]; left < right, so the clipped block is non-empty.
    const a = seqLt(left, sndUna) ? 0 : seqDiff(left, sndUna);
    const b = seqDiff(right, sndUna);
    newly += insert(sb, sndUna, a, b);
  }
  return newly;
}

/** Inserts [a, b) (offsets from sndUna, 0 <= a < b) and returns the bytes newly SACKed. */
function insert(sb: SbVars, sndUna: number, a: number, b: number): number {
  const r = sb.r;
  const n = sb.n;
  // i: the first range that ends at or after a (touching ranges merge); j: the first range after i that
  // starts strictly beyond b. Ranges i .. j-1 overlap or touch [a, b).
  let i = 0;
  while (i < n && seqDiff(r[2 * i + 1]!, sndUna) < a) i++;
  let j = i;
  while (j < n && seqDiff(r[2 * j]!, sndUna) <= b) j++;
  if (i === j) {
    let m = n;
    if (m === SB_MAX) {
      if (i === m) return 0; // the new range is the highest: forget it
      m--; // forget the highest range
    }
    for (let k = m; k > i; k--) {
      r[2 * k] = r[2 * k - 2]!;
      r[2 * k + 1] = r[2 * k - 1]!;
    }
    r[2 * i] = seqAdd(sndUna, a);
    r[2 * i + 1] = seqAdd(sndUna, b);
    sb.n = m + 1;
    return b - a;
  }
  const s = Math.min(a, seqDiff(r[2 * i]!, sndUna));
  const e = Math.max(b, seqDiff(r[2 * (j - 1) + 1]!, sndUna));
  let covered = 0;
  for (let k = i; k < j; k++) covered += seqDiff(r[2 * k + 1]!, r[2 * k]!);
  r[2 * i] = seqAdd(sndUna, s);
  r[2 * i + 1] = seqAdd(sndUna, e);
  const gone = j - i - 1;
  if (gone > 0) {
    for (let k = j; k < n; k++) {
      r[2 * (k - gone)] = r[2 * k]!;
      r[2 * (k - gone) + 1] = r[2 * k + 1]!;
    }
    for (let k = n - gone; k < n; k++) r[2 * k] = r[2 * k + 1] = 0;
    sb.n = n - gone;
  }
  return e - s - covered;
}

/** Whether octet `seq` is SACKed. */
export function sbIsSacked(sb: SbVars, seq: number): boolean {
  const r = sb.r;
  for (let k = 0; k < sb.n; k++) if (seqInWindow(seq, r[2 * k]!, r[2 * k + 1]!)) return true;
  return false;
}

/** SACKed bytes with sequence numbers strictly greater than `seq`. */
export function sbSackedAbove(sb: SbVars, seq: number): number {
  const r = sb.r;
  const from = seqAdd(seq, 1);
  let bytes = 0;
  for (let k = 0; k < sb.n; k++) {
    const s = r[2 * k]!;
    const e = r[2 * k + 1]!;
    const lo = seqGt(s, from) ? s : from;
    if (seqLt(lo, e)) bytes += seqDiff(e, lo);
  }
  return bytes;
}

/** All SACKed bytes on the scoreboard. */
export function sbSackedBytes(sb: SbVars): number {
  const r = sb.r;
  let bytes = 0;
  for (let k = 0; k < sb.n; k++) bytes += seqDiff(r[2 * k + 1]!, r[2 * k]!);
  return bytes;
}

/** The end (exclusive) of the highest SACKed range, or `dflt` when nothing is SACKed. */
export function sbHighSacked(sb: SbVars, dflt: number): number {
  return sb.n > 0 ? sb.r[2 * sb.n - 1]! : dflt;
}

function lostBy(segments: number, bytes: number, mss: number, dupThresh: number): boolean {
  return segments >= dupThresh || bytes > (dupThresh - 1) * mss;
}

/** RFC 6675 IsLost(seq), with SACKed runs counted in segments as explained in the header. */
export function sbIsLost(sb: SbVars, seq: number, mss: number, dupThresh: number): boolean {
  const r = sb.r;
  const from = seqAdd(seq, 1);
  let bytes = 0;
  let segments = 0;
  for (let k = 0; k < sb.n; k++) {
    const s = r[2 * k]!;
    const e = r[2 * k + 1]!;
    const lo = seqGt(s, from) ? s : from;
    if (seqLt(lo, e)) {
      const len = seqDiff(e, lo);
      bytes += len;
      segments += Math.ceil(len / mss);
    }
  }
  return lostBy(segments, bytes, mss, dupThresh);
}

/** Offset of x from sndUna, clipped to [0, w]. */
function clipOff(x: number, sndUna: number, w: number): number {
  const d = seqDiff(x, sndUna);
  return d < 0 ? 0 : d > w ? w : d;
}

/** The retransmitted prefix [0, H) as an offset: highRxt when it lies in [sndUna, highData], else 0. */
function highRxtOff(sb: SbVars, sndUna: number, w: number): number {
  const d = seqDiff(sb.highRxt, sndUna);
  return d >= 0 && d <= w ? d : 0;
}

/**
 * RFC 6675 SetPipe (§4), in bytes: over the unSACKed octets of [sndUna, highData), each octet not deemed
 * lost counts once, and each octet already retransmitted in this recovery (below highRxt) counts once more.
 * highData is exclusive (SND.MAX).
 */
export function sbPipe(sb: SbVars, sndUna: number, highData: number, mss: number, dupThresh: number): number {
  const w = Math.max(0, seqDiff(highData, sndUna));
  const h = highRxtOff(sb, sndUna, w);
  const r = sb.r;
  const n = sb.n;
  let pipe = 0;
  // The tail above the highest SACKed range: nothing SACKed above it.
  const top = n > 0 ? clipOff(r[2 * n - 1]!, sndUna, w) : 0;
  pipe += holePipe(top, w, h, lostBy(0, 0, mss, dupThresh));
  let segments = 0;
  let bytes = 0;
  for (let k = n - 1; k >= 0; k--) {
    const s = clipOff(r[2 * k]!, sndUna, w);
    const e = clipOff(r[2 * k + 1]!, sndUna, w);
    if (e > s) {
      bytes += e - s;
      segments += Math.ceil((e - s) / mss);
    }
    const holeStart = k > 0 ? clipOff(r[2 * k - 1]!, sndUna, w) : 0;
    pipe += holePipe(holeStart, s, h, lostBy(segments, bytes, mss, dupThresh));
  }
  return pipe;
}

/** Pipe contribution of the unSACKed offsets [a, b): (not lost ? b - a : 0) + |[a, b) ∩ [0, h)|. */
function holePipe(a: number, b: number, h: number, lost: boolean): number {
  if (b <= a) return 0;
  const rxt = h > a ? Math.min(b, h) - a : 0;
  return (lost ? 0 : b - a) + rxt;
}

/**
 * RFC 6675 NextSeg (§4). Fills `out` with the range to send and returns the rule that chose it (0 when
 * nothing), see the header. highData is exclusive (SND.MAX). canSendNew: the caller has unsent data and
 * the receiver's window allows sending it (rule 2's condition). Does not change sb.
 */
export function sbNextSeg(
  sb: SbVars,
  sndUna: number,
  highData: number,
  mss: number,
  dupThresh: number,
  canSendNew: boolean,
  out: { seq: number; len: number },
): number {
  const w = Math.max(0, seqDiff(highData, sndUna));
  const h = highRxtOff(sb, sndUna, w);
  const r = sb.r;
  const n = sb.n;
  // Walk the holes below the highest SACKed range from the top down, so the SACKed data above each hole
  // accumulates; the last match is the lowest hole. Rule (1): above HighRxt, below the highest SACK, lost.
  // Rule (3): the same without "lost".
  let lostA = -1;
  let lostB = -1;
  let anyA = -1;
  let anyB = -1;
  let segments = 0;
  let bytes = 0;
  for (let k = n - 1; k >= 0; k--) {
    const s = clipOff(r[2 * k]!, sndUna, w);
    const e = clipOff(r[2 * k + 1]!, sndUna, w);
    if (e > s) {
      bytes += e - s;
      segments += Math.ceil((e - s) / mss);
    }
    const holeStart = k > 0 ? clipOff(r[2 * k - 1]!, sndUna, w) : 0;
    const a = Math.max(holeStart, h);
    if (a < s) {
      anyA = a;
      anyB = s;
      if (lostBy(segments, bytes, mss, dupThresh)) {
        lostA = a;
        lostB = s;
      }
    }
  }
  if (lostA >= 0) {
    out.seq = seqAdd(sndUna, lostA);
    out.len = Math.min(mss, lostB - lostA);
    return NEXTSEG_LOST;
  }
  if (canSendNew) {
    out.seq = highData >>> 0;
    out.len = mss;
    return NEXTSEG_NEW;
  }
  if (anyA >= 0) {
    out.seq = seqAdd(sndUna, anyA);
    out.len = Math.min(mss, anyB - anyA);
    return NEXTSEG_UNSACKED;
  }
  // Rule (4): one rescue per recovery, ending at the highest outstanding unSACKed octet.
  if (!seqGt(sndUna, sb.rescueRxt)) return NEXTSEG_NONE;
  const top = n > 0 ? clipOff(r[2 * n - 1]!, sndUna, w) : 0;
  if (w > top) {
    const a = Math.max(top, w - mss);
    out.seq = seqAdd(sndUna, a);
    out.len = w - a;
    return NEXTSEG_RESCUE;
  }
  for (let k = n - 1; k >= 0; k--) {
    const s = clipOff(r[2 * k]!, sndUna, w);
    const holeStart = k > 0 ? clipOff(r[2 * k - 1]!, sndUna, w) : 0;
    if (holeStart < s) {
      const a = Math.max(holeStart, s - mss);
      out.seq = seqAdd(sndUna, a);
      out.len = s - a;
      return NEXTSEG_RESCUE;
    }
  }
  return NEXTSEG_NONE;
}
