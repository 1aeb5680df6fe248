/**
 * The one place a connection changes state (smoltcp's set_state): every transition goes through setState,
 * which also does what entering a state always implies (timers, notifications), so no caller can forget
 * it. `trace`, when set, sees every transition (tests, debugging).
 */
import type { Cx } from './io.js';
import { ccEnv, ccOf } from './io.js';
import { sbClear } from './scoreboard.js';
import {
  CLOSED,
  E_NONE,
  ESTABLISHED,
  FIN_WAIT_2,
  N_CLOSED,
  N_ERROR,
  TIME_WAIT,
  TIMER_OFF,
  type Tcb,
} from './tcb.js';
import { initialWindow } from './cc.js';
import { effMss } from './io.js';

/** Optional transition hook: (tcb, from, to). */
export const stateTrace: { fn: ((t: Tcb, from: number, to: number) => void) | null } = { fn: null };

export function setState(t: Tcb, to: number, cx: Cx): void {
  const from = t.state;
  if (from === to) return;
  t.state = to;
  if (stateTrace.fn !== null) stateTrace.fn(t, from, to);
  const now = cx.io.nowUs;
  switch (to) {
    case ESTABLISHED: {
      // RFC 5681 §3.1 / RFC 6928: the initial window; 1 SMSS when the SYN or SYN-ACK was lost.
      const cc = ccOf(t);
      cc.init(t.cc, ccEnv(t, cx));
      if (t.synRetransmitted) t.cc.cwnd = Math.min(t.cc.cwnd, effMss(t));
      if (t.cc.cwnd <= 0) t.cc.cwnd = initialWindow(effMss(t));
      if (t.keepAlive) t.tKeepalive = now + t.keepIdleUs;
      break;
    }
    case FIN_WAIT_2:
      // Everything we sent is acknowledged. An orphan (nobody will ever read) must not wait forever for
      // the peer's FIN (Linux's tcp_fin_timeout).
      t.tRtx = TIMER_OFF;
      t.tTlp = TIMER_OFF;
      t.tPersist = TIMER_OFF;
      if (t.orphan) t.tClose = now + t.finWait2Us;
      break;
    case TIME_WAIT:
      // RFC 9293 §3.10.7.4: wait 2 MSL; nothing but an ACK of a retransmitted FIN is ever sent again.
      t.tRtx = TIMER_OFF;
      t.tTlp = TIMER_OFF;
      t.tPersist = TIMER_OFF;
      t.tKeepalive = TIMER_OFF;
      t.tDelack = TIMER_OFF;
      t.tClose = now + t.timeWaitUs;
      break;
    case CLOSED:
      t.tRtx = t.tTlp = t.tDelack = t.tPersist = t.tKeepalive = t.tClose = TIMER_OFF;
      t.tlpActive = 0;
      t.inRecovery = 0;
      sbClear(t.sb);
      cx.io.notify(t, t.err !== E_NONE ? N_CLOSED | N_ERROR : N_CLOSED);
      break;
    default:
      break;
  }
}

/** Ends the connection with `err` (E_NONE for a normal end). */
export function closeWith(t: Tcb, err: number, cx: Cx): void {
  if (err !== E_NONE && t.err === E_NONE) t.err = err;
  setState(t, CLOSED, cx);
}
