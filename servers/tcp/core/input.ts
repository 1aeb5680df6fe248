/**
 * The receive path: RFC 9293 §3.10.7 SEGMENT ARRIVES, with RFC 5961 (blind in-window attacks), RFC 7323
 * (window scale, timestamps, PAWS) and RFC 2018 (SACK) option handling.
 *
 * Call order (from the facade):
 *   segmentArrives(t, seg, data, cx)   one segment for an existing TCB (any state but LISTEN); returns a
 *                                      verdict (verdicts.ts). The facade then runs output() and sends
 *                                      a pending ACK (t.ackNow).
 *   listenInput(l, child, seg, cx)     a segment for a listener (RFC 9293 §3.10.7.2).
 *   resetFor(seg, src, dst, out)       RFC 9293 §3.10.7.1: the reset answering a segment for no connection.
 *
 * Order of the checks for a synchronized connection (RFC 9293 §3.10.7.4 with RFC 5961 and RFC 7323):
 *   special cases (retransmitted SYN in SYN_RECEIVED, simultaneous-open SYN-ACK, SYN in TIME_WAIT),
 *   PAWS, sequence acceptability, TS.Recent update, RST, SYN, ACK (ack.ts), trimming to the window,
 *   segment text, FIN.
 *
 * Choices and deviations (Linux's behaviour where the RFCs leave room):
 * - RCV.WND = 0: a segment at exactly RCV.NXT is accepted for its ACK (RFC 9293's "special allowance"),
 *   its data trimmed; a bare FIN there is taken (Linux). A FIN may sit right at the window's right edge.
 * - A segment without timestamps on a connection that negotiated them is accepted (RFC 7323 §3.2 says
 *   SHOULD drop; Linux accepts).
 * - Out-of-window pure ACKs and SYNs, challenge ACKs and PAWS rejections share one per-connection limit
 *   of one ACK per 500 ms (Linux's tcp_invalid_ratelimit); an unacceptable segment carrying data is
 *   always ACKed.
 * - SYN_RECEIVED: a retransmitted SYN is answered with the SYN-ACK again; in a simultaneous open the
 *   peer's SYN-ACK completes the handshake (Linux). A passive child's SYN data is not queued.
 * - TIME_WAIT: a SYN with a newer timestamp (or, without timestamps, a sequence number above RCV.NXT)
 *   closes the TCB with SEG_REOPEN so the caller can hand the SYN to its listener (RFC 6191).
 * - An orphan (closed by the application) that receives new data resets the connection (Linux).
 * - URG is ignored: urgent data stays in the stream (as SO_OOBINLINE). No D-SACK is generated.
 */
import type { TcpRepr } from '../../wire/tcp.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../../wire/tcp.js';
import { seqAdd, seqDiff, seqGe, seqGt, seqInWindow, seqLe, seqLt } from '../../wire/seq.js';
import { ackArrives } from './ack.js';
import type { Cx, OutSeg } from './io.js';
import { oooAdd, oooAdvance } from './ooo.js';
import { sendAck, sendChallengeAck, sendOowAck, sendRst, sendRstSeq, sendSyn, wscaleFor } from './output.js';
import { rtoAfterSynTimeout, rttSample } from './rto.js';
import { closeWith, setState } from './state.js';
import {
  CLOSE_WAIT,
  CLOSED,
  CLOSING,
  DEFAULT_MSS,
  DELACK_US,
  E_NONE,
  ECONNABORTED,
  ECONNREFUSED,
  ECONNRESET,
  ESTABLISHED,
  FIN_WAIT_1,
  FIN_WAIT_2,
  LAST_ACK,
  LISTEN,
  N_ACCEPTABLE,
  N_CONNECTED,
  N_READABLE,
  SYN_RECEIVED,
  SYN_SENT,
  TIME_WAIT,
  TIMER_OFF,
  type Tcb,
} from './tcb.js';
import {
  DROP_BAD_ACK,
  DROP_CLOSED,
  DROP_DATA_AFTER_CLOSE,
  DROP_LISTEN,
  DROP_NO_ACK,
  DROP_NO_SYN,
  DROP_OUT_OF_WINDOW,
  DROP_PAWS,
  DROP_RST_CHALLENGE,
  DROP_RST_IGNORED,
  DROP_SYN_CHALLENGE,
  LI_DROP,
  LI_RESET,
  LI_SYN_RECEIVED,
  SEG_OK,
  SEG_REOPEN,
  SEG_RESET,
  SEG_SYN_AGAIN,
} from './verdicts.js';

