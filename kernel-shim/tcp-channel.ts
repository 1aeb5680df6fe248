/**
 * The contract between the net API (net.ts: Socket, Server) and the tcp server. The channel carries
 * connection requests to the tcp server and its events back; the bytes themselves never travel in
 * messages: each connection has a send buffer and a receive buffer in shared memory (as OpenOnload's
 * user-level sockets do), which the application side writes and reads directly, and the tcp server
 * reads and writes from its own thread. So the protocol keeps running (data acknowledged up to the
 * window, retransmissions sent) while the application's event loop is busy.
 *
 * Addresses are uint32 (10.9.0.1 is 0x0a090001), ports numbers 0..65535. Errors are Node's codes.
 *
 * Call rules:
 *  - Every handler call happens asynchronously from the event loop (never inside a TcpConn method).
 *  - read()/write() never block and never throw for a live connection; after onClose they return
 *    null / 0.
 *  - A connection's handler may be replaced at any time (accepted connections start with none: events
 *    that arrive meanwhile are not lost, because the state they announce is queryable: `readable`,
 *    `eof`, `writableSpace`, `error`).
 */
export type TcpErrorCode =
  | 'ECONNREFUSED'
  | 'ECONNRESET'
  | 'ETIMEDOUT'
  | 'EPIPE'
  | 'ENETUNREACH'
  | 'EHOSTUNREACH'
  | 'EADDRINUSE'
  | 'EADDRNOTAVAIL'
  | 'EMFILE'
  | 'ECONNABORTED'
  | 'EINVAL';

export interface ConnHandler {
  /** An active open completed (the three-way handshake is done). */
  onConnect(): void;
  /** New data, or the end of the stream (peer's FIN), can be read. */
  onReadable(): void;
  /** Space was freed in the send buffer (the peer acknowledged data). */
  onWritable(): void;
  /** The connection failed (refused, reset, timed out...). onClose follows. */
  onError(code: TcpErrorCode): void;
  /** The connection is gone on our side: no more events; its buffers are released. */
  onClose(): void;
}

export interface TcpConn {
  /** Valid once connected (active) or from the start (accepted). */
  readonly localAddress: number;
  readonly localPort: number;
  readonly remoteAddress: number;
  readonly remotePort: number;
  handler: ConnHandler | null;
  /** Bytes that can be read now. */
  readonly readable: number;
  /** The peer sent FIN and every byte before it has been read. */
  readonly eof: boolean;
  /** The error that ended the connection, if any. */
  readonly error: TcpErrorCode | null;
  /** Up to `max` bytes, copied out of the receive buffer (the tcp server may open the window); null when none. */
  read(max: number): Buffer | null;
  /** Copy as much of `data` as fits into the send buffer; returns the bytes taken (0 when full). */
  write(data: Uint8Array): number;
  /** Free bytes in the send buffer now. */
  readonly writableSpace: number;
  /** Bytes written and not yet acknowledged by the peer. */
  readonly unacknowledged: number;
  /** shutdown(SHUT_WR): FIN after the queued data. Idempotent. */
  shutdown(): void;
  /**
   * The application is done with the connection: like close(2). Unread data pending -> RST (as Linux);
   * else FIN if not sent yet. onClose follows once released.
   */
  close(): void;
  /** Abort: RST now (if synchronized), release. onClose follows. */
  destroy(): void;
  setNoDelay(on: boolean): void;
  /** SO_KEEPALIVE; idleMs 0 keeps the current idle time (default 2 h like Linux). */
  setKeepAlive(on: boolean, idleMs: number): void;
}

export interface ListenHandler {
  /** A connection completed the handshake and was taken from the accept queue. */
  onConnection(conn: TcpConn): void;
  /** The listener failed (EADDRINUSE, EADDRNOTAVAIL, EMFILE...); it is closed. */
  onError(code: TcpErrorCode): void;
}

export interface TcpListener {
  readonly address: number;
  readonly port: number;
  /** Stop listening: connections not yet accepted are reset; accepted ones are unaffected. */
  close(): void;
}

export interface ConnectRequest {
  remoteAddress: number;
  remotePort: number;
  /** 0: chosen by the stack. */
  localAddress: number;
  /** 0: ephemeral. */
  localPort: number;
  noDelay: boolean;
  keepAlive: boolean;
  keepAliveIdleMs: number;
}

export interface ListenRequest {
  address: number;
  /** 0: ephemeral. */
  port: number;
  backlog: number;
}

export interface TcpChannel {
  /** Start an active open. The returned conn reports onConnect or onError (then onClose). */
  connect(req: ConnectRequest, handler: ConnHandler): TcpConn;
  /** Resolves once listening (address/port known); rejects with a code-carrying Error. */
  listen(req: ListenRequest, handler: ListenHandler): Promise<TcpListener>;
}
