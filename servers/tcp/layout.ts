/**
 * The tcp server's shared state: one SharedArrayBuffer that outlives every incarnation of the server
 * and that the kernel shim (the application side, on the main thread) maps too.
 *
 *   header      Int32 words H_*: magic, sizes, the stack's ISN secret, the undo log's length
 *   counters    Float64 words (counters.ts): per-reason drops and protocol events, written by tcp only
 *   undo log    Float64 pairs (word index, old value): see tx.ts
 *   tx words    Float64 words changed only through the undo log (tx.ts), so every input message's
 *               changes commit or vanish together:
 *                 globals   [G.WORDS]           free slot list head, slots in use
 *                 buckets   [NBUCKETS]          head slot + 1 of each four-tuple hash chain (0: empty)
 *                 meta      [maxConns * META]   per slot: in use, generation, hash chain, listener
 *                                               links, accept queue, timer deadline (M_*)
 *                 tcbs      [maxConns * TCB_SLOT_WORDS]   the Tcb of each slot (core/tcb.ts)
 *   sock words  Int32 words, SW per slot, NOT transactional: each word has one writer, either the
 *               shim (SW_APP_*: what the application wrote and read, and its kicks) or tcp (what it
 *               publishes to the application after each commit, derived from the Tcb, so a restarted
 *               tcp server simply publishes again)
 *   buffers     per slot: the send buffer, then the receive buffer, `bufBytes` each (a power of two).
 *               Byte k of the outgoing stream (sequence number ISS + 1 + k) sits at k mod bufBytes of
 *               the send buffer; byte k of the incoming stream (IRS + 1 + k) at k mod bufBytes of the
 *               receive buffer. The shim writes the send buffer ahead of what tcp has read and reads
 *               the receive buffer behind what tcp has published, so each byte has one writer at a
 *               time (OpenOnload's shared socket buffers, seed 001).
 */

export const TCP_MAGIC = 0x7c9e7c9e;
export const TCP_LAYOUT_VERSION = 1;

/** Header words (Int32). */
export const H = Object.freeze({
  MAGIC: 0,
  VERSION: 1,
  MAX_CONNS: 2,
  BUF_BYTES: 3,
  /** The RFC 6528 secret, 4 words. */
  SECRET: 4,
  /** Undo log entries in use (tx.ts); 0: nothing to undo. */
  LOG_LEN: 8,
  LOG_CAP: 9,
  /** Ephemeral port cursor (not transactional: any value is a valid start). */
  PORT_CURSOR: 10,
  WORDS: 16,
});

/** Bytes kept for counters (Float64 words). */
export const COUNTER_WORDS = 128;
/** Words reserved for one Tcb (core/tcb.ts TCB_WORDS must fit). */
export const TCB_SLOT_WORDS = 320;
/** Undo log capacity (entries). One message touches one or two Tcbs and a few table words. */
export const LOG_ENTRIES = 8192;

/** Per-slot metadata (tx words). */
export const M = Object.freeze({
  /** 0 free, 1 connection, 2 listener. */
  KIND: 0,
  /** Generation of the slot's current occupant (1..0xffff, bumped on every allocation). */
  GEN: 1,
  /** Next slot + 1 in the same hash chain. */
  HNEXT: 2,
  /** The hash bucket this slot is linked in, -1 if none. */
  BUCKET: 3,
  /** For a passively opened connection: its listener's slot + 1 until accepted by the application. */
  PARENT: 4,
  /** Listener: accept queue head / tail (slot + 1) of established, not yet announced... see conn-table.ts */
  AQ_HEAD: 5,
  AQ_TAIL: 6,
  /** Connection: next in its listener's accept queue (slot + 1). */
  AQ_NEXT: 7,
  /** Listener: backlog; connection: 1 while queued in an accept queue. */
  BACKLOG: 8,
  /** Listener: connections in SYN_RECEIVED or queued (not yet taken by the application). */
  PENDING: 9,
  /** The earliest timer deadline of the slot's Tcb (us), Infinity if none. */
  DEADLINE: 10,
  /** The shim's token of the request that created this slot (CONNECT, LISTEN), for replays. */
  TOKEN: 11,
  /** 1 once the application closed (released) this connection: the slot is freed when the Tcb is CLOSED. */
  APP_CLOSED: 12,
  /** Free-list link (slot + 1). */
  FREE_NEXT: 13,
  /** The four-tuple (what the hash chain is keyed by); a listener has raddr = rport = 0. */
  LADDR: 14,
  LPORT: 15,
  RADDR: 16,
  RPORT: 17,
  /** Connection of a listener: 1 once ESTABLISHED (announced to the shim with ACCEPTED until taken). */
  READY: 18,
  WORDS: 24,
});

