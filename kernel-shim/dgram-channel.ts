/**
 * The dgram API's end of the shim <-> udp rings (message formats: servers/udp/api.ts).
 *
 * Outbound: ONE ordered queue for every socket of the stack, so the udp server sees requests in the
 * order the application made them (a CLOSE before the BIND of a new socket on the same port, a
 * datagram before the CLOSE of its socket). The queue is drained into the ring until either:
 *   - the pool has no buffer for a datagram: retried on a timer (with backoff up to POOL_RETRY_MAX_MS);
 *     the datagram waits, it is never dropped;
 *   - the ring is full: waits (without blocking the event loop) for space.
 * Records are published with one flush per microtask (many send() calls in one tick cost one doorbell),
 * and a datagram's send callback fires after the flush that handed it to the stack. The queue is
 * bounded (maxQueueBytes / maxQueueDatagrams): past that, send() fails with ENOBUFS, reported, never
 * silent.
 *
 * Inbound (from the shim's pump, one record at a time): REPLY resolves the request that waits for it
 * (replies for requests nobody waits for any more, e.g. answered twice after a udp restart, are
 * ignored); RECV claims the buffer, copies the payload into a Buffer, frees the buffer and hands the
 * datagram to its socket; ERROR goes to its socket. A handler never throws into the pump.
 */
import { ownerGen } from '../shared-rings/pool.js';
import type { RingConsumer, RingProducer } from '../shared-rings/ring.js';
import { HDR_DST_GEN, HDR_SRC_GEN, HEADROOM } from '../servers/runtime/messages.js';
import { rdI32, rdU16, rdU32, U, UDP_MSG, uerrName, wr16, wr32, type UdpErrName } from '../servers/udp/api.js';
import { UDP_HEADER_LEN } from '../servers/wire/udp.js';
import type { ShimHost } from './shim-host.js';

/** Where a socket receives what the channel has for it. */
export interface ChannelSocket {
  onDatagram(msg: Buffer, src: number, sport: number): void;
  onError(code: UdpErrName, op: number, addr: number, port: number, info: number): void;
  /** The stack is closing: the socket is closed with it. */
  onChannelClosed(): void;
}

/** Per-socket count of queued datagrams (getSendQueueCount / getSendQueueSize). */
export interface QueueCount {
  count: number;
  bytes: number;
}

export type SendCallback = (err: Error | null, bytes?: number) => void;
export type ReplyFn = (code: UdpErrName, addr: number, port: number) => void;

interface ControlItem {
  send: false;
  tag: number;
  reqId: number;
  sockId: number;
  addr: number;
  port: number;
  /** BIND flags, or SET_OPT option. */
  a: number;
  /** SET_OPT value. */
  b: number;
}

interface SendItem {
  send: true;
  sockId: number;
  list: Uint8Array[];
  total: number;
  dst: number;
  dport: number;
  flags: number;
  cb: SendCallback | undefined;
  q: QueueCount;
  /** Pool buffer once allocated (-1 before). */
  buf: number;
}

type Item = ControlItem | SendItem;

export interface ChannelOptions {
  /** Bytes of datagrams waiting for the stack before send() fails with ENOBUFS (default 16 MiB). */
  maxQueueBytes?: number;
  /** Datagrams waiting for the stack before send() fails with ENOBUFS (default 8192). */
  maxQueueDatagrams?: number;
}

const POOL_RETRY_MIN_MS = 1;
const POOL_RETRY_MAX_MS = 50;
const SPACE_WAIT_MS = 1000;

export class UdpChannel {
  readonly host: ShimHost;
  private readonly ring: RingProducer;
  private readonly srcGen: number;
  private readonly sockets = new Map<number, ChannelSocket>();
  private readonly waiting = new Map<number, ReplyFn>();
  private readonly queue: Item[] = [];
  private head = 0;
  private queuedDatagrams = 0;
  private queuedBytes = 0;
  private nextSockId = 1;
  private nextReqId = 1;
  private draining = false;
  private spaceWait = false;
  private poolTimer: NodeJS.Timeout | null = null;
  private poolDelay = POOL_RETRY_MIN_MS;
  private flushQueued = false;
  private done: SendItem[] = [];
  private closed = false;
  readonly maxQueueBytes: number;
  readonly maxQueueDatagrams: number;
  /** Counts (all time). */
  readonly stats = { sent: 0, received: 0, duplicates: 0, orphans: 0, poolWaits: 0, ringWaits: 0, refused: 0, badRecords: 0 };

  constructor(host: ShimHost, opts: ChannelOptions = {}) {
    this.host = host;
    this.ring = host.out('udp');
    this.srcGen = ownerGen(host.owner) || 1;
    this.maxQueueBytes = opts.maxQueueBytes ?? 16 << 20;
    this.maxQueueDatagrams = opts.maxQueueDatagrams ?? 8192;
    host.handle(UDP_MSG.REPLY, (_from, ring) => this.onReply(ring));
    host.handle(UDP_MSG.RECV, (_from, ring) => this.onRecv(ring));
    host.handle(UDP_MSG.ERROR, (_from, ring) => this.onError(ring));
  }

