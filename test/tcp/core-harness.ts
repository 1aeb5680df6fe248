/**
 * Test bench for the TCP core: a TcpIo with plain arrays for the send and receive buffers, captured
 * emitted segments, a fake clock, and builders for literal incoming segments (TcpRepr by hand). Also a
 * wire codec (OutSeg -> bytes -> TcpRepr through servers/wire/tcp.ts) for the back-to-back netsim.
 */
import * as core from '../../servers/tcp/core/core.js';
import { OutSeg, Tcb, type TcpIo } from '../../servers/tcp/core/core.js';
import { TcpRepr, TcpView, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../../servers/wire/tcp.js';
import { seqAdd, seqDiff } from '../../servers/wire/seq.js';

export const LOCAL = 0x0a000001; // 10.0.0.1
export const REMOTE = 0x0a000002; // 10.0.0.2
export const LPORT = 40000;
export const RPORT = 80;
export const ISS = 1000;
export const PEER_ISS = 5000;
export { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN };

/** One captured segment (a copy of the OutSeg plus its payload bytes). */
export interface Sent {
  seq: number;
  ack: number;
  flags: number;
  window: number;
  dataLen: number;
  /** TSO: the wire segment size the link cuts dataLen into (0: an ordinary segment). */
  gsoSize: number;
  mss: number;
  wscale: number;
  sackPermitted: boolean;
  tsPresent: boolean;
  tsVal: number;
  tsEcr: number;
  sack: [number, number][];
  srcAddr: number;
  dstAddr: number;
  srcPort: number;
  dstPort: number;
  data: Uint8Array;
  tcb: Tcb;
}

/** The application-side buffers of one connection. */
export class Conn {
  /** Bytes the application wrote (stream order). */
  out = new Uint8Array(1 << 16);
  written = 0;
  /** Received stream bytes, indexed by offset from irs + 1. */
  inb = new Uint8Array(1 << 16);
  consumed = 0;
  /** Bytes stored beyond recvLimit (must stay 0). */
  overflow = 0;
  /** Notify bits received, in order. */
  notes: number[] = [];

  write(bytes: Uint8Array | number[]): void {
    const b = bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes);
    while (this.written + b.length > this.out.length) {
      const n = new Uint8Array(this.out.length * 2);
      n.set(this.out);
      this.out = n;
    }
    this.out.set(b, this.written);
    this.written += b.length;
  }

  ensureIn(n: number): void {
    while (n > this.inb.length) {
      const m = new Uint8Array(this.inb.length * 2);
      m.set(this.inb);
      this.inb = m;
    }
  }

  /** Everything notified so far, OR-ed. */
  bits(): number {
    return this.notes.reduce((a, b) => a | b, 0);
  }
}

export class Host implements TcpIo {
  nowUs = 0;
  readonly sent: Sent[] = [];
  readonly conns = new Map<Tcb, Conn>();
  isnValue = ISS;
  rand = 0x12345678;
  /** When set, emit refuses (ring full). */
  emitFails = false;
  /** TSO: the interface's gsoMaxBytes (0: off). */
  gsoMaxBytes = 0;
  /** io.ackAtBatchEnd (the tcp server's setting; off here unless a test turns it on). */
  ackAtBatchEnd = false;
  /** Hook called for every emitted segment (netsim). */
  onEmit: ((t: Tcb, s: OutSeg, payload: Uint8Array) => void) | null = null;

  conn(t: Tcb): Conn {
    let c = this.conns.get(t);
    if (c === undefined) {
      c = new Conn();
      this.conns.set(t, c);
    }
    return c;
  }

  sendEnd(t: Tcb): number {
    return seqAdd(t.iss, 1 + this.conn(t).written);
  }

  recvLimit(t: Tcb): number {
    return seqAdd(t.irs, 1 + this.conn(t).consumed + t.rcvBuf);
  }

  recvWrite(t: Tcb, seq: number, src: Uint8Array, off: number, len: number): void {
    const c = this.conn(t);
    const at = seqDiff(seq, seqAdd(t.irs, 1));
    if (seqDiff(seqAdd(seq, len), this.recvLimit(t)) > 0) c.overflow++;
    c.ensureIn(at + len);
    c.inb.set(src.subarray(off, off + len), at);
  }