/** RFC 7323 §5.5: TS.Recent is invalid after 24 days without a segment. */
const PAWS_IDLE_US = 24 * 86400 * 1_000_000;
/** Smallest MSS we honour (Linux's tcp_min_snd_mss is 48). */
const MIN_SND_MSS = 48;

/**
 * RFC 9293 §3.10.7.1: the reset for a segment that has no connection, from localAddr (our address: the
 * segment's destination) to remoteAddr (the segment's source); false if none must be sent.
 */
export function resetFor(seg: TcpRepr, localAddr: number, remoteAddr: number, out: OutSeg): boolean {
  if (seg.flags & TCP_RST) return false; // "An incoming segment containing a RST is discarded."
  out.clear();
  out.srcAddr = localAddr;
  out.dstAddr = remoteAddr;
  out.srcPort = seg.dstPort;
  out.dstPort = seg.srcPort;
  if (seg.flags & TCP_ACK) {
    out.seq = seg.ackNum >>> 0; // <SEQ=SEG.ACK><CTL=RST>
    out.flags = TCP_RST;
  } else {
    const len = seg.payloadLen + (seg.flags & TCP_SYN ? 1 : 0) + (seg.flags & TCP_FIN ? 1 : 0);
    out.seq = 0; // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
    out.ack = seqAdd(seg.seqNum, len);
    out.flags = TCP_RST | TCP_ACK;
  }
  return true;
}

/** Options of a SYN (RFC 9293 §3.7.1 MSS, RFC 7323 §2.2/§3.2, RFC 2018 §2). */
function negotiate(t: Tcb, seg: TcpRepr, passive: boolean, cx: Cx): void {
  const peerMss = seg.mss > 0 ? seg.mss : DEFAULT_MSS;
  t.sndMss = Math.max(MIN_SND_MSS, Math.min(peerMss, t.rcvMss));
  if (t.optWscale && seg.wscale >= 0) {
    // RFC 7323 §2.2: scaling only when both SYNs carry the option; §2.3: shift at most 14.
    t.wsOk = 1;
    t.sndWscale = Math.min(seg.wscale, 14);
    if (passive) t.rcvWscale = wscaleFor(t.rcvBuf); // active: the shift our SYN offered
  } else {
    t.wsOk = 0;
    t.sndWscale = 0;
    t.rcvWscale = 0;
  }
  t.sackOk = t.optSack && seg.sackPermitted ? 1 : 0;
  t.tsOk = t.optTs && seg.tsPresent ? 1 : 0;
  if (t.tsOk) {
    t.tsRecent = seg.tsVal >>> 0;
    t.tsRecentAgeUs = cx.io.nowUs;
  }
}

/** The peer is alive: keepalive restarts (RFC 1122 §4.2.3.6). */
function heard(t: Tcb, cx: Cx): void {
  const now = cx.io.nowUs;
  t.lastRcvUs = now;
  t.keepProbes = 0;
  if (t.keepAlive && t.tKeepalive !== TIMER_OFF) t.tKeepalive = now + t.keepIdleUs;
}

/** Handshake done: SND.UNA covers our SYN. */
function established(t: Tcb, cx: Cx): void {
  t.rtxCount = 0;
  t.tRtx = TIMER_OFF; // only the SYN was outstanding
  if (t.synRetransmitted) rtoAfterSynTimeout(t.rtt);
  setState(t, ESTABLISHED, cx);
  cx.io.notify(t, t.passive ? N_ACCEPTABLE : N_CONNECTED);
  if (t.appClosed) {
    // A CLOSE issued in SYN_RECEIVED: the FIN follows the data (RFC 9293 §3.10.4).
    t.finSeq = cx.io.sendEnd(t) >>> 0;
    setState(t, FIN_WAIT_1, cx);
  }
}

