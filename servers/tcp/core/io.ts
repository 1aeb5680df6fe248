/**
 * What the TCP core needs from its caller (TcpIo), the segment it hands back (OutSeg), and the per-core
 * scratch (Cx) the internal modules share during one call. Nothing here outlives a call: Cx holds the
 * caller's io for the duration of a facade call and objects reused on every segment (no allocation per
 * segment); all connection state lives in the Tcb.
 */
import type { CcEnv, CongestionControl } from './contracts.js';
import { ccById } from './cc.js';
import type { Tcb } from './tcb.js';

export interface TcpIo {
  /** Set by the caller before every call: the central clock, microseconds. */
  nowUs: number;
  /**
   * Sequence number just past the last byte the application has written into the send buffer (data
   * bytes only: the SYN occupies iss; data byte k of the stream has sequence iss+1+k). Called only once
   * t is synchronized.
   */
  sendEnd(t: Tcb): number;
  /**
   * Sequence number just past the last byte the receive buffer can hold ((irs+1) + bytes read by the
   * application + t.rcvBuf). Must never move back. Called only once t.irs is known.
   */
  recvLimit(t: Tcb): number;
  /** Store received in-window data [seq, seq+len) into the receive buffer (in order or out of order). */
  recvWrite(t: Tcb, seq: number, src: Uint8Array, off: number, len: number): void;
  /**
   * Send a segment. Its payload is the send-buffer bytes [seg.seq, seg.seq + seg.dataLen) (never with
   * SYN). seg is reused: consume it before returning. false: could not be sent now (ring/pool full):
   * treated as lost on the wire (timers recover). Never throw.
   */
  emit(t: Tcb, seg: OutSeg): boolean;
  /** Something changed for the application side: N_* bits (tcb.ts). */
  notify(t: Tcb, bits: number): void;
  /** RFC 6528 initial sequence number for t's four-tuple. */
  isn(t: Tcb): number;
  /** A random uint32 (timestamp offsets); deterministic in tests. */
  random32(): number;
  /**
   * TSO: the largest segment (TCP header + payload) the interface cuts into MSS-sized segments itself
   * (StackConfig iface.gsoMaxBytes). 0 / absent: every segment is at most one MSS. Read on every output.
   */
  gsoMaxBytes?: number;
  /**
   * ACK at the end of the batch: the ACK owed for every second full segment of in-order data (RFC 5681
   * §4.2) is not sent at once but made due now (tDelack = nowUs); the shell fires it once the records
   * it is handling in this pass are done, so one ACK covers every segment of a burst (as Linux does
   * with GRO). Gaps, out-of-order data and FINs are still acknowledged at once. Absent: at once.
   */
  ackAtBatchEnd?: boolean;
}

/** One segment to send (reused; valid only during io.emit). */
export class OutSeg {
  srcAddr = 0;
  dstAddr = 0;
  srcPort = 0;
  dstPort = 0;
  seq = 0;
  ack = 0;
  /** TCP_* flags. */
  flags = 0;
  /** The 16-bit window field, already scaled. */
  window = 0;
  dataLen = 0;
  /**
   * TSO: dataLen is larger than one segment; the link cuts it into gsoSize-byte payloads (the effective
   * MSS at the time), each with these headers. 0 = an ordinary segment.
   */
  gsoSize = 0;
  /** MSS option value, 0 = none. */
  mss = 0;
  /** Window scale option, -1 = none. */
  wscale = -1;
  sackPermitted = false;
  tsPresent = false;
  tsVal = 0;
  tsEcr = 0;
  sackCount = 0;
  /** SACK block i = [sackBlocks[2i], sackBlocks[2i+1]). */
  readonly sackBlocks: number[] = [0, 0, 0, 0, 0, 0, 0, 0];

  clear(): void {
    this.seq = this.ack = this.flags = this.window = this.dataLen = this.mss = this.gsoSize = 0;
    this.wscale = -1;
    this.sackPermitted = this.tsPresent = false;
    this.tsVal = this.tsEcr = this.sackCount = 0;
  }
}

/** Scratch shared by input/output/timers during one facade call. */
export class Cx {
  io!: TcpIo;
  readonly out = new OutSeg();
  readonly env: CcEnv = { mss: 0, nowUs: 0, srttUs: 0, minRttUs: 0, flightSize: 0 };
  readonly next = { seq: 0, len: 0 };
}

/** The Tcb's congestion control module. */
export function ccOf(t: Tcb): CongestionControl {
  return ccById(t.ccAlgo === 1 ? 1 : 0);
}

/** Fills and returns cx.env for a cc call. */
export function ccEnv(t: Tcb, cx: Cx): CcEnv {
  const e = cx.env;
  e.mss = effMss(t);
  e.nowUs = cx.io.nowUs;
  e.srttUs = t.rtt.srttUs;
  e.minRttUs = t.rtt.minRttUs;
  e.flightSize = Math.max(0, (t.sndMax - t.sndUna) | 0);
  return e;
}

/**
 * Payload of a full-sized data segment now: sndMss less the options every segment carries at this
 * moment (RFC 9293 §3.7.1 Eff.snd.MSS = SendMSS - TCPhdrsize + 20 - IPoptionsize): timestamps, and the
 * SACK blocks we report while out-of-order data is held (RFC 2018), as Linux's tcp_current_mss does.
 * Without the SACK blocks, a data segment sent during loss recovery would exceed the path MTU and be
 * dropped by IP (DF set): every retransmission with it, forever.
 */
export function effMss(t: Tcb): number {
  let m = t.sndMss - (t.tsOk ? 12 : 0);
  if (t.sackOk && t.oooN > 0) {
    const n = Math.min(t.oooN, t.tsOk ? 3 : 4);
    m -= 4 + 8 * n;
  }
  return m > 1 ? m : 1;
}
