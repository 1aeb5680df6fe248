/**
 * ACK processing for a synchronized connection (RFC 9293 §3.10.7.4, fifth step, ESTABLISHED rules) and
 * loss recovery:
 *   - RFC 5961 §5.2 ACK acceptability (SND.UNA - MAX.SND.WND <= SEG.ACK <= SND.MAX, else challenge ACK);
 *   - RTT measurement (RFC 7323 §4 RTTM from TSecr; else RFC 6298 §3 Karn's one timed segment);
 *   - RFC 6298 §5.2/§5.3 retransmission timer rules;
 *   - RFC 5681 §3.2 / RFC 6582 NewReno fast retransmit and fast recovery when SACK is off;
 *   - RFC 6675 SACK loss recovery when SACK is on (the scoreboard, entering recovery on DupThresh
 *     duplicate ACKs or IsLost(SND.UNA); NextSeg itself runs in output.ts);
 *   - RFC 8985 §7 tail loss probes (tlp.ts): the PTO restarted on each ACK of new data, the probe's
 *     episode settled (§7.4), and a SACKed probe above unacknowledged data starting recovery;
 *   - the send window update (RFC 9293 SND.WL1 / SND.WL2 rule).
 *
 * Call order: input.ts calls ackArrives(t, seg, cx) once per acceptable segment with ACK set, after the
 * RST and SYN checks; it returns 0 or a DROP_* verdict (the segment must then be dropped), and the
 * caller runs the state-specific consequences (our FIN acknowledged) and output() afterwards.
 */
import type { TcpRepr } from '../../wire/tcp.js';
import { TCP_FIN, TCP_SYN } from '../../wire/tcp.js';
import { seqAdd, seqDiff, seqGe, seqGt, seqInWindow, seqLe, seqLt } from '../../wire/seq.js';
import { ccEnv, ccOf, effMss, type Cx } from './io.js';
import { DUP_THRESH, sendChallengeAck, sendRange, tsNow } from './output.js';
import { rtoCurrentUs, rtoResetBackoff, rttSample } from './rto.js';
import { sbEnterRecovery, sbIsLost, sbOnFastRetransmit, sbTrim, sbUpdate } from './scoreboard.js';
import { N_WRITABLE, TIMER_OFF, type Tcb } from './tcb.js';
import { tlpCancel, tlpOnAck, tlpProbeDelivered, tlpSchedule } from './tlp.js';
import { DROP_ACK_TOO_OLD, DROP_ACK_UNSENT } from './verdicts.js';

/** RTT sample for an ACK that acknowledges new data. */
function measureRtt(t: Tcb, seg: TcpRepr, ack: number, cx: Cx): void {
  const now = cx.io.nowUs;
  if (t.tsOk && seg.tsPresent && seg.tsEcr !== 0) {
    // RFC 7323 §4.1: RTTM from the echoed timestamp, valid even for retransmitted data.
    const ms = (tsNow(t, now) - seg.tsEcr) | 0;
    if (ms >= 0) rttSample(t.rtt, ms * 1000, 1000);
    t.rttTiming = 0;
  } else if (t.rttTiming && seqGe(ack, t.rttSeq)) {
    // RFC 6298 §3 (Karn): the timed segment was never retransmitted (a retransmission cancels timing).
    rttSample(t.rtt, now - t.rttStartUs, 1);
    t.rttTiming = 0;
  }
}

/** Fast retransmit of the segment at SND.UNA (length up to one SMSS, never past SND.MAX or a SACKed range). */
function retransmitHead(t: Tcb, cx: Cx): number {
  let len = Math.min(effMss(t), seqDiff(t.sndMax, t.sndUna));
  if (t.sackOk && t.sb.n > 0) {
    const hole = seqDiff(t.sb.r[0], t.sndUna);
    if (hole > 0 && hole < len) len = hole;
  }
  if (len <= 0) return 0;
  sendRange(t, cx, t.sndUna, len);
  return len;
}