/** Handshake RTT from the SYN-ACK / ACK of our SYN (RFC 7323 RTTM, or the timed SYN per Karn). */
function synRtt(t: Tcb, seg: TcpRepr, cx: Cx): void {
  const now = cx.io.nowUs;
  if (t.tsOk && seg.tsPresent && seg.tsEcr !== 0) {
    const ms = ((Math.floor(now / 1000) + t.tsOffset - seg.tsEcr) | 0);
    if (ms >= 0) rttSample(t.rtt, ms * 1000, 1000);
  } else if (t.rttTiming && !t.synRetransmitted) {
    rttSample(t.rtt, now - t.rttStartUs, 1);
  }
  t.rttTiming = 0;
}

/** RFC 9293 §3.10.7.3: SYN_SENT. */
function synSentInput(t: Tcb, seg: TcpRepr, data: Uint8Array, cx: Cx): number {
  const f = seg.flags;
  const ack = seg.ackNum >>> 0;
  // First: the ACK must acknowledge our SYN (ISS < SEG.ACK <= SND.NXT).
  if (f & TCP_ACK && (seqLe(ack, t.iss) || seqGt(ack, t.sndMax))) {
    if (!(f & TCP_RST)) sendRstSeq(t, cx, ack); // <SEQ=SEG.ACK><CTL=RST>
    return DROP_BAD_ACK;
  }
  // Second: RST. RFC 5961 §3.2 / RFC 9293: acceptable only with an ACK of our SYN.
  if (f & TCP_RST) {
    if (!(f & TCP_ACK)) return DROP_RST_IGNORED;
    closeWith(t, ECONNREFUSED, cx);
    return SEG_RESET;
  }
  // Fourth: SYN. Fifth: neither SYN nor RST: drop.
  if (!(f & TCP_SYN)) return DROP_NO_SYN;
  t.irs = seg.seqNum >>> 0;
  t.rcvNxt = seqAdd(t.irs, 1);
  negotiate(t, seg, false, cx);
  // Our SYN's window was not scaled (RFC 7323 §2.2): that is what the peer may fill until our next segment.
  t.rcvAdv = seqAdd(t.rcvNxt, Math.min(t.rcvBuf, 65535));
  t.sndWnd = seg.window; // a SYN's window is never scaled
  t.maxSndWnd = seg.window;
  t.sndWl1 = seg.seqNum >>> 0;
  t.sndWl2 = ack;
  t.lastAckSent = t.rcvNxt;
  heard(t, cx);
  if (f & TCP_ACK) {
    // "If SND.UNA > ISS (our SYN has been ACKed), change the connection state to ESTABLISHED" and send
    // <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> (output may carry data with it).
    synRtt(t, seg, cx);
    t.sndUna = ack;
    established(t, cx);
    t.ackNow = 1;
    // "If there are other controls or text in the segment, then continue processing at the sixth step".
    return textAndFin(t, seg, data, seqAdd(seg.seqNum, 1), cx);
  }
  // Simultaneous open: "enter SYN-RECEIVED, form a SYN,ACK segment <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>".
  // Data in that SYN is not queued: the peer retransmits what we do not acknowledge.
  setState(t, SYN_RECEIVED, cx);
  t.rtxCount = 0;
  t.tRtx = TIMER_OFF;
  t.rttTiming = 0;
  sendSyn(t, cx);
  return SEG_OK;
}

/** RFC 9293 §3.10.7.4 first check (with the zero-window allowance for ACKs, RSTs and bare FINs). */
function acceptable(t: Tcb, seq: number, segLen: number): boolean {
  let wnd = seqDiff(t.rcvAdv, t.rcvNxt);
  if (wnd < 0) wnd = 0;
  if (segLen === 0) return wnd === 0 ? seq === t.rcvNxt : seqInWindow(seq, t.rcvNxt, seqAdd(t.rcvNxt, wnd));
  if (wnd === 0) {
    // RFC 9293: "special allowance should be made to accept valid ACKs, URGs, and RSTs": a segment at
    // RCV.NXT is processed (its data trimmed away). Linux does the same (and queues a bare FIN).
    return seq === t.rcvNxt;
  }
  const end = seqAdd(t.rcvNxt, wnd);
  return seqInWindow(seq, t.rcvNxt, end) || seqInWindow(seqAdd(seq, segLen - 1), t.rcvNxt, end);
}