  /** A new socket id (monotonic u32, never 0). */
  allocSockId(): number {
    const id = this.nextSockId;
    this.nextSockId = (this.nextSockId + 1) >>> 0 || 1;
    return id;
  }

  register(sockId: number, s: ChannelSocket): void {
    this.sockets.set(sockId, s);
  }

  unregister(sockId: number): void {
    this.sockets.delete(sockId);
  }

  /** Queue a request; `onReply` (if given) gets the REPLY. */
  request(tag: number, sockId: number, addr: number, port: number, a: number, b: number, onReply?: ReplyFn): void {
    let reqId = 0;
    if (onReply) {
      reqId = this.nextReqId;
      this.nextReqId = (this.nextReqId + 1) >>> 0 || 1;
      this.waiting.set(reqId, onReply);
    }
    this.queue.push({ send: false, tag, reqId, sockId, addr: addr >>> 0, port, a, b });
    this.drain();
  }

  /** Whether a datagram of `bytes` more fits in the queue's bounds. */
  canQueue(bytes: number): boolean {
    return this.queuedDatagrams < this.maxQueueDatagrams && this.queuedBytes + bytes <= this.maxQueueBytes;
  }

  /** Queue a datagram (the caller checked canQueue and the size). `list` is referenced until handed over. */
  send(sockId: number, list: Uint8Array[], total: number, dst: number, dport: number, flags: number, q: QueueCount, cb: SendCallback | undefined): void {
    this.queue.push({ send: true, sockId, list, total, dst: dst >>> 0, dport, flags, cb, q, buf: -1 });
    this.queuedDatagrams++;
    this.queuedBytes += total;
    q.count++;
    q.bytes += total;
    this.drain();
  }

  /** Stop for good: what is still queued is dropped (its buffers freed, its callbacks never called). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of [...this.sockets.values()]) s.onChannelClosed();
    this.sockets.clear();
    if (this.poolTimer) clearTimeout(this.poolTimer);
    this.poolTimer = null;
    for (let i = this.head; i < this.queue.length; i++) {
      const it = this.queue[i];
      if (it.send && it.buf >= 0) this.host.pools.free(it.buf, this.host.owner);
    }
    this.queue.length = 0;
    this.head = 0;
    this.waiting.clear();
  }

  // ---- outbound -----------------------------------------------------------------------------------

  private drain(): void {
    if (this.draining || this.closed) return;
    this.draining = true;
    try {
      const q = this.queue;
      while (this.head < q.length) {
        const it = q[this.head];
        if (it.send ? !this.writeSend(it) : !this.writeControl(it)) break;
        q[this.head++] = undefined as unknown as Item;
      }
      if (this.head === q.length) {
        q.length = 0;
        this.head = 0;
      } else if (this.head > 1024 && this.head * 2 > q.length) {
        q.splice(0, this.head);
        this.head = 0;
      }
    } finally {
      this.draining = false;
    }
    if (this.ring.pending > 0 && !this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.flushQueued = false;
    this.ring.flush();
    const done = this.done;
    if (done.length === 0) return;
    this.done = [];
    for (const it of done) {
      if (it.cb === undefined) continue;
      try {
        it.cb(null, it.total);
      } catch (err) {
        process.nextTick(() => {
          throw err;
        });
      }
    }
  }

  private header(b: Uint8Array, o: number): void {
    wr32(b, o + HDR_DST_GEN, 0);
    wr32(b, o + HDR_SRC_GEN, this.srcGen);
  }

  private writeControl(it: ControlItem): boolean {
    const ring = this.ring;
    const len = it.tag === UDP_MSG.DISCONNECT || it.tag === UDP_MSG.CLOSE ? U.SIMPLE_BYTES : U.BIND_BYTES;
    const o = ring.reserve(len, it.tag);
    if (o < 0) return this.waitSpace(len);
    const b = ring.bytes;
    this.header(b, o);
    wr32(b, o + U.REQ_ID, it.reqId);
    wr32(b, o + U.SOCK_ID, it.sockId);
    if (len > U.SIMPLE_BYTES) {
      if (it.tag === UDP_MSG.SET_OPT) {
        wr16(b, o + U.OPT, it.a);
        wr16(b, o + U.OPT + 2, 0);
        wr32(b, o + U.OPT_VALUE, it.b);
      } else {
        wr32(b, o + U.ADDR, it.addr);
        wr16(b, o + U.PORT, it.port);
        wr16(b, o + U.BIND_FLAGS, it.a);
      }
    }
    ring.commit();
    return true;
  }

  private writeSend(it: SendItem): boolean {
    const host = this.host;
    const pools = host.pools;
    if (it.buf < 0) {
      const buf = pools.alloc(HEADROOM + UDP_HEADER_LEN + it.total, host.owner);
      if (buf < 0) return this.waitPool();
      this.poolDelay = POOL_RETRY_MIN_MS;
      // The one copy: the application's bytes into the pool buffer, behind room for the headers.
      const bytes = pools.bytesOf(buf);
      let at = pools.offsetOf(buf) + HEADROOM + UDP_HEADER_LEN;
      for (const part of it.list) {
        bytes.set(part, at);
        at += part.byteLength;
      }
      it.buf = buf;
      it.list = [];
    }
    const ring = this.ring;
    const o = ring.reserve(U.SEND_BYTES, UDP_MSG.SEND);
    if (o < 0) return this.waitSpace(U.SEND_BYTES);
    const b = ring.bytes;
    this.header(b, o);
    wr32(b, o + U.S_BUF, it.buf);
    wr32(b, o + U.S_EPOCH, pools.epochOf(it.buf));
    wr32(b, o + U.S_OFF, HEADROOM + UDP_HEADER_LEN);
    wr32(b, o + U.S_LEN, it.total);
    wr32(b, o + U.S_SOCK_ID, it.sockId);
    wr32(b, o + U.S_DST, it.dst);
    wr16(b, o + U.S_DPORT, it.dport);
    wr16(b, o + U.S_FLAGS, it.flags);
    ring.commit();
    this.queuedDatagrams--;
    this.queuedBytes -= it.total;
    it.q.count--;
    it.q.bytes -= it.total;
    this.stats.sent++;
    this.done.push(it);
    return true;
  }

  /** The pool is exhausted: try again soon (the datagram keeps its place at the head). */
  private waitPool(): boolean {
    if (this.poolTimer === null) {
      this.stats.poolWaits++;
      this.poolTimer = setTimeout(() => {
        this.poolTimer = null;
        this.drain();
      }, this.poolDelay);
      this.poolDelay = Math.min(POOL_RETRY_MAX_MS, this.poolDelay * 2);
    }
    return false;
  }

