/**
 * The TCP protocol core (RFC 9293 with RFC 5961, 7323, 2018, 6298, 5681, 6582, 6675, 3042, 5827, 1122, and
 * RFC 8985 §7 tail loss probes for SACK connections, tlp.ts): pure,
 * deterministic, no I/O and no clock. The tcp server owns sockets, buffers, rings and the clock; this
 * file is the only module it imports. Every connection's state is its Tcb (tcb.ts: numbers only, saved
 * to shared memory with tcbSave/tcbLoad);  calls. The functions share one module-level scratch (io.ts Cx: the caller's io for the duration of a
 * call and reused segment/env objects; nothing in it survives a call), so nothing is allocated per
 * segment and any incarnation of the server can take over a Tcb.
 *
 * Call order (set io.nowUs before every call; after every call, re-arm the connection's wake-up at
 * nextDeadline(t)):
 *   open
 *     listen(t, io?)                      a listener (t.localAddr/localPort and options set) -> LISTEN
 *     openActive(t, io)                   connect(): t has its four-tuple and options (rcvMss = MTU - 40,
 *                                         rcvBuf, ccAlgo, ...) set; emits the SYN; SYN_SENT
 *   segments (the caller demultiplexes, verifies the checksum and parses into a TcpRepr)
 *     isPlainSyn(seg)                     SYN without ACK, RST, FIN: what a listener takes (RFC 9293
 *                                         §3.10.7.2; otherwise answer an ACK with resetFor, drop the rest)
 *     listenInput(l, child, seg, data, io)  a plain SYN for listener l: child (a fresh Tcb with its
 *                                         four-tuple and settings) inherits l's options, goes SYN_RECEIVED
 *                                         and emits its SYN-ACK: true. false: not taken (nothing sent).
 *                                         Keep the child in the listener's queue until N_ACCEPTABLE
 *     segmentArrives(t, seg, data, io)    a segment for a connection in any other state; returns a verdict
 *                                         (verdicts.ts: SEG_* accepted, DROP_* dropped, to count).
 *                                         SEG_REOPEN: a SYN ended a TIME_WAIT connection; hand the SYN
 *                                         to the listener now
 *     resetFor(seg, localAddr, remoteAddr, out)   no connection at all: the reset to send from our
 *                                         address (the segment's destination) to the peer (its source);
 *                                         false: none (RFC 9293 §3.10.7.1)
 *     icmpError(t, type, code, mtu, io, seq?)   an ICMP error about a segment we sent
 *   application
 *     appSend(t, io)                      the application wrote (io.sendEnd moved)
 *     appRecv(t, io)                      the application read (io.recvLimit moved): maybe a window update
 *     appClose(t, io, orphan)             shutdown(SHUT_WR) (orphan false) or close() (orphan true)
 *     appAbort(t, io)                     ABORT: reset if synchronized; CLOSED
 *   time
 *     onTimers(t, io)                     at or after nextDeadline(t)
 *
 * Notifications (io.notify bits, tcb.ts): N_CONNECTED, N_ACCEPTABLE, N_READABLE (data or FIN:
 * t.finReceived), N_WRITABLE (SND.UNA advanced over data: send-buffer space freed up to t.sndUna), N_ERROR
 * (t.err set: ECONNRESET, ECONNREFUSED, ETIMEDOUT, ...), N_CLOSED (CLOSED: release the Tcb once the
 * application has closed it). Buffers: io.sendEnd / io.recvLimit / io.recvWrite are only called once the
 * connection has its peer's ISN (SYN_RECEIVED on); the receive buffer's base is irs + 1 and the send
 * buffer's is iss + 1. A child from listenInput may receive data with the handshake's last ACK, so its
 * buffers must exist from listenInput on. recvLimit must keep answering until the Tcb is CLOSED.
 */
