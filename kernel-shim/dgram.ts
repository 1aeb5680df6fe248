/**
 * A node:dgram-compatible API over keepnet's udp server: `stack.dgram.createSocket('udp4')` returns a
 * Socket with node:dgram's methods, events, argument checks and errors (the same classes and codes;
 * the argument juggling of send() and bind() is Node 20's lib/dgram.js, rule for rule).
 *
 * What differs, and why:
 *   - IPv4 only: 'udp6' is refused (ERR_SOCKET_BAD_TYPE, saying so). Multicast membership is not
 *     implemented (ENOSYS), nor binding to a file descriptor, nor cluster handle sharing (`exclusive`
 *     is carried to the server and has no effect).
 *   - bind(), connect() and close() reach the stack through a ring, so their outcome arrives a little
 *     later than in Node (where bind and connect are synchronous system calls after the DNS lookup).
 *     address() reports EBADF until 'listening', as Node does during the lookup.
 *   - A send callback fires when the datagram is handed to the stack (written to the ring), not when a
 *     NIC took it. A datagram that waits (no pool buffer yet, ring full) keeps its place in a bounded
 *     queue (getSendQueueCount/Size); past the bound, send fails with ENOBUFS (to the callback, or as an
 *     'error' event without one: never silently). EMSGSIZE (payload > 65507) and EACCES (broadcast
 *     without setBroadcast) are reported as Node reports them: to the callback, and silently without
 *     one (that is what Node does for synchronous send errors).
 *   - Errors the stack finds later (a datagram the server refused; ICMP errors on a connected socket:
 *     ECONNREFUSED from a port unreachable, as 'recvmsg') arrive as 'error' events.
 *   - setTTL/setBroadcast on a closed socket throw ERR_SOCKET_DGRAM_NOT_RUNNING (Node throws a
 *     TypeError from its null handle).
 * Names that are not IPv4 literals go through dns.lookup (or the `lookup` option), as in Node.
 */
import dns from 'node:dns';
import { EventEmitter } from 'node:events';
import { isIPv6 } from 'node:net';
import {
  BINDF_EXCLUSIVE,
  BINDF_REUSEADDR,
  OP_SEND,
  OPT_BROADCAST,
  OPT_TTL,
  SENDF_CONNECTED,
  UDP_MAX_PAYLOAD,
  UDP_MSG,
  type UdpErrName,
} from '../servers/udp/api.js';
import { isBroadcast } from '../servers/udp/socket-table.js';
import { HEADROOM } from '../servers/runtime/messages.js';
import { ipv4Format, ipv4Parse } from '../servers/wire/ipv4.js';
import { UDP_HEADER_LEN } from '../servers/wire/udp.js';
import { UdpChannel, type ChannelOptions, type ChannelSocket, type QueueCount, type SendCallback } from './dgram-channel.js';
import * as E from './dgram-errors.js';
import type { ShimHost } from './shim-host.js';

export type SocketType = 'udp4' | 'udp6';
export type LookupFunction = (hostname: string, family: number, callback: (err: Error | null, address: string, family?: number) => void) => void;

export interface SocketOptions {
  type: SocketType;
  reuseAddr?: boolean;
  ipv6Only?: boolean;
  recvBufferSize?: number;
  sendBufferSize?: number;
  lookup?: LookupFunction;
  signal?: AbortSignal;
}

export interface BindOptions {
  port?: number;
  address?: string;
  exclusive?: boolean;
  fd?: number;
}

export interface AddressInfo {
  address: string;
  family: 'IPv4';
  port: number;
}

export interface RemoteInfo extends AddressInfo {
  size: number;
}

const BIND_STATE_UNBOUND = 0;
const BIND_STATE_BINDING = 1;
const BIND_STATE_BOUND = 2;
const CONNECT_STATE_DISCONNECTED = 0;
const CONNECT_STATE_CONNECTING = 1;
const CONNECT_STATE_CONNECTED = 2;

/** Linux's default socket buffer size (net.core.rmem_default / wmem_default). */
const DEFAULT_BUFFER_SIZE = 212992;
const KEEPALIVE_MS = 1 << 30;

type Msg = string | ArrayBufferView | readonly (string | ArrayBufferView)[];