/** RFC 6582 §3.2 step 2 / RFC 6675 §5 step 4: start loss recovery (if the last one is over). */
function enterRecovery(t: Tcb, cx: Cx): void {
  // RFC 6582 §3.2 step 2: only when the cumulative ACK covers `recover` (the previous recovery point, or
  // SND.MAX at the last RTO): duplicate ACKs of old data must not start a second window reduction.
  if (!seqGe(t.sndUna, t.recover)) return;
  const mss = effMss(t);
  t.recover = t.sndMax;
  tlpCancel(t); // RFC 8985 §7.1: a recovery episode ends the TLP episode
  ccOf(t).onCongestion(t.cc, ccEnv(t, cx));
  t.fastRetrans++;
  if (t.sackOk) {
    t.inRecovery = 2;
    sbEnterRecovery(t.sb, t.sndUna);
    const len = retransmitHead(t, cx);
    if (len > 0) sbOnFastRetransmit(t.sb, t.sndUna, len);
  } else {
    t.inRecovery = 1;
    retransmitHead(t, cx);
    // RFC 5681 §3.2 step 4 / RFC 6582: cwnd = ssthresh + 3*SMSS (the segments that left the network).
    t.cc.cwnd = t.cc.ssthresh + DUP_THRESH * mss;
  }
}

/** A duplicate ACK (RFC 5681 §2 definition, or RFC 6675: an ACK SACKing new data). */
function dupAck(t: Tcb, cx: Cx): void {
  t.dupAcksIn++;
  if (t.inRecovery === 1) {
    // RFC 6582 §3.2 step 4 (RFC 5681 §3.2 step 4): inflate by one SMSS per additional duplicate ACK.
    t.cc.cwnd += effMss(t);
    return;
  }
  if (t.inRecovery === 2) return; // RFC 6675: pipe (output.ts) accounts for what left the network
  t.dupAcks++;
  const thresh = dupThresh(t, cx);
  // RFC 8985 §7.4: the SACK of a tail loss probe shows the unSACKed data below it lost (tlp.ts).
  if (t.dupAcks >= thresh || (t.sackOk && (sbIsLost(t.sb, t.sndUna, effMss(t), thresh) || tlpProbeDelivered(t)))) {
    enterRecovery(t, cx);
  }
}

/**
 * RFC 5827 early retransmit: with fewer than four segments outstanding and nothing new that may be
 * sent (no unsent data, or the peer's window allows no new segment), three duplicate ACKs can never
 * come: the threshold drops to the outstanding segments less one, instead of waiting for the RTO.
 */
function dupThresh(t: Tcb, cx: Cx): number {
  const mss = effMss(t);
  const outstanding = Math.ceil(seqDiff(t.sndMax, t.sndUna) / mss);
  if (outstanding >= DUP_THRESH + 1) return DUP_THRESH;
  const unsent = seqDiff(cx.io.sendEnd(t), t.sndMax) > 0;
  const windowRoom = seqDiff(seqAdd(t.sndUna, t.sndWnd), t.sndMax) >= mss;
  if (unsent && windowRoom) return DUP_THRESH;
  return Math.max(1, outstanding - 1);
}