/** Global tx words (before the hash buckets). */
export const G = Object.freeze({
  /** Head of the free slot list (slot + 1, 0: none). */
  FREE_HEAD: 0,
  /** Slots in use. */
  USED: 1,
  WORDS: 8,
});

export const KIND_FREE = 0;
export const KIND_CONN = 1;
export const KIND_LISTENER = 2;

/** Per-slot shared words (Int32), with their single writer. */
export const SW = Object.freeze({
  // written by tcp
  /** Generation of the occupant (mirrors M.GEN): the shim checks it before trusting the rest. */
  GEN: 0,
  /** Data bytes of the outgoing stream acknowledged by the peer (uint32, wraps): send space is freed. */
  ACKED: 1,
  /** Data bytes of the incoming stream received in order (uint32, wraps): readable up to here. */
  RCVD: 2,
  /** PUB_* bits. Written after ACKED/RCVD, so a reader that sees a bit sees the counts it covers. */
  FLAGS: 3,
  /** Error code (TcpErr of api.ts), 0 none. */
  ERR: 4,
  LADDR: 5,
  LPORT: 6,
  RADDR: 7,
  RPORT: 8,
  /** N_* bits for the shim: tcp ORs them in; the shim takes them with an exchange. */
  NOTIFY: 9,
  // written by the shim
  /** Data bytes the application wrote into the send buffer (uint32, wraps). */
  APP_WRITTEN: 10,
  /** Data bytes the application read from the receive buffer (uint32, wraps). */
  APP_CONSUMED: 11,
  /** KICK_* bits for tcp: the shim ORs them in (sending a KICK message on 0 -> non-0); tcp exchanges. */
  KICK: 12,
  /** 1 once the shim has taken this (accepted) connection. */
  TAKEN: 13,
  // written by tcp
  /**
   * The receive window's right edge as last advertised, in RCVD's terms (uint32, wraps). The shim asks
   * for a window update after a read only when the peer is close to it (see tcp-shm-channel.ts read()).
   */
  RCV_EDGE: 14,
  WORDS: 16,
});

/** SW.FLAGS bits. */
export const PUB = Object.freeze({
  /** The handshake completed. */
  CONNECTED: 1,
  /** The peer's FIN arrived (after RCVD bytes). */
  FIN: 2,
  /** The connection is CLOSED (reset, timed out, or closed both ways). */
  CLOSED: 4,
  /** The send side is shut (FIN queued). */
  SHUT: 8,
  /** An ACK for a short segment waits on its delay: a read that drains it should kick (appRecv sends it). */
  ACK_OWED: 16,
});

export const KICK_SEND = 1;
export const KICK_RECV = 2;

export interface TcpLayoutOptions {
  maxConnections?: number;
  /** Send and receive buffer bytes per connection (a power of two, 4 KiB .. 64 MiB). */
  bufferBytes?: number;
}

export const DEFAULT_MAX_CONNECTIONS = 256;
/** The default buffer (send and receive, per connection), and the floor of wireBufferBytes(). */
export const DEFAULT_BUFFER_BYTES = 1 << 17;
/** The largest buffer wireBufferBytes() picks. */
export const MAX_WIRE_BUFFER_BYTES = 1 << 22;
/**
 * Bytes of send + receive buffers a table sized by wireBufferBytes() may reserve. Reserved, not used:
 * a SharedArrayBuffer's pages are committed when first touched, so an idle connection costs no memory
 * and a busy one the bytes it actually cycles through. (8 MiB buffers for 256 connections would exceed
 * what one SharedArrayBuffer may hold.)
 */
