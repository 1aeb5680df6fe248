/**
 * An in-memory TcpChannel for the net API's tests: stacks ("hosts", one channel each) joined in one
 * process by a FakeNetwork. A connection is two endpoints, each with a bounded send buffer and a
 * bounded receive buffer; a pump moves bytes from one side's send buffer into the other's receive
 * buffer as far as it has room (that is the window), so backpressure is real: a reader that stops
 * reading fills its receive buffer, then the writer's send buffer, then write() takes 0 bytes.
 *
 * Behaviour, modelled on Linux:
 *   - connect: refused (ECONNREFUSED) without a listener; ETIMEDOUT after connectTimeoutMs towards a
 *     blackholed address; EHOSTUNREACH towards an address no channel owns; EADDRINUSE for a local
 *     port in use, EADDRNOTAVAIL for a local address the channel does not own.
 *   - listen: EADDRINUSE when the port is taken (same address or a wildcard on either side),
 *     EADDRNOTAVAIL for an address not owned; port 0 picks an ephemeral port.
 *   - shutdown(): FIN after the queued bytes. close(): with unread bytes, RST (the peer gets
 *     ECONNRESET); else FIN, and the queued bytes are still delivered (lingering); bytes that reach
 *     an endpoint the application closed reset the sender. destroy(): RST now.
 *   - Every handler call happens from setImmediate, never inside a TcpConn method; onReadable and
 *     onWritable are coalesced; an endpoint's handler may be null (its events are then dropped: the
 *     state they announce stays queryable).
 * `open` counts endpoints whose onClose has not happened yet: tests check it is back to 0.
 */
import type { ConnectRequest, ConnHandler, ListenHandler, ListenRequest, TcpChannel, TcpConn, TcpErrorCode, TcpListener } from '../../kernel-shim/tcp-channel.js';

export interface FakeNetworkOptions {
  /** Bytes per endpoint send buffer (default 64 KiB). */
  sendBufferSize?: number;
  /** Bytes per endpoint receive buffer (default 64 KiB). */
  recvBufferSize?: number;
  /** How long a connect to a blackholed address waits before ETIMEDOUT (default 30 ms). */
  connectTimeoutMs?: number;
}

const LOOPBACK_NET = 0x7f;
const EPHEMERAL_FIRST = 49152;

type EndpointState = 'syn' | 'open' | 'failed' | 'closed';

function codeError(code: string): Error & { code: string } {
  return Object.assign(new Error(code), { code });
}

export class FakeNetwork {
  readonly sendBufferSize: number;
  readonly recvBufferSize: number;
  readonly connectTimeoutMs: number;
  /** Endpoints whose onClose has not been delivered yet. */
  readonly endpoints = new Set<FakeConn>();
  readonly #channels = new Map<number, FakeTcpChannel>();
  readonly #blackholes = new Set<number>();
  #scheduled = 0;
  #timers = new Set<NodeJS.Timeout>();

  constructor(opts: FakeNetworkOptions = {}) {
    this.sendBufferSize = opts.sendBufferSize ?? 65536;
    this.recvBufferSize = opts.recvBufferSize ?? 65536;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 30;
  }

  /** The channel of the host owning `address` (a stack), created on first use. */
  channel(address: number): FakeTcpChannel {
    let ch = this.#channels.get(address >>> 0);
    if (ch === undefined) {
      ch = new FakeTcpChannel(this, address >>> 0);
      this.#channels.set(address >>> 0, ch);
    }
    return ch;
  }

  /** Packets to `address` vanish: connects time out. */
  blackhole(address: number): void {
    this.#blackholes.add(address >>> 0);
  }

  get open(): number {
    return this.endpoints.size;
  }

  get listeners(): number {
    let n = 0;
    for (const ch of this.#channels.values()) n += ch.listeners.size;
    return n;
  }

  /** Run `fn` from the event loop (setImmediate), counted for settle(). */
  schedule(fn: () => void): void {
    this.#scheduled++;
    setImmediate(() => {
      this.#scheduled--;
      fn();
    });
  }

  timer(fn: () => void, ms: number): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
  }

