/**
 * A node:net-compatible TCP API over keepnet's tcp server: `stack.net.connect(...)`,
 * `stack.net.createServer(...)`. Socket is a real stream.Duplex with net.Socket's methods, properties,
 * events and errors; Server has net.Server's. The argument juggling and the event order are Node 20's
 * lib/net.js, rule for rule (normalizeArgs, lookupAndConnect, internalConnect, afterConnect, _final,
 * _destroy, Server.listen, onconnection, close/_emitCloseIfDrained), so code written for node:net
 * behaves the same; test/tcp/net-api.test.ts runs the same scenarios against both and compares.
 *
 * The bytes never travel in messages (tcp-channel.ts): a Socket copies into the connection's shared
 * send buffer and out of its shared receive buffer.
 *   - Writing: _write() copies what fits; the rest waits for onWritable, and the write's callback (so
 *     Writable's queue, highWaterMark, write() === false and 'drain') advances once every byte is in
 *     the send buffer, as a libuv write completes once the kernel took every byte.
 *   - Reading: bytes are taken out of the receive buffer only while the Readable asks for them (_read
 *     until push() says its buffer reached highWaterMark) and not after pause() (nor before resume()
 *     with pauseOnConnect), so a slow or paused reader closes the TCP window, as the kernel's buffer
 *     does for a Node socket. An explicit read(n), or a 'readable' listener, reads again.
 *
 * What differs from node:net, and why:
 *   - IPv4 only. IPv6 literals fail as Node fails without IPv6 (connect/listen EAFNOSUPPORT), except
 *     listen(port, '::'), which listens on 0.0.0.0 (the dual-stack wildcard accepts IPv4 there too).
 *     listen(port) without a host listens on 0.0.0.0 (Node: '::'), so address() says '0.0.0.0', IPv4.
 *   - No resolver: 'localhost' is 127.0.0.1 (a 'lookup' event, as dns.lookup gives), any other name
 *     fails with ENOTFOUND as a failed getaddrinfo (an `options.lookup` function is used if given).
 *   - No IPC (path), file descriptors or handles: ERR_INVALID_ARG_VALUE, thrown.
 *   - listen() reaches the stack asynchronously, so address() is null and `listening` false until
 *     'listening' (Node binds synchronously for an IP or no host; for a name it is asynchronous too).
 *   - ref()/unref() return this and do nothing; the stack keeps its own event-loop handles.
 */
import { EventEmitter } from 'node:events';
import { getDefaultAutoSelectFamily, isIP, isIPv4, isIPv6 } from 'node:net';
import { Duplex, type DuplexOptions } from 'node:stream';
import { ipv4Format, ipv4Parse } from '../servers/wire/ipv4.js';
import * as E from './net-errors.js';
import type { ConnHandler, ListenHandler, TcpChannel, TcpConn, TcpErrorCode, TcpListener } from './tcp-channel.js';

export { isIP, isIPv4, isIPv6 };

export interface AddressInfo {
  address: string;
  family: string;
  port: number;
}

export type LookupAddress = { address: string; family: number };
export type LookupCallback = (err: NodeJS.ErrnoException | null, address?: string | LookupAddress[], family?: number) => void;
export type LookupFunction = (hostname: string, options: { family?: number; hints?: number; all?: boolean }, callback: LookupCallback) => void;

export interface SocketConstructorOpts {
  allowHalfOpen?: boolean;
  readable?: boolean;
  writable?: boolean;
  signal?: AbortSignal;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
  highWaterMark?: number;
  readableHighWaterMark?: number;
  writableHighWaterMark?: number;
  /** Not supported (no file descriptors in keepnet): ERR_INVALID_ARG_VALUE. */
  fd?: number;
}

export interface TcpSocketConnectOpts {
  port?: number | string;
  host?: string;
  localAddress?: string;
  localPort?: number;
  family?: number | string;
  hints?: number;
  lookup?: LookupFunction;
  autoSelectFamily?: boolean;
  autoSelectFamilyAttemptTimeout?: number;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
  /** Not supported (no IPC in keepnet): ERR_INVALID_ARG_VALUE. */
  path?: string;
}

export type NetConnectOpts = TcpSocketConnectOpts & SocketConstructorOpts & { timeout?: number };

export interface ServerOpts {
  allowHalfOpen?: boolean;
  pauseOnConnect?: boolean;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
  highWaterMark?: number;
}

export interface ListenOptions {
  port?: number | string | null;
  host?: string;
  backlog?: number;
  exclusive?: boolean;
  ipv6Only?: boolean;
  signal?: AbortSignal;
  path?: string;
  fd?: number;
  handle?: unknown;
}

export interface DropArgument {
  localAddress?: string;
  localPort?: number;
  localFamily?: string;
  remoteAddress?: string;
  remotePort?: number;
  remoteFamily?: string;
}

type Callback = (...args: unknown[]) => void;
type Options = Record<string, unknown>;
type Normalized = [Options, Callback | null] & { [kNormalized]?: true };

/** Marks an argument array normalizeArgs() produced (as Node's normalizedArgsSymbol). */
const kNormalized = Symbol('keepnet.normalizedArgs');
/** Internal Socket option: the accepted connection it wraps (Node's options.handle). */
const kConn = Symbol('keepnet.conn');

const LOOPBACK = 0x7f000001;
/** The most a single read takes out of the receive buffer (libuv reads 64 KiB at a time). */
const READ_CHUNK = 65536;
/** Reads per pass before yielding to the event loop (16 x 64 KiB). */
const READS_PER_PASS = 16;
const DEFAULT_BACKLOG = 511;