import type { TcpRepr } from '../../wire/tcp.js';
import { seqDiff, seqInWindow } from '../../wire/seq.js';
import { ccOf, Cx, OutSeg, type TcpIo } from './io.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../../wire/tcp.js';
import { listenInput as liInput, resetFor as rstFor, segmentArrives as segIn } from './input.js';
import { output, sendAck, sendRst, sendSyn, wscaleFor } from './output.js';
import { closeWith, setState } from './state.js';
import {
  CLOSE_WAIT,
  CLOSED,
  E_NONE,
  ECONNREFUSED,
  EHOSTUNREACH,
  ENETUNREACH,
  ESTABLISHED,
  FIN_WAIT_1,
  FIN_WAIT_2,
  LAST_ACK,
  LISTEN,
  SYN_RECEIVED,
  SYN_SENT,
  TIME_WAIT,
  TIMER_OFF,
  isSynchronized,
  type Tcb,
} from './tcb.js';
import { nextDeadline as deadline, onTimers as fireTimers } from './timers.js';
import { DROP_FIRST, LI_SYN_RECEIVED } from './verdicts.js';

export { OutSeg, type TcpIo } from './io.js';
export * from './tcb.js';
export * from './verdicts.js';

/** ICMP types and destination unreachable codes icmpError understands (RFC 792, RFC 1122 §4.2.3.9). */
export const ICMP_TYPE_UNREACH = 3;
export const ICMP_TYPE_TIME_EXCEEDED = 11;
export const ICMP_NET_UNREACH = 0;
export const ICMP_HOST_UNREACH = 1;
export const ICMP_PROTO_UNREACH = 2;
export const ICMP_PORT_UNREACH = 3;
export const ICMP_FRAG_NEEDED = 4;

/** Smallest send MSS a PMTU report can impose (Linux's TCP_MIN_MSS is 88). */
/** Linux's min_pmtu (552) less 40: a forged "fragmentation needed" cannot shrink segments further. */
const MIN_PMTU_MSS = 512;

/** Scratch for one call at a time (see the header). */
const CX = new Cx();

function bind(io: TcpIo): Cx {
  CX.io = io;
  return CX;
}

/** A fresh segment object (for resetFor; the core has its own). */
export function newOutSeg(): OutSeg {
  return new OutSeg();
}

/** A segment a listener takes: SYN without ACK, RST or FIN (RFC 9293 §3.10.7.2; SYN+FIN dropped like Linux). */
export function isPlainSyn(seg: TcpRepr): boolean {
  return (seg.flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) === TCP_SYN;
}

/** RFC 9293 §3.10.1 OPEN (active): picks ISS (io.isn), emits the SYN, SYN_SENT. */
export function openActive(t: Tcb, io: TcpIo): void {
  const cx = bind(io);
  if (t.state !== CLOSED) return;
  t.passive = 0;
  t.iss = io.isn(t) >>> 0;
  t.sndUna = t.sndNxt = t.sndMax = t.iss;
  t.recover = t.iss;
  t.rcvWscale = t.optWscale ? wscaleFor(t.rcvBuf) : 0;
  if (t.optTs) t.tsOffset = io.random32() >>> 0;
  t.rtxCount = 0;
  t.rtxStartUs = io.nowUs;
  t.lastRcvUs = io.nowUs;
  setState(t, SYN_SENT, cx);
  sendSyn(t, cx);
}

/** RFC 9293 §3.10.1 OPEN (passive): LISTEN (no side effects; io is optional). */
export function listen(t: Tcb, io?: TcpIo): void {
  if (t.state !== CLOSED) return;
  if (io !== undefined) setState(t, LISTEN, bind(io));
  else t.state = LISTEN;
}

/** See the header (input.ts listenInput). `data` (a SYN's payload) is not queued, as Linux without TFO. */
export function listenInput(listener: Tcb, child: Tcb, seg: TcpRepr, data: Uint8Array, io: TcpIo): boolean {
  void data;
  const cx = bind(io);
  child.rtxStartUs = io.nowUs;
  return liInput(listener, child, seg, cx) === LI_SYN_RECEIVED;
}

