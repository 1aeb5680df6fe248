/**
 * The send path: everything the core puts on the wire goes through `emitNow` (one place fills addresses,
 * ACK, window, timestamps and SACK blocks, and does the bookkeeping an ACK-bearing segment implies).
 *
 * Call order (from input.ts, timers.ts and the facade):
 *   sendSyn(t, cx)          SYN (SYN_SENT) or SYN-ACK (SYN_RECEIVED), first send or retransmission.
 *   output(t, cx, force)    send the data (and FIN) that windows, Nagle and SWS avoidance allow; arms the
 *                           retransmission timer (RFC 6298 §5.1) or the persist timer. force: the persist
 *                           timer's SWS override (RFC 9293 §3.8.6.2.1 "override timeout") for one segment.
 *                           New data sent (re)starts the tail loss probe timeout (tlp.ts).
 *   sendRange(t, cx, seq, len)   one segment of sequence space [seq, seq+len) (data, maybe FIN):
 *                           retransmissions (RTO head, fast retransmit, NextSeg) and output's sends.
 *   sendAck / sendChallengeAck / sendOowAck / sendProbe / sendRst / sendRstSeq: control segments.
 *
 * Window we advertise (windowField): receiver SWS avoidance (RFC 9293 §3.8.6.2.2, RFC 1122 §4.2.3.3):
 * the right edge moves only when it can move by at least min(rcvBuf/2, rcvMss); it never moves left
 * (RFC 9293 §3.8.6.2.2 "MUST NOT shrink"), rounding the scaled field up when needed (as Linux does).
 *
 * Sender rules in output (RFC 9293 §3.7.4 Nagle, §3.8.6.2.1 sender SWS avoidance), for a segment of
 * `len` < a full segment:
 *   - it carries all queued data (and maybe the FIN): send unless Nagle holds it (unacknowledged data
 *     outstanding and !noDelay); a segment carrying our FIN is never held (Linux's tcp_nagle_test);
 *   - it is cut by cwnd: wait for ACKs (they are coming: data is in flight);
 *   - it is cut by the peer's window: send only if len >= maxSndWnd / 2 (and Nagle allows); else wait
 *     for a window update, or for the persist timer (the override timer) when nothing is in flight.
 * The FIN needs one octet of the peer's window (as Linux: it then waits for a window update or persist
 * probe), never cwnd. PSH is set on the segment that empties the send queue.
 *
 * TSO (io.gsoMaxBytes > 0): one emitted segment may carry several full segments' worth of data (up to
 * gsoMaxBytes with its header), which the link cuts into segments of one effective MSS (OutSeg.gsoSize).
 * The rules above apply to the wire segments it stands for: a TSO segment is sent only for data that
 * windows and cwnd allow, and it is a whole number of full segments unless it carries the end of the
 * queued data (then only its last wire segment is short, exactly as if sent one by one: Nagle and SWS
 * avoidance judge that tail). Retransmissions (RTO head, fast retransmit, NextSeg) and everything sent in
 * SACK recovery stay one MSS each: recovery accounting (pipe, HighRxt) is per segment.
 */
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../../wire/tcp.js';
import { seqAdd, seqDiff, seqGt, seqInWindow, seqLt } from '../../wire/seq.js';
import { ccEnv, ccOf, effMss, type Cx } from './io.js';
import { RTO_MAX_US, rtoCurrentUs } from './rto.js';
import { NEXTSEG_NEW, NEXTSEG_NONE, sbNextSeg, sbOnRetransmit, sbPipe } from './scoreboard.js';
import {
  CLOSE_WAIT,
  CLOSING,
  ESTABLISHED,
  FIN_WAIT_1,
  LAST_ACK,
  SYN_RECEIVED,
  SYN_SENT,
  TIMER_OFF,
  type Tcb,
} from './tcb.js';
import { tlpSchedule } from './tlp.js';

/** RFC 6675 DupThresh. */
export const DUP_THRESH = 3;
/** RFC 5961 §7 challenge/out-of-window ACK rate limit per connection (Linux's tcp_invalid_ratelimit). */
export const OOW_ACK_INTERVAL_US = 500_000;