/** RFC 7323 §5.3 R1: PAWS rejects a non-RST segment with a timestamp older than TS.Recent. */
function pawsReject(t: Tcb, seg: TcpRepr, cx: Cx): boolean {
  if (!t.tsOk || !seg.tsPresent || seg.flags & TCP_RST) return false;
  if (!seqLt(seg.tsVal, t.tsRecent)) return false;
  // RFC 7323 §5.5: a TS.Recent idle for more than 24 days is invalid; the segment is accepted.
  if (cx.io.nowUs - t.tsRecentAgeUs > PAWS_IDLE_US) return false;
  return true;
}

/** RFC 9293 §3.10.7.4 for SYN_RECEIVED .. TIME_WAIT. */
function syncInput(t: Tcb, seg: TcpRepr, data: Uint8Array, cx: Cx): number {
  let f = seg.flags;
  let seq = seg.seqNum >>> 0;
  let segLen = seg.payloadLen + (f & TCP_SYN ? 1 : 0) + (f & TCP_FIN ? 1 : 0);
  const ctl = f & (TCP_SYN | TCP_ACK | TCP_RST);

  if (t.state === SYN_RECEIVED) {
    // Our SYN-ACK was lost and the peer retransmitted its SYN: answer with the SYN-ACK again (Linux's
    // tcp_check_req; RFC 9293 would only ACK it, which a peer in SYN_SENT answers with a reset).
    if (ctl === TCP_SYN && seq === t.irs && !pawsReject(t, seg, cx)) {
      sendSyn(t, cx);
      return SEG_SYN_AGAIN;
    }
    // Simultaneous open: the peer's SYN-ACK repeats its SYN and acknowledges ours. Take it as the ACK
    // (Linux's tcp_rcv_state_process "goto pass" case).
    if (!t.passive && ctl === (TCP_SYN | TCP_ACK) && seq === t.irs && seg.ackNum >>> 0 === t.sndMax) {
      f &= ~TCP_SYN;
      seq = seqAdd(seq, 1);
      segLen--;
    }
  }
  if (t.state === TIME_WAIT && ctl === TCP_SYN) {
    // RFC 9293 §3.10.7.4 / RFC 6191: a new SYN in TIME_WAIT may start a new incarnation when it is
    // clearly newer (timestamp, or sequence number above RCV.NXT).
    const newer = t.tsOk && seg.tsPresent ? seqGt(seg.tsVal, t.tsRecent) : seqGt(seq, t.rcvNxt);
    if (newer) {
      closeWith(t, E_NONE, cx);
      return SEG_REOPEN;
    }
  }

  if (pawsReject(t, seg, cx)) {
    sendOowAck(t, cx, segLen, (f & TCP_SYN) !== 0);
    return DROP_PAWS;
  }

  if (!acceptable(t, seq, segLen)) {
    if (f & TCP_RST) return DROP_RST_IGNORED; // RFC 5961 §3.2: out-of-window RST: silently dropped
    if (t.state === TIME_WAIT && f & TCP_FIN && seqAdd(seq, segLen) === t.rcvNxt) {
      // RFC 9293: in TIME_WAIT a retransmitted FIN is acknowledged and the 2 MSL timeout restarts.
      t.tClose = cx.io.nowUs + t.timeWaitUs;
      sendAck(t, cx);
      return DROP_OUT_OF_WINDOW;
    }
    if (f & TCP_SYN) sendChallengeAck(t, cx); // RFC 5961 §4.2, whatever the sequence number
    else sendOowAck(t, cx, segLen, false);
    return DROP_OUT_OF_WINDOW;
  }

  // RFC 7323 §4.3 (R3): TS.Recent follows the newest timestamp of a segment up to Last.ACK.sent.
  if (t.tsOk && seg.tsPresent && seqGe(seg.tsVal, t.tsRecent) && seqLe(seq, t.lastAckSent)) {
    t.tsRecent = seg.tsVal >>> 0;
    t.tsRecentAgeUs = cx.io.nowUs;
  }

  // Second: RST (RFC 5961 §3.2: only an exact match resets; in window otherwise: challenge ACK).
  if (f & TCP_RST) {
    if (seq !== t.rcvNxt) {
      sendChallengeAck(t, cx);
      return DROP_RST_CHALLENGE;
    }
    switch (t.state) {
      case SYN_RECEIVED:
        // Passive: "return this connection to the LISTEN state" = the child goes away (no error for the
        // application: it never saw it). Active (simultaneous open): "connection refused".
        closeWith(t, t.passive ? E_NONE : ECONNREFUSED, cx);
        break;
      case ESTABLISHED:
      case FIN_WAIT_1:
      case FIN_WAIT_2:
      case CLOSE_WAIT:
        // "any outstanding RECEIVEs and SEND should receive 'reset' responses ... enter CLOSED".
        closeWith(t, ECONNRESET, cx);
        break;
      case CLOSING:
      case LAST_ACK:
      case TIME_WAIT:
        // "enter the CLOSED state, delete the TCB, and return" (the application already closed).
        closeWith(t, E_NONE, cx);
        break;
      default:
        closeWith(t, ECONNRESET, cx);
        break;
    }
    return SEG_RESET;
  }

  // Fourth: SYN in a synchronized state (RFC 5961 §4.2): challenge ACK, drop.
  if (f & TCP_SYN) {
    sendChallengeAck(t, cx);
    return DROP_SYN_CHALLENGE;
  }

  // Fifth: ACK. "if the ACK bit is off, drop the segment and return".
  if (!(f & TCP_ACK)) return DROP_NO_ACK;
  heard(t, cx);

  if (t.state === SYN_RECEIVED) {
    const ack = seg.ackNum >>> 0;
    if (!(seqLt(t.sndUna, ack) && seqLe(ack, t.sndMax))) {
      sendRstSeq(t, cx, ack); // "form a reset segment <SEQ=SEG.ACK><CTL=RST> and send it"
      return DROP_BAD_ACK;
    }
    // "enter ESTABLISHED state and continue processing with the variables SND.WND <- SEG.WND,
    // SND.WL1 <- SEG.SEQ, SND.WL2 <- SEG.ACK".
    synRtt(t, seg, cx);
    t.sndUna = ack;
    t.sndWnd = seg.window * 2 ** t.sndWscale;
    if (t.sndWnd > t.maxSndWnd) t.maxSndWnd = t.sndWnd;
    t.sndWl1 = seq;
    t.sndWl2 = ack;
    established(t, cx);
  }

  const v = ackArrives(t, seg, cx);
  if (v !== SEG_OK) return v;

  // The consequences of the ACK for our FIN, per state.
  const finAcked = t.appClosed !== 0 && seqGt(t.sndUna, t.finSeq);
  switch (t.state) {
    case FIN_WAIT_1:
      if (finAcked) setState(t, FIN_WAIT_2, cx); // "if the FIN segment is now acknowledged, enter FIN-WAIT-2"
      break;
    case CLOSING:
      if (finAcked) setState(t, TIME_WAIT, cx); // "if the ACK acknowledges our FIN, enter TIME-WAIT"
      break;
    case LAST_ACK:
      if (finAcked) {
        closeWith(t, E_NONE, cx); // "if our FIN is now acknowledged, delete the TCB, enter CLOSED"
        return SEG_OK;
      }
      break;
    default:
      break;
  }
  return textAndFin(t, seg, data, seq, cx);
}

