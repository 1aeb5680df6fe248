/**
 * The retransmission timer's estimator (RFC 6298), over the RttVars embedded in the Tcb. Pure: no clock,
 * no I/O; every time is in microseconds, passed in by the core.
 *
 * Call order (the core's side):
 *   newRttVars()             when the Tcb is created: RTO = 1 s (RFC 6298 §2.1), no sample, no backoff.
 *   rttSample(v, R, G)       for each valid RTT measurement R (Karn's algorithm, RFC 6298 §3, is the
 *                            core's: never sample a retransmitted segment unless timestamps say which
 *                            copy was acknowledged). Resets the backoff (RFC 6298 §5.7's "new data
 *                            acknowledged" case without a sample is the core's: set v.backoff = 0, or
 *                            call rtoResetBackoff).
 *   rtoCurrentUs(v)          the timeout to arm now: the base RTO shifted by the backoff, at most 120 s.
 *   rtoBackoff(v)            when the timer expires (RFC 6298 §5.5: "back off the timer").
 *   rtoAfterSynTimeout(v)    when the handshake completes and a SYN (or SYN-ACK) had timed out while no
 *                            RTT sample exists (RFC 6298 §5.7): RTO = 3 s for the data phase.
 *
 * Choices:
 * - RTO_MIN_US is 200 ms, as in Linux (TCP_RTO_MIN), not RFC 6298 §2.4's 1 s. The RFC's 1 s was chosen
 *   for coarse (500 ms) clocks and to stay conservative against spurious timeouts; with a microsecond
 *   clock and a modern network a 1 s floor makes every tail loss on a short path cost ~1 s of idle link.
 *   Deployed stacks use lower floors; we follow Linux's 200 ms, whose behaviour is the best studied.
 * - RTO_MAX_US is 120 s, as in Linux (TCP_RTO_MAX); RFC 6298 §2.5 only requires a maximum >= 60 s.
 * - A sample of 0 us is legal when the caller's clock is coarser than the RTT (both ends of the
 *   measurement fall in the same tick): it is taken as one granule (max(G, 1 us)), so SRTT stays
 *   positive. Negative, NaN or infinite samples are ignored (a clock bug must not poison the estimator).
 * - SRTT and RTTVAR are kept as floating-point microseconds (no fixed-point shifts needed in JS); the RTO
 *   is rounded up to a whole microsecond.
 */
import type { RttVars } from './contracts.js';

/** RFC 6298 §2.1: the initial RTO, 1 s. */
export const RTO_INIT_US = 1_000_000;
/** The lower bound of the RTO: 200 ms as Linux (RFC 6298 §2.4 says 1 s; see the header). */
export const RTO_MIN_US = 200_000;
/** The upper bound of the RTO, including backoff: 120 s as Linux (RFC 6298 §2.5: at least 60 s). */
export const RTO_MAX_US = 120_000_000;
/** RFC 6298 §5.7: the RTO used once data transmission begins after a SYN timed out, 3 s. */
export const RTO_SYN_FALLBACK_US = 3_000_000;

/** RFC 6298 §2: alpha = 1/8, beta = 1/4, K = 4. */
const ALPHA = 1 / 8;
const BETA = 1 / 4;
const K = 4;

/** A fresh estimator: RTO = 1 s, no sample, no backoff. */
export function newRttVars(): RttVars {
  return { srttUs: 0, rttvarUs: 0, rtoUs: RTO_INIT_US, backoff: 0, minRttUs: 0, hasSample: 0 };
}

function clampRto(us: number): number {
  return us < RTO_MIN_US ? RTO_MIN_US : us > RTO_MAX_US ? RTO_MAX_US : us;
}

/**
 * Takes one RTT measurement `rUs` (RFC 6298 §2.2 / §2.3) with clock granularity `granularityUs` (G).
 * First sample: SRTT = R, RTTVAR = R/2. Later: RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R| (with the old SRTT),
 * then SRTT = 7/8 SRTT + 1/8 R. Then RTO = SRTT + max(G, 4 RTTVAR), clamped to [RTO_MIN_US, RTO_MAX_US].
 * Updates minRttUs and resets the backoff. A 0 sample counts as one granule; negative or non-finite
 * samples are ignored.
 */
export function rttSample(v: RttVars, rUs: number, granularityUs: number): void {
  if (!Number.isFinite(rUs) || rUs < 0) return;
  const g = Number.isFinite(granularityUs) && granularityUs > 0 ? granularityUs : 0;
  const r = rUs > 0 ? rUs : Math.max(g, 1);
  if (v.hasSample === 0) {
    v.srttUs = r;
    v.rttvarUs = r / 2;
    v.hasSample = 1;
    v.minRttUs = r;
  } else {
    v.rttvarUs = (1 - BETA) * v.rttvarUs + BETA * Math.abs(v.srttUs - r);
    v.srttUs = (1 - ALPHA) * v.srttUs + ALPHA * r;
    if (v.minRttUs <= 0 || r < v.minRttUs) v.minRttUs = r;
  }
  v.rtoUs = clampRto(Math.ceil(v.srttUs + Math.max(g, K * v.rttvarUs)));
  v.backoff = 0;
}

/** The timeout to arm now (us): rtoUs * 2^backoff, at most RTO_MAX_US. */
export function rtoCurrentUs(v: RttVars): number {
  const us = v.rtoUs * Math.pow(2, v.backoff);
  return us > RTO_MAX_US ? RTO_MAX_US : us;
}

/** RFC 6298 §5.5: the timer expired; double the timeout (the backoff stops growing once it hits the max). */
export function rtoBackoff(v: RttVars): void {
  if (rtoCurrentUs(v) < RTO_MAX_US) v.backoff++;
}

/** New data was acknowledged without an RTT sample (RFC 6298 §5.3 restarts the timer with the base RTO). */
export function rtoResetBackoff(v: RttVars): void {
  v.backoff = 0;
}

/**
 * RFC 6298 §5.7: "If the timer expires awaiting the ACK of a SYN segment and the TCP implementation is
 * using an RTO less than 3 seconds, the RTO MUST be re-initialized to 3 seconds when data transmission
 * begins (i.e., after the three-way handshake completes)." The core calls this once, when the handshake
 * completes after a SYN/SYN-ACK retransmission. When an RTT sample exists (e.g. from a timestamp echo on
 * the SYN-ACK, which is unambiguous), the measured RTO is kept, as Linux does; otherwise the base RTO
 * becomes max(rtoUs, 3 s). The backoff is reset either way: the handshake succeeded.
 */
export function rtoAfterSynTimeout(v: RttVars): void {
  if (v.hasSample === 0 && v.rtoUs < RTO_SYN_FALLBACK_US) v.rtoUs = RTO_SYN_FALLBACK_US;
  v.backoff = 0;
}
