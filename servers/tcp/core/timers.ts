/**
 * The connection's timers, as absolute deadlines in the Tcb (microseconds, Infinity = off):
 *   tRtx        retransmission (RFC 6298), also SYN / SYN-ACK retransmission;
 *   tDelack     delayed ACK (RFC 5681 §4.2 / RFC 1122 §4.2.3.2: 40 ms, Linux's minimum);
 *   tPersist    zero-window probes (RFC 9293 §3.8.6.1) and the sender SWS override;
 *   tKeepalive  keepalive (RFC 1122 §4.2.3.6, Linux's probe/count/interval semantics);
 *   tClose      TIME_WAIT expiry (2 MSL) or an orphaned FIN_WAIT_2's timeout;
 *   tTlp        tail loss probe (RFC 8985 §7, tlp.ts): at most tRtx; fires before it when both are due.
 *
 * Call order: the caller asks nextDeadline(t) after every call and calls onTimers(t, cx) when its clock
 * reaches it; onTimers fires every deadline <= now (tClose, tTlp, tRtx, tPersist, tKeepalive, tDelack), then sends a
 * pending ACK. A timer that finds nothing to do just switches itself off.
 */
import { ccEnv, ccOf, effMss, type Cx } from './io.js';
import { canSendData, dataEnd, output, persistIntervalUs, sendAck, sendPending, sendProbe, sendRange, sendRst, sendSyn } from './output.js';
import { RTO_MAX_US, rtoBackoff, rtoCurrentUs } from './rto.js';
import { sbClear } from './scoreboard.js';
import { tlpAllowed, tlpCancel, tlpProbeSent } from './tlp.js';
import { closeWith } from './state.js';
import {
  CLOSED,
  ETIMEDOUT,
  E_NONE,
  FIN_WAIT_2,
  SYN_RECEIVED,
  SYN_SENT,
  TIME_WAIT,
  TIMER_OFF,
  isSynchronized,
  type Tcb,
} from './tcb.js';
import { seqAdd, seqDiff } from '../../wire/seq.js';

/** Earliest armed deadline (us), Infinity if none. */
export function nextDeadline(t: Tcb): number {
  let d = t.tRtx;
  if (t.tDelack < d) d = t.tDelack;
  if (t.tPersist < d) d = t.tPersist;
  if (t.tKeepalive < d) d = t.tKeepalive;
  if (t.tClose < d) d = t.tClose;
  if (t.tTlp < d) d = t.tTlp;
  return d;
}

/** The error a timeout reports: the last soft (ICMP) error if any, else ETIMEDOUT (like Linux). */
function timeoutErr(t: Tcb): number {
  return t.softErr !== E_NONE ? t.softErr : ETIMEDOUT;
}

function closeTimer(t: Tcb, cx: Cx): void {
  if (t.state === TIME_WAIT) {
    closeWith(t, E_NONE, cx); // RFC 9293: "When the time-wait timeout expires, delete the TCB"
  } else if (t.state === FIN_WAIT_2) {
    sendRst(t, cx); // an orphan's FIN_WAIT_2 gave up waiting for the peer's FIN (Linux resets too)
    closeWith(t, E_NONE, cx);
  }
}

/** Data not acknowledged for too long: the user timeout (TCP_USER_TIMEOUT) or maxRetries timeouts. */
function gaveUp(t: Tcb, now: number): boolean {
  if (t.userTimeoutUs > 0) return now - t.rtxStartUs >= t.userTimeoutUs;
  return t.rtxCount >= t.maxRetries;
}

function rtxTimer(t: Tcb, cx: Cx): void {
  const now = cx.io.nowUs;
  if (t.state === SYN_SENT || t.state === SYN_RECEIVED) {
    // RFC 6298 §5.5/§5.6 for the handshake, up to tcp_syn_retries / tcp_synack_retries (Linux).
    const limit = t.state === SYN_SENT ? t.synRetries : t.synAckRetries;
    if (t.rtxCount >= limit || (t.userTimeoutUs > 0 && now - t.rtxStartUs >= t.userTimeoutUs)) {
      closeWith(t, timeoutErr(t), cx);
      return;
    }
    t.rtxCount++;
    t.rtoExpiries++;
    t.retransSegs++;
    t.synRetransmitted = 1;
    t.rttTiming = 0;
    rtoBackoff(t.rtt);
    sendSyn(t, cx);
    t.tRtx = now + rtoCurrentUs(t.rtt);
    return;
  }
  if (!canSendData(t.state) || t.sndUna === t.sndMax) return;
  // Linux: while the peer keeps advertising a zero window (and answers), retransmissions are window
  // probes and do not count toward giving up; silence for RTO_MAX still does.
  const zeroWnd = t.sndWnd === 0 && now - t.lastRcvUs <= RTO_MAX_US;
  if (!zeroWnd && gaveUp(t, now)) {
    sendRst(t, cx);
    closeWith(t, timeoutErr(t), cx);
    return;
  }
  // RFC 5681 §3.1 eq. 4 on the first timeout of a segment (ssthresh is held on a repeated timeout);
  // cwnd = 1 SMSS (the loss window) either way.
  if (t.rtxCount === 0) ccOf(t).onRto(t.cc, ccEnv(t, cx));
  t.cc.cwnd = effMss(t);
  t.rtxCount++;
  t.rtoExpiries++;
  rtoBackoff(t.rtt); // RFC 6298 §5.5
  // RFC 6582 §3.2 step 1 / RFC 6675 §5.1: leave recovery; RecoveryPoint = HighData; discard the
  // scoreboard (SACKed data must stay retransmittable: the receiver may renege).
  t.inRecovery = 0;
  t.dupAcks = 0;
  t.recover = t.sndMax;
  tlpCancel(t); // RFC 8985 §7.1: RTO recovery ends the TLP episode
  sbClear(t.sb);
  t.rttTiming = 0; // Karn
  // RFC 6298 §5.4: retransmit the earliest unacknowledged segment (even into a zero window: it is then
  // the window probe, as in Linux), then go back N: SND.NXT restarts from SND.UNA.
  t.sndNxt = t.sndUna;
  const len = Math.min(effMss(t), seqDiff(t.sndMax, t.sndUna));
  t.tRtx = now + rtoCurrentUs(t.rtt); // RFC 6298 §5.6
  sendRange(t, cx, t.sndUna, len);
  output(t, cx, false);
}

