/**
 * Out-of-order receive ranges: the sequence ranges above RCV.NXT whose bytes were already stored in the
 * receive buffer (io.recvWrite writes out-of-order data at once). They are kept in the Tcb's fixed array
 * `ooo` (OOO_MAX ranges, [l, r) each), MOST RECENTLY CHANGED FIRST, which is exactly the order RFC 2018 §4
 * wants for SACK blocks ("the first SACK block MUST specify the contiguous block of data containing the
 * segment which triggered this ACK"; the others repeat the most recently reported ones).
 *
 * Call order (input.ts):
 *   oooAdd(t, l, r)       in-window data [l, r) above RCV.NXT arrived: merge it (with every range it
 *                         overlaps or touches) into one range, moved to the front. false when the table
 *                         is full and [l, r) touches no range: the caller must not store the data (we
 *                         never forget data we reported in a SACK block: no reneging, RFC 2018 §8).
 *   oooAdvance(t, nxt)    RCV.NXT moved to nxt: returns the new RCV.NXT after swallowing every range that
 *                         starts at or below it (the hole filled), and drops ranges now below it.
 *   oooSackBlocks(t, out, max)  up to max blocks into out (pairs), returns the count.
 */
import { seqGe, seqGt, seqLe, seqLt } from '../../wire/seq.js';
import { OOO_MAX, type Tcb } from './tcb.js';

export function oooAdd(t: Tcb, l: number, r: number): boolean {
  const a = t.ooo;
  let n = t.oooN;
  // Remove every range overlapping or touching [l, r), widening [l, r) to cover it.
  for (let i = 0; i < n; ) {
    const rl = a[2 * i];
    const rr = a[2 * i + 1];
    if (seqLe(rl, r) && seqGe(rr, l)) {
      if (seqLt(rl, l)) l = rl;
      if (seqGt(rr, r)) r = rr;
      for (let k = i + 1; k < n; k++) {
        a[2 * k - 2] = a[2 * k];
        a[2 * k - 1] = a[2 * k + 1];
      }
      n--;
    } else i++;
  }
  if (n === OOO_MAX) {
    // Full and disjoint (nothing was merged away, since that would have freed a slot): refuse.
    return false;
  }
  for (let k = n; k > 0; k--) {
    a[2 * k] = a[2 * k - 2];
    a[2 * k + 1] = a[2 * k - 1];
  }
  a[0] = l >>> 0;
  a[1] = r >>> 0;
  t.oooN = n + 1;
  for (let k = t.oooN; k < OOO_MAX; k++) a[2 * k] = a[2 * k + 1] = 0;
  return true;
}

export function oooAdvance(t: Tcb, nxt: number): number {
  const a = t.ooo;
  let moved = true;
  while (moved) {
    moved = false;
    for (let i = 0; i < t.oooN; i++) {
      if (seqLe(a[2 * i], nxt)) {
        if (seqGt(a[2 * i + 1], nxt)) nxt = a[2 * i + 1];
        for (let k = i + 1; k < t.oooN; k++) {
          a[2 * k - 2] = a[2 * k];
          a[2 * k - 1] = a[2 * k + 1];
        }
        t.oooN--;
        a[2 * t.oooN] = a[2 * t.oooN + 1] = 0;
        moved = true;
        break;
      }
    }
  }
  return nxt >>> 0;
}

export function oooSackBlocks(t: Tcb, out: number[], max: number): number {
  const n = t.oooN < max ? t.oooN : max;
  for (let i = 0; i < 2 * n; i++) out[i] = t.ooo[i];
  return n;
}

export function oooClear(t: Tcb): void {
  t.oooN = 0;
  t.ooo.fill(0);
}
