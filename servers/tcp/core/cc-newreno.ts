/**
 * NewReno congestion control: RFC 5681 slow start and congestion avoidance, with RFC 3465 appropriate
 * byte counting (ABC), and the window changes RFC 5681 / RFC 6582 prescribe at loss, timeout, full ACK
 * and restart after idle. The fast-recovery inflation (RFC 6582) or the pipe accounting (RFC 6675) is the
 * core's; this module only sets cwnd and ssthresh at the edges of recovery.
 *
 * State: cc.cwnd and cc.ssthresh (bytes), and cc.v[] (CC_SCRATCH numbers, 0 at init):
 *   v[0] NR_BYTES_ACKED  RFC 3465 §2.1 "bytes_acked" in congestion avoidance: acknowledged bytes not yet
 *                        turned into window growth; cwnd grows by SMSS each time it reaches cwnd, so the
 *                        growth is exactly one SMSS per cwnd of acknowledged data (one RTT).
 *   v[1..7]              unused (0).
 * No state lives anywhere else, so a plain copy of CcVars restores the algorithm exactly.
 *
 * This file also holds what every algorithm shares (the initial window, the initial ssthresh, byte-counted
 * slow start); cc.ts re-exports them. They live here, not in cc.ts, so that the module graph has no cycle
 * (cc.ts imports the algorithms).
 *
 * Deviations / choices:
 * - RFC 5681 §3.1 lets either algorithm run when cwnd == ssthresh; we use congestion avoidance (Linux).
 * - When one ACK carries cwnd across ssthresh in slow start, the bytes beyond ssthresh feed congestion
 *   avoidance's counter (Linux's tcp_slow_start does the same), instead of being dropped.
 * - Congestion avoidance may add more than one SMSS for one ACK that acknowledges more than cwnd bytes
 *   (a stretch ACK after a long hole): this keeps the growth exact per acknowledged byte, as Linux's
 *   tcp_cong_avoid_ai does; RFC 3465 §2.1 adds one SMSS per ACK at most.
 * - RFC 5681 §3.1 (implementation note): when a segment that was already retransmitted by the timer times
 *   out again, ssthresh must be kept. The module cannot see that; the core must not call onRto for a
 *   repeated timeout of the same segment (or must restore ssthresh after it). The initial window after a
 *   lost SYN (RFC 6928 §2 / RFC 5681 §3.1: 1 SMSS) is also the core's: it sets cwnd = mss after init.
 */
import type { CcEnv, CcVars, CongestionControl } from './contracts.js';

/** RFC 5681 §3.1: the initial ssthresh is "arbitrarily high": 2^31 - 1 (the largest positive int32). */
export const SSTHRESH_INIT = 0x7fffffff;

/** RFC 3465 §2.2: the slow-start increase per ACK is at most L = 2*SMSS. */
export const ABC_L_SEGMENTS = 2;

const NR_BYTES_ACKED = 0;

/** RFC 6928 / RFC 5681 §3.1: the initial (and restart) window, min(10*MSS, max(2*MSS, 14600)) bytes. */
export function initialWindow(mss: number): number {
  return Math.min(10 * mss, Math.max(2 * mss, 14600));
}

/**
 * Byte-counted slow start (RFC 5681 §3.1 with RFC 3465 §2.2, L = 2*SMSS): cwnd += min(acked, 2*SMSS),
 * never beyond ssthresh. Returns the acknowledged bytes left for congestion avoidance: those beyond what
 * took cwnd up to ssthresh when it was reached, else 0.
 */
export function slowStart(cc: CcVars, acked: number, mss: number): number {
  const inc = Math.min(acked, ABC_L_SEGMENTS * mss);
  const room = cc.ssthresh - cc.cwnd;
  if (inc < room) {
    cc.cwnd += inc;
    return 0;
  }
  const used = room > 0 ? room : 0;
  cc.cwnd += used;
  return acked - used;
}

/** RFC 5681 eq. 4: max(FlightSize/2, 2*SMSS), in whole bytes. */
export function halfFlight(env: CcEnv): number {
  return Math.max(Math.floor(env.flightSize / 2), 2 * env.mss);
}

function congestionAvoidance(cc: CcVars, acked: number, mss: number): void {
  let counted = cc.v[NR_BYTES_ACKED]! + acked;
  if (counted >= cc.cwnd && cc.cwnd > 0) {
    const steps = Math.floor(counted / cc.cwnd);
    counted -= steps * cc.cwnd;
    cc.cwnd += steps * mss;
  }
  cc.v[NR_BYTES_ACKED] = counted;
}

export const newReno: CongestionControl = {
  name: 'newreno',

  init(cc: CcVars, env: CcEnv): void {
    cc.cwnd = initialWindow(env.mss);
    cc.ssthresh = SSTHRESH_INIT;
    cc.v.fill(0);
  },

  onAck(cc: CcVars, acked: number, env: CcEnv): void {
    if (!(acked > 0)) return;
    if (cc.cwnd < cc.ssthresh) {
      acked = slowStart(cc, acked, env.mss);
      if (acked === 0) return;
    }
    congestionAvoidance(cc, acked, env.mss);
  },

  /** RFC 5681 §3.2 step 2 / RFC 6582 §3.2 step 2: ssthresh = max(FlightSize/2, 2*SMSS); cwnd = ssthresh. */
  onCongestion(cc: CcVars, env: CcEnv): void {
    cc.ssthresh = halfFlight(env);
    cc.cwnd = cc.ssthresh;
    cc.v[NR_BYTES_ACKED] = 0;
  },

  /** RFC 6582 §3.2 step 3, option (2): cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS). */
  onExitRecovery(cc: CcVars, env: CcEnv): void {
    cc.cwnd = Math.min(cc.ssthresh, Math.max(env.flightSize, env.mss) + env.mss);
    cc.v[NR_BYTES_ACKED] = 0;
  },

  /** RFC 5681 §3.1 eq. 4 and the loss window: ssthresh = max(FlightSize/2, 2*SMSS); cwnd = 1 SMSS. */
  onRto(cc: CcVars, env: CcEnv): void {
    cc.ssthresh = halfFlight(env);
    cc.cwnd = env.mss;
    cc.v[NR_BYTES_ACKED] = 0;
  },

  /** RFC 5681 §4.1: restart window = min(IW, cwnd). */
  onIdle(cc: CcVars, env: CcEnv): void {
    cc.cwnd = Math.min(cc.cwnd, initialWindow(env.mss));
    cc.v[NR_BYTES_ACKED] = 0;
  },
};