/**
 * Sixth to eighth steps: URG (ignored: urgent data stays in the stream, as with SO_OOBINLINE), segment
 * text, FIN. `seq` is the sequence number of the first data octet (after a SYN, if any).
 */
function textAndFin(t: Tcb, seg: TcpRepr, data: Uint8Array, seq: number, cx: Cx): number {
  let dSeq = seq >>> 0;
  let dOff = seg.payloadOff;
  let dLen = seg.payloadLen;
  let fin = (seg.flags & TCP_FIN) !== 0;
  if (dLen === 0 && !fin) return SEG_OK;
  switch (t.state) {
    case ESTABLISHED:
    case FIN_WAIT_1:
    case FIN_WAIT_2:
      break;
    default:
      // CLOSE_WAIT, CLOSING, LAST_ACK, TIME_WAIT: "This should not occur since a FIN has been received
      // from the remote side. Ignore the segment text." (and a FIN: remain in the state; a retransmitted
      // FIN is old and was answered by the sequence check).
      return SEG_OK;
  }
  // Trim what we already have (left) and what the window does not cover (right).
  const front = seqDiff(t.rcvNxt, dSeq);
  if (front > 0) {
    const cut = front < dLen ? front : dLen;
    dOff += cut;
    dLen -= cut;
    dSeq = seqAdd(dSeq, cut);
    if (front > cut) fin = false; // the FIN itself is old (cannot happen after the sequence check)
  }
  let room = seqDiff(t.rcvAdv, dSeq);
  const limRoom = seqDiff(cx.io.recvLimit(t) >>> 0, dSeq);
  if (limRoom < room) room = limRoom;
  if (dLen > room) {
    dLen = room > 0 ? room : 0;
    fin = false;
    t.ackNow = 1; // tell the sender where the window is
  }
  if (dLen > 0) {
    if (t.orphan) {
      // Nobody will ever read this: reset, as Linux does for data after close().
      sendRst(t, cx);
      closeWith(t, ECONNABORTED, cx);
      return DROP_DATA_AFTER_CLOSE;
    }
    receiveData(t, data, dOff, dSeq, dLen, cx);
  }
  if (fin) {
    const finSeq = seqAdd(dSeq, dLen);
    if (finSeq === t.rcvNxt) processFin(t, cx);
    else if (seqGt(finSeq, t.rcvNxt)) {
      t.rcvFinPending = 1;
      t.rcvFinSeq = finSeq;
      t.ackNow = 1;
    }
  }
  return SEG_OK;
}

