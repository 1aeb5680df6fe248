/**
 * The real TcpChannel (tcp-channel.ts): the shim's side of the tcp server, on the application's main
 * thread. Requests go to the tcp server as ring records (api.ts); bytes go straight into and out of
 * each connection's send and receive buffers in the tcp state (layout.ts), whose words say how far
 * each side has got. The tcp server wakes the shim with NOTIFY records (one per connection at a time:
 * it sets bits in the connection's NOTIFY word and sends a record only when the word was 0), and the
 * shim wakes the tcp server the same way with OP_KICK (the KICK word).
 *
 * Nothing here blocks, and every handler call is made from the shim's receive loop or a microtask,
 * never inside a TcpConn method (the contract's first rule).
 */
import { HDR_DST_GEN, HDR_SRC_GEN, rd32, rdU16, wr16, wr32 } from '../servers/runtime/messages.js';
import type { RingConsumer, RingProducer } from '../shared-rings/ring.js';
import { OP, OPTF_KEEPALIVE, OPTF_NODELAY, T, TCP_MSG, TERR_NAME } from '../servers/tcp/api.js';
import { connId, genOf, KICK_RECV, KICK_SEND, PUB, slotOf, SW, TcpViews } from '../servers/tcp/layout.js';
import { N } from '../servers/tcp/notify.js';
import type { ShimHost } from './shim-host.js';
import { atTurnEnd } from './turn-end.js';
import type { Endpoint } from '../servers/runtime/topology.js';
import type {
  ConnectRequest,
  ConnHandler,
  ListenHandler,
  ListenRequest,
  TcpChannel,
  TcpConn,
  TcpErrorCode,
  TcpListener,
} from './tcp-channel.js';

const SPACE_WAIT_MS = 50;
/** A write at least this large publishes its kick at once (see ShmConn.write). */
const PUBLISH_NOW_BYTES = 16384;

function codeError(code: string, message: string): Error & { code: string } {
  return Object.assign(new Error(message), { code });
}

/** The message header of a shim record at `at`: any incarnation of the receiver, the shim's generation 1. */
function stamp(b: Uint8Array, at: number): void {
  wr32(b, at + HDR_DST_GEN, 0);
  wr32(b, at + HDR_SRC_GEN, 1);
}

export class ShmTcpChannel implements TcpChannel {
  readonly views: TcpViews;
  private readonly ring: RingProducer;
  private readonly conns = new Map<number, ShmConn>();
  private readonly listeners = new Map<number, ShmListener>();
  private readonly waiting = new Map<number, (b: Uint8Array, o: number) => void>();
  private nextToken = 1;
  /** Records that did not fit in the ring yet (oldest first). */
  private readonly backlog: Uint8Array[] = [];
  private spaceWait = false;
  private flushQueued = false;
  private closed = false;
  /** windowKicks / windowKicksSkipped: reads that asked tcp for a window update / that did not need to. */
  readonly stats = { badRecords: 0, staleNotifies: 0, ringWaits: 0, duplicates: 0, windowKicks: 0, windowKicksSkipped: 0 };

  /**
   * `endpoint`: the tcp instance this channel talks to ('tcp', or 'tcp1'... with flow-sharded tcp).
   * `register`: take the shim's TCP records itself (one instance); with several, the stack routes
   * each record to its instance's channel by sender (receive()).
   */
  constructor(host: ShimHost, state: SharedArrayBuffer, endpoint: Endpoint = 'tcp', register = true) {
    this.views = new TcpViews(state);
    this.ring = host.out(endpoint);
    if (register) {
      host.handle(TCP_MSG.REPLY, (_f, ring) => this.onReply(ring));
      host.handle(TCP_MSG.NOTIFY, (_f, ring) => this.onNotify(ring));
      host.handle(TCP_MSG.ACCEPTED, (_f, ring) => this.onAccepted(ring));
    }
  }

  /** Live connections of this channel (least-loaded placement of connects). */
  get connections(): number {
    return this.conns.size;
  }

  /** A TCP record from this channel's instance (when the stack routes them: see the constructor). */
  receive(ring: RingConsumer): void {
    const tag = ring.tag;
    if (tag === TCP_MSG.NOTIFY) this.onNotify(ring);
    else if (tag === TCP_MSG.REPLY) this.onReply(ring);
    else if (tag === TCP_MSG.ACCEPTED) this.onAccepted(ring);
    else this.stats.badRecords++;
  }

  // ---- requests -----------------------------------------------------------------------------------