/** States in which our data (and FIN) may be sent or retransmitted. */
export function canSendData(state: number): boolean {
  switch (state) {
    case ESTABLISHED:
    case CLOSE_WAIT:
    case FIN_WAIT_1:
    case CLOSING:
    case LAST_ACK:
      return true;
    default:
      return false;
  }
}

/** Smallest shift that lets a 16-bit window cover rcvBuf (RFC 7323 §2.3: at most 14). */
export function wscaleFor(rcvBuf: number): number {
  let s = 0;
  while (s < 14 && 65535 * 2 ** s < rcvBuf) s++;
  return s;
}

/** RFC 7323 TSval: a 1 ms clock plus the connection's random offset. */
export function tsNow(t: Tcb, nowUs: number): number {
  return (Math.floor(nowUs / 1000) + t.tsOffset) >>> 0;
}

/** Sequence number just past the data the application queued (the FIN's, once it closed). */
export function dataEnd(t: Tcb, cx: Cx): number {
  return t.appClosed ? t.finSeq : cx.io.sendEnd(t) >>> 0;
}

/** Window field for a non-SYN segment, updating rcvAdv (see the header). */
function windowField(t: Tcb, cx: Cx): number {
  const ws = t.rcvWscale;
  let cur = seqDiff(t.rcvAdv, t.rcvNxt);
  if (cur < 0) cur = 0;
  let win = cur;
  if (t.state !== SYN_RECEIVED) {
    // In SYN_RECEIVED the receive buffer may not exist yet: keep what the SYN-ACK offered.
    const limit = cx.io.recvLimit(t) >>> 0;
    const thresh = Math.min(t.rcvBuf >>> 1, t.rcvMss);
    if (seqDiff(limit, t.rcvAdv) >= (thresh > 0 ? thresh : 1)) win = seqDiff(limit, t.rcvNxt);
  }
  const max = 65535 * 2 ** ws;
  if (win > max) win = max;
  let field = Math.floor(win / 2 ** ws);
  if (field * 2 ** ws < cur) field = Math.min(65535, Math.ceil(cur / 2 ** ws));
  const right = seqAdd(t.rcvNxt, field * 2 ** ws);
  if (seqGt(right, t.rcvAdv)) t.rcvAdv = right;
  return field;
}

/** Largest SACK blocks an ACK of ours carries: 3 with timestamps, 4 without (RFC 2018 §3). */
function sackRoom(t: Tcb): number {
  if (!t.sackOk || t.oooN === 0) return 0;
  const max = t.tsOk ? 3 : 4;
  const n = t.oooN < max ? t.oooN : max;
  return 4 + 8 * n;
}

/** Fills cx.out with a segment header from t (addresses, seq, ack, window, options per state). */
function fill(t: Tcb, cx: Cx, seq: number, flags: number): void {
  const o = cx.out;
  o.clear();
  o.srcAddr = t.localAddr;
  o.dstAddr = t.remoteAddr;
  o.srcPort = t.localPort;
  o.dstPort = t.remotePort;
  o.seq = seq >>> 0;
  o.flags = flags;
  if (flags & TCP_RST) {
    // RFC 7323 §3.2: RSTs need no timestamps; Linux sends its resets bare, window 0.
    if (flags & TCP_ACK) o.ack = t.rcvNxt;
    return;
  }
  if (flags & TCP_ACK) o.ack = t.rcvNxt;
  const now = cx.io.nowUs;
  if (flags & TCP_SYN) {
    // RFC 7323 §2.2: the window of a SYN is never scaled.
    o.window = Math.min(t.rcvBuf, 65535);
    if (t.state !== SYN_SENT) t.rcvAdv = seqAdd(t.rcvNxt, o.window);
    o.mss = t.rcvMss;
    const offer = t.state === SYN_SENT;
    if (offer ? t.optWscale : t.wsOk) o.wscale = t.rcvWscale;
    o.sackPermitted = (offer ? t.optSack : t.sackOk) !== 0;
    if (offer ? t.optTs : t.tsOk) {
      o.tsPresent = true;
      o.tsVal = tsNow(t, now);
      o.tsEcr = offer ? 0 : t.tsRecent;
    }
    return;
  }
  o.window = windowField(t, cx);
  if (t.tsOk) {
    o.tsPresent = true;
    o.tsVal = tsNow(t, now);
    o.tsEcr = t.tsRecent;
  }
  if (t.sackOk && t.oooN > 0) {
    // RFC 2018 §4: most recently changed range first (ooo.ts keeps that order).
    const max = t.tsOk ? 3 : 4;
    const n = t.oooN < max ? t.oooN : max;
    for (let i = 0; i < 2 * n; i++) o.sackBlocks[i] = t.ooo[i];
    o.sackCount = n;
  }
}

