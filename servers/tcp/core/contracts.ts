/**
 * Contracts between the TCP core's parts. The core (input.ts, output.ts, timers.ts) drives a connection;
 * congestion control (cc-newreno.ts, cc-cubic.ts), the retransmission timer estimator (rto.ts) and the
 * SACK scoreboard (scoreboard.ts) are separate, swappable modules with no I/O and no clock: time is
 * passed in (microseconds on the stack's central clock).
 *
 * All state these modules keep lives in plain objects of numbers and fixed-length number arrays,
 * embedded in the connection's Tcb, so that the tcp server can store a Tcb in shared memory (a
 * restarted tcp server resumes every connection) and commit it transactionally per input message.
 * Never keep state in module globals or closures. Sequence numbers are uint32 and are compared only
 * through servers/wire/seq.ts.
 */

/** Congestion control state, embedded in the Tcb. Bytes, not segments. */
export interface CcVars {
  cwnd: number;
  ssthresh: number;
  /** Algorithm scratch (CUBIC: W_max, K, epoch start, W_est, ...): CC_SCRATCH numbers, 0 at init. */
  v: number[];
}
export const CC_SCRATCH = 8;

export interface CcEnv {
  /** Sender MSS (bytes of payload in a full segment). */
  mss: number;
  nowUs: number;
  /** Smoothed RTT (us); 0 while there is no sample. */
  srttUs: number;
  /** Smallest RTT seen (us); 0 while there is no sample. */
  minRttUs: number;
  /** FlightSize (RFC 5681): bytes sent and not yet cumulatively acknowledged. */
  flightSize: number;
}

export type CcName = 'newreno' | 'cubic';

/**
 * One congestion control algorithm. The core calls:
 *   init           when the connection is established (the initial window of RFC 5681 §3.1 / RFC 6928:
 *                  min(10*MSS, max(2*MSS, 14600)); ssthresh "arbitrarily high")
 *   onAck          for an ACK that advances SND.UNA by `acked` bytes outside loss recovery (slow start
 *                  with RFC 3465 byte counting, L = 2*SMSS; congestion avoidance)
 *   onCongestion   when loss recovery starts (3 duplicate ACKs, or RFC 6675's IsLost): sets ssthresh
 *                  and cwnd for fast recovery (NewReno: ssthresh = max(FlightSize/2, 2*SMSS),
 *                  cwnd = ssthresh; the core adds its own inflation per RFC 6582 / RFC 6675 pipe)
 *   onExitRecovery when the recovery point is acknowledged (RFC 6582 §3.2 step 3: "full ACK")
 *   onRto          when the retransmission timer expires (RFC 5681 eq. 4: ssthresh = max(FlightSize/2,
 *                  2*SMSS); cwnd = 1 SMSS (the loss window))
 *   onIdle         before sending after an idle period longer than the RTO (RFC 5681 §4.1:
 *                  cwnd = min(cwnd, restart window))
 */
export interface CongestionControl {
  readonly name: CcName;
  init(cc: CcVars, env: CcEnv): void;
  onAck(cc: CcVars, acked: number, env: CcEnv): void;
  onCongestion(cc: CcVars, env: CcEnv): void;
  onExitRecovery(cc: CcVars, env: CcEnv): void;
  onRto(cc: CcVars, env: CcEnv): void;
  onIdle(cc: CcVars, env: CcEnv): void;
}

/** RFC 6298 estimator state, embedded in the Tcb. */
export interface RttVars {
  srttUs: number;
  rttvarUs: number;
  /** The base RTO (before backoff), us. */
  rtoUs: number;
  /** Exponential backoff shift (0 after a new RTT sample or new data acknowledged). */
  backoff: number;
  /** Smallest sample seen (us), 0 while none. */
  minRttUs: number;
  /** 1 once a sample has been taken. */
  hasSample: number;
}

/**
 * The RFC 6675 SACK scoreboard, embedded in the Tcb: the SACKed ranges above SND.UNA, sorted and
 * merged, at most SB_MAX of them (when more arrive, the highest ranges are forgotten: the scoreboard
 * may under-report SACKed data, never over-report it).
 */
export interface SbVars {
  /** Ranges in use. */
  n: number;
  /** Range i is [r[2i], r[2i+1]) in sequence space. */
  r: number[];
  /** HighRxt (RFC 6675 §2): the highest sequence retransmitted in this recovery. */
  highRxt: number;
  /** RescueRxt (RFC 6675 §4, NextSeg (4)). */
  rescueRxt: number;
}
export const SB_MAX = 16;
