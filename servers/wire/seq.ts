/**
 * Wrap-safe TCP sequence-number arithmetic (RFC 793 §3.3, RFC 1982 serial-number style).
 *
 * Sequence numbers are uint32 values (0..2^32-1) stored as JS numbers. They live on a circle, so a raw
 * `<` is wrong near the wrap: 0xffffff00 is *before* 0x00000010. Every comparison here looks at the
 * signed 32-bit distance `(a - b) | 0`, which is correct whenever the two numbers are less than 2^31
 * apart — always true for TCP, whose windows are at most 2^30 (RFC 7323 §2.3).
 *
 * Never compare sequence numbers with `<`, `>`, `Math.max` etc.; use these.
 */

/** a - b as a signed distance in (-2^31, 2^31]: positive when a is after b. */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

/** a is strictly before b. */
export function seqLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

/** a is before or equal to b. */
export function seqLe(a: number, b: number): boolean {
  return ((a - b) | 0) <= 0;
}

/** a is strictly after b. */
export function seqGt(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

/** a is after or equal to b. */
export function seqGe(a: number, b: number): boolean {
  return ((a - b) | 0) >= 0;
}

/** a + n modulo 2^32 (n may be negative), as a uint32. */
export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** a - n modulo 2^32, as a uint32 (n is a byte count; for the distance between two seqs use seqDiff). */
export function seqSub(a: number, n: number): number {
  return (a - n) >>> 0;
}

/** The later of a and b. */
export function seqMax(a: number, b: number): number {
  return ((a - b) | 0) >= 0 ? a >>> 0 : b >>> 0;
}

/** The earlier of a and b. */
export function seqMin(a: number, b: number): number {
  return ((a - b) | 0) <= 0 ? a >>> 0 : b >>> 0;
}

/** lo <= x < hi on the circle (half-open window; empty when lo == hi). Exact for any window < 2^32. */
export function seqInWindow(x: number, lo: number, hi: number): boolean {
  return (x - lo) >>> 0 < (hi - lo) >>> 0;
}