function validatePort(port: unknown, name: string, allowZero: boolean): number {
  if (
    (typeof port !== 'number' && typeof port !== 'string') ||
    (typeof port === 'string' && port.trim().length === 0) ||
    +port !== +port >>> 0 ||
    +port > 0xffff ||
    (+port === 0 && !allowZero)
  ) {
    throw E.ERR_SOCKET_BAD_PORT(name, port, allowZero);
  }
  return +port | 0;
}

function validateString(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string') throw E.ERR_INVALID_ARG_TYPE(name, 'string', value);
}

function validateNumber(value: unknown, name: string): asserts value is number {
  if (typeof value !== 'number') throw E.ERR_INVALID_ARG_TYPE(name, 'number', value);
}

function validateUint32(value: unknown, name: string): void {
  if (typeof value !== 'number') throw E.ERR_INVALID_ARG_TYPE(name, 'number', value);
  if (!Number.isInteger(value)) throw E.ERR_OUT_OF_RANGE(name, 'an integer', value);
  if (value < 0 || value > 4294967295) throw E.ERR_OUT_OF_RANGE(name, '>= 0 && <= 4294967295', value);
}

function sliceBuffer(buffer: unknown, offset: unknown, length: unknown): Buffer {
  let b: ArrayBufferView;
  if (typeof buffer === 'string') b = Buffer.from(buffer);
  else if (ArrayBuffer.isView(buffer)) b = buffer;
  else throw E.ERR_INVALID_ARG_TYPE('buffer', ['Buffer', 'TypedArray', 'DataView', 'string'], buffer);
  const off = (offset as number) >>> 0;
  const len = (length as number) >>> 0;
  if (off > b.byteLength) throw E.ERR_BUFFER_OUT_OF_BOUNDS('offset');
  if (off + len > b.byteLength) throw E.ERR_BUFFER_OUT_OF_BOUNDS('length');
  return Buffer.from(b.buffer, b.byteOffset + off, len);
}

function fixBufferList(list: readonly unknown[]): Uint8Array[] | null {
  const out = new Array<Uint8Array>(list.length);
  for (let i = 0; i < list.length; i++) {
    const b = list[i];
    if (typeof b === 'string') out[i] = Buffer.from(b);
    else if (!ArrayBuffer.isView(b)) return null;
    else out[i] = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  }
  return out;
}

/** The dgram module of one stack. */
export class DgramApi {
  readonly channel: UdpChannel;

  constructor(host: ShimHost, opts: ChannelOptions = {}) {
    this.channel = new UdpChannel(host, opts);
  }

  createSocket(type: SocketType | SocketOptions, listener?: (msg: Buffer, rinfo: RemoteInfo) => void): Socket {
    return new Socket(this.channel, type, listener);
  }

  /**
   * The stack is closing: every open socket is closed ('close' events), queued datagrams are dropped
   * and timers cleared, so nothing of this API keeps the process alive.
   */
  close(): void {
    this.channel.close();
  }
}

interface State {
  alive: boolean;
  receiving: boolean;
  bindState: number;
  connectState: number;
  queue: (() => void)[] | undefined;
  reuseAddr: boolean;
  recvBufferSize: number | undefined;
  sendBufferSize: number | undefined;
  /** Requested to the server (so close() tells it). */
  known: boolean;
  refed: boolean;
  keepalive: NodeJS.Timeout | null;
  /** Local address and port (after bind; after connect, the source address chosen for the peer). */
  localAddr: number;
  localPort: number;
  boundAddr: number;
  remoteAddr: number;
  remotePort: number;
  broadcast: boolean;
  ttl: number;
  recvBuf: number;
  sendBuf: number;
  sendQueue: QueueCount;
}

/** node:dgram's events, typed. */
export interface Socket {
  on(event: 'close' | 'connect' | 'listening', listener: () => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'message', listener: (msg: Buffer, rinfo: RemoteInfo) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: 'close' | 'connect' | 'listening', listener: () => void): this;
  once(event: 'error', listener: (err: Error) => void): this;
  once(event: 'message', listener: (msg: Buffer, rinfo: RemoteInfo) => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
}

export class Socket extends EventEmitter implements ChannelSocket {
  readonly type: SocketType;
  readonly #ch: UdpChannel;
  readonly #id: number;
  readonly #lookup: LookupFunction | undefined;
  readonly #s: State;

