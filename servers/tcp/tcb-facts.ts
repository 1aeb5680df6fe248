/**
 * What the tcp shell reads from and sets in a Tcb (core/tcb.ts): the few facts it publishes to the
 * shim, and the per-connection settings the shim asks for. Kept in one place so the shell never
 * interprets Tcb fields on its own.
 */
import { TERR } from './api.js';
import * as tcb from './core/tcb.js';
import type { Tcb } from './core/tcb.js';

const ERR_TO_WIRE: readonly number[] = (() => {
  const m: number[] = [];
  m[tcb.E_NONE] = TERR.OK;
  m[tcb.ECONNRESET] = TERR.ECONNRESET;
  m[tcb.ECONNREFUSED] = TERR.ECONNREFUSED;
  m[tcb.ETIMEDOUT] = TERR.ETIMEDOUT;
  m[tcb.EPIPE] = TERR.EPIPE;
  m[tcb.ECONNABORTED] = TERR.ECONNABORTED;
  m[tcb.EHOSTUNREACH] = TERR.EHOSTUNREACH;
  m[tcb.ENETUNREACH] = TERR.ENETUNREACH;
  return m;
})();

export const tcbFacts = {
  iss: (t: Tcb): number => t.iss,
  irs: (t: Tcb): number => t.irs,
  localAddr: (t: Tcb): number => t.localAddr,
  localPort: (t: Tcb): number => t.localPort,
  remoteAddr: (t: Tcb): number => t.remoteAddr,
  remotePort: (t: Tcb): number => t.remotePort,
  state: (t: Tcb): number => t.state,
  closed: (t: Tcb): boolean => t.state === tcb.CLOSED,
  /** The handshake is done (ESTABLISHED or any later state but CLOSED). */
  connected: (t: Tcb): boolean => t.state >= tcb.ESTABLISHED,
  finReceived: (t: Tcb): boolean => t.finReceived !== 0,
  finQueued: (t: Tcb): boolean => t.appClosed !== 0,
  /** The connection's error as a wire code (api.ts TERR). */
  err: (t: Tcb): number => ERR_TO_WIRE[t.err] ?? TERR.ECONNRESET,
  /**
   * Data bytes of the outgoing stream the peer acknowledged (uint32, wraps), at most `written` (the
   * FIN's sequence number is not data).
   */
  ackedData(t: Tcb, written: number): number {
    if (t.sndUna === t.iss) return 0; // our SYN is not acknowledged: no data can be
    const a = (t.sndUna - t.iss - 1) >>> 0;
    const over = (a - written) >>> 0;
    return over !== 0 && over < 0x80000000 ? written : a;
  },
  /**
   * The right edge of the receive window we advertised last, as data bytes of the incoming stream
   * (uint32, wraps, the origin of receivedData): the peer may send up to here without news from us.
   */
  advertisedData(t: Tcb): number {
    if (t.rcvNxt === t.irs) return 0;
    return (t.rcvAdv - t.irs - 1) >>> 0;
  },
  /** An ACK for a short (pushed) segment is being delayed: the application draining it should send it. */
  ackOwedOnRead(t: Tcb): boolean {
    return t.rcvPushed !== 0 && t.tDelack !== tcb.TIMER_OFF;
  },
  /** Data bytes of the incoming stream received in order (uint32, wraps): the peer's FIN excluded. */
  receivedData(t: Tcb): number {
    if (t.rcvNxt === t.irs) return 0; // no SYN received yet
    return (t.rcvNxt - t.irs - 1 - (t.finReceived ? 1 : 0)) >>> 0;
  },
};

export interface TcbSettings {
  localAddr?: number;
  localPort?: number;
  remoteAddr?: number;
  remotePort?: number;
  /** Our MSS (interface MTU - 40). */
  mss?: number;
  /** Receive buffer bytes (window scale choice). */
  rcvBuf?: number;
  noDelay?: boolean;
  /** Keepalive idle time (ms); 0: keepalive off. */
  keepAliveMs?: number;
  /** Congestion control id (0 newreno, 1 cubic). */
  cc?: number;
}

export function tcbConfigure(t: Tcb, s: TcbSettings): void {
  if (s.localAddr !== undefined) t.localAddr = s.localAddr >>> 0;
  if (s.localPort !== undefined) t.localPort = s.localPort;
  if (s.remoteAddr !== undefined) t.remoteAddr = s.remoteAddr >>> 0;
  if (s.remotePort !== undefined) t.remotePort = s.remotePort;
  if (s.mss !== undefined) t.rcvMss = s.mss;
  if (s.rcvBuf !== undefined) t.rcvBuf = s.rcvBuf;
  if (s.noDelay !== undefined) t.noDelay = s.noDelay ? 1 : 0;
  if (s.keepAliveMs !== undefined) {
    t.keepAlive = s.keepAliveMs > 0 ? 1 : 0;
    if (s.keepAliveMs > 0) t.keepIdleUs = s.keepAliveMs * 1000;
  }
  if (s.cc !== undefined) t.ccAlgo = s.cc === 1 ? 1 : 0;
}
