/**
 * Tail Loss Probe (RFC 8985 §7): when the last segments of a flight (or their ACKs) are lost, no
 * duplicate ACK can come and only the retransmission timer (RTO_MIN 200 ms, then doubled per timeout)
 * would notice. A probe timeout PTO of about two round trips sends one segment (§7.3) whose ACK either
 * shows that all is well or, through SACK, shows the hole so that fast recovery repairs it (§7.4).
 *
 * State (tcb.ts): tTlp (the PTO deadline, absolute us, Infinity = off, included in nextDeadline), the
 * episode tlpActive / tlpEnd / tlpRetrans (TLP.end_seq / TLP.is_retrans), options optTlp and
 * tlpDelAckUs, counters tlpProbes / tlpRecoveries. The RTO (tRtx) stays armed underneath as the backstop
 * and the PTO is never later than it, which is the RFC's "PTO armed instead of the RTO, never firing
 * later than the RTO would" with two deadlines instead of one timer in two modes.
 *
 * Call order:
 *   tlpSchedule(t, cx)       after new data (not a probe) was sent (output.ts) and after an ACK advanced
 *                            SND.UNA (ack.ts, once tRtx was restarted): arms or disarms tTlp (§7.2).
 *   timers.ts tlpTimer       on PTO expiry sends the probe (§7.3) and calls tlpProbeSent.
 *   tlpProbeDelivered(t)     in ACK processing: the SACK scoreboard covers the probe's last octet while
 *                            data below it is still unacknowledged, so that data is lost (ack.ts then
 *                            enters recovery).
 *   tlpOnAck(t, ack, pureDup, seg, cx)  for every acceptable ACK after the ACK processing (§7.4).
 *   tlpCancel(t)             recovery began (fast or RTO): the episode ends (§7.1 TLP_init).
 *
 * Choices:
 * - SACK is required (RFC 8985 §4 lists SACK as a requirement of RACK-TLP; Linux's
 *   tcp_schedule_loss_probe requires it too). Without SACK a probe's duplicate ACK cannot say which
 *   segment arrived, so the probe could not start recovery; those connections keep plain RTO recovery.
 * - Armed only in the "open" state (Linux's TCP_CA_Open): established data transfer or closing states
 *   that still send (a lost FIN is a tail loss too), not in fast recovery nor RTO recovery (SND.UNA below
 *   the RTO's recovery point or a timeout pending backoff), no SACKed data or duplicate ACKs pending
 *   (then the SACK / duplicate ACK logic owns loss detection), the peer's window open, no go-back-N
 *   resend in progress, and no probe outstanding (one probe per episode, §7.3; a probe acknowledged
 *   exactly up to its end but not yet decided by §7.4.2 no longer blocks the next episode, see
 *   tlpProbeSent).
 * - PTO (§7.2): 2*SRTT, plus tlpDelAckUs (TLP.max_ack_delay, default 50 ms: see TLP_DELACK_US in
 *   tcb.ts for why not the RFC's 200 ms) when the flight is at most one segment, else plus 2 ms (Linux's
 *   TCP_TIMEOUT_MIN: slack for ACK processing and timer granularity); 1 s with no RTT sample; capped at
 *   the RTO deadline. A probe due with the RTO replaces the timeout: no backoff, no loss window (cwnd =
 *   1 MSS), no go-back-N.
 * - §7.4 DSACK detection of a needless probe: a first SACK block at or below the ACK whose right edge is
 *   the probe's end. keepnet's own receiver sends no D-SACK, so against it a needless retransmitted
 *   probe (the original's ACK was only delayed or lost) ends as "repaired" (case 3) and costs one cwnd
 *   reduction, as in Linux against a peer without D-SACK.
 * - The probe's SACK (tlpProbeDelivered) is an RFC 8985 §6.2 RACK inference limited to the probe: it was
 *   sent at least 2*SRTT after every octet below it, so with RACK.rtt = the probe's RTT every unSACKed
 *   octet below it has waited longer than RACK.rtt + reo_wnd (reo_wnd <= SRTT). This lets one SACK
 *   above a multi-segment tail hole start recovery where DupThresh (even RFC 5827's lowered one) would
 *   not be reached.
 */
import type { TcpRepr } from '../../wire/tcp.js';
import { seqDiff, seqGe, seqGt, seqLe, seqLt } from '../../wire/seq.js';
import { ccEnv, ccOf, effMss, type Cx } from './io.js';
import { sbIsSacked } from './scoreboard.js';
import { CLOSE_WAIT, CLOSING, ESTABLISHED, FIN_WAIT_1, LAST_ACK, TIMER_OFF, type Tcb } from './tcb.js';

/** RFC 8985 §7.2: PTO with no RTT sample (the initial RTO of RFC 6298). */
export const TLP_PTO_NO_RTT_US = 1_000_000;
/** Slack added to 2*SRTT for a flight of more than one segment (Linux's TCP_TIMEOUT_MIN, 2 ms). */
export const TLP_SLACK_US = 2_000;