/** In-window data [dSeq, dSeq+dLen) with dSeq >= RCV.NXT. */
function receiveData(t: Tcb, data: Uint8Array, off: number, dSeq: number, dLen: number, cx: Cx): void {
  const io = cx.io;
  if (dLen > t.rcvSegMax) t.rcvSegMax = Math.min(dLen, t.rcvMss);
  if (dSeq === t.rcvNxt) {
    io.recvWrite(t, dSeq, data, off, dLen);
    const hadHoles = t.oooN > 0;
    t.rcvNxt = oooAdvance(t, seqAdd(dSeq, dLen));
    io.notify(t, N_READABLE);
    if (hadHoles) {
      t.ackNow = 1; // RFC 5681 §4.2: ACK at once a segment that fills (part of) a gap
    } else {
      // RFC 5681 §4.2 / RFC 1122 §4.2.3.2: delay the ACK, but ACK at least every second full segment.
      t.rcvUnacked += dLen;
      if (dLen < t.rcvSegMax) t.rcvPushed = 1;
      if (t.rcvUnacked >= 2 * t.rcvSegMax) {
        if (io.ackAtBatchEnd) t.tDelack = io.nowUs;
        else t.ackNow = 1;
      } else if (t.tDelack === TIMER_OFF) t.tDelack = io.nowUs + DELACK_US;
    }
    if (t.rcvFinPending && t.rcvFinSeq === t.rcvNxt) processFin(t, cx);
  } else {
    // Out of order: store it now, remember the range (SACK blocks), duplicate ACK at once (RFC 5681 §4.2).
    t.oooSegsIn++;
    if (oooAdd(t, dSeq, seqAdd(dSeq, dLen))) io.recvWrite(t, dSeq, data, off, dLen);
    t.ackNow = 1;
  }
}

/** Eighth step: the peer's FIN at RCV.NXT. */
function processFin(t: Tcb, cx: Cx): void {
  t.rcvNxt = seqAdd(t.rcvNxt, 1);
  t.finReceived = 1;
  t.rcvFinPending = 0;
  t.ackNow = 1; // "advance RCV.NXT over the FIN, and send an acknowledgment for the FIN"
  cx.io.notify(t, N_READABLE);
  switch (t.state) {
    case SYN_RECEIVED:
    case ESTABLISHED:
      setState(t, CLOSE_WAIT, cx); // "Enter the CLOSE-WAIT state"
      break;
    case FIN_WAIT_1:
      // "If our FIN has been ACKed ... enter TIME-WAIT ...; otherwise, enter the CLOSING state".
      setState(t, t.appClosed && seqGt(t.sndUna, t.finSeq) ? TIME_WAIT : CLOSING, cx);
      break;
    case FIN_WAIT_2:
      setState(t, TIME_WAIT, cx); // "Enter the TIME-WAIT state"
      break;
    default:
      break;
  }
}

