/**
 * CUBIC congestion control (RFC 9438), in bytes, with all of its state in CcVars (cwnd, ssthresh, v[]):
 * nothing in closures or module globals, so a Tcb restored from shared memory resumes the curve exactly.
 *
 * The RFC writes windows in segments (C = 0.4 segments/s^3). Here every window is in bytes, so the curve is
 *   W_cubic(t) = C * SMSS * (t - K)^3 + W_max          (RFC 9438 eq. 1, t and K in seconds)
 *   K = cbrt((W_max - cwnd_epoch) / (C * SMSS))          (eq. 2)
 * and the Reno-friendly estimate grows by alpha_cubic * SMSS per cwnd of acknowledged bytes:
 *   W_est += alpha_cubic * acked * SMSS / cwnd            (eq. 4 with segments_acked = acked / SMSS)
 *
 * Scratch layout, cc.v[] (CC_SCRATCH = 8 numbers, all 0 at init):
 *   v[0] CU_EPOCH_US    t_epoch (RFC 9438 §4.2): env.nowUs when the current congestion-avoidance stage
 *                       began; meaningful only while v[1] == 1.
 *   v[1] CU_IN_EPOCH    1 while a congestion-avoidance stage (epoch) runs; 0 after init, a congestion
 *                       event, a timeout, recovery exit or idle restart: the next ACK in congestion
 *                       avoidance starts a new epoch (t_epoch = now, cwnd_epoch = cwnd, W_est = cwnd, K).
 *   v[2] CU_W_MAX       W_max (bytes): the window before the last reduction, after fast convergence
 *                       (§4.7). 0 = unset (before the first congestion event, and after a timeout, §4.8):
 *                       the next epoch then sets W_max = cwnd_epoch, so K = 0.
 *   v[3] CU_K_US        K (microseconds) of the current epoch; may be negative when cwnd_epoch > W_max
 *                       (eq. 2 with a negative cube root: the curve still passes through cwnd_epoch).
 *   v[4] CU_W_EST       W_est (bytes, fractional): the Reno-friendly estimate (§4.3).
 *   v[5] CU_CWND_PRIOR  cwnd_prior (bytes): cwnd when ssthresh was last set (§4.6); alpha_cubic is
 *                       3(1-beta)/(1+beta) while W_est < cwnd_prior, then 1 (§4.3).
 *   v[6] CU_ACC         fraction of a byte of concave/convex growth not yet added to cwnd (cwnd stays an
 *                       integer; the fractions are carried, so growth is exact over many ACKs).
 *   v[7] CU_CWND_EPOCH  cwnd_epoch (bytes): cwnd when the current epoch began (kept for diagnostics and
 *                       tests; K is derived from it at the epoch start).
 *
 * Behaviour:
 *   init            cwnd = IW (RFC 6928), ssthresh = 2^31-1, v all 0.
 *   onAck           cwnd < ssthresh: slow start with byte counting exactly as NewReno (RFC 3465, L = 2*SMSS;
 *                   HyStart++ is not implemented). Otherwise congestion avoidance (§4.2-§4.5): on each ACK,
 *                   W_est grows; if W_cubic(t) < W_est the Reno-friendly region sets cwnd = W_est (never
 *                   lowering cwnd); else target = W_cubic(t + RTT) clamped to [cwnd, 1.5*cwnd] and
 *                   cwnd += (target - cwnd) / cwnd per acknowledged byte (concave below W_max, convex above).
 *                   RTT is env.srttUs (env.minRttUs while there is no smoothed RTT, 0 if neither).
 *   onCongestion    §4.7 fast convergence (cwnd < W_max: W_max = cwnd*(1+beta)/2, else W_max = cwnd), then
 *                   §4.6: cwnd_prior = cwnd, ssthresh = max(cwnd*beta, 2*SMSS), cwnd = ssthresh.
 *   onExitRecovery  as NewReno (RFC 6582 §3.2 step 3 option 2): cwnd = min(ssthresh, max(FlightSize, SMSS)
 *                   + SMSS), which undoes the core's inflation, if any. The next CA ACK starts the epoch.
 *   onRto           §4.8: ssthresh = max(cwnd*beta, 2*SMSS) (as §4.6), cwnd_prior = cwnd, cwnd = 1 SMSS,
 *                   W_max unset (so the first epoch after the timeout has K = 0, W_max = cwnd_epoch and
 *                   W_est = cwnd_epoch).
 *   onIdle          RFC 5681 §4.1: cwnd = min(cwnd, IW), and the epoch ends, so time spent idle does not
 *                   count in t (RFC 9438 §5.8 asks that idle periods not inflate the curve).
 *
 * Deviations / choices:
 * - §4.6 computes ssthresh from flight_size; like Linux, Windows and Apple (and as the brief asks) we use
 *   cwnd * beta_cubic. The RFC allows this if the sender keeps cwnd from growing while application-limited:
 *   that is the core's job (do not call onAck with growth while FlightSize is well below cwnd, RFC 7661).
 * - The Reno-friendly region sets cwnd = max(cwnd, W_est) rather than W_est: both are equal in practice
 *   (W_cubic increases with t), and an ACK must never shrink cwnd.
 * - §4.9 (spurious congestion events, undo) needs an undo hook the contract does not have; not implemented.
 * - HyStart++ (RFC 9406) is optional in RFC 9438 §4.10 and not implemented.
 */