  emit(t: Tcb, s: OutSeg): boolean {
    if (this.emitFails) return false;
    const c = this.conn(t);
    const from = seqDiff(s.seq, seqAdd(t.iss, 1));
    const data = s.dataLen > 0 ? c.out.slice(from, from + s.dataLen) : new Uint8Array(0);
    if (s.dataLen > 0 && (from < 0 || from + s.dataLen > c.written)) throw new Error(`emit outside the send buffer: ${from}+${s.dataLen} of ${c.written}`);
    const sack: [number, number][] = [];
    for (let i = 0; i < s.sackCount; i++) sack.push([s.sackBlocks[2 * i], s.sackBlocks[2 * i + 1]]);
    this.sent.push({
      seq: s.seq,
      ack: s.ack,
      flags: s.flags,
      window: s.window,
      dataLen: s.dataLen,
      gsoSize: s.gsoSize,
      mss: s.mss,
      wscale: s.wscale,
      sackPermitted: s.sackPermitted,
      tsPresent: s.tsPresent,
      tsVal: s.tsVal,
      tsEcr: s.tsEcr,
      sack,
      srcAddr: s.srcAddr,
      dstAddr: s.dstAddr,
      srcPort: s.srcPort,
      dstPort: s.dstPort,
      data,
      tcb: t,
    });
    if (this.onEmit !== null) this.onEmit(t, s, data);
    return true;
  }

  notify(t: Tcb, bits: number): void {
    this.conn(t).notes.push(bits);
  }

  isn(_t: Tcb): number {
    return this.isnValue;
  }

  random32(): number {
    return this.rand;
  }

  /** Removes and returns every captured segment. */
  take(): Sent[] {
    return this.sent.splice(0, this.sent.length);
  }

  /** The application reads everything received in order; returns those bytes. */
  read(t: Tcb): Uint8Array {
    const c = this.conn(t);
    const avail = seqDiff(t.rcvNxt, seqAdd(t.irs, 1)) - (t.finReceived ? 1 : 0) - c.consumed;
    const b = c.inb.slice(c.consumed, c.consumed + avail);
    c.consumed += avail;
    return b;
  }

  advance(us: number, t?: Tcb | Tcb[]): void {
    this.nowUs += us;
    if (t !== undefined) for (const x of Array.isArray(t) ? t : [t]) this.fire(x);
  }

  /** Runs the timers of t that are due (repeatedly, as a server would). */
  fire(t: Tcb): void {
    for (let i = 0; i < 100 && core.nextDeadline(t) <= this.nowUs; i++) core.onTimers(t, this);
  }

  /** Moves the clock to t's next deadline and fires it. */
  toDeadline(t: Tcb): void {
    const d = core.nextDeadline(t);
    if (d === Infinity) throw new Error('no deadline armed');
    if (d > this.nowUs) this.nowUs = d;
    core.onTimers(t, this);
  }
}

/** What an incoming literal segment says. */
export interface SegSpec {
  seq: number;
  ack?: number;
  flags: number;
  win?: number;
  data?: number[] | Uint8Array;
  mss?: number;
  ws?: number;
  sackOk?: boolean;
  ts?: [number, number];
  sack?: [number, number][];
  srcPort?: number;
  dstPort?: number;
}

/** Builds a TcpRepr and its payload bytes by hand (the payload sits at offset 3 to test payloadOff). */
export function seg(s: SegSpec): { r: TcpRepr; data: Uint8Array } {
  const r = new TcpRepr();
  r.srcPort = s.srcPort ?? RPORT;
  r.dstPort = s.dstPort ?? LPORT;
  r.seqNum = s.seq >>> 0;
  r.ackNum = (s.ack ?? 0) >>> 0;
  r.flags = s.flags;
  r.window = s.win ?? 65535;
  r.clearOptions();
  if (s.mss !== undefined) r.mss = s.mss;
  if (s.ws !== undefined) r.wscale = s.ws;
  if (s.sackOk) r.sackPermitted = true;
  if (s.ts !== undefined) {
    r.tsPresent = true;
    r.tsVal = s.ts[0] >>> 0;
    r.tsEcr = s.ts[1] >>> 0;
  }
  for (const [a, b] of s.sack ?? []) r.addSack(a >>> 0, b >>> 0);
  const payload = s.data === undefined ? new Uint8Array(0) : s.data instanceof Uint8Array ? s.data : Uint8Array.from(s.data);
  const data = new Uint8Array(3 + payload.length);
  data.set(payload, 3);
  r.payloadOff = 3;
  r.payloadLen = payload.length;
  return { r, data };
}