/** See the header. Returns a verdict (verdicts.ts). */
export function segmentArrives(t: Tcb, seg: TcpRepr, data: Uint8Array, cx: Cx): number {
  t.segsIn++;
  switch (t.state) {
    case CLOSED:
      // RFC 9293 §3.10.7.1: "all data in the incoming segment is discarded"; a reset answers it.
      if (resetFor(seg, t.localAddr, t.remoteAddr, cx.out)) cx.io.emit(t, cx.out);
      return DROP_CLOSED;
    case LISTEN:
      return DROP_LISTEN;
    case SYN_SENT:
      return synSentInput(t, seg, data, cx);
    case SYN_RECEIVED:
    case ESTABLISHED:
    case FIN_WAIT_1:
    case FIN_WAIT_2:
    case CLOSE_WAIT:
    case CLOSING:
    case LAST_ACK:
    case TIME_WAIT:
      return syncInput(t, seg, data, cx);
    default:
      return DROP_CLOSED;
  }
}

/**
 * RFC 9293 §3.10.7.2, a segment for a listener. A SYN (no ACK, RST or FIN): `child` (a fresh Tcb the
 * caller allocated, with the four-tuple set) inherits the listener's options, goes SYN_RECEIVED and
 * emits its SYN-ACK: LI_SYN_RECEIVED. An ACK: LI_RESET (answer with resetFor). Anything else: LI_DROP.
 */
export function listenInput(l: Tcb, child: Tcb, seg: TcpRepr, cx: Cx): number {
  const f = seg.flags;
  if (f & TCP_RST) return LI_DROP; // "first check for an RST: an incoming RST should be ignored"
  if (f & TCP_ACK) return LI_RESET; // "second check for an ACK: form a reset <SEQ=SEG.ACK><CTL=RST>"
  if (!(f & TCP_SYN) || f & TCP_FIN) return LI_DROP; // no SYN; SYN+FIN dropped like Linux
  if (l.state !== LISTEN) return LI_DROP;
  inheritOptions(child, l);
  child.passive = 1;
  child.irs = seg.seqNum >>> 0;
  child.rcvNxt = seqAdd(child.irs, 1);
  child.iss = cx.io.isn(child) >>> 0;
  child.sndUna = child.sndNxt = child.sndMax = child.iss;
  child.recover = child.iss;
  negotiate(child, seg, true, cx);
  if (child.tsOk) child.tsOffset = cx.io.random32() >>> 0;
  child.sndWnd = seg.window; // unscaled in a SYN
  child.maxSndWnd = seg.window;
  child.sndWl1 = child.irs;
  child.sndWl2 = child.iss;
  // Data in the SYN is not queued: without TFO, Linux does not either; the peer retransmits it.
  heard(child, cx);
  setState(child, SYN_RECEIVED, cx);
  sendSyn(child, cx);
  return LI_SYN_RECEIVED;
}

/** Socket options a listener passes to the connections it accepts. */
export function inheritOptions(dst: Tcb, src: Tcb): void {
  dst.rcvBuf = src.rcvBuf;
  dst.rcvMss = src.rcvMss;
  dst.optWscale = src.optWscale;
  dst.optSack = src.optSack;
  dst.optTs = src.optTs;
  dst.noDelay = src.noDelay;
  dst.keepAlive = src.keepAlive;
  dst.keepIdleUs = src.keepIdleUs;
  dst.keepIntvlUs = src.keepIntvlUs;
  dst.keepCnt = src.keepCnt;
  dst.ccAlgo = src.ccAlgo;
  dst.optTlp = src.optTlp;
  dst.tlpDelAckUs = src.tlpDelAckUs;
  dst.userTimeoutUs = src.userTimeoutUs;
  dst.maxRetries = src.maxRetries;
  dst.synRetries = src.synRetries;
  dst.synAckRetries = src.synAckRetries;
  dst.timeWaitUs = src.timeWaitUs;
  dst.finWait2Us = src.finWait2Us;
}