/** Emits cx.out; every ACK-bearing segment satisfies the delayed ACK and records Last.ACK.sent. */
function emitNow(t: Tcb, cx: Cx): boolean {
  const o = cx.out;
  if (o.flags & TCP_ACK && !(o.flags & TCP_RST)) {
    t.lastAckSent = t.rcvNxt;
    t.rcvUnacked = 0;
    t.rcvPushed = 0;
    t.ackNow = 0;
    t.tDelack = TIMER_OFF;
  }
  t.segsOut++;
  let ok = false;
  try {
    ok = cx.io.emit(t, o);
  } catch {
    ok = false; // the contract says never throw; a throwing caller is treated as a lost segment
  }
  return ok;
}

/**
 * A pure ACK: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, where the RFC's SND.NXT is our SND.MAX: after an RTO
 * pulled SND.NXT back (go-back-N), the peer may already hold data up to SND.MAX, and an ACK with an older
 * sequence number would fail its acceptability test, taking our ACK field with it (Linux's
 * tcp_acceptable_seq uses its snd_nxt, which never goes back).
 */
export function sendAck(t: Tcb, cx: Cx): boolean {
  fill(t, cx, t.sndMax, TCP_ACK);
  return emitNow(t, cx);
}

/** True (and the limiter is consumed) when an out-of-window or challenge ACK may go now. */
function oowAllowed(t: Tcb, cx: Cx): boolean {
  const now = cx.io.nowUs;
  if (now - t.lastOowAckUs < OOW_ACK_INTERVAL_US) return false;
  t.lastOowAckUs = now;
  return true;
}

/** RFC 5961 §3.2/§4.2/§5.2 challenge ACK, rate-limited (§7) per connection like Linux. */
export function sendChallengeAck(t: Tcb, cx: Cx): void {
  if (!oowAllowed(t, cx)) return;
  t.challengeAcks++;
  sendAck(t, cx);
}

/**
 * RFC 9293 §3.10.7.4 first check: the ACK answering an unacceptable segment. Segments carrying data are
 * always answered (the ACK of a retransmission whose first ACK was lost); pure ACKs and SYNs only at the
 * rate-limit (Linux's tcp_oow_rate_limited: no ACK loops between two confused ends).
 */
export function sendOowAck(t: Tcb, cx: Cx, segLen: number, syn: boolean): void {
  if ((segLen === 0 || syn) && !oowAllowed(t, cx)) return;
  sendAck(t, cx);
}

/** Zero-window / keepalive probe: an old sequence number (SND.UNA - 1), no data: elicits an ACK (Linux). */
export function sendProbe(t: Tcb, cx: Cx): boolean {
  fill(t, cx, seqAdd(t.sndUna, -1), TCP_ACK);
  return emitNow(t, cx);
}

/** Our reset of a synchronized connection: <SEQ=SND.MAX><ACK=RCV.NXT><CTL=RST,ACK> (Linux's active reset). */
export function sendRst(t: Tcb, cx: Cx): boolean {
  fill(t, cx, t.sndMax, TCP_RST | TCP_ACK);
  return emitNow(t, cx);
}

/** RFC 9293 reset for an unacceptable ACK: <SEQ=SEG.ACK><CTL=RST>. */
export function sendRstSeq(t: Tcb, cx: Cx, seq: number): boolean {
  fill(t, cx, seq, TCP_RST);
  return emitNow(t, cx);
}