  private token(fn: (b: Uint8Array, o: number) => void): number {
    const t = this.nextToken;
    this.nextToken = (this.nextToken + 1) >>> 0 || 1;
    this.waiting.set(t, fn);
    return t;
  }

  /** Queue a record (type, payload bytes after the 8-byte header, already filled from offset 8). */
  send(tag: number, rec: Uint8Array): void {
    if (this.closed) return;
    stamp(rec, 0);
    (rec as Uint8Array & { tag?: number }).tag = tag;
    this.backlog.push(rec);
    this.drain();
  }

  private drain(): void {
    while (this.backlog.length > 0) {
      const rec = this.backlog[0] as Uint8Array & { tag: number };
      const o = this.ring.reserve(rec.length, rec.tag);
      if (o < 0) {
        this.waitSpace(rec.length);
        break;
      }
      this.ring.bytes.set(rec, o);
      this.ring.commit();
      this.backlog.shift();
    }
    this.flushSoon();
  }

  /** Publish what was committed at the end of this turn of the event loop (batched publication). */
  private flushSoon(): void {
    if (this.ring.pending > 0 && !this.flushQueued) {
      this.flushQueued = true;
      atTurnEnd(this.flushNow);
    }
  }

  /**
   * Publish what is committed now rather than at the end of the turn: the pump calls it after a drain,
   * whose handlers' writes (a response to the request just delivered) then reach the tcp server before
   * the pump goes on to its next poll. @internal
   */
  publishNow(): void {
    this.ring.flush();
  }

  private readonly flushNow = (): void => {
    this.flushQueued = false;
    this.ring.flush();
  };

  private waitSpace(len: number): void {
    if (this.spaceWait) return;
    this.spaceWait = true;
    this.stats.ringWaits++;
    this.ring.flush();
    const again = (): void => {
      if (this.closed) return;
      this.ring
        .waitForSpaceAsync(len, SPACE_WAIT_MS)
        .then((ok) => {
          if (!ok && !this.closed) return again();
          this.spaceWait = false;
          this.drain();
        })
        .catch(() => {
          this.spaceWait = false;
        });
    };
    again();
  }

  op(id: number, op: number, value = 0): void {
    if (this.closed) return;
    // The common case (a kick per read or write) writes straight into the ring: no record allocated.
    const o = this.backlog.length === 0 ? this.ring.reserve(T.OP_BYTES, TCP_MSG.OP) : -1;
    const rec = o >= 0 ? this.ring.bytes : new Uint8Array(T.OP_BYTES);
    const at = o >= 0 ? o : 0;
    wr32(rec, at + T.O_CONN, id);
    rec[at + T.O_OP] = op;
    wr32(rec, at + T.O_VALUE, value);
    if (o < 0) return this.send(TCP_MSG.OP, rec);
    stamp(rec, at);
    this.ring.commit();
    this.flushSoon();
  }

  connect(req: ConnectRequest, handler: ConnHandler): TcpConn {
    const conn = new ShmConn(this, handler, req.remoteAddress >>> 0, req.remotePort);
    if (this.closed) {
      queueMicrotask(() => conn.fail('ECONNABORTED'));
      return conn;
    }
    const rec = new Uint8Array(T.CONNECT_BYTES);
    const token = this.token((b, o) => {
      const code = rd32(b, o + T.R_CODE);
      if (code !== 0) return conn.fail(TERR_NAME[code] ?? 'ECONNABORTED');
      conn.attach(rd32(b, o + T.R_CONN) >>> 0);
      if (conn.wantClose) this.op(conn.id, conn.wantClose);
    });
    wr32(rec, T.TOKEN, token);
    wr32(rec, T.C_RADDR, req.remoteAddress >>> 0);
    wr16(rec, T.C_RPORT, req.remotePort);
    wr16(rec, T.C_LPORT, req.localPort);
    wr32(rec, T.C_LADDR, req.localAddress >>> 0);
    wr16(rec, T.C_FLAGS, (req.noDelay ? OPTF_NODELAY : 0) | (req.keepAlive ? OPTF_KEEPALIVE : 0));
    rec[T.C_CC] = 0;
    wr32(rec, T.C_KEEPIDLE, req.keepAliveIdleMs >>> 0);
    this.send(TCP_MSG.CONNECT, rec);
    return conn;
  }