  /** Resolves once nothing is scheduled any more (a few quiet loop turns). */
  async settle(): Promise<void> {
    let quiet = 0;
    for (let i = 0; i < 10000 && quiet < 3; i++) {
      await new Promise<void>((r) => setImmediate(r));
      quiet = this.#scheduled === 0 && this.#timers.size === 0 ? quiet + 1 : 0;
    }
  }

  /** Route a SYN from `from` to (address, port): the listener that accepts it, or why not. */
  route(from: FakeTcpChannel, address: number, port: number): FakeListener | TcpErrorCode | 'blackhole' {
    let target: FakeTcpChannel | undefined;
    if (address >>> 24 === LOOPBACK_NET || address === from.address) target = from;
    else target = this.#channels.get(address >>> 0);
    if (target === undefined) return this.#blackholes.has(address >>> 0) ? 'blackhole' : 'EHOSTUNREACH';
    return target.findListener(address, port) ?? 'ECONNREFUSED';
  }
}

export class FakeListener implements TcpListener {
  closed = false;
  constructor(
    readonly channel: FakeTcpChannel,
    readonly address: number,
    readonly port: number,
    readonly handler: ListenHandler,
    readonly backlog: number,
  ) {}

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.channel.listeners.delete(this);
  }
}

export class FakeTcpChannel implements TcpChannel {
  readonly listeners = new Set<FakeListener>();
  /** Every connect request seen (for tests that check options reached the stack). */
  readonly requests: ConnectRequest[] = [];
  #nextPort = EPHEMERAL_FIRST;

  constructor(
    readonly network: FakeNetwork,
    readonly address: number,
  ) {}

  owns(address: number): boolean {
    return address === 0 || address === this.address || address >>> 24 === LOOPBACK_NET;
  }

  findListener(address: number, port: number): FakeListener | undefined {
    let wildcard: FakeListener | undefined;
    for (const l of this.listeners) {
      if (l.port !== port) continue;
      if (l.address === address) return l;
      if (l.address === 0) wildcard = l;
    }
    return wildcard;
  }

  portInUse(address: number, port: number): boolean {
    for (const l of this.listeners) if (l.port === port && (l.address === address || l.address === 0 || address === 0)) return true;
    for (const c of this.network.endpoints) {
      if (c.channel === this && c.localPort === port && (c.localAddress === address || c.localAddress === 0 || address === 0)) return true;
    }
    return false;
  }

  ephemeralPort(address: number): number {
    for (let i = 0; i < 16384; i++) {
      const p = this.#nextPort;
      this.#nextPort = this.#nextPort >= 65535 ? EPHEMERAL_FIRST : this.#nextPort + 1;
      if (!this.portInUse(address, p)) return p;
    }
    return 0;
  }

  listen(req: ListenRequest, handler: ListenHandler): Promise<TcpListener> {
    return new Promise((resolve, reject) => {
      this.network.schedule(() => {
        const address = req.address >>> 0;
        if (!this.owns(address)) return reject(codeError('EADDRNOTAVAIL'));
        if (req.port !== 0 && this.portInUse(address, req.port)) return reject(codeError('EADDRINUSE'));
        const port = req.port !== 0 ? req.port : this.ephemeralPort(address);
        const l = new FakeListener(this, address, port, handler, req.backlog);
        this.listeners.add(l);
        resolve(l);
      });
    });
  }