/** SYN (SYN_SENT) or SYN-ACK (SYN_RECEIVED) from ISS; a retransmission when t.rtxCount > 0. */
export function sendSyn(t: Tcb, cx: Cx): boolean {
  const now = cx.io.nowUs;
  const synAck = t.state !== SYN_SENT;
  fill(t, cx, t.iss, synAck ? TCP_SYN | TCP_ACK : TCP_SYN);
  if (synAck) {
    t.lastAckSent = t.rcvNxt;
    t.ackNow = 0;
  }
  t.sndNxt = t.sndMax = seqAdd(t.iss, 1);
  if (t.rtxCount === 0 && t.rttTiming === 0 && !t.synRetransmitted) {
    t.rttTiming = 1;
    t.rttSeq = t.sndMax;
    t.rttStartUs = now;
  }
  if (t.tRtx === TIMER_OFF) t.tRtx = now + rtoCurrentUs(t.rtt);
  t.segsOut++;
  let ok = false;
  try {
    ok = cx.io.emit(t, cx.out);
  } catch {
    ok = false;
  }
  return ok;
}

/**
 * One segment covering sequence space [seq, seq+len) of our stream: data, plus the FIN when finSeq is
 * its last octet. Updates SND.NXT / SND.MAX, arms the retransmission timer (RFC 6298 §5.1), times a
 * new segment for RTT when timestamps are off (Karn: any retransmission cancels the measurement).
 */
export function sendRange(t: Tcb, cx: Cx, seq: number, len: number, gsoSize = 0): boolean {
  const now = cx.io.nowUs;
  const end = seqAdd(seq, len);
  const fin = t.appClosed !== 0 && seqInWindow(t.finSeq, seq, end);
  const dataLen = fin ? len - 1 : len;
  let flags = TCP_ACK;
  if (fin) flags |= TCP_FIN;
  if (dataLen > 0 && (fin || seqAdd(seq, dataLen) === dataEnd(t, cx))) flags |= TCP_PSH;
  fill(t, cx, seq, flags);
  cx.out.dataLen = dataLen;
  if (gsoSize > 0 && dataLen > gsoSize) cx.out.gsoSize = gsoSize;
  const outstanding = t.sndMax !== t.sndUna;
  if (seqLt(seq, t.sndMax)) {
    // A retransmission (below SND.MAX).
    t.retransSegs++;
    t.retransBytes += dataLen;
    t.rttTiming = 0;
  } else if (!t.tsOk && t.rttTiming === 0) {
    t.rttTiming = 1;
    t.rttSeq = end;
    t.rttStartUs = now;
  }
  if (seqGt(end, t.sndNxt)) t.sndNxt = end;
  if (seqGt(end, t.sndMax)) t.sndMax = end;
  if (t.tRtx === TIMER_OFF) {
    t.tRtx = now + rtoCurrentUs(t.rtt);
    if (!outstanding) t.rtxStartUs = now;
  }
  t.tPersist = TIMER_OFF;
  if (dataLen > 0) t.lastSendUs = now;
  return emitNow(t, cx);
}

/** Persist interval: the RTO (at least RTO_MIN via the estimator) doubled per unanswered probe. */
export function persistIntervalUs(t: Tcb): number {
  const us = t.rtt.rtoUs * 2 ** t.persistBackoff;
  return us > RTO_MAX_US ? RTO_MAX_US : us;
}

/** Data or FIN waiting to be sent from SND.NXT. */
export function sendPending(t: Tcb, cx: Cx): boolean {
  if (seqLt(t.sndNxt, dataEnd(t, cx))) return true;
  return t.appClosed !== 0 && t.sndNxt === t.finSeq;
}