  listen(req: ListenRequest, handler: ListenHandler): Promise<TcpListener> {
    if (this.closed) return Promise.reject(codeError('ECONNABORTED', 'the stack is closed'));
    return new Promise((resolve, reject) => {
      const rec = new Uint8Array(T.LISTEN_BYTES);
      const token = this.token((b, o) => {
        const code = rd32(b, o + T.R_CODE);
        const name = TERR_NAME[code];
        if (code !== 0) return reject(codeError(name ?? 'EINVAL', `listen ${name ?? 'EINVAL'}`));
        const l = new ShmListener(this, rd32(b, o + T.R_CONN) >>> 0, rd32(b, o + T.R_LADDR) >>> 0, rdU16(b, o + T.R_LPORT), handler);
        this.listeners.set(l.id, l);
        resolve(l);
      });
      wr32(rec, T.TOKEN, token);
      wr32(rec, T.L_ADDR, req.address >>> 0);
      wr16(rec, T.L_PORT, req.port);
      wr16(rec, T.L_BACKLOG, Math.max(1, Math.min(0xffff, req.backlog | 0)));
      this.send(TCP_MSG.LISTEN, rec);
    });
  }

  register(c: ShmConn): void {
    this.conns.set(c.id, c);
  }
  forget(c: ShmConn): void {
    if (this.conns.get(c.id) === c) this.conns.delete(c.id);
  }
  forgetListener(l: ShmListener): void {
    this.listeners.delete(l.id);
  }

  /** Wake the tcp server about a connection (coalesced: one OP_KICK until it takes the bits). */
  kick(id: number, bits: number): void {
    const sock = this.views.sock;
    const base = slotOf(id) * SW.WORDS;
    if (Atomics.load(sock, base + SW.GEN) !== genOf(id)) return;
    const old = Atomics.or(sock, base + SW.KICK, bits);
    if (old === 0) this.op(id, OP.KICK);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const c of [...this.conns.values()]) c.fail('ECONNABORTED');
    this.conns.clear();
    this.listeners.clear();
    this.waiting.clear();
    this.backlog.length = 0;
  }

  // ---- events -------------------------------------------------------------------------------------

  private onReply(ring: RingConsumer): void {
    if (ring.length < T.REPLY_BYTES) return void this.stats.badRecords++;
    const tok = rd32(ring.bytes, ring.offset + T.R_TOKEN) >>> 0;
    const fn = this.waiting.get(tok);
    if (!fn) return void this.stats.duplicates++;
    this.waiting.delete(tok);
    fn(ring.bytes, ring.offset);
  }

  private onNotify(ring: RingConsumer): void {
    if (ring.length < T.NOTIFY_BYTES) return void this.stats.badRecords++;
    const id = rd32(ring.bytes, ring.offset + T.N_CONN) >>> 0;
    const c = this.conns.get(id);
    if (c) return c.onNotify();
    const l = this.listeners.get(id);
    if (l) {
      // A listener's words say only that it failed (its own NOTIFY bits are not used otherwise).
      Atomics.exchange(this.views.sock, slotOf(id) * SW.WORDS + SW.NOTIFY, 0);
      return;
    }
    // Not ours (yet): an accepted connection whose ACCEPTED comes after a restart of tcp. Its bits
    // stay in the word for when it is taken.
    this.stats.staleNotifies++;
  }

  private onAccepted(ring: RingConsumer): void {
    if (ring.length < T.ACCEPTED_BYTES) return void this.stats.badRecords++;
    const b = ring.bytes;
    const o = ring.offset;
    const lid = rd32(b, o + T.A_LISTENER) >>> 0;
    const id = rd32(b, o + T.A_CONN) >>> 0;
    if (this.conns.has(id)) return void this.stats.duplicates++;
    const l = this.listeners.get(lid);
    if (!l || l.closed) {
      // Nobody listens any more: reset it (OP_ABORT also takes it off the listener's backlog).
      this.op(id, OP.ABORT);
      return;
    }
    const sock = this.views.sock;
    const base = slotOf(id) * SW.WORDS;
    if (Atomics.load(sock, base + SW.GEN) !== genOf(id)) return;
    const c = new ShmConn(this, null, rd32(b, o + T.A_RADDR) >>> 0, rdU16(b, o + T.A_RPORT));
    c.attach(id);
    Atomics.store(sock, base + SW.TAKEN, 1);
    this.op(id, OP.TAKEN);
    l.handler.onConnection(c);
    // Bits set before we knew the connection (data that came with the handshake, a FIN...).
    c.onNotify();
  }
}

class ShmListener implements TcpListener {
  readonly id: number;
  readonly address: number;
  readonly port: number;
  readonly handler: ListenHandler;
  closed = false;
  private readonly ch: ShmTcpChannel;