/** See input.ts; then sends what the segment allowed (data, a pending ACK). Returns a verdict (verdicts.ts). */
export function segmentArrives(t: Tcb, seg: TcpRepr, data: Uint8Array, io: TcpIo): number {
  const cx = bind(io);
  const v = segIn(t, seg, data, cx);
  t.lastDrop = v;
  if (v >= DROP_FIRST) t.drops++;
  else if (t.state !== CLOSED) output(t, cx, false);
  if (t.ackNow && isSynchronized(t.state)) sendAck(t, cx);
  t.ackNow = 0;
  return v;
}

/** RFC 9293 §3.10.7.1: the reset answering `seg` (from remoteAddr to localAddr) when no connection exists. */
export function resetFor(seg: TcpRepr, localAddr: number, remoteAddr: number, out: OutSeg): boolean {
  return rstFor(seg, localAddr, remoteAddr, out);
}

/** SEND: the application queued data (also re-arms keepalive after a setting change). */
export function appSend(t: Tcb, io: TcpIo): void {
  const cx = bind(io);
  if (t.keepAlive && t.tKeepalive === Infinity && isSynchronized(t.state) && t.state !== TIME_WAIT && t.state !== SYN_RECEIVED) {
    t.tKeepalive = io.nowUs + t.keepIdleUs;
  }
  if (t.state === ESTABLISHED || t.state === CLOSE_WAIT) output(t, cx, false);
}

/**
 * RECEIVE: the application read, so the window may open. RFC 9293 §3.8.6.2.2 / RFC 1122 §4.2.3.3: a
 * window update only when the right edge can move by min(rcvBuf/2, MSS) (from zero or not).
 */
export function appRecv(t: Tcb, io: TcpIo): void {
  const cx = bind(io);
  if (t.state !== ESTABLISHED && t.state !== FIN_WAIT_1 && t.state !== FIN_WAIT_2) return;
  const limit = io.recvLimit(t) >>> 0;
  const thresh = Math.min(t.rcvBuf >>> 1, t.rcvMss);
  if (seqDiff(limit, t.rcvAdv) >= (thresh > 0 ? thresh : 1)) sendAck(t, cx);
  // Linux's tcp_cleanup_rbuf: the application drained everything after a short (pushed) segment whose
  // ACK is being delayed: ACK now. The peer's Nagle is waiting for exactly this ACK to send its next
  // small segment; delaying it costs a whole delayed-ACK timeout per exchange.
  else if (t.rcvPushed && t.tDelack !== TIMER_OFF && seqDiff(limit, t.rcvNxt) >= t.rcvBuf) sendAck(t, cx);
}

/**
 * RFC 9293 §3.10.4 CLOSE: FIN after the queued data. orphan: the application closed the socket (not
 * just shutdown(SHUT_WR)): nobody reads any more, so FIN_WAIT_2 times out and new data is reset.
 */
export function appClose(t: Tcb, io: TcpIo, orphan = false): void {
  const cx = bind(io);
  if (orphan) t.orphan = 1;
  switch (t.state) {
    case CLOSED:
      return;
    case LISTEN:
    case SYN_SENT:
      closeWith(t, E_NONE, cx); // "Delete the TCB, enter CLOSED"
      return;
    case SYN_RECEIVED:
      // "If no SENDs have been issued ... send FIN; otherwise queue for processing after entering
      // ESTABLISHED": we always queue; the FIN follows the handshake (input.ts established()).
      t.appClosed = 1;
      return;
    case ESTABLISHED:
      t.appClosed = 1;
      t.finSeq = io.sendEnd(t) >>> 0;
      setState(t, FIN_WAIT_1, cx); // "In any case, enter FIN-WAIT-1 state"
      output(t, cx, false);
      return;
    case CLOSE_WAIT:
      t.appClosed = 1;
      t.finSeq = io.sendEnd(t) >>> 0;
      setState(t, LAST_ACK, cx); // "queue this request until all preceding SENDs ...; enter LAST-ACK"
      output(t, cx, false);
      return;
    case FIN_WAIT_2:
      if (orphan && t.tClose === Infinity) t.tClose = io.nowUs + t.finWait2Us;
      return;
    default:
      return; // FIN_WAIT_1, CLOSING, LAST_ACK, TIME_WAIT: "error: connection closing"
  }
}