/** See the header. */
export function output(t: Tcb, cx: Cx, force: boolean): void {
  if (!canSendData(t.state)) return;
  const now = cx.io.nowUs;
  const mss = effMss(t);
  const end = dataEnd(t, cx);
  // RFC 5681 §4.1: restart window after an idle period longer than the RTO.
  if (t.sndMax === t.sndUna && seqLt(t.sndNxt, end) && t.lastSendUs > 0 && now - t.lastSendUs > rtoCurrentUs(t.rtt)) {
    ccOf(t).onIdle(t.cc, ccEnv(t, cx));
    t.lastSendUs = now;
  }
  const maxBefore = t.sndMax;
  const gsoMax = cx.io.gsoMaxBytes ?? 0;
  for (let guard = 0; guard < 4096; guard++) {
    const segMax = mss - sackRoom(t) > 0 ? mss - sackRoom(t) : 1;
    // TSO: the largest segment this iteration may emit (a whole number of segMax), see the header.
    let burst = segMax;
    if (gsoMax > 0 && t.inRecovery === 0) {
      const room = gsoMax - 20 - (t.tsOk ? 12 : 0) - sackRoom(t);
      if (room >= 2 * segMax) burst = Math.floor(room / segMax) * segMax;
    }
    const wndRight = seqAdd(t.sndUna, t.sndWnd);
    let budget: number;
    if (t.inRecovery === 2) {
      // RFC 6675 §5 (C): while cwnd - pipe >= 1 SMSS, send what NextSeg chooses.
      const pipe = sbPipe(t.sb, t.sndUna, t.sndMax, mss, DUP_THRESH);
      budget = t.cc.cwnd - pipe;
      if (budget < mss) {
        t.cwndLimited = 1;
        break;
      }
      const canNew = t.sndNxt === t.sndMax && seqLt(t.sndNxt, end) && seqLt(t.sndNxt, wndRight);
      const rule = sbNextSeg(t.sb, t.sndUna, t.sndMax, mss, DUP_THRESH, canNew, cx.next);
      if (rule === NEXTSEG_NONE) {
        if (!(t.appClosed && t.sndNxt === t.finSeq && t.sndNxt === t.sndMax)) break;
        // only our FIN is left to send: fall through to the normal path
      } else if (rule !== NEXTSEG_NEW) {
        let len = cx.next.len;
        const room = seqDiff(t.sndMax, cx.next.seq);
        if (len > room) len = room;
        if (len <= 0) break;
        const ok = sendRange(t, cx, cx.next.seq, len);
        sbOnRetransmit(t.sb, rule, cx.next.seq, len, t.recover);
        if (!ok) break;
        continue;
      }
    } else {
      // RFC 3042 limited transmit: the first two duplicate ACKs each allow one new segment.
      const ltx = t.inRecovery === 0 && t.dupAcks > 0 && t.sndNxt === t.sndMax ? Math.min(t.dupAcks, 2) * mss : 0;
      budget = t.cc.cwnd + ltx - seqDiff(t.sndNxt, t.sndUna);
    }
    const avail = seqDiff(end, t.sndNxt);
    if (avail <= 0 && !(t.appClosed !== 0 && t.sndNxt === t.finSeq)) {
      t.cwndLimited = 0;
      break;
    }
    const wndAvail = seqDiff(wndRight, t.sndNxt);
    let len = avail > 0 ? avail : 0;
    let cut = 0; // 1: by the peer's window, 2: by cwnd
    if (len > burst) len = burst;
    if (len > wndAvail) {
      len = wndAvail > 0 ? wndAvail : 0;
      cut = 1;
    }
    if (len > budget) {
      len = budget > 0 ? budget : 0;
      cut = 2;
    }
    // A TSO segment cut short (by a window, or below the queued data) ends on a full segment: its short
    // tail would be a sub-MSS wire segment in the middle of the stream, which Nagle/SWS would not send.
    if (len > segMax && len < avail) len -= len % segMax;
    const fin = t.appClosed !== 0 && seqAdd(t.sndNxt, len) === t.finSeq && wndAvail > len;
    if (len === 0 && !fin) {
      if (cut === 2) t.cwndLimited = 1;
      break;
    }
    if (!force && len < segMax && !fin) {
      if (len < avail) {
        if (cut === 2) {
          t.cwndLimited = 1;
          break;
        }
        if (len < t.maxSndWnd >>> 1) break; // sender SWS avoidance, RFC 9293 §3.8.6.2.1
      }
      if (!t.noDelay && t.sndNxt !== t.sndUna) break; // Nagle, RFC 9293 §3.7.4
    }
    const ok = sendRange(t, cx, t.sndNxt, fin ? len + 1 : len, len > segMax ? segMax : 0);
    force = false;
    if (!ok) break;
  }
  // RFC 8985 §7.2: new data went out: (re)start the probe timeout.
  if (seqGt(t.sndMax, maxBefore)) tlpSchedule(t, cx);
  // Nothing in flight, something to send, and the peer's window holds it back: the persist timer
  // (zero-window probes, RFC 9293 §3.8.6.1; also the SWS override timer).
  if (t.tRtx === TIMER_OFF && t.tPersist === TIMER_OFF && sendPending(t, cx)) {
    t.tPersist = now + persistIntervalUs(t);
  }
}