  connect(req: ConnectRequest, handler: ConnHandler): TcpConn {
    this.requests.push({ ...req });
    const conn = new FakeConn(this, handler);
    conn.noDelay = req.noDelay;
    conn.keepAlive = req.keepAlive;
    conn.keepAliveIdleMs = req.keepAliveIdleMs;
    const net = this.network;
    net.schedule(() => {
      if (conn.state !== 'syn') return;
      const local = req.localAddress >>> 0;
      if (!this.owns(local)) return conn.fail('EADDRNOTAVAIL');
      if (req.localPort !== 0 && this.portInUse(local, req.localPort)) return conn.fail('EADDRINUSE');
      const dst = req.remoteAddress >>> 0;
      const src = local !== 0 ? local : dst >>> 24 === LOOPBACK_NET ? 0x7f000001 : this.address;
      conn.setLocal(src, req.localPort !== 0 ? req.localPort : this.ephemeralPort(src));
      const r = net.route(this, dst, req.remotePort);
      if (r === 'blackhole') {
        net.timer(() => {
          if (conn.state === 'syn') conn.fail('ETIMEDOUT');
        }, net.connectTimeoutMs);
        return;
      }
      if (typeof r === 'string') return conn.fail(r);
      const server = new FakeConn(r.channel, null);
      server.setLocal(dst, req.remotePort);
      server.setRemote(src, conn.localPort);
      server.state = 'open';
      conn.setRemote(dst, req.remotePort);
      conn.state = 'open';
      conn.peer = server;
      server.peer = conn;
      conn.post((h) => h.onConnect());
      net.schedule(() => {
        if (r.closed) server.destroy();
        else r.handler.onConnection(server);
      });
    });
    return conn;
  }
}

export class FakeConn implements TcpConn {
  localAddress = 0;
  localPort = 0;
  remoteAddress = 0;
  remotePort = 0;
  handler: ConnHandler | null;
  state: EndpointState = 'syn';
  error: TcpErrorCode | null = null;
  peer: FakeConn | null = null;
  noDelay = false;
  keepAlive = false;
  keepAliveIdleMs = 0;
  /** The application called close() or destroy(). */
  appClosed = false;
  /** shutdown() or close(): a FIN follows the queued bytes. */
  finQueued = false;
  finSent = false;
  /** The peer's FIN arrived (after all its bytes). */
  peerFin = false;
  /** A RST was sent (for tests). */
  sentReset = false;
  readonly sendCap: number;
  readonly recvCap: number;
  #send: Buffer[] = [];
  #sendLen = 0;
  #recv: Buffer[] = [];
  #recvLen = 0;
  #readablePosted = false;
  #writablePosted = false;
  #closePosted = false;

  constructor(
    readonly channel: FakeTcpChannel,
    handler: ConnHandler | null,
  ) {
    this.handler = handler;
    this.sendCap = channel.network.sendBufferSize;
    this.recvCap = channel.network.recvBufferSize;
    channel.network.endpoints.add(this);
  }

  setLocal(address: number, port: number): void {
    this.localAddress = address;
    this.localPort = port;
  }

  setRemote(address: number, port: number): void {
    this.remoteAddress = address;
    this.remotePort = port;
  }

  // ---- TcpConn ------------------------------------------------------------------------------------

  get readable(): number {
    return this.state === 'closed' ? 0 : this.#recvLen;
  }

  get eof(): boolean {
    return this.state !== 'closed' && this.peerFin && this.#recvLen === 0;
  }

  get writableSpace(): number {
    return this.state === 'open' && !this.finQueued ? this.sendCap - this.#sendLen : 0;
  }

  get unacknowledged(): number {
    return this.#sendLen;
  }

  /** Bytes waiting in the receive buffer, whatever the state (for tests). */
  get received(): number {
    return this.#recvLen;
  }