const WIRE_BUFFER_BUDGET = 2 ** 31;

/**
 * The default buffer of a stack whose link carries 64 KiB frames: the shared-memory wire, and a TAP with
 * TSO/GRO (IFF_VNET_HDR) (stack-memory.ts). The largest power of two up to 4 MiB that keeps the table
 * within the budget (4 MiB for the default 256 connections, 1 MiB for 1024), never below 128 KiB.
 * Why larger there: a window holds few 64 KiB segments, and a bulk transfer sends a window per round
 * trip through every thread on the path (app, tcp, ip, driver and back, each a wake-up).
 *  - Shared-memory wire, `bench bulk`-style runs side by side on this machine (shared placement, MB/s):
 *    1 MiB 623-787, 2 MiB 796-909, 4 MiB 795-989. (Earlier, with a slower stack: 128 KiB 91-120,
 *    512 KiB 168-196, 1 MiB 177-247.)
 *  - TSO TAP, keepnet->kernel / kernel->keepnet: 128 KiB 169-193 / 384-437, 1 MiB 606-793 / 498-558,
 *    2 MiB 672-707 / 576-733, 4 MiB 735-969 / 533-914.
 * Not on a plain TAP: with a 1 MiB window the kernel peer's burst of 1500-byte frames overran the path
 * while the application's event loop was blocked, and the kernel took a retransmission timeout
 * (test/net/tcp-kernel.test.ts), which the default 128 KiB never caused.
 */
export function wireBufferBytes(maxConns: number): number {
  let b = MAX_WIRE_BUFFER_BYTES;
  while (b > DEFAULT_BUFFER_BYTES && maxConns * 2 * b > WIRE_BUFFER_BUDGET) b >>= 1;
  return b;
}

const align = (n: number, a: number): number => Math.ceil(n / a) * a;

/** Offsets of every region (bytes), from the sizes. */
export class TcpLayout {
  readonly maxConns: number;
  readonly bufBytes: number;
  readonly nBuckets: number;
  readonly countersOff: number;
  readonly logOff: number;
  readonly txOff: number;
  /** Word indexes inside the tx Float64 region. */
  readonly globalsWord = 0;
  readonly bucketsWord = G.WORDS;
  readonly metaWord: number;
  readonly tcbWord: number;
  readonly txWords: number;
  readonly sockOff: number;
  readonly bufOff: number;
  readonly totalBytes: number;

  constructor(maxConns: number, bufBytes: number) {
    this.maxConns = maxConns;
    this.bufBytes = bufBytes;
    this.nBuckets = 1 << Math.ceil(Math.log2(maxConns * 2));
    this.countersOff = H.WORDS * 4;
    this.logOff = align(this.countersOff + COUNTER_WORDS * 8, 64);
    this.txOff = align(this.logOff + LOG_ENTRIES * 16, 64);
    this.metaWord = this.bucketsWord + this.nBuckets;
    this.tcbWord = this.metaWord + maxConns * M.WORDS;
    this.txWords = this.tcbWord + maxConns * TCB_SLOT_WORDS;
    this.sockOff = align(this.txOff + this.txWords * 8, 64);
    this.bufOff = align(this.sockOff + maxConns * SW.WORDS * 4, 4096);
    this.totalBytes = this.bufOff + maxConns * 2 * bufBytes;
  }

  static validate(opts: TcpLayoutOptions): { maxConns: number; bufBytes: number } {
    const maxConns = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    const bufBytes = opts.bufferBytes ?? DEFAULT_BUFFER_BYTES;
    if (!Number.isInteger(maxConns) || maxConns < 1 || maxConns > 65535) {
      throw Object.assign(new RangeError(`tcp.maxConnections must be an integer in 1..65535, got ${maxConns}`), { code: 'ERR_OUT_OF_RANGE' });
    }
    if (!Number.isInteger(bufBytes) || bufBytes < 4096 || bufBytes > 1 << 26 || (bufBytes & (bufBytes - 1)) !== 0) {
      throw Object.assign(new RangeError(`tcp.bufferBytes must be a power of two in 4096..67108864, got ${bufBytes}`), { code: 'ERR_OUT_OF_RANGE' });
    }
    return { maxConns, bufBytes };
  }