/** SEG.ACK advanced SND.UNA by `acked` octets. */
function newAck(t: Tcb, seg: TcpRepr, ack: number, acked: number, cx: Cx): void {
  const now = cx.io.nowUs;
  const oldUna = t.sndUna;
  const flightBefore = seqDiff(t.sndNxt, oldUna);
  measureRtt(t, seg, ack, cx);
  // RFC 6298 §5.7 / contracts: new data acknowledged ends the backoff.
  rtoResetBackoff(t.rtt);
  t.rtxCount = 0;
  t.rtxStartUs = now;
  t.sndUna = ack;
  if (seqLt(t.sndNxt, ack)) t.sndNxt = ack; // acknowledged beyond a go-back-N SND.NXT
  let dataAcked = acked;
  if (t.appClosed && seqInWindow(t.finSeq, oldUna, ack)) dataAcked--;
  if (t.sackOk) {
    if (seg.sackCount > 0) sbUpdate(t.sb, t.sndUna, t.sndMax, seg.sackBlocks, seg.sackCount);
    else sbTrim(t.sb, t.sndUna);
  }
  const mss = effMss(t);
  if (t.inRecovery !== 0) {
    if (seqGe(ack, t.recover)) {
      // Full ACK: RFC 6582 §3.2 step 3 / RFC 6675 §5 (the RecoveryPoint is covered).
      t.inRecovery = 0;
      t.dupAcks = 0;
      ccOf(t).onExitRecovery(t.cc, ccEnv(t, cx));
    } else if (t.inRecovery === 1) {
      // Partial ACK (RFC 6582 §3.2 step 4): retransmit the next hole, deflate by the amount acked, add
      // back one SMSS if at least one SMSS was acked.
      retransmitHead(t, cx);
      let cwnd = t.cc.cwnd - acked;
      if (acked >= mss) cwnd += mss;
      t.cc.cwnd = cwnd > mss ? cwnd : mss;
    }
  } else {
    t.dupAcks = 0;
    // RFC 7661 / RFC 9438 §5.8: grow only a window that was used (cwnd-limited, or at least half full).
    if (t.cwndLimited || 2 * flightBefore >= t.cc.cwnd) ccOf(t).onAck(t.cc, dataAcked, ccEnv(t, cx));
    // RFC 6675 IsLost with RFC 5827's early retransmit threshold: a SACK arriving with an ACK that advanced
    // SND.UNA counts as much as one on a duplicate ACK (the tail [lost, SACKed] of a response).
    if (t.sackOk && t.sndUna !== t.sndMax && (sbIsLost(t.sb, t.sndUna, mss, dupThresh(t, cx)) || tlpProbeDelivered(t))) {
      enterRecovery(t, cx);
    }
  }
  // Drag `recover` along outside recovery so it never falls 2^31 behind (wrap-safe comparisons).
  if (t.inRecovery === 0 && seqGt(t.sndUna, t.recover)) t.recover = t.sndUna;
  // RFC 6298 §5.2 / §5.3.
  if (t.sndUna === t.sndMax) t.tRtx = TIMER_OFF;
  else t.tRtx = now + rtoCurrentUs(t.rtt);
  tlpSchedule(t, cx); // RFC 8985 §7.2: restart the PTO on an ACK of new data (or disarm it)
  if (dataAcked > 0) cx.io.notify(t, N_WRITABLE);
}

/** See the header. Returns 0, or DROP_ACK_UNSENT / DROP_ACK_TOO_OLD after a challenge ACK. */
export function ackArrives(t: Tcb, seg: TcpRepr, cx: Cx): number {
  const ack = seg.ackNum >>> 0;
  // RFC 9293: "If the ACK acks something not yet sent (SEG.ACK > SND.NXT) then send an ACK, drop".
  if (seqGt(ack, t.sndMax)) {
    sendChallengeAck(t, cx);
    return DROP_ACK_UNSENT;
  }
  // RFC 5961 §5.2: an ACK older than SND.UNA - MAX.SND.WND is dropped with a challenge ACK.
  if (seqLt(ack, seqAdd(t.sndUna, -Math.max(t.maxSndWnd, 1)))) {
    sendChallengeAck(t, cx);
    return DROP_ACK_TOO_OLD;
  }
  t.persistProbes = 0;
  const wnd = seg.window * 2 ** t.sndWscale;
  const acked = seqDiff(ack, t.sndUna);
  const classic = seg.payloadLen === 0 && (seg.flags & (TCP_SYN | TCP_FIN)) === 0 && wnd === t.sndWnd;
  // RFC 8985 §7.4: settle an outstanding probe's episode before the ACK re-arms timers.
  if (t.tlpActive) tlpOnAck(t, ack, acked === 0 && classic && seg.sackCount === 0, seg, cx);
  if (acked > 0) {
    newAck(t, seg, ack, acked, cx);
  } else if (acked === 0 && t.sndMax !== t.sndUna) {
    let newlySacked = 0;
    if (t.sackOk && seg.sackCount > 0) newlySacked = sbUpdate(t.sb, t.sndUna, t.sndMax, seg.sackBlocks, seg.sackCount);
    if (classic || newlySacked > 0) dupAck(t, cx);
  }
  // Send window update: RFC 9293 §3.10.7.4 (SND.UNA =< SEG.ACK =< SND.NXT, and the segment is newer).
  if (acked >= 0 && (seqLt(t.sndWl1, seg.seqNum) || (t.sndWl1 === seg.seqNum >>> 0 && seqLe(t.sndWl2, ack)))) {
    t.sndWnd = wnd;
    t.sndWl1 = seg.seqNum >>> 0;
    t.sndWl2 = ack;
    if (wnd > t.maxSndWnd) t.maxSndWnd = wnd;
    if (wnd > 0) t.persistBackoff = 0;
  }
  return 0;
}