import type { CcEnv, CcVars, CongestionControl } from './contracts.js';
import { initialWindow, slowStart, SSTHRESH_INIT } from './cc-newreno.js';

/** RFC 9438 §5: C = 0.4 (segments / s^3). */
export const CUBIC_C = 0.4;
/** RFC 9438 §4.6: the multiplicative decrease factor. */
export const CUBIC_BETA = 0.7;
/** RFC 9438 §4.3: alpha_cubic = 3 (1 - beta) / (1 + beta), the Reno-friendly additive increase. */
export const CUBIC_ALPHA = (3 * (1 - CUBIC_BETA)) / (1 + CUBIC_BETA);

export const CU_EPOCH_US = 0;
export const CU_IN_EPOCH = 1;
export const CU_W_MAX = 2;
export const CU_K_US = 3;
export const CU_W_EST = 4;
export const CU_CWND_PRIOR = 5;
export const CU_ACC = 6;
export const CU_CWND_EPOCH = 7;

/** floor(x * beta_cubic) computed exactly for integers (0.7 is not exact in binary: 90000 * 0.7 < 63000). */
function timesBeta(x: number): number {
  return Math.floor((x * 7) / 10);
}

/** W_cubic(t) in bytes for the current epoch's W_max and K, with t in seconds since t_epoch. */
export function cubicWindow(cc: CcVars, tSec: number, mss: number): number {
  const d = tSec - cc.v[CU_K_US]! / 1e6;
  return CUBIC_C * mss * d * d * d + cc.v[CU_W_MAX]!;
}

/** Starts a congestion-avoidance epoch at `nowUs` with the current cwnd as cwnd_epoch (§4.2, §4.3, §4.8). */
function startEpoch(cc: CcVars, env: CcEnv): void {
  const v = cc.v;
  v[CU_EPOCH_US] = env.nowUs;
  v[CU_IN_EPOCH] = 1;
  v[CU_CWND_EPOCH] = cc.cwnd;
  if (v[CU_W_MAX]! <= 0) v[CU_W_MAX] = cc.cwnd; // §4.8: after a timeout (or before any loss), K = 0
  v[CU_K_US] = Math.cbrt((v[CU_W_MAX]! - cc.cwnd) / (CUBIC_C * env.mss)) * 1e6;
  v[CU_W_EST] = cc.cwnd;
  v[CU_ACC] = 0;
}