function toNumber(x: unknown): number | false {
  const n = Number(x);
  return n >= 0 ? n : false;
}

function isPipeName(s: unknown): boolean {
  return typeof s === 'string' && toNumber(s) === false;
}

/** Node's normalizeArgs: (options[, cb]) | (path[, cb]) | ([port][, host][, ...][, cb]). */
export function normalizeArgs(args: readonly unknown[]): Normalized {
  let arr: Normalized;
  if (args.length === 0) {
    arr = [{}, null];
    arr[kNormalized] = true;
    return arr;
  }
  const arg0 = args[0];
  let options: Options = {};
  if (typeof arg0 === 'object' && arg0 !== null) {
    options = arg0 as Options;
  } else if (isPipeName(arg0)) {
    options.path = arg0;
  } else {
    options.port = arg0;
    if (args.length > 1 && typeof args[1] === 'string') options.host = args[1];
  }
  const cb = args[args.length - 1];
  arr = [options, typeof cb === 'function' ? (cb as Callback) : null];
  arr[kNormalized] = true;
  return arr;
}

function isNormalized(x: unknown): x is Normalized {
  return Array.isArray(x) && (x as Normalized)[kNormalized] === true;
}

function noIpc(name: string, value: unknown): E.CodedError {
  return E.ERR_INVALID_ARG_VALUE(name, value, 'is not supported: keepnet has no IPC (Unix domain sockets, named pipes) nor file descriptors');
}

/** The names keepnet resolves without a resolver (IPv4 only). */
function builtinLookup(hostname: string, options: { family?: number; all?: boolean }, callback: LookupCallback): void {
  setImmediate(() => {
    if (hostname === 'localhost' && options.family !== 6) {
      if (options.all) callback(null, [{ address: '127.0.0.1', family: 4 }]);
      else callback(null, '127.0.0.1', 4);
    } else {
      callback(E.dnsNotFound(hostname));
    }
  });
}

interface ConnectTarget {
  address: string;
  port: number;
  localAddress: string | undefined;
  localPort: number | undefined;
  noDelay: boolean;
  keepAlive: boolean;
  keepAliveDelay: number;
}

interface PendingWrite {
  buf: Buffer;
  off: number;
  cb: (err?: Error | null) => void;
}

// ---- Socket -----------------------------------------------------------------------------------------

function onReadableStreamEnd(this: Socket): void {
  if (!this.allowHalfOpen) this.write = writeAfterFIN as Socket['write'];
}

/** Node's writeAfterFIN: writing after the peer's FIN (allowHalfOpen false) destroys with EPIPE. */
function writeAfterFIN(this: Socket, chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
  if (!this.writableEnded) return (Duplex.prototype.write as (...a: unknown[]) => boolean).call(this, chunk, encoding, cb);
  if (typeof encoding === 'function') cb = encoding;
  const er = E.endedByOtherParty();
  if (typeof cb === 'function') process.nextTick(cb as Callback, er);
  this.destroy(er);
  return false;
}

export class Socket extends Duplex {
  /** True between connect() and 'connect' (or the failure). */
  connecting = false;
  /** The server that accepted this socket, if any. */
  server: Server | null = null;
  _server: Server | null = null;
  /** The last value given to setTimeout() (as Node, before validation). */
  timeout: number | undefined = undefined;

  #channel: TcpChannel | null;
  #conn: TcpConn | null = null;
  readonly #handler: ConnHandler;
  /** A connection exists or is being set up (Node: this._handle !== null). */
  #opened = false;
  /** Bumped by each connect(), so that a stale lookup result is ignored. */
  #generation = 0;
  #target: ConnectTarget | null = null;
  /** The Readable asked for data (_read) and has not been answered by a full buffer yet. */
  #reading = false;
  /** pause() (or pauseOnConnect) holds the bytes in the receive buffer until resume(). */
  #pausedByUser = false;
  #eofPushed = false;
  #pullScheduled = false;
  /** The connection failed: reported by the next read or write (as libuv finds it). */
  #failure: TcpErrorCode | null = null;
  #pendingWrite: PendingWrite | null = null;
  /** A write waiting for 'connect' (for bytesWritten, as Node's _pendingData). */
  #pendingData: { chunk: Buffer | string; encoding: BufferEncoding } | null = null;
  #bytesRead = 0;
  /** Bytes copied into the send buffer. */
  #bytesFlushed = 0;
  #timer: NodeJS.Timeout | null = null;
  #sockname: AddressInfo | null = null;
  #peername: AddressInfo | null = null;
  #noDelay: boolean;
  #keepAlive: boolean;
  /** Seconds, as Node keeps it. */
  #keepAliveDelay: number;
  #resetAndClosing = false;