  constructor(channel: UdpChannel, type: SocketType | SocketOptions, listener?: (msg: Buffer, rinfo: RemoteInfo) => void) {
    super();
    let options: SocketOptions | undefined;
    let lookup: LookupFunction | undefined;
    let t: unknown = type;
    if (type !== null && typeof type === 'object') {
      options = type;
      t = options.type;
      lookup = options.lookup;
      if (options.recvBufferSize) validateUint32(options.recvBufferSize, 'options.recvBufferSize');
      if (options.sendBufferSize) validateUint32(options.sendBufferSize, 'options.sendBufferSize');
    }
    if (lookup !== undefined && typeof lookup !== 'function') throw E.ERR_INVALID_ARG_TYPE('lookup', 'Function', lookup);
    if (t === 'udp6') throw E.ERR_SOCKET_BAD_TYPE("keepnet is an IPv4 stack: 'udp6' sockets are not supported; use 'udp4'");
    if (t !== 'udp4') throw E.ERR_SOCKET_BAD_TYPE();
    this.type = t;
    this.#ch = channel;
    this.#lookup = lookup;
    this.#id = channel.allocSockId();
    if (typeof listener === 'function') this.on('message', listener);
    this.#s = {
      alive: true,
      receiving: false,
      bindState: BIND_STATE_UNBOUND,
      connectState: CONNECT_STATE_DISCONNECTED,
      queue: undefined,
      reuseAddr: !!options?.reuseAddr,
      recvBufferSize: options?.recvBufferSize,
      sendBufferSize: options?.sendBufferSize,
      known: false,
      refed: true,
      keepalive: null,
      localAddr: 0,
      localPort: 0,
      boundAddr: 0,
      remoteAddr: 0,
      remotePort: 0,
      broadcast: false,
      ttl: 64,
      recvBuf: DEFAULT_BUFFER_SIZE,
      sendBuf: DEFAULT_BUFFER_SIZE,
      sendQueue: { count: 0, bytes: 0 },
    };
    channel.register(this.#id, this);
    if (options?.signal !== undefined) {
      const signal = options.signal;
      if (signal === null || typeof signal !== 'object' || !('aborted' in signal)) {
        throw E.ERR_INVALID_ARG_TYPE('options.signal', 'AbortSignal', signal);
      }
      const onAborted = (): void => {
        if (this.#s.alive) this.close();
      };
      if (signal.aborted) onAborted();
      else {
        signal.addEventListener('abort', onAborted, { once: true });
        this.once('close', () => signal.removeEventListener('abort', onAborted));
      }
    }
  }

  /** The socket id the stack knows this socket by. */
  get sockId(): number {
    return this.#id;
  }

  // ---- bind ---------------------------------------------------------------------------------------

  bind(port?: number | BindOptions | null, address?: string | (() => void), callback?: () => void): this;
  bind(...args: unknown[]): this {
    let port = args[0];
    const address_ = args[1];
    const s = this.#s;
    this.healthCheck();
    if (s.bindState !== BIND_STATE_UNBOUND) throw E.ERR_SOCKET_ALREADY_BOUND();
    s.bindState = BIND_STATE_BINDING;

    const cb = args.length > 0 ? args[args.length - 1] : undefined;
    if (typeof cb === 'function') {
      const removeListeners = (): void => {
        this.removeListener('error', removeListeners);
        this.removeListener('listening', onListening);
      };
      const onListening = (): void => {
        removeListeners();
        (cb as () => void).call(this);
      };
      this.on('error', removeListeners);
      this.on('listening', onListening);
    }

    let address: unknown;
    let exclusive: boolean;
    if (port !== null && typeof port === 'object') {
      const o = port as BindOptions;
      if (Number.isInteger(o.fd) && (o.fd as number) > 0) {
        s.bindState = BIND_STATE_UNBOUND;
        throw E.ERR_INVALID_ARG_VALUE('options.fd', o.fd, 'is not supported: a keepnet socket cannot adopt a file descriptor');
      }
      address = o.address || '';
      exclusive = !!o.exclusive;
      port = o.port;
    } else {
      address = typeof address_ === 'function' ? '' : address_;
      exclusive = false;
    }
    if (!address) address = '0.0.0.0';

    this.resolve(address as string, false, (err, ip) => {
      if (!s.alive) return;
      if (err) {
        s.bindState = BIND_STATE_UNBOUND;
        this.emit('error', err);
        return;
      }
      // Node hands the port to its C++ binding as a uint32, which the socket address truncates to 16
      // bits: bind(-1) binds 65535, bind('x') an ephemeral port. Same here.
      const p = (Number(port || 0) >>> 0) & 0xffff;
      const a = ipv4Parse(ip);
      if (a === null) {
        s.bindState = BIND_STATE_UNBOUND;
        this.emit('error', E.exceptionWithHostPort('EINVAL', 'bind', ip, port));
        return;
      }
      const flags = (s.reuseAddr ? BINDF_REUSEADDR : 0) | (exclusive ? BINDF_EXCLUSIVE : 0);
      s.known = true;
      this.#ch.request(UDP_MSG.BIND, this.#id, a, p, flags, 0, (code, laddr, lport) => {
        if (!s.alive) return;
        if (code !== 'OK') {
          s.bindState = BIND_STATE_UNBOUND;
          this.emit('error', E.exceptionWithHostPort(code, 'bind', ip, port));
          return;
        }
        s.localAddr = laddr;
        s.boundAddr = laddr;
        s.localPort = lport;
        this.startListening();
      });
    });
    return this;
  }