  read(max: number): Buffer | null {
    if (this.state === 'closed' || this.#recvLen === 0 || max <= 0) return null;
    const parts: Buffer[] = [];
    let want = Math.min(max, this.#recvLen);
    while (want > 0) {
      const head = this.#recv[0];
      if (head.length <= want) {
        parts.push(head);
        this.#recv.shift();
        want -= head.length;
      } else {
        parts.push(head.subarray(0, want));
        this.#recv[0] = head.subarray(want);
        want = 0;
      }
    }
    const out = parts.length === 1 ? parts[0] : Buffer.concat(parts);
    this.#recvLen -= out.length;
    // The window opened: the peer may send again.
    if (this.peer !== null) this.peer.schedulePump();
    return out;
  }

  write(data: Uint8Array): number {
    const n = Math.min(this.writableSpace, data.byteLength);
    if (n <= 0) return 0;
    this.#send.push(Buffer.from(data.subarray(0, n)));
    this.#sendLen += n;
    this.schedulePump();
    return n;
  }

  shutdown(): void {
    if (this.state !== 'open' || this.finQueued) return;
    this.finQueued = true;
    this.schedulePump();
  }

  close(): void {
    if (this.appClosed) return;
    this.appClosed = true;
    switch (this.state) {
      case 'syn':
        this.#release();
        return;
      case 'failed':
      case 'closed':
        return;
      case 'open':
        // As Linux: closing with unread bytes resets the connection.
        if (this.#recvLen > 0) {
          this.#reset();
          return;
        }
        this.finQueued = true;
        this.schedulePump();
        this.#release();
        return;
    }
  }

  destroy(): void {
    this.appClosed = true;
    if (this.state === 'open') this.#reset();
    else if (this.state === 'syn') this.#release();
  }

  setNoDelay(on: boolean): void {
    this.noDelay = on;
  }

  setKeepAlive(on: boolean, idleMs: number): void {
    this.keepAlive = on;
    if (idleMs !== 0) this.keepAliveIdleMs = idleMs;
  }

  // ---- the network side ---------------------------------------------------------------------------

  /** The connection failed here (RST received, timeout...): onError, then onClose. */
  fail(code: TcpErrorCode): void {
    if (this.state === 'failed' || this.state === 'closed') return;
    this.state = 'failed';
    this.error = code;
    this.#send = [];
    this.#sendLen = 0;
    this.post((h) => h.onError(code));
    this.#release();
  }

  #reset(): void {
    this.sentReset = true;
    const peer = this.peer;
    if (peer !== null && (peer.state === 'open' || peer.state === 'syn')) peer.fail('ECONNRESET');
    this.#send = [];
    this.#sendLen = 0;
    this.#release();
  }

  /** Gone for the application: reads and writes stop now; onClose follows. Queued bytes linger. */
  #release(): void {
    if (this.state !== 'failed') this.state = 'closed';
    if (this.#closePosted) return;
    this.#closePosted = true;
    this.post((h) => h.onClose(), () => {
      this.state = 'closed';
      this.#recv = [];
      this.#recvLen = 0;
      this.channel.network.endpoints.delete(this);
    });
  }

  /** Deliver an event from the loop. `after` runs whatever the handler. */
  post(fn: (h: ConnHandler) => void, after?: () => void): void {
    this.channel.network.schedule(() => {
      const h = this.handler;
      if (h !== null) fn(h);
      after?.();
    });
  }

  #postReadable(): void {
    if (this.#readablePosted || this.#closePosted) return;
    this.#readablePosted = true;
    this.post((h) => {
      this.#readablePosted = false;
      if (!this.#closePosted || this.state === 'failed') h.onReadable();
    });
  }

  #postWritable(): void {
    if (this.#writablePosted || this.#closePosted) return;
    this.#writablePosted = true;
    this.post((h) => {
      this.#writablePosted = false;
      if (!this.#closePosted) h.onWritable();
    });
  }

  #pumpScheduled = false;

  schedulePump(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    this.channel.network.schedule(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  /** Move queued bytes (then the FIN) into the peer's receive buffer, as far as its window allows. */
  #pump(): void {
    const dst = this.peer;
    if (dst === null) return;
    if (this.#sendLen > 0) {
      if (dst.state !== 'open') {
        // The peer is gone: an endpoint its application closed answers with a RST.
        if (dst.appClosed && this.state === 'open') {
          dst.sentReset = true;
          this.fail('ECONNRESET');
        }
        this.#send = [];
        this.#sendLen = 0;
        return;
      }
      let space = dst.recvCap - dst.#recvLen;
      let moved = 0;
      while (space > 0 && this.#send.length > 0) {
        const head = this.#send[0];
        const n = Math.min(space, head.length);
        dst.#recv.push(n === head.length ? head : head.subarray(0, n));
        if (n === head.length) this.#send.shift();
        else this.#send[0] = head.subarray(n);
        space -= n;
        moved += n;
      }
      if (moved > 0) {
        this.#sendLen -= moved;
        dst.#recvLen += moved;
        this.#postWritable();
        dst.#postReadable();
      }
    }
    if (this.#sendLen === 0 && this.finQueued && !this.finSent) {
      this.finSent = true;
      if (dst.state === 'open') {
        dst.peerFin = true;
        dst.#postReadable();
      }
    }
  }
}