  /** Create and initialise the tcp state (main thread, once per stack). */
  static create(opts: TcpLayoutOptions = {}, secret?: Uint32Array): SharedArrayBuffer {
    const { maxConns, bufBytes } = TcpLayout.validate(opts);
    const l = new TcpLayout(maxConns, bufBytes);
    const sab = new SharedArrayBuffer(l.totalBytes);
    const h = new Int32Array(sab, 0, H.WORDS);
    h[H.VERSION] = TCP_LAYOUT_VERSION;
    h[H.MAX_CONNS] = maxConns;
    h[H.BUF_BYTES] = bufBytes;
    const s = secret ?? crypto.getRandomValues(new Uint32Array(4));
    for (let i = 0; i < 4; i++) h[H.SECRET + i] = s[i] | 0;
    h[H.LOG_CAP] = LOG_ENTRIES;
    const tx = new Float64Array(sab, l.txOff, l.txWords);
    tx[l.globalsWord + G.FREE_HEAD] = 1;
    for (let i = 0; i < maxConns; i++) {
      tx[l.metaWord + i * M.WORDS + M.BUCKET] = -1;
      tx[l.metaWord + i * M.WORDS + M.DEADLINE] = Infinity;
      tx[l.metaWord + i * M.WORDS + M.FREE_NEXT] = i + 2 <= maxConns ? i + 2 : 0;
    }
    Atomics.store(h, H.MAGIC, TCP_MAGIC);
    return sab;
  }

  /** The layout of an existing state; null if the SAB holds no tcp state. */
  static of(sab: SharedArrayBuffer): TcpLayout | null {
    if (sab.byteLength < H.WORDS * 4) return null;
    const h = new Int32Array(sab, 0, H.WORDS);
    if (Atomics.load(h, H.MAGIC) !== TCP_MAGIC || h[H.VERSION] !== TCP_LAYOUT_VERSION) return null;
    return new TcpLayout(h[H.MAX_CONNS], h[H.BUF_BYTES]);
  }
}

/** Typed views over a tcp state SAB (one per thread). */
export class TcpViews {
  readonly layout: TcpLayout;
  readonly header: Int32Array;
  readonly counters: Float64Array;
  readonly log: Float64Array;
  readonly tx: Float64Array;
  /** The same words as Int32 pairs (bitwise comparison: tcp/server.ts store()). */
  readonly tx32: Int32Array;
  readonly sock: Int32Array;
  readonly bytes: Uint8Array;

  constructor(sab: SharedArrayBuffer) {
    const l = TcpLayout.of(sab);
    if (!l) throw new Error('no tcp state in this SharedArrayBuffer');
    this.layout = l;
    this.header = new Int32Array(sab, 0, H.WORDS);
    this.counters = new Float64Array(sab, l.countersOff, COUNTER_WORDS);
    this.log = new Float64Array(sab, l.logOff, LOG_ENTRIES * 2);
    this.tx = new Float64Array(sab, l.txOff, l.txWords);
    this.tx32 = new Int32Array(sab, l.txOff, l.txWords * 2);
    this.sock = new Int32Array(sab, l.sockOff, l.maxConns * SW.WORDS);
    this.bytes = new Uint8Array(sab);
  }

  /** Byte offset of slot's send buffer. */
  sendBufOff(slot: number): number {
    return this.layout.bufOff + slot * 2 * this.layout.bufBytes;
  }
  /** Byte offset of slot's receive buffer. */
  recvBufOff(slot: number): number {
    return this.layout.bufOff + slot * 2 * this.layout.bufBytes + this.layout.bufBytes;
  }
}

/** connId = slot | generation << 16: a stale id (the slot was reused) is recognised by its generation. */
export const connId = (slot: number, gen: number): number => (slot | (gen << 16)) >>> 0;
export const slotOf = (id: number): number => id & 0xffff;
export const genOf = (id: number): number => (id >>> 16) & 0xffff;