  private startListening(): void {
    const s = this.#s;
    s.receiving = true;
    s.bindState = BIND_STATE_BOUND;
    if (s.recvBufferSize) this.bufferSize(s.recvBufferSize, true);
    if (s.sendBufferSize) this.bufferSize(s.sendBufferSize, false);
    this.updateRef();
    this.emit('listening');
  }

  // ---- connect ------------------------------------------------------------------------------------

  connect(port: number, address?: string | ((err?: Error) => void), callback?: (err?: Error) => void): void {
    const p = validatePort(port, 'Port', false);
    let addr: unknown = address;
    if (typeof addr === 'function') {
      callback = addr as (err?: Error) => void;
      addr = '';
    } else if (addr === undefined) {
      addr = '';
    }
    validateString(addr, 'address');
    const s = this.#s;
    if (s.connectState !== CONNECT_STATE_DISCONNECTED) throw E.ERR_SOCKET_DGRAM_IS_CONNECTED();
    s.connectState = CONNECT_STATE_CONNECTING;
    if (s.bindState === BIND_STATE_UNBOUND) this.bind({ port: 0, exclusive: true }, null as unknown as string);
    if (s.bindState !== BIND_STATE_BOUND) {
      this.enqueue(() => this.doConnect(p, addr as string, callback));
      return;
    }
    this.doConnect(p, addr, callback);
  }