  constructor(ch: ShmTcpChannel, id: number, address: number, port: number, handler: ListenHandler) {
    this.ch = ch;
    this.id = id;
    this.address = address;
    this.port = port;
    this.handler = handler;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.ch.op(this.id, OP.UNLISTEN);
    this.ch.forgetListener(this);
  }
}

class ShmConn implements TcpConn {
  id = 0;
  handler: ConnHandler | null;
  localAddress = 0;
  localPort = 0;
  remoteAddress: number;
  remotePort: number;
  /** OP_CLOSE / OP_ABORT asked for before the CONNECT's reply named the connection. */
  wantClose = 0;
  private readonly ch: ShmTcpChannel;
  private base = -1;
  private sendOff = 0;
  private recvOff = 0;
  private mask = 0;
  private err: TcpErrorCode | null = null;
  private gone = false;
  private connected = false;
  private shut = false;

  constructor(ch: ShmTcpChannel, handler: ConnHandler | null, raddr: number, rport: number) {
    this.ch = ch;
    this.handler = handler;
    this.remoteAddress = raddr;
    this.remotePort = rport;
  }

  attach(id: number): void {
    const v = this.ch.views;
    const slot = slotOf(id);
    this.id = id;
    this.base = slot * SW.WORDS;
    this.sendOff = v.sendBufOff(slot);
    this.recvOff = v.recvBufOff(slot);
    this.mask = v.layout.bufBytes - 1;
    const s = v.sock;
    this.localAddress = Atomics.load(s, this.base + SW.LADDR) >>> 0;
    this.localPort = Atomics.load(s, this.base + SW.LPORT);
    this.remoteAddress = Atomics.load(s, this.base + SW.RADDR) >>> 0;
    this.remotePort = Atomics.load(s, this.base + SW.RPORT);
    this.ch.register(this);
  }

  private live(): boolean {
    return !this.gone && this.base >= 0 && Atomics.load(this.ch.views.sock, this.base + SW.GEN) === genOf(this.id);
  }

  private word(i: number): number {
    return Atomics.load(this.ch.views.sock, this.base + i);
  }

  get readable(): number {
    if (!this.live()) return 0;
    return (this.word(SW.RCVD) - this.word(SW.APP_CONSUMED)) >>> 0;
  }

  get eof(): boolean {
    if (!this.live()) return this.gone && this.err === null;
    const flags = this.word(SW.FLAGS);
    return (flags & PUB.FIN) !== 0 && this.readable === 0;
  }

  get error(): TcpErrorCode | null {
    return this.err;
  }

  read(max: number): Buffer | null {
    if (!this.live()) return null;
    const s = this.ch.views.sock;
    const consumed = Atomics.load(s, this.base + SW.APP_CONSUMED) >>> 0;
    const rcvd = Atomics.load(s, this.base + SW.RCVD);
    const n = Math.min(max, (rcvd - consumed) >>> 0);
    if (n <= 0) return null;
    const bytes = this.ch.views.bytes;
    const start = consumed & this.mask;
    // A Buffer whose first byte sits at the receive buffer's alignment modulo 8, so the copy out of
    // shared memory is a word copy (V8 copies bytes one at a time between unequally aligned ends: 2-3
    // GB/s instead of 16 for 64 KiB; this copy was the shim's largest cost in `bench bulk`).
    let out: Buffer;
    if (n >= 256) {
      const raw = Buffer.allocUnsafe(n + 7);
      const skew = (bytes.byteOffset + this.recvOff + start - raw.byteOffset) & 7;
      out = raw.subarray(skew, skew + n);
    } else {
      out = Buffer.allocUnsafe(n);
    }
    const first = Math.min(n, this.mask + 1 - start);
    out.set(bytes.subarray(this.recvOff + start, this.recvOff + start + first), 0);
    if (first < n) out.set(bytes.subarray(this.recvOff, this.recvOff + n - first), first);
    Atomics.store(s, this.base + SW.APP_CONSUMED, (consumed + n) | 0);
    // Ask tcp for a window update only when the peer may need one: it is within half a buffer of the
    // edge we advertised, or an ACK waits for this read (PUB.ACK_OWED). Otherwise the data still
    // coming carries the opened window in its ACKs, and a kick only wakes the tcp server for nothing:
    // a wake-up per 64 KiB read was the largest cost left on the main thread in `bench bulk`.
    // (A room larger than the buffer is no room at all: words from two different moments.)
    const room = (Atomics.load(s, this.base + SW.RCV_EDGE) - (rcvd >>> 0)) >>> 0;
    if (room <= (this.mask + 1) >>> 1 || room > this.mask + 1 || (Atomics.load(s, this.base + SW.FLAGS) & PUB.ACK_OWED) !== 0) {
      this.ch.stats.windowKicks++;
      this.ch.kick(this.id, KICK_RECV);
    } else this.ch.stats.windowKicksSkipped++;
    return out;
  }