  /** The ring is full: publish what is there and wait for the udp server to make room. */
  private waitSpace(len: number): boolean {
    if (!this.spaceWait) {
      this.spaceWait = true;
      this.stats.ringWaits++;
      const again = (): void => {
        if (this.closed) return;
        this.ring
          .waitForSpaceAsync(len, SPACE_WAIT_MS)
          .then((ok) => {
            if (!ok && !this.closed) return again();
            this.spaceWait = false;
            this.flush();
            this.drain();
          })
          .catch(() => {
            this.spaceWait = false;
          });
      };
      again();
    }
    return false;
  }

  // ---- inbound ------------------------------------------------------------------------------------

  private onReply(ring: RingConsumer): void {
    if (ring.length < U.REPLY_BYTES) return void this.stats.badRecords++;
    const b = ring.bytes;
    const o = ring.offset;
    const fn = this.waiting.get(rdU32(b, o + U.R_REQ_ID));
    if (!fn) return void this.stats.duplicates++;
    this.waiting.delete(rdU32(b, o + U.R_REQ_ID));
    const code = uerrName(rdU16(b, o + U.R_CODE));
    const addr = rdU32(b, o + U.R_ADDR);
    const port = rdU16(b, o + U.R_PORT);
    process.nextTick(fn, code, addr, port);
  }

  private onRecv(ring: RingConsumer): void {
    if (ring.length < U.RECV_BYTES) return void this.stats.badRecords++;
    const b = ring.bytes;
    const o = ring.offset;
    const host = this.host;
    const pools = host.pools;
    const buf = rdI32(b, o + U.V_BUF);
    if (!host.claim(buf, rdI32(b, o + U.V_EPOCH), 'udp', rdI32(b, o + HDR_SRC_GEN))) {
      // A RECV replayed by a udp incarnation that died after publishing it: already delivered.
      this.stats.duplicates++;
      return;
    }
    const off = rdI32(b, o + U.V_OFF);
    const len = rdI32(b, o + U.V_LEN);
    const s = this.sockets.get(rdU32(b, o + U.V_SOCK_ID));
    if (s === undefined || !(off >= 0 && len >= 0 && off + len <= pools.capacityOf(buf))) {
      pools.free(buf, host.owner);
      if (s === undefined) this.stats.orphans++;
      else this.stats.badRecords++;
      return;
    }
    const start = pools.offsetOf(buf) + off;
    const msg = Buffer.allocUnsafe(len);
    msg.set(pools.bytesOf(buf).subarray(start, start + len));
    pools.free(buf, host.owner);
    this.stats.received++;
    try {
      s.onDatagram(msg, rdU32(b, o + U.V_SRC), rdU16(b, o + U.V_SPORT));
    } catch (err) {
      // A 'message' listener threw: surface it as Node would (an uncaught exception), not in the pump.
      process.nextTick(() => {
        throw err;
      });
    }
  }

  private onError(ring: RingConsumer): void {
    if (ring.length < U.ERROR_BYTES) return void this.stats.badRecords++;
    const b = ring.bytes;
    const o = ring.offset;
    const s = this.sockets.get(rdU32(b, o + U.E_SOCK_ID));
    if (s === undefined) return void this.stats.orphans++;
    const code = uerrName(rdU16(b, o + U.E_CODE));
    const op = b[o + U.E_OP];
    const addr = rdU32(b, o + U.E_ADDR);
    const port = rdU16(b, o + U.E_PORT);
    const info = rdU32(b, o + U.E_INFO);
    process.nextTick(() => s.onError(code, op, addr, port, info));
  }
}