  private doConnect(port: number, address: string, callback: ((err?: Error) => void) | undefined): void {
    const s = this.#s;
    if (callback) this.once('connect', callback);
    const fail = (ex: Error): void => {
      s.connectState = CONNECT_STATE_DISCONNECTED;
      process.nextTick(() => {
        if (callback) {
          this.removeListener('connect', callback);
          callback(ex);
        } else {
          this.emit('error', ex);
        }
      });
    };
    this.resolve(address, false, (ex, ip) => {
      if (!s.alive) return;
      if (ex) return fail(ex);
      const a = ipv4Parse(ip);
      if (a === null) return fail(E.exceptionWithHostPort('EINVAL', 'connect', address, port));
      this.#ch.request(UDP_MSG.CONNECT, this.#id, a, port, 0, 0, (code, laddr, lport) => {
        if (!s.alive) return;
        if (code !== 'OK') return fail(E.exceptionWithHostPort(code, 'connect', address, port));
        s.connectState = CONNECT_STATE_CONNECTED;
        s.remoteAddr = a === 0 ? 0x7f000001 : a;
        s.remotePort = port;
        s.localAddr = laddr;
        s.localPort = lport;
        this.emit('connect');
      });
    });
  }

  disconnect(): void {
    const s = this.#s;
    if (s.connectState !== CONNECT_STATE_CONNECTED) throw E.ERR_SOCKET_DGRAM_NOT_CONNECTED();
    this.healthCheck();
    this.#ch.request(UDP_MSG.DISCONNECT, this.#id, 0, 0, 0, 0);
    s.connectState = CONNECT_STATE_DISCONNECTED;
    s.remoteAddr = 0;
    s.remotePort = 0;
    s.localAddr = s.boundAddr;
  }

  // ---- send ---------------------------------------------------------------------------------------

  send(msg: Msg, port?: number | SendCallback, address?: string | SendCallback, callback?: SendCallback): void;
  send(msg: Msg, offset: number, length: number, port?: number | SendCallback, address?: string | SendCallback, callback?: SendCallback): void;
  send(...args: unknown[]): void {
    let [buffer, offset, length, port, address, callback] = args;
    let list: Uint8Array[] | null;
    const s = this.#s;
    const connected = s.connectState === CONNECT_STATE_CONNECTED;
    if (!connected) {
      if (address || (port && typeof port !== 'function')) {
        buffer = sliceBuffer(buffer, offset, length);
      } else {
        callback = port;
        port = offset;
        address = length;
      }
    } else {
      if (typeof length === 'number') {
        buffer = sliceBuffer(buffer, offset, length);
        if (typeof port === 'function') {
          callback = port;
          port = null;
        }
      } else {
        callback = offset;
      }
      if (port || address) throw E.ERR_SOCKET_DGRAM_IS_CONNECTED();
    }

    if (!Array.isArray(buffer)) {
      if (typeof buffer === 'string') list = [Buffer.from(buffer)];
      else if (!ArrayBuffer.isView(buffer)) throw E.ERR_INVALID_ARG_TYPE('buffer', ['Buffer', 'TypedArray', 'DataView', 'string'], buffer);
      else list = [new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)];
    } else if (!(list = fixBufferList(buffer))) {
      throw E.ERR_INVALID_ARG_TYPE('buffer list arguments', ['Buffer', 'TypedArray', 'DataView', 'string'], buffer);
    }

    if (!connected) port = validatePort(port, 'Port', false);
    if (typeof callback !== 'function') callback = undefined;
    if (typeof address === 'function') {
      callback = address;
      address = undefined;
    } else if (address != null) {
      validateString(address, 'address');
    }

    this.healthCheck();
    if (s.bindState === BIND_STATE_UNBOUND) this.bind({ port: 0, exclusive: true }, null as unknown as string);
    if (list.length === 0) list.push(Buffer.alloc(0));
    if (s.bindState !== BIND_STATE_BOUND) {
      const l = list;
      const p = port;
      const a = address;
      const c = callback;
      this.enqueue(() => this.send(l, p as number, a as string, c as SendCallback));
      return;
    }
    const cb = callback as SendCallback | undefined;
    if (!connected) {
      this.resolve(address as string, true, (ex, ip) => this.doSend(ex, ip, list, address as string | undefined, port as number, cb));
    } else {
      this.doSend(null, '', list, undefined, undefined, cb);
    }
  }

  private doSend(ex: Error | null, ip: string, list: Uint8Array[], address: string | undefined, port: number | undefined, cb: SendCallback | undefined): void {
    const s = this.#s;
    if (ex) {
      if (cb) process.nextTick(cb, ex);
      else process.nextTick(() => this.emit('error', ex));
      return;
    }
    if (!s.alive) return;
    const ch = this.#ch;
    const connected = port === undefined;
    let dst = 0;
    if (!connected) {
      const a = ipv4Parse(ip);
      if (a === null) return this.sendFailed('EINVAL', address, port, cb, false);
      dst = a;
    }
    let total = 0;
    for (const b of list) total += b.byteLength;
    // Node's synchronous send errors: to the callback, and dropped without one.
    if (total > UDP_MAX_PAYLOAD || HEADROOM + UDP_HEADER_LEN + total > ch.host.pools.maxSize) return this.sendFailed('EMSGSIZE', address, port, cb, false);
    const env = ch.host.config.iface;
    const target = connected ? s.remoteAddr : dst;
    if (!s.broadcast && isBroadcast(target, { ifAddr: env ? env.address >>> 0 : 0, prefix: env ? env.prefix : 32 })) {
      return this.sendFailed('EACCES', address, port, cb, false);
    }
    if (!ch.canQueue(total)) return this.sendFailed('ENOBUFS', address, port, cb, true);
    ch.send(this.#id, list, total, dst, connected ? 0 : (port as number), connected ? SENDF_CONNECTED : 0, s.sendQueue, cb);
  }

  private sendFailed(code: UdpErrName, address: string | undefined, port: number | undefined, cb: SendCallback | undefined, emitWithoutCallback: boolean): void {
    const ex = E.exceptionWithHostPort(code, 'send', address, port);
    if (cb) process.nextTick(cb, ex);
    else if (emitWithoutCallback) process.nextTick(() => this.emit('error', ex));
  }

  // ---- close --------------------------------------------------------------------------------------

  close(callback?: () => void): this {
    const s = this.#s;
    if (typeof callback === 'function') this.on('close', callback);
    if (s.queue !== undefined) {
      s.queue.push(() => this.close());
      return this;
    }
    this.healthCheck();
    s.receiving = false;
    s.alive = false;
    this.updateRef();
    this.#ch.unregister(this.#id);
    // Queued datagrams of this socket go first (one ordered queue), then the CLOSE frees the port.
    if (s.known) this.#ch.request(UDP_MSG.CLOSE, this.#id, 0, 0, 0, 0);
    process.nextTick(() => this.emit('close'));
    return this;
  }

  // ---- addresses and options ----------------------------------------------------------------------

  address(): AddressInfo {
    this.healthCheck();
    const s = this.#s;
    if (s.bindState !== BIND_STATE_BOUND) throw E.errnoException('EBADF', 'getsockname');
    return { address: ipv4Format(s.localAddr), family: 'IPv4', port: s.localPort };
  }

  remoteAddress(): AddressInfo {
    this.healthCheck();
    const s = this.#s;
    if (s.connectState !== CONNECT_STATE_CONNECTED) throw E.ERR_SOCKET_DGRAM_NOT_CONNECTED();
    return { address: ipv4Format(s.remoteAddr), family: 'IPv4', port: s.remotePort };
  }

  setBroadcast(flag: boolean): void {
    this.healthCheck();
    const s = this.#s;
    if (s.bindState !== BIND_STATE_BOUND) throw E.errnoException('EBADF', 'setBroadcast');
    s.broadcast = !!flag;
    this.#ch.request(UDP_MSG.SET_OPT, this.#id, 0, 0, OPT_BROADCAST, s.broadcast ? 1 : 0);
  }

  setTTL(ttl: number): number {
    validateNumber(ttl, 'ttl');
    this.healthCheck();
    const s = this.#s;
    const v = ttl | 0;
    if (v < 1 || v > 255) throw E.errnoException('EINVAL', 'setTTL');
    if (s.bindState !== BIND_STATE_BOUND) throw E.errnoException('EBADF', 'setTTL');
    s.ttl = v;
    this.#ch.request(UDP_MSG.SET_OPT, this.#id, 0, 0, OPT_TTL, v);
    return ttl;
  }

  setMulticastTTL(ttl: number): number {
    validateNumber(ttl, 'ttl');
    this.healthCheck();
    throw E.errnoException('ENOSYS', 'setMulticastTTL');
  }

  setMulticastLoopback(_flag: boolean): boolean {
    this.healthCheck();
    throw E.errnoException('ENOSYS', 'setMulticastLoopback');
  }

  setMulticastInterface(interfaceAddress: string): void {
    this.healthCheck();
    validateString(interfaceAddress, 'interfaceAddress');
    throw E.errnoException('ENOSYS', 'setMulticastInterface');
  }

  addMembership(multicastAddress: string, _interfaceAddress?: string): void {
    this.healthCheck();
    if (!multicastAddress) throw E.ERR_MISSING_ARGS('multicastAddress');
    throw E.errnoException('ENOSYS', 'addMembership');
  }

  dropMembership(multicastAddress: string, _interfaceAddress?: string): void {
    this.healthCheck();
    if (!multicastAddress) throw E.ERR_MISSING_ARGS('multicastAddress');
    throw E.errnoException('ENOSYS', 'dropMembership');
  }

  setRecvBufferSize(size: number): void {
    this.bufferSize(size, true);
  }
  setSendBufferSize(size: number): void {
    this.bufferSize(size, false);
  }
  getRecvBufferSize(): number {
    return this.bufferSize(0, true);
  }
  getSendBufferSize(): number {
    return this.bufferSize(0, false);
  }

  /** Datagrams (and their bytes) waiting for the stack: a pool buffer or ring space. */
  getSendQueueSize(): number {
    return this.#s.sendQueue.bytes;
  }
  getSendQueueCount(): number {
    return this.#s.sendQueue.count;
  }

  ref(): this {
    if (this.#s.alive) {
      this.#s.refed = true;
      this.updateRef();
    }
    return this;
  }

  unref(): this {
    if (this.#s.alive) {
      this.#s.refed = false;
      this.updateRef();
    }
    return this;
  }

  // ---- from the channel ---------------------------------------------------------------------------

  onDatagram(msg: Buffer, src: number, sport: number): void {
    if (!this.#s.receiving) return;
    this.emit('message', msg, { address: ipv4Format(src), family: 'IPv4', port: sport, size: msg.length } satisfies RemoteInfo);
  }

  onError(code: UdpErrName, op: number, addr: number, port: number, info: number): void {
    if (!this.#s.alive) return;
    const err =
      op === OP_SEND ? E.exceptionWithHostPort(code, 'send', ipv4Format(addr), port) : E.errnoException(code, 'recvmsg');
    if (code === 'EMSGSIZE' && info > 0) Object.assign(err, { mtu: info });
    this.emit('error', err);
  }

  onChannelClosed(): void {
    const s = this.#s;
    if (!s.alive) return;
    s.receiving = false;
    s.alive = false;
    s.queue = undefined;
    this.updateRef();
    process.nextTick(() => this.emit('close'));
  }

  // ---- internals ----------------------------------------------------------------------------------

  private healthCheck(): void {
    if (!this.#s.alive) throw E.ERR_SOCKET_DGRAM_NOT_RUNNING();
  }

  /** Keep the process alive while bound, open and ref()'d, as a libuv handle that is receiving does. */
  private updateRef(): void {
    const s = this.#s;
    const want = s.alive && s.receiving && s.refed;
    if (want && s.keepalive === null) s.keepalive = setInterval(() => {}, KEEPALIVE_MS);
    else if (!want && s.keepalive !== null) {
      clearInterval(s.keepalive);
      s.keepalive = null;
    }
  }

  private bufferSize(size: number, recv: boolean): number {
    if (size >>> 0 !== size) throw E.ERR_SOCKET_BAD_BUFFER_SIZE();
    const s = this.#s;
    const syscall = recv ? 'uv_recv_buffer_size' : 'uv_send_buffer_size';
    if (!s.alive || s.bindState !== BIND_STATE_BOUND) throw E.ERR_SOCKET_BUFFER_SIZE(syscall, 'EBADF');
    // As Linux: a size set is doubled (bookkeeping overhead) and reported back doubled.
    if (size > 0) {
      if (recv) s.recvBuf = Math.max(2304, size * 2);
      else s.sendBuf = Math.max(4608, size * 2);
    }
    return recv ? s.recvBuf : s.sendBuf;
  }

  /** Node's handle.lookup: IPv4 literals without a lookup round trip (synchronously if `sync`). */
  private resolve(address: string, sync: boolean, cb: (err: Error | null, ip: string) => void): void {
    const a = address || '127.0.0.1';
    if (this.#lookup !== undefined) {
      this.#lookup(a, 4, (err, ip) => cb(err, ip));
      return;
    }
    if (typeof a === 'string' && (ipv4Parse(a) !== null || isIPv6(a))) {
      if (sync) cb(null, a);
      else process.nextTick(cb, null, a);
      return;
    }
    dns.lookup(a, 4, (err, ip) => cb(err, ip));
  }

  private enqueue(fn: () => void): void {
    const s = this.#s;
    if (s.queue === undefined) {
      s.queue = [];
      const onListenError = (): void => {
        this.removeListener('listening', onListenSuccess);
        s.queue = undefined;
      };
      const onListenSuccess = (): void => {
        this.removeListener(EventEmitter.errorMonitor, onListenError);
        const q = s.queue!;
        s.queue = undefined;
        for (const f of q) f();
      };
      this.once(EventEmitter.errorMonitor, onListenError);
      this.once('listening', onListenSuccess);
    }
    s.queue.push(fn);
  }
}