  get writableSpace(): number {
    if (!this.live() || this.shut) return 0;
    return this.mask + 1 - this.unacknowledged;
  }

  get unacknowledged(): number {
    if (!this.live()) return 0;
    return (this.word(SW.APP_WRITTEN) - this.word(SW.ACKED)) >>> 0;
  }

  write(data: Uint8Array): number {
    if (!this.live() || this.shut || this.err) return 0;
    const s = this.ch.views.sock;
    const written = Atomics.load(s, this.base + SW.APP_WRITTEN) >>> 0;
    const n = Math.min(data.length, this.writableSpace);
    if (n <= 0) return 0;
    const bytes = this.ch.views.bytes;
    const start = written & this.mask;
    const first = Math.min(n, this.mask + 1 - start);
    bytes.set(data.subarray(0, first), this.sendOff + start);
    if (first < n) bytes.set(data.subarray(first, n), this.sendOff);
    Atomics.store(s, this.base + SW.APP_WRITTEN, (written + n) | 0);
    this.ch.kick(this.id, KICK_SEND);
    // A large write publishes its kick at once rather than at the end of the turn (flushSoon): an
    // application writing megabytes in one turn would otherwise leave the tcp server parked with a
    // full send buffer until it returns (seen in `bench bulk` as the host idle while the shim wrote).
    if (n >= PUBLISH_NOW_BYTES) this.ch.publishNow();
    return n;
  }

  shutdown(): void {
    if (this.shut || this.gone) return;
    this.shut = true;
    if (this.base >= 0) this.ch.op(this.id, OP.SHUTDOWN);
    else this.wantClose = OP.SHUTDOWN;
  }

  close(): void {
    this.release(OP.CLOSE);
  }

  destroy(): void {
    this.release(OP.ABORT);
  }

  private release(op: number): void {
    if (this.gone) return;
    this.gone = true;
    this.shut = true;
    if (this.base >= 0) {
      this.ch.op(this.id, op);
      this.ch.forget(this);
    } else {
      this.wantClose = op;
    }
    queueMicrotask(() => this.handler?.onClose());
  }

  setNoDelay(on: boolean): void {
    if (this.base >= 0 && !this.gone) this.ch.op(this.id, OP.NODELAY, on ? 1 : 0);
  }

  setKeepAlive(on: boolean, idleMs: number): void {
    if (this.base >= 0 && !this.gone) this.ch.op(this.id, OP.KEEPALIVE, on ? Math.max(1, idleMs | 0) : 0);
  }

  /** The connection failed before or without the tcp server (refused at CONNECT, stack closing). */
  fail(code: TcpErrorCode): void {
    if (this.gone) return;
    this.err = code;
    this.gone = true;
    this.ch.forget(this);
    this.handler?.onError(code);
    this.handler?.onClose();
  }

  /** NOTIFY: take the bits and tell the handler, in a fixed order. */
  onNotify(): void {
    if (!this.live()) return;
    const s = this.ch.views.sock;
    const bits = Atomics.exchange(s, this.base + SW.NOTIFY, 0);
    const flags = Atomics.load(s, this.base + SW.FLAGS);
    const h = this.handler;
    if (((flags & PUB.CONNECTED) !== 0 || (bits & N.CONNECTED) !== 0) && !this.connected) {
      this.connected = true;
      this.localAddress = Atomics.load(s, this.base + SW.LADDR) >>> 0;
      this.localPort = Atomics.load(s, this.base + SW.LPORT);
      h?.onConnect();
    }
    if (bits & (N.READABLE | N.CLOSED | N.ERROR)) this.handler?.onReadable();
    if (bits & N.WRITABLE) this.handler?.onWritable();
    const errCode = Atomics.load(s, this.base + SW.ERR);
    if (errCode !== 0 && this.err === null) {
      const e: TcpErrorCode = TERR_NAME[errCode] ?? 'ECONNRESET';
      this.err = e;
      // The connection is over on tcp's side: release the slot (OP_CLOSE) and tell the application.
      this.gone = true;
      this.ch.op(this.id, OP.CLOSE);
      this.ch.forget(this);
      this.handler?.onError(e);
      this.handler?.onClose();
    }
  }
}

export { connId };