/**
 * RFC 8985 §7.3 TLP_send_probe on PTO expiry: one new segment (up to SMSS, regardless of cwnd) when
 * unsent data and the peer's window allow, else a retransmission of the highest SMSS of sent data (the
 * FIN with it if outstanding); then the RTO is re-armed (not the PTO: one probe per episode).
 */
function tlpTimer(t: Tcb, cx: Cx): void {
  if (!tlpAllowed(t)) return;
  const now = cx.io.nowUs;
  const mss = effMss(t);
  const avail = seqDiff(dataEnd(t, cx), t.sndNxt);
  const wndAvail = seqDiff(seqAdd(t.sndUna, t.sndWnd), t.sndNxt);
  let retrans: boolean;
  if (avail > 0 && wndAvail > 0) {
    let len = Math.min(mss, avail, wndAvail);
    if (t.appClosed !== 0 && seqAdd(t.sndNxt, len) === t.finSeq && wndAvail > len) len++; // with our FIN
    sendRange(t, cx, t.sndNxt, len);
    retrans = false;
  } else {
    const len = Math.min(mss, seqDiff(t.sndMax, t.sndUna));
    sendRange(t, cx, seqAdd(t.sndMax, -len), len);
    retrans = true;
  }
  tlpProbeSent(t, retrans, cx);
  t.tRtx = now + rtoCurrentUs(t.rtt);
}

function persistTimer(t: Tcb, cx: Cx): void {
  const now = cx.io.nowUs;
  if (!canSendData(t.state) || t.sndUna !== t.sndMax || !sendPending(t, cx)) return;
  const gone = t.userTimeoutUs > 0 ? now - t.lastRcvUs >= t.userTimeoutUs : t.persistProbes >= t.maxRetries;
  if (gone) {
    sendRst(t, cx);
    closeWith(t, timeoutErr(t), cx);
    return;
  }
  if (t.sndWnd > 0) {
    output(t, cx, true); // the SWS override: send what the small window takes
  } else {
    sendProbe(t, cx);
    t.persistProbes++;
    t.persistProbesSent++;
  }
  if (t.tRtx === TIMER_OFF && sendPending(t, cx)) {
    if (t.persistBackoff < 30) t.persistBackoff++;
    t.tPersist = now + persistIntervalUs(t);
  }
}

function keepaliveTimer(t: Tcb, cx: Cx): void {
  const now = cx.io.nowUs;
  if (!t.keepAlive || !isSynchronized(t.state) || t.state === TIME_WAIT || t.state === SYN_RECEIVED) return;
  if (t.sndMax !== t.sndUna || t.tPersist !== TIMER_OFF) {
    // Data in flight or probes running: those timers watch the peer (Linux).
    t.tKeepalive = now + t.keepIdleUs;
    return;
  }
  const due = t.lastRcvUs + (t.keepProbes === 0 ? t.keepIdleUs : t.keepIntvlUs);
  if (now < due && t.keepProbes === 0) {
    t.tKeepalive = due;
    return;
  }
  if (t.keepProbes >= t.keepCnt) {
    // RFC 1122 §4.2.3.6: the peer is dead. No reset needed (Linux sends none).
    closeWith(t, timeoutErr(t), cx);
    return;
  }
  sendProbe(t, cx);
  t.keepProbes++;
  t.keepProbesSent++;
  t.tKeepalive = now + t.keepIntvlUs;
}

/** Fires every deadline <= io.nowUs. */
export function onTimers(t: Tcb, cx: Cx): void {
  const now = cx.io.nowUs;
  if (t.tClose <= now) {
    t.tClose = TIMER_OFF;
    closeTimer(t, cx);
    if (t.state === CLOSED) return;
  }
  if (t.tTlp <= now) {
    t.tTlp = TIMER_OFF;
    tlpTimer(t, cx); // before the RTO: a probe due with it replaces the timeout and re-arms it
  }
  if (t.tRtx <= now) {
    t.tRtx = TIMER_OFF;
    rtxTimer(t, cx);
    if (t.state === CLOSED) return;
  }
  if (t.tPersist <= now) {
    t.tPersist = TIMER_OFF;
    persistTimer(t, cx);
    if (t.state === CLOSED) return;
  }
  if (t.tKeepalive <= now) {
    t.tKeepalive = TIMER_OFF;
    keepaliveTimer(t, cx);
    if (t.state === CLOSED) return;
  }
  if (t.tDelack <= now) {
    t.tDelack = TIMER_OFF;
    if (isSynchronized(t.state)) t.ackNow = 1; // RFC 1122 §4.2.3.2: the delayed ACK is due
  }
  if (t.ackNow && isSynchronized(t.state)) sendAck(t, cx);
}