function congestionAvoidance(cc: CcVars, acked: number, env: CcEnv): void {
  const v = cc.v;
  const mss = env.mss;
  if (v[CU_IN_EPOCH] !== 1) startEpoch(cc, env);
  const tSec = Math.max(0, env.nowUs - v[CU_EPOCH_US]!) / 1e6;
  const rttUs = env.srttUs > 0 ? env.srttUs : env.minRttUs > 0 ? env.minRttUs : 0;

  // §4.3: the Reno-friendly estimate, with alpha_cubic until W_est reaches cwnd_prior, then 1.
  const alpha = v[CU_W_EST]! >= v[CU_CWND_PRIOR]! ? 1 : CUBIC_ALPHA;
  v[CU_W_EST] = v[CU_W_EST]! + (alpha * acked * mss) / cc.cwnd;

  if (cubicWindow(cc, tSec, mss) < v[CU_W_EST]!) {
    // Reno-friendly region: cwnd follows W_est.
    const west = Math.floor(v[CU_W_EST]!);
    if (west > cc.cwnd) cc.cwnd = west;
    return;
  }
  // Concave (cwnd < W_max) or convex (cwnd >= W_max) region (§4.4, §4.5): the same rule.
  let target = cubicWindow(cc, tSec + rttUs / 1e6, mss);
  if (target < cc.cwnd) target = cc.cwnd;
  else if (target > 1.5 * cc.cwnd) target = 1.5 * cc.cwnd;
  const acc = v[CU_ACC]! + ((target - cc.cwnd) * acked) / cc.cwnd;
  const whole = Math.floor(acc);
  cc.cwnd += whole;
  v[CU_ACC] = acc - whole;
}

function endEpoch(cc: CcVars): void {
  cc.v[CU_IN_EPOCH] = 0;
  cc.v[CU_ACC] = 0;
}

export const cubic: CongestionControl = {
  name: 'cubic',

  init(cc: CcVars, env: CcEnv): void {
    cc.cwnd = initialWindow(env.mss);
    cc.ssthresh = SSTHRESH_INIT;
    cc.v.fill(0);
  },

  onAck(cc: CcVars, acked: number, env: CcEnv): void {
    if (!(acked > 0) || !(cc.cwnd > 0)) return;
    if (cc.cwnd < cc.ssthresh) {
      acked = slowStart(cc, acked, env.mss);
      if (acked === 0) return;
    }
    congestionAvoidance(cc, acked, env);
  },

  onCongestion(cc: CcVars, env: CcEnv): void {
    const v = cc.v;
    const cwnd = cc.cwnd;
    // §4.7 fast convergence: a reduction below the previous W_max means the available capacity shrank.
    v[CU_W_MAX] = cwnd < v[CU_W_MAX]! ? (cwnd * (1 + CUBIC_BETA)) / 2 : cwnd;
    v[CU_CWND_PRIOR] = cwnd;
    cc.ssthresh = Math.max(timesBeta(cwnd), 2 * env.mss);
    cc.cwnd = cc.ssthresh;
    endEpoch(cc);
  },

  onExitRecovery(cc: CcVars, env: CcEnv): void {
    cc.cwnd = Math.min(cc.ssthresh, Math.max(env.flightSize, env.mss) + env.mss);
    endEpoch(cc);
  },

  onRto(cc: CcVars, env: CcEnv): void {
    const v = cc.v;
    v[CU_CWND_PRIOR] = cc.cwnd;
    cc.ssthresh = Math.max(timesBeta(cc.cwnd), 2 * env.mss);
    cc.cwnd = env.mss;
    v[CU_W_MAX] = 0;
    v[CU_W_EST] = 0;
    v[CU_K_US] = 0;
    endEpoch(cc);
  },

  onIdle(cc: CcVars, env: CcEnv): void {
    cc.cwnd = Math.min(cc.cwnd, initialWindow(env.mss));
    endEpoch(cc);
  },
};
