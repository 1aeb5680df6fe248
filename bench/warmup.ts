/**
 * The unmeasured warm-up every network benchmark runs first (`--warmup S`; bench/net.ts says why): its
 * default and its bounds, in one place for `bench bulk|rr|crr|all`, `bench scale` and `bench tap`.
 */
export const WARMUP_DEFAULT_S = 2;

/** The warm-up in seconds (default 2); a RangeError (ERR_OUT_OF_RANGE) outside [0, 600]. */
export function warmupSeconds(v: number | undefined): number {
  const s = v ?? WARMUP_DEFAULT_S;
  if (!Number.isFinite(s) || s < 0 || s > 600) {
    throw Object.assign(new RangeError(`warmup must be a number of seconds in [0, 600], got ${s}`), { code: 'ERR_OUT_OF_RANGE' });
  }
  return s;
}