  /**
   * `channel` is the stack's TcpChannel: applications get Socket through createNet(channel), whose
   * Socket class passes it; a Socket built without one cannot connect.
   */
  constructor(options?: SocketConstructorOpts | number, channel: TcpChannel | null = null) {
    super(Socket.#streamOptions(options));
    const o = (typeof options === 'object' && options !== null ? options : {}) as Options & { [kConn]?: TcpConn };
    this.#channel = channel;
    this.#noDelay = Boolean(o.noDelay);
    this.#keepAlive = Boolean(o.keepAlive);
    this.#keepAliveDelay = ~~(Math.max(0, (o.keepAliveInitialDelay as number) || 0) / 1000);
    this.#handler = {
      onConnect: () => this.#onConnect(),
      onReadable: () => this.#onReadable(),
      onWritable: () => this.#flushWrite(),
      onError: (code) => this.#onError(code),
      onClose: () => this.#onClose(),
    };
    this.on('end', onReadableStreamEnd);
    this.on('newListener', (ev: string | symbol) => {
      // A 'readable' consumer reads even after pause(): give it the bytes held meanwhile.
      if (ev === 'readable' && this.#pausedByUser) process.nextTick(() => this.#pull());
    });
    const conn = o[kConn];
    if (conn !== undefined) {
      this.#opened = true;
      this.#attach(conn);
      if (o.readable !== false) {
        if (o.pauseOnCreate) {
          this.#pausedByUser = true;
          (this as { readableFlowing: boolean | null }).readableFlowing = false;
        } else {
          this.read(0);
        }
      }
      // Events that came before the handler was attached are not lost: their state is queryable.
      if (conn.error !== null) {
        const code = conn.error;
        process.nextTick(() => this.#onError(code));
      }
    }
  }

  static #streamOptions(options: SocketConstructorOpts | number | undefined): DuplexOptions {
    if (typeof options === 'number') throw noIpc('options.fd', options);
    const o = { ...(options as Options | undefined) };
    if (o.objectMode) throw E.ERR_INVALID_ARG_VALUE('options.objectMode', o.objectMode, 'is not supported');
    if (o.readableObjectMode || o.writableObjectMode) {
      const name = o.readableObjectMode ? 'readableObjectMode' : 'writableObjectMode';
      throw E.ERR_INVALID_ARG_VALUE(`options.${name}`, o.readableObjectMode || o.writableObjectMode, 'is not supported');
    }
    if (o.keepAliveInitialDelay !== undefined) {
      E.validateNumber(o.keepAliveInitialDelay, 'options.keepAliveInitialDelay');
      if (o.keepAliveInitialDelay < 0) o.keepAliveInitialDelay = 0;
    }
    if (o.fd !== undefined) throw noIpc('options.fd', o.fd);
    if (o.handle !== undefined && o.handle !== null) throw noIpc('options.handle', o.handle);
    // As Node: not half-open by default; 'close' is the socket's own (emitClose false); strings
    // are written as strings.
    return { ...o, allowHalfOpen: Boolean(o.allowHalfOpen), emitClose: false, autoDestroy: true, decodeStrings: false } as DuplexOptions;
  }

  // ---- connect ------------------------------------------------------------------------------------

  connect(options: NetConnectOpts, connectionListener?: () => void): this;
  connect(port: number, host: string, connectionListener?: () => void): this;
  connect(port: number, connectionListener?: () => void): this;
  connect(...args: unknown[]): this {
    const normalized = isNormalized(args[0]) ? args[0] : normalizeArgs(args);
    const options = normalized[0];
    const cb = normalized[1];
    if (cb !== null) this.once('connect', cb);
    if (options.port === undefined && options.path == null) throw E.ERR_MISSING_ARGS(['options', 'port', 'path']);
    if (options.path != null) throw noIpc('options.path', options.path);
    if (this.write !== Socket.prototype.write) this.write = Socket.prototype.write;
    if (this.destroyed) this.#undestroy();
    if (this.#channel === null) {
      throw E.codedError(Error, 'ERR_KEEPNET_NO_STACK', 'This Socket has no stack: create sockets with stack.net (createNet(channel))');
    }
    this.#opened = true;
    this.#refreshTimer();
    this.connecting = true;
    this.#lookupAndConnect(options);
    return this;
  }

  #undestroy(): void {
    this.#conn = null;
    this.#sockname = null;
    this.#peername = null;
    this.#eofPushed = false;
    this.#reading = false;
    this.#pendingWrite = null;
    this.#resetAndClosing = false;
    this.#failure = null;
    (this as unknown as { _undestroy(): void })._undestroy();
  }

  #lookupAndConnect(options: Options): void {
    const localAddress = options.localAddress as string | undefined;
    const localPort = options.localPort as number | undefined;
    const host = (options.host || 'localhost') as string;
    let port = options.port as number;
    if (localAddress && !isIP(localAddress)) throw E.ERR_INVALID_IP_ADDRESS(localAddress);
    if (localPort) E.validateNumber(localPort, 'options.localPort');
    if (typeof port !== 'undefined') {
      if (typeof port !== 'number' && typeof port !== 'string') throw E.ERR_INVALID_ARG_TYPE('options.port', ['number', 'string'], port);
      E.validatePort(port);
    }
    port |= 0;
    let autoSelectFamily = options.autoSelectFamily;
    if (autoSelectFamily != null) E.validateBoolean(autoSelectFamily, 'options.autoSelectFamily');
    else autoSelectFamily = getDefaultAutoSelectFamily();