/** Feeds a literal segment to t; returns the verdict. */
export function feed(h: Host, t: Tcb, s: SegSpec): number {
  const { r, data } = seg(s);
  return core.segmentArrives(t, r, data, h);
}

export interface Opts {
  ws?: boolean;
  sack?: boolean;
  ts?: boolean;
  peerWs?: number;
  peerWin?: number;
  peerMss?: number;
  rcvBuf?: number;
  noDelay?: boolean;
  cc?: number;
}

/** A fresh Tcb with our four-tuple and settings. */
export function newTcb(o: Opts = {}): Tcb {
  const t = new Tcb();
  t.localAddr = LOCAL;
  t.localPort = LPORT;
  t.remoteAddr = REMOTE;
  t.remotePort = RPORT;
  t.rcvMss = 1460;
  t.rcvBuf = o.rcvBuf ?? 65535;
  t.optWscale = o.ws ? 1 : 0;
  t.optSack = o.sack ? 1 : 0;
  t.optTs = o.ts ? 1 : 0;
  t.noDelay = o.noDelay ? 1 : 0;
  t.ccAlgo = o.cc ?? 0;
  return t;
}

/** Peer's timestamp clock in the fixtures. */
export const PEER_TS = 777;

/**
 * An actively opened connection in ESTABLISHED: SYN sent, SYN-ACK (with the options `o` asks both
 * sides for) received, ACK sent. The captured segments are cleared.
 */
export function established(o: Opts = {}): { h: Host; t: Tcb } {
  const h = new Host();
  const t = newTcb(o);
  core.openActive(t, h);
  const syn = h.take()[0];
  h.nowUs += 10_000; // a 10 ms handshake RTT
  feed(h, t, {
    seq: PEER_ISS,
    ack: ISS + 1,
    flags: TCP_SYN | TCP_ACK,
    win: o.peerWin ?? 65535,
    mss: o.peerMss ?? 1460,
    ws: o.ws ? (o.peerWs ?? 0) : undefined,
    sackOk: o.sack,
    ts: o.ts ? [PEER_TS, syn.tsVal] : undefined,
  });
  h.take();
  return { h, t };
}

/** Our timestamps echo for a peer segment in the fixtures (what a peer would echo now). */
export function echo(h: Host, t: Tcb): number {
  return (Math.floor(h.nowUs / 1000) + t.tsOffset) >>> 0;
}

/** Bytes 0..n-1 of a deterministic pattern starting at k. */
export function pattern(n: number, k = 0): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i + k) * 7 + ((i + k) >>> 8);
  return b;
}

/** OutSeg -> wire bytes (through TcpRepr.emit) -> parsed TcpRepr: what the peer would really see. */
export function wireRoundTrip(o: OutSeg, payload: Uint8Array): { r: TcpRepr; data: Uint8Array } {
  const r = new TcpRepr();
  r.srcPort = o.srcPort;
  r.dstPort = o.dstPort;
  r.seqNum = o.seq;
  r.ackNum = o.ack;
  r.flags = o.flags;
  r.window = o.window;
  r.clearOptions();
  r.mss = o.mss;
  r.wscale = o.wscale;
  r.sackPermitted = o.sackPermitted;
  r.tsPresent = o.tsPresent;
  r.tsVal = o.tsVal;
  r.tsEcr = o.tsEcr;
  for (let i = 0; i < o.sackCount; i++) r.addSack(o.sackBlocks[2 * i], o.sackBlocks[2 * i + 1]);
  r.payloadLen = o.dataLen;
  const bytes = new Uint8Array(r.bufferLen());
  bytes.set(payload, r.headerLen()); // the checksum covers the payload: place it first
  r.emit(bytes, 0, o.srcAddr, o.dstAddr);
  const v = TcpView.checked(bytes);
  if (typeof v === 'string') throw new Error(`wire: ${v}`);
  const p = new TcpRepr();
  const e = p.parse(v, o.srcAddr, o.dstAddr, true);
  if (e !== null) throw new Error(`wire: ${e}`);
  return { r: p, data: bytes };
}

export function flagsOf(s: Sent): string {
  let x = '';
  if (s.flags & TCP_SYN) x += 'S';
  if (s.flags & TCP_FIN) x += 'F';
  if (s.flags & TCP_RST) x += 'R';
  if (s.flags & TCP_PSH) x += 'P';
  if (s.flags & TCP_ACK) x += '.';
  return x;
}