function probeState(state: number): boolean {
  return state === ESTABLISHED || state === CLOSE_WAIT || state === FIN_WAIT_1 || state === CLOSING || state === LAST_ACK;
}

/** RFC 8985 §7.2 TLP_calc_PTO before the RTO cap (us). */
export function tlpPtoUs(t: Tcb): number {
  if (t.rtt.hasSample === 0) return TLP_PTO_NO_RTT_US;
  const flight = seqDiff(t.sndMax, t.sndUna);
  return 2 * t.rtt.srttUs + (flight <= effMss(t) ? t.tlpDelAckUs : TLP_SLACK_US);
}

/** Whether a probe may be scheduled now (the conditions in the header). */
export function tlpAllowed(t: Tcb): boolean {
  return (
    t.optTlp !== 0 &&
    t.sackOk !== 0 &&
    probeState(t.state) &&
    t.sndUna !== t.sndMax &&
    t.sndNxt === t.sndMax &&
    t.inRecovery === 0 &&
    t.rtxCount === 0 &&
    seqGe(t.sndUna, t.recover) &&
    (t.tlpActive === 0 || seqGe(t.sndUna, t.tlpEnd)) &&
    t.sb.n === 0 &&
    t.dupAcks === 0 &&
    t.sndWnd > 0 &&
    t.tRtx !== TIMER_OFF
  );
}

/** RFC 8985 §7.2: (re)arms the PTO, never later than the RTO deadline; disarms it when not allowed. */
export function tlpSchedule(t: Tcb, cx: Cx): void {
  if (!tlpAllowed(t)) {
    t.tTlp = TIMER_OFF;
    return;
  }
  const at = cx.io.nowUs + Math.ceil(tlpPtoUs(t));
  t.tTlp = at < t.tRtx ? at : t.tRtx;
}

/** Ends the TLP episode and the PTO (RFC 8985 §7.1 TLP_init: fast recovery or RTO recovery began). */
export function tlpCancel(t: Tcb): void {
  t.tTlp = TIMER_OFF;
  t.tlpActive = 0;
}

/** §7.4.2 case 3: the probe repaired a loss: one fast recovery's window reduction (none while recovering). */
function repaired(t: Tcb, cx: Cx): void {
  t.tlpActive = 0;
  t.tlpRecoveries++;
  if (t.inRecovery === 0 && seqGe(t.sndUna, t.recover)) {
    const cc = ccOf(t);
    cc.onCongestion(t.cc, ccEnv(t, cx));
    cc.onExitRecovery(t.cc, ccEnv(t, cx));
  }
}

/**
 * Records a probe that was just sent (§7.3: TLP.end_seq = SND.NXT). An earlier episode still undecided
 * (a retransmitted probe acknowledged exactly up to its end, §7.4.2) is decided first as case 3: a
 * whole PTO (>= 2*SRTT) passed since, and neither the D-SACK nor the duplicate ACK that would show the
 * probe needless came.
 */
export function tlpProbeSent(t: Tcb, retrans: boolean, cx: Cx): void {
  if (t.tlpActive !== 0) repaired(t, cx);
  t.tlpActive = 1;
  t.tlpEnd = t.sndMax;
  t.tlpRetrans = retrans ? 1 : 0;
  t.tlpProbes++;
}

/** The probe's last octet is SACKed while SND.UNA is below the probe: the data in between is lost. */
export function tlpProbeDelivered(t: Tcb): boolean {
  if (t.tlpActive === 0 || t.sb.n === 0 || !seqLt(t.sndUna, t.tlpEnd)) return false;
  const last = (t.tlpEnd - 1) >>> 0;
  return seqLt(t.sndUna, last) && sbIsSacked(t.sb, last);
}

/**
 * RFC 8985 §7.4.2 TLP_process_ack, for an acceptable ACK `ack` after its processing. pureDup: it did not
 * advance SND.UNA and carried no SACK blocks, data or window change.
 */
export function tlpOnAck(t: Tcb, ack: number, pureDup: boolean, seg: TcpRepr, cx: Cx): void {
  if (t.tlpActive === 0 || seqLt(ack, t.tlpEnd)) return;
  if (t.tlpRetrans === 0) {
    t.tlpActive = 0; // the probe carried new data and was delivered
  } else if (seg.sackCount > 0 && seqLe(seg.sackBlocks[1] >>> 0, ack) && seg.sackBlocks[1] >>> 0 === t.tlpEnd) {
    t.tlpActive = 0; // case 1: a D-SACK for the probe, the original had arrived (RFC 2883)
  } else if (seqGt(ack, t.tlpEnd)) {
    // Case 3: the probe repaired a loss without recovery starting: the congestion response of a fast
    // recovery episode (enter, then exit at once), unless a recovery already reduced the window.
    repaired(t, cx);
  } else if (pureDup) {
    t.tlpActive = 0; // case 2: both the original and the probe arrived
  }
}