    const gen = ++this.#generation;
    const addressType = isIP(host);
    if (addressType) {
      process.nextTick(() => {
        if (this.connecting && gen === this.#generation) this.#internalConnect(host, port, addressType, localAddress, localPort);
      });
      return;
    }

    if (options.lookup != null) E.validateFunction(options.lookup, 'options.lookup');
    const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : (options.family as number | undefined);
    const lookup = (options.lookup as LookupFunction | undefined) ?? builtinLookup;
    if (lookup === builtinLookup) {
      // What dns.lookup checks, synchronously.
      if (typeof host !== 'string') throw E.ERR_INVALID_ARG_TYPE('hostname', 'string', host);
      if (family != null && family !== 0 && family !== 4 && family !== 6) throw E.ERR_INVALID_ARG_VALUE('options.family', family, 'must be one of: 0, 4, 6');
    }
    const all = family !== 4 && family !== 6 && !localAddress && autoSelectFamily === true;
    const dnsopts = { family: family as number, hints: (options.hints as number) || 0, all };
    lookup(host, dnsopts, (err, ip, ipFamily) => {
      if (!all) {
        this.emit('lookup', err, ip, ipFamily, host);
        if (!this.connecting || gen !== this.#generation) return;
        if (err) return void process.nextTick(() => this.destroy(err));
        if (typeof ip !== 'string' || !isIP(ip)) return void process.nextTick(() => this.destroy(E.ERR_INVALID_IP_ADDRESS(ip)));
        this.#refreshTimer();
        this.#internalConnect(ip, port, isIP(ip), localAddress, localPort);
        return;
      }
      if (!this.connecting || gen !== this.#generation) return;
      if (err) {
        this.emit('lookup', err, undefined, undefined, host);
        process.nextTick(() => this.destroy(err));
        return;
      }
      const addresses = (Array.isArray(ip) ? ip : [{ address: ip, family: ipFamily ?? isIP(String(ip)) }]) as LookupAddress[];
      for (const a of addresses) this.emit('lookup', null, a.address, a.family, host);
      // IPv4 first: that is the family keepnet speaks.
      const pick = addresses.find((a) => isIPv4(a.address)) ?? addresses[0];
      if (pick === undefined) return void process.nextTick(() => this.destroy(E.dnsNotFound(host)));
      if (!isIP(pick.address)) return void process.nextTick(() => this.destroy(E.ERR_INVALID_IP_ADDRESS(pick.address)));
      this.#refreshTimer();
      this.#internalConnect(pick.address, port, isIP(pick.address), localAddress, localPort);
    });
  }

  #internalConnect(address: string, port: number, addressType: number, localAddress: string | undefined, localPort: number | undefined): void {
    this.emit('connectionAttempt', address, port, addressType);
    if (!this.connecting) return;
    if (addressType !== 4) {
      this.destroy(E.exceptionWithHostPort('EAFNOSUPPORT', 'connect', address, port));
      return;
    }
    if (localAddress && !isIPv4(localAddress)) {
      this.destroy(E.exceptionWithHostPort('EINVAL', 'bind', localAddress, localPort));
      return;
    }
    const remote = ipv4Parse(address) as number;
    this.#target = {
      address,
      port,
      localAddress,
      localPort,
      noDelay: this.#noDelay,
      keepAlive: this.#keepAlive,
      keepAliveDelay: this.#keepAliveDelay,
    };
    this.#conn = (this.#channel as TcpChannel).connect(
      {
        remoteAddress: remote === 0 ? LOOPBACK : remote,
        remotePort: port,
        localAddress: localAddress ? (ipv4Parse(localAddress) as number) : 0,
        localPort: localPort ? localPort | 0 : 0,
        noDelay: this.#noDelay,
        keepAlive: this.#keepAlive,
        keepAliveIdleMs: this.#keepAliveDelay * 1000,
      },
      this.#handler,
    );
  }

  #attach(conn: TcpConn): void {
    this.#conn = conn;
    conn.handler = this.#handler;
  }

  // ---- events from the channel --------------------------------------------------------------------

  #onConnect(): void {
    const conn = this.#conn;
    if (this.destroyed || conn === null || !this.connecting) return;
    this.connecting = false;
    this.#sockname = null;
    this.#refreshTimer();
    const t = this.#target;
    // Options changed while the handshake ran.
    if (t !== null && t.noDelay !== this.#noDelay) conn.setNoDelay(this.#noDelay);
    if (t !== null && (t.keepAlive !== this.#keepAlive || t.keepAliveDelay !== this.#keepAliveDelay)) {
      conn.setKeepAlive(this.#keepAlive, this.#keepAliveDelay * 1000);
    }
    this.emit('connect');
    this.emit('ready');
    // Start the first read, or get an immediate EOF.
    if (!this.isPaused()) this.read(0);
  }

  #onReadable(): void {
    if (this.#reading) this.#pull();
  }

  #onError(code: TcpErrorCode): void {
    if (this.destroyed || this.#conn === null) return;
    if (this.connecting) {
      const t = this.#target as ConnectTarget;
      let ex: E.SystemError;
      if ((code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL') && (t.localAddress || t.localPort)) {
        ex = E.exceptionWithHostPort(code, 'bind', t.localAddress || '0.0.0.0', t.localPort);
      } else {
        const details = t.localAddress && t.localPort ? `${t.localAddress}:${t.localPort}` : undefined;
        ex = E.exceptionWithHostPort(code, 'connect', t.address, t.port, details);
        if (details) Object.assign(ex, { localAddress: t.localAddress, localPort: t.localPort });
        this.emit('connectionAttemptFailed', t.address, t.port, 4, ex);
      }
      this.destroy(ex);
      return;
    }
    // As libuv: a read in progress sees the error after the bytes that came before it; else a write
    // in progress sees it; a socket that neither reads (paused, or its readable buffer full) nor
    // writes finds it at its next read or write.
    if (this.#failure === null) this.#failure = code;
    if (this.#reading && !this.#held()) this.#pull();
    else if (this.#pendingWrite !== null) this.#fail('write');
  }

  /** Report the connection's error, as the read or write that met it. */
  #fail(syscall: 'read' | 'write'): void {
    const code = this.#failure as TcpErrorCode;
    this.destroy(E.errnoException(code, code === 'EPIPE' ? 'write' : syscall));
  }

  /** pause() holds the bytes in the receive buffer (a 'readable' consumer still reads). */
  #held(): boolean {
    return this.#pausedByUser && this.listenerCount('readable') === 0;
  }

  /** The stack released the connection on its own (we detach our handler when we close it). */
  #onClose(): void {
    if (this.destroyed || this.#conn === null) return;
    this.#onError(this.#conn.error ?? 'ECONNABORTED');
  }

  // ---- reading ------------------------------------------------------------------------------------

  override _read(n: number): void {
    if (this.connecting || this.#conn === null) {
      this.once('connect', () => this._read(n));
      return;
    }
    this.#reading = true;
    this.#pull();
  }

  /**
   * Move bytes from the receive buffer into the Readable while it asks for them. A pass takes at most
   * READS_PER_PASS chunks, then yields to the event loop (the tcp server may refill the buffer as fast
   * as we empty it: other sockets and timers must get their turn).
   */
  #pull(force = false): void {
    const conn = this.#conn;
    if (conn === null || this.connecting) return;
    let reads = 0;
    while (this.#reading && this.#conn === conn && !this.destroyed) {
      if (!force && this.#held()) return;
      const avail = conn.readable;
      if (avail > 0) {
        if (++reads > READS_PER_PASS) {
          if (!this.#pullScheduled) {
            this.#pullScheduled = true;
            setImmediate(() => {
              this.#pullScheduled = false;
              this.#pull();
            });
          }
          return;
        }
        const buf = conn.read(Math.min(avail, READ_CHUNK));
        if (buf === null || buf.length === 0) return;
        this.#bytesRead += buf.length;
        this.#refreshTimer();
        if (!this.push(buf)) this.#reading = false;
        continue;
      }
      if (this.#failure !== null) {
        this.#fail('read');
        return;
      }
      if (conn.eof && !this.#eofPushed) {
        this.#eofPushed = true;
        this.#reading = false;
        this.push(null);
        this.read(0);
      }
      return;
    }
  }

  override read(size?: number): unknown {
    // An explicit read after pause() takes bytes out of the receive buffer again (as Node's
    // onread-buffer sockets restart reading in read()).
    if (size !== 0 && this.#pausedByUser && this.#conn !== null && !this.connecting) {
      this.#reading = true;
      this.#pull(true);
    }
    return super.read(size);
  }

  override pause(): this {
    this.#pausedByUser = true;
    return super.pause();
  }

  override resume(): this {
    const held = this.#pausedByUser;
    this.#pausedByUser = false;
    super.resume();
    if (held) process.nextTick(() => this.#pull());
    return this;
  }

  // ---- writing ------------------------------------------------------------------------------------

  override _write(chunk: Buffer | string, encoding: BufferEncoding, cb: (error?: Error | null) => void): void {
    if (this.connecting) {
      this.#pendingData = { chunk, encoding };
      const onClose = (): void => cb(E.ERR_SOCKET_CLOSED_BEFORE_CONNECTION());
      this.once('connect', () => {
        this.off('close', onClose);
        this._write(chunk, encoding, cb);
      });
      this.once('close', onClose);
      return;
    }
    this.#pendingData = null;
    if (this.#conn === null) {
      cb(E.ERR_SOCKET_CLOSED());
      return;
    }
    this.#refreshTimer();
    this.#pendingWrite = { buf: typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk, off: 0, cb };
    if (this.#failure !== null) this.#fail('write');
    else this.#flushWrite();
  }

  /** Copy the pending chunk into the send buffer; its callback runs once every byte is in. */
  #flushWrite(): void {
    const p = this.#pendingWrite;
    const conn = this.#conn;
    if (p === null || conn === null) return;
    const before = p.off;
    while (p.off < p.buf.length) {
      const n = conn.write(p.off === 0 ? p.buf : p.buf.subarray(p.off));
      if (n <= 0) break;
      p.off += n;
      this.#bytesFlushed += n;
    }
    if (p.off !== before) this.#refreshTimer();
    if (p.off === p.buf.length) {
      this.#pendingWrite = null;
      p.cb();
    }
  }

  override _final(cb: (error?: Error | null) => void): void {
    if (this.pending) {
      this.once('connect', () => this._final(cb));
      return;
    }
    const conn = this.#conn;
    if (conn === null) {
      cb();
      return;
    }
    // libuv completes a shutdown request from the loop, not inside the call, and sends the FIN as it
    // completes it: nothing the FIN causes (the peer's 'end', on this same event loop) can come before
    // 'finish'. So the FIN is asked for in the same later turn that completes the request. (With the FIN
    // asked for at once and only the callback deferred, a pump turn queued earlier could deliver the
    // peer's 'end' first: the differential test saw it once under load.)
    setImmediate(() => {
      conn.shutdown();
      cb();
    });
  }

  // ---- closing ------------------------------------------------------------------------------------

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.connecting = false;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#reading = false;
    if (this.#opened) {
      const conn = this.#conn;
      if (conn !== null) {
        conn.handler = null;
        if (this.#resetAndClosing) conn.destroy();
        else conn.close();
      }
      const p = this.#pendingWrite;
      if (p !== null) {
        // As a libuv write cancelled by the close: its callback runs, after the destroy, and its
        // bytes count as written (Node counts what was handed to the handle).
        this.#pendingWrite = null;
        this.#bytesFlushed += p.buf.length - p.off;
        process.nextTick(() => p.cb());
      }
      this.#opened = false;
      this.#conn = null;
      this.#sockname = null;
      this.#resetAndClosing = false;
      const hadError = !!err;
      // As a libuv handle's close callback: after the 'error' (nextTick), on the next loop turn.
      setImmediate(() => this.emit('close', hadError));
      cb(err);
    } else {
      cb(err);
      process.nextTick(() => this.emit('close'));
    }
    const server = this._server;
    if (server !== null) {
      server._connections--;
      server._emitCloseIfDrained();
    }
  }

  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once('finish', () => this.destroy());
  }

  /** Close with a RST (SO_LINGER 0): the peer gets ECONNRESET. */
  resetAndDestroy(): this {
    if (this.#opened) {
      if (this.connecting) this.once('connect', () => this.#reset());
      else this.#reset();
    } else {
      this.destroy(E.ERR_SOCKET_CLOSED());
    }
    return this;
  }

  #reset(): void {
    this.#resetAndClosing = true;
    this.destroy();
  }

  // ---- options ------------------------------------------------------------------------------------

  setTimeout(msecs: number, callback?: () => void): this {
    if (this.destroyed) return this;
    this.timeout = msecs;
    const ms = E.getTimerDuration(msecs, 'msecs');
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (ms === 0) {
      if (callback !== undefined) {
        E.validateFunction(callback, 'callback');
        this.removeListener('timeout', callback);
      }
    } else {
      this.#timer = setTimeout(() => this.emit('timeout'), ms);
      this.#timer.unref();
      if (callback !== undefined) {
        E.validateFunction(callback, 'callback');
        this.once('timeout', callback);
      }
    }
    return this;
  }

  /** Activity (connect, bytes in or out) restarts the idle timer, as Node's _unrefTimer. */
  #refreshTimer(): void {
    if (this.#timer !== null) this.#timer.refresh();
  }

  setNoDelay(noDelay?: boolean): this {
    const enable = Boolean(noDelay === undefined ? true : noDelay);
    if (this.#conn === null) {
      this.#noDelay = enable;
      return this;
    }
    if (enable !== this.#noDelay) {
      this.#noDelay = enable;
      if (!this.connecting) this.#conn.setNoDelay(enable);
    }
    return this;
  }

  setKeepAlive(enable?: boolean, initialDelay?: number): this {
    const on = Boolean(enable);
    const delay = ~~((initialDelay as number) / 1000);
    if (this.#conn === null) {
      this.#keepAlive = on;
      this.#keepAliveDelay = delay;
      return this;
    }
    if (on !== this.#keepAlive || (on && this.#keepAliveDelay !== delay)) {
      this.#keepAlive = on;
      this.#keepAliveDelay = delay;
      if (!this.connecting) this.#conn.setKeepAlive(on, delay * 1000);
    }
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  // ---- addresses and state ------------------------------------------------------------------------

  address(): AddressInfo | Record<string, never> {
    return this.#getsockname();
  }

  #getsockname(): AddressInfo | Record<string, never> {
    const conn = this.#conn;
    if (conn === null || this.connecting) return {};
    if (this.#sockname === null) this.#sockname = { address: ipv4Format(conn.localAddress), family: 'IPv4', port: conn.localPort };
    return this.#sockname;
  }

  #getpeername(): Partial<AddressInfo> {
    const conn = this.#conn;
    if (conn === null || this.connecting) return this.#peername ?? {};
    if (this.#peername === null) this.#peername = { address: ipv4Format(conn.remoteAddress), family: 'IPv4', port: conn.remotePort };
    return this.#peername;
  }

  get remoteAddress(): string | undefined {
    return this.#getpeername().address;
  }

  get remotePort(): number | undefined {
    return this.#getpeername().port;
  }

  get remoteFamily(): string | undefined {
    return this.#getpeername().family;
  }

  get localAddress(): string | undefined {
    return (this.#getsockname() as Partial<AddressInfo>).address;
  }

  get localPort(): number | undefined {
    return (this.#getsockname() as Partial<AddressInfo>).port;
  }

  get localFamily(): string | undefined {
    return (this.#getsockname() as Partial<AddressInfo>).family;
  }

  get bytesRead(): number {
    return this.#bytesRead;
  }

  /** Bytes given to write() and not refused: in the send buffer, or still queued (as Node counts). */
  get bytesWritten(): number {
    let bytes = this.#bytesFlushed;
    const p = this.#pendingWrite;
    if (p !== null) bytes += p.buf.length - p.off;
    for (const el of (this as unknown as { writableBuffer: { chunk: unknown; encoding: BufferEncoding }[] }).writableBuffer) {
      bytes += el.chunk instanceof Buffer ? el.chunk.length : Buffer.byteLength(el.chunk as string, el.encoding);
    }
    const d = this.#pendingData;
    if (d !== null) bytes += typeof d.chunk === 'string' ? Buffer.byteLength(d.chunk, d.encoding) : d.chunk.length;
    return bytes;
  }

  /** Deprecated in Node: the bytes queued for writing. */
  get bufferSize(): number | undefined {
    return this.#opened ? this.writableLength : undefined;
  }

  get pending(): boolean {
    return !this.#opened || this.connecting;
  }

  get readyState(): 'opening' | 'open' | 'readOnly' | 'writeOnly' | 'closed' {
    if (this.connecting) return 'opening';
    if (this.readable && this.writable) return 'open';
    if (this.readable && !this.writable) return 'readOnly';
    if (!this.readable && this.writable) return 'writeOnly';
    return 'closed';
  }
}

// ---- Server -----------------------------------------------------------------------------------------

const IDLE = 0;
const PENDING = 1;
const LISTENING = 2;

type SocketClass = new (options?: SocketConstructorOpts) => Socket;

export class Server extends EventEmitter {
  /** Accepted sockets not yet closed (Node's _connections). */
  _connections = 0;
  maxConnections: number | undefined = undefined;
  allowHalfOpen: boolean;
  pauseOnConnect: boolean;
  noDelay: boolean;
  keepAlive: boolean;
  /** Seconds, as Node keeps it. */
  keepAliveInitialDelay: number;
  highWaterMark: number | undefined;

  readonly #channel: TcpChannel | null;
  readonly #Socket: SocketClass;
  #state = IDLE;
  #listener: TcpListener | null = null;
  /** Bumped by listen() and close(), so that a stale listen result is closed at once. */
  #listenId = 0;
  #address: AddressInfo | null = null;
  #abort: (() => void) | null = null;

  constructor(options?: ServerOpts | ((socket: Socket) => void), connectionListener?: (socket: Socket) => void, channel: TcpChannel | null = null, socketClass?: SocketClass) {
    super();
    let o: ServerOpts & Options;
    if (typeof options === 'function') {
      this.on('connection', options);
      o = {};
    } else if (options == null || typeof options === 'object') {
      o = { ...options };
      if (typeof connectionListener === 'function') this.on('connection', connectionListener);
    } else {
      throw E.ERR_INVALID_ARG_TYPE('options', 'Object', options);
    }
    if (o.keepAliveInitialDelay !== undefined) {
      E.validateNumber(o.keepAliveInitialDelay, 'options.keepAliveInitialDelay');
      if (o.keepAliveInitialDelay < 0) o.keepAliveInitialDelay = 0;
    }
    if (o.highWaterMark !== undefined) {
      E.validateNumber(o.highWaterMark, 'options.highWaterMark');
      if (o.highWaterMark < 0) o.highWaterMark = undefined;
    }
    this.#channel = channel;
    this.#Socket = socketClass ?? (class extends Socket {
      constructor(opts?: SocketConstructorOpts) {
        super(opts, channel);
      }
    });
    this.allowHalfOpen = o.allowHalfOpen || false;
    this.pauseOnConnect = !!o.pauseOnConnect;
    this.noDelay = Boolean(o.noDelay);
    this.keepAlive = Boolean(o.keepAlive);
    this.keepAliveInitialDelay = ~~((o.keepAliveInitialDelay ?? 0) / 1000);
    this.highWaterMark = o.highWaterMark;
  }

  get listening(): boolean {
    return this.#state === LISTENING;
  }

  listen(port?: number | string | null, hostname?: string, backlog?: number, listeningListener?: () => void): this;
  listen(port?: number | string | null, hostname?: string, listeningListener?: () => void): this;
  listen(port?: number | string | null, backlog?: number, listeningListener?: () => void): this;
  listen(port?: number | string | null, listeningListener?: () => void): this;
  listen(options: ListenOptions, listeningListener?: () => void): this;
  listen(listeningListener?: () => void): this;
  listen(...args: unknown[]): this {
    const normalized = normalizeArgs(args);
    let options = normalized[0];
    const cb = normalized[1];
    if (this.#state !== IDLE) throw E.ERR_SERVER_ALREADY_LISTEN();
    if (cb !== null) this.once('listening', cb);
    const backlogFromArgs = toNumber(args.length > 1 && args[1]) || toNumber(args.length > 2 && args[2]);
    options = (options._handle || options.handle || options) as Options;
    if (options !== normalized[0]) throw noIpc('handle', options);
    if (typeof options.fd === 'number' && options.fd >= 0) throw noIpc('options.fd', options.fd);
    if (options.signal !== undefined) this.#addAbortSignal(options.signal);
    let port = options.port;
    if (args.length === 0 || typeof args[0] === 'function' || (typeof port === 'undefined' && 'port' in options) || port === null) port = 0;
    if (typeof port === 'number' || typeof port === 'string') {
      const p = E.validatePort(port, 'options.port');
      const bl = (options.backlog as number) || backlogFromArgs || 0;
      if (options.host) this.#lookupAndListen(p, options.host as string, bl);
      else this.#listenOn(0, '0.0.0.0', p, bl);
      return this;
    }
    if (options.path && isPipeName(options.path)) throw noIpc('options.path', options.path);
    if (!('port' in options || 'path' in options)) throw E.ERR_INVALID_ARG_VALUE('options', options, 'must have the property "port" or "path"');
    throw E.ERR_INVALID_ARG_VALUE('options', options, 'is invalid');
  }

  #addAbortSignal(signal: unknown): void {
    E.validateAbortSignal(signal, 'options.signal');
    const onAborted = (): void => {
      this.close();
    };
    if (signal.aborted) {
      process.nextTick(onAborted);
    } else {
      signal.addEventListener('abort', onAborted, { once: true });
      this.#abort = () => signal.removeEventListener('abort', onAborted);
      this.once('close', () => {
        this.#abort?.();
        this.#abort = null;
      });
    }
  }

  #lookupAndListen(port: number, host: string, backlog: number): void {
    this.#state = PENDING;
    const id = ++this.#listenId;
    const fail = (err: Error): void => {
      process.nextTick(() => {
        if (id !== this.#listenId) return;
        this.#state = IDLE;
        this.emit('error', err);
      });
    };
    if (isIPv4(host)) return this.#listenOn(ipv4Parse(host) as number, host, port, backlog);
    if (host === '::') return this.#listenOn(0, '0.0.0.0', port, backlog);
    if (isIPv6(host)) return fail(E.uvExceptionWithHostPort('EAFNOSUPPORT', 'listen', host, port));
    builtinLookup(host, { family: 4 }, (err, ip) => {
      if (id !== this.#listenId) return;
      if (err) {
        this.#state = IDLE;
        this.emit('error', err);
      } else {
        this.#listenOn(ipv4Parse(ip as string) as number, ip as string, port, backlog);
      }
    });
  }

  #listenOn(address: number, addressText: string, port: number, backlog: number): void {
    const channel = this.#channel;
    if (channel === null) throw E.codedError(Error, 'ERR_KEEPNET_NO_STACK', 'This Server has no stack: create servers with stack.net (createNet(channel))');
    this.#state = PENDING;
    const id = ++this.#listenId;
    const handler: ListenHandler = {
      onConnection: (conn) => this.#onConnection(conn, id),
      onError: (code) => {
        if (id !== this.#listenId) return;
        this.#state = IDLE;
        this.#listener = null;
        this.#address = null;
        this.emit('error', E.errnoException(code, 'accept'));
      },
    };
    channel.listen({ address, port, backlog: backlog || DEFAULT_BACKLOG }, handler).then(
      (l) =>
        process.nextTick(() => {
          if (id !== this.#listenId) {
            l.close();
            return;
          }
          this.#listener = l;
          this.#address = { address: ipv4Format(l.address), family: 'IPv4', port: l.port };
          this.#state = LISTENING;
          this.emit('listening');
        }),
      (err: unknown) =>
        process.nextTick(() => {
          if (id !== this.#listenId) return;
          this.#state = IDLE;
          const code = (err as { code?: string } | null)?.code ?? 'EINVAL';
          this.emit('error', E.uvExceptionWithHostPort(code, 'listen', addressText, port));
        }),
    );
  }

  #onConnection(conn: TcpConn, id: number): void {
    if (id !== this.#listenId || this.#state !== LISTENING) {
      conn.destroy();
      return;
    }
    if (this.maxConnections != null && this._connections >= this.maxConnections) {
      const data: DropArgument = {
        localAddress: ipv4Format(conn.localAddress),
        localPort: conn.localPort,
        localFamily: 'IPv4',
        remoteAddress: ipv4Format(conn.remoteAddress),
        remotePort: conn.remotePort,
        remoteFamily: 'IPv4',
      };
      this.emit('drop', data);
      conn.close();
      return;
    }
    const socket = new this.#Socket({
      [kConn]: conn,
      allowHalfOpen: this.allowHalfOpen,
      pauseOnCreate: this.pauseOnConnect,
      readable: true,
      writable: true,
      readableHighWaterMark: this.highWaterMark,
      writableHighWaterMark: this.highWaterMark,
    } as SocketConstructorOpts);
    if (this.noDelay) socket.setNoDelay(true);
    if (this.keepAlive) socket.setKeepAlive(true, this.keepAliveInitialDelay * 1000);
    this._connections++;
    socket.server = this;
    socket._server = this;
    this.emit('connection', socket);
  }

  address(): AddressInfo | null {
    return this.#state === LISTENING ? this.#address : null;
  }

  /** Stop accepting; 'close' once every accepted connection has closed too. */
  close(cb?: (err?: Error) => void): this {
    if (typeof cb === 'function') {
      if (this.#state === IDLE) this.once('close', () => cb(E.ERR_SERVER_NOT_RUNNING()));
      else this.once('close', cb);
    }
    if (this.#state !== IDLE) {
      this.#listenId++;
      this.#listener?.close();
      this.#listener = null;
      this.#address = null;
      this.#state = IDLE;
    }
    this._emitCloseIfDrained();
    return this;
  }

  _emitCloseIfDrained(): void {
    if (this.#state !== IDLE || this._connections) return;
    process.nextTick(() => this.emit('close'));
  }

  getConnections(cb: (err: Error | null, count: number) => void): this {
    process.nextTick(cb, null, this._connections);
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }
}

// ---- the module ---------------------------------------------------------------------------------

export interface NetModule {
  Socket: new (options?: SocketConstructorOpts) => Socket;
  Stream: new (options?: SocketConstructorOpts) => Socket;
  Server: new (options?: ServerOpts | ((socket: Socket) => void), connectionListener?: (socket: Socket) => void) => Server;
  createServer(connectionListener?: (socket: Socket) => void): Server;
  createServer(options?: ServerOpts, connectionListener?: (socket: Socket) => void): Server;
  connect(options: NetConnectOpts, connectionListener?: () => void): Socket;
  connect(port: number, host?: string, connectionListener?: () => void): Socket;
  connect(port: number, connectionListener?: () => void): Socket;
  createConnection(options: NetConnectOpts, connectionListener?: () => void): Socket;
  createConnection(port: number, host?: string, connectionListener?: () => void): Socket;
  createConnection(port: number, connectionListener?: () => void): Socket;
  isIP: typeof isIP;
  isIPv4: typeof isIPv4;
  isIPv6: typeof isIPv6;
  getDefaultAutoSelectFamily: typeof getDefaultAutoSelectFamily;
}

/** The `net` module of one stack: its Socket and Server classes are bound to the stack's channel. */
export function createNet(channel: TcpChannel): NetModule {
  class StackSocket extends Socket {
    constructor(options?: SocketConstructorOpts) {
      super(options, channel);
    }
  }
  class StackServer extends Server {
    constructor(options?: ServerOpts | ((socket: Socket) => void), connectionListener?: (socket: Socket) => void) {
      super(options, connectionListener, channel, StackSocket);
    }
  }
  function connect(...args: unknown[]): Socket {
    const normalized = normalizeArgs(args);
    const options = normalized[0];
    const socket = new StackSocket(options as SocketConstructorOpts);
    if (options.timeout) socket.setTimeout(options.timeout as number);
    return (socket.connect as (...a: unknown[]) => Socket)(normalized);
  }
  function createServer(options?: ServerOpts | ((socket: Socket) => void), connectionListener?: (socket: Socket) => void): Server {
    return new StackServer(options, connectionListener);
  }
  return {
    Socket: StackSocket,
    Stream: StackSocket,
    Server: StackServer,
    createServer,
    connect: connect as NetModule['connect'],
    createConnection: connect as NetModule['createConnection'],
    isIP,
    isIPv4,
    isIPv6,
    getDefaultAutoSelectFamily,
  };
}