/** RFC 9293 §3.10.5 ABORT. */
export function appAbort(t: Tcb, io: TcpIo): void {
  const cx = bind(io);
  switch (t.state) {
    case SYN_RECEIVED:
    case ESTABLISHED:
    case FIN_WAIT_1:
    case FIN_WAIT_2:
    case CLOSE_WAIT:
      sendRst(t, cx); // "send a reset segment <SEQ=SND.NXT><CTL=RST>"
      closeWith(t, E_NONE, cx);
      return;
    case CLOSED:
      return;
    default:
      closeWith(t, E_NONE, cx); // LISTEN, SYN_SENT, CLOSING, LAST_ACK, TIME_WAIT: "delete the TCB"
      return;
  }
}

/** Fires every deadline <= io.nowUs. */
export function onTimers(t: Tcb, io: TcpIo): void {
  fireTimers(t, bind(io));
  t.ackNow = 0;
}

/** Earliest armed deadline (us), Infinity if none. */
export function nextDeadline(t: Tcb): number {
  return deadline(t);
}

/**
 * An ICMP error (type, code) about a segment we sent; `seq`, when the caller has the quoted header,
 * must lie in [SND.UNA, SND.MAX) (RFC 5927 §4.1), else the report is ignored (false).
 * RFC 1122 §4.2.3.9: protocol and port unreachable are hard errors, which abort a connection still in
 * SYN_SENT (ECONNREFUSED; Linux aborts on soft ones there too); every other error, and any error on a
 * synchronized connection, is soft (t.softErr, reported if the connection later times out).
 * Fragmentation needed lowers the send MSS to mtu - 40 (RFC 1191) and resends what is outstanding.
 */
export function icmpError(t: Tcb, type: number, code: number, mtu: number, io: TcpIo, seq?: number): boolean {
  const cx = bind(io);
  if (t.state === CLOSED || t.state === LISTEN) return false;
  if (seq !== undefined && !seqInWindow(seq >>> 0, t.sndUna, t.sndMax)) return false;
  if (type === ICMP_TYPE_TIME_EXCEEDED) {
    t.softErr = EHOSTUNREACH;
    return true;
  }
  if (type !== ICMP_TYPE_UNREACH) return false;
  switch (code) {
    case ICMP_FRAG_NEEDED: {
      const mss = Math.max(MIN_PMTU_MSS, mtu - 40);
      if (mtu <= 0 || mss >= t.sndMss) return true;
      t.sndMss = mss;
      if (isSynchronized(t.state) && t.sndUna !== t.sndMax) {
        // Linux's tcp_simple_retransmit: resend at the new size; not a congestion signal.
        t.sndNxt = t.sndUna;
        t.rttTiming = 0;
        output(t, cx, false);
      }
      return true;
    }
    case ICMP_PROTO_UNREACH:
    case ICMP_PORT_UNREACH:
      if (t.state === SYN_SENT) closeWith(t, ECONNREFUSED, cx);
      else t.softErr = ECONNREFUSED;
      return true;
    case ICMP_NET_UNREACH:
      t.softErr = ENETUNREACH;
      return true;
    default:
      t.softErr = EHOSTUNREACH;
      return true;
  }
}

/** Sends an ACK now (e.g. after the server restored a Tcb and wants to resynchronize the peer). */
export function sendAckNow(t: Tcb, io: TcpIo): void {
  const cx = bind(io);
  if (isSynchronized(t.state) && t.state !== TIME_WAIT) sendAck(t, cx);
}

/** Congestion window and slow-start threshold in bytes, and the algorithm's name (stats). */
export function ccInfo(t: Tcb): { cwnd: number; ssthresh: number; algo: string } {
  return { cwnd: t.cc.cwnd, ssthresh: t.cc.ssthresh, algo: ccOf(t).name };
}
